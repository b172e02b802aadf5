#!/usr/bin/python3
"""Reference values for cellkit/cluster/{soft_assignment,sinkhorn,kmeans}.hpp.

Writes, deterministically (fixed seeds; float64 unless a case says float32):

  tests/reference/data/cluster_soft_assignment_cases.txt   PyTorch 1.13 autograd
  tests/reference/data/cluster_sinkhorn_cases.txt          POT 0.8.2 (ot.sinkhorn, ot.sinkhorn_log,
                                                           ot.unbalanced.sinkhorn_unbalanced) and
                                                           SwAV's distributed_sinkhorn (torch)
  tests/reference/data/cluster_kmeans_cases.txt            scikit-learn 1.2.1 KMeans(algorithm='lloyd')

Format (read by cellkit::test::read_fixture_cases): 'case p1 p2 ...', then named matrices, each a
'# name rows cols' line followed by `rows` lines of `cols` numbers written with repr (shortest
round trip: the C++ side reads the exact doubles).

cluster_soft_assignment_cases.txt, per case:
  case <index> <N> <d> <K> <alpha>
  z (N x d), mu (K x d), q (N x K): Student-t assignment; p (N x K): DEC target (power 2);
  p_given (N x K): a fixed random target (rows sum to 1, not derived from q);
  values (1 x 6): KL(P||Q) batchmean, KL(P||Q) sum, KL(Q||P) batchmean, BCE(P, Q) mean,
                  KL(P_given||Q) batchmean, BCE(P_given, Q) mean;
  gradients, each the autograd gradient of a loss with the target detached:
    kl_grad_z (N x d), kl_grad_mu (K x d), kl_grad_alpha (1 x 1):   KL(P||Q), batchmean
    bce_grad_z, bce_grad_mu, bce_grad_alpha:                        BCE(P, Q), mean
    given_grad_z, given_grad_mu, given_grad_alpha:                  KL(P_given||Q), batchmean
  The PyTorch model is the usual DEC code: q = (1 + |z - mu|^2 / alpha)^(-(alpha+1)/2), normalised
  per row; p = q^2 / q.sum(0), normalised per row; F.kl_div(q.log(), p, reduction='batchmean');
  F.binary_cross_entropy(q, p).

cluster_sinkhorn_cases.txt, per case:
  case <index> <kind> <N> <M> <reg> <reg_m> <converged>
  kind 0 = balanced ot.sinkhorn(method='sinkhorn'), 1 = balanced ot.sinkhorn(method='sinkhorn_log'),
  2 = ot.unbalanced.sinkhorn_unbalanced (method='sinkhorn', reg_m), 3 = SwAV pseudo-labels
  (reg = epsilon, reg_m = number of iterations; M = the scores, plan = Q),
  4 = balanced sinkhorn_log on a cost computed from embeddings: reg_m holds the cost kind
  (0 squared Euclidean, 1 cosine, 2 Student-t with alpha = 1), x (N x d) and centres (M x d) given.
  M (N x M) the cost (scores for kind 3), a (1 x N), b (1 x M), plan (N x M), and for kinds 0-2
  row_marginal (1 x N), col_marginal (1 x M). converged = 1 when POT met stopThr = 1e-13 before
  numItermax (the C++ test compares plans to 1e-10 only then).

cluster_kmeans_cases.txt, per case:
  case <index> <N> <d> <k> <max_iter> <tol> <has_weight> <is_float32> <n_iter>
  X (N x d), init (k x d), [weight (1 x N)], centres (k x d), labels (1 x N), inertia (1 x 1)
  from KMeans(n_clusters=k, init=init, n_init=1, max_iter, tol, algorithm='lloyd').fit(X, sample_weight).
  Cases: separated blobs, overlapping Gaussians (many iterations), sample weights, an initial centre
  far from every point (an empty cluster, relocated to the farthest point), two identical initial
  centres (a tie: the lower index wins, the other cluster is empty), max_iter too small (no
  convergence: the final E-step), tol = 0 (only strict convergence), data far from the origin,
  float32 data.

Run: /usr/bin/python3 tests/reference/gen_cluster_fixtures.py
"""

import os
import warnings

import numpy as np
import ot
import sklearn
import torch
from sklearn.cluster import KMeans

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data")
torch.set_default_dtype(torch.float64)


def write_matrix(out, name, m):
    m = np.atleast_2d(np.asarray(m, dtype=np.float64))
    out.write(f"# {name} {m.shape[0]} {m.shape[1]}\n")
    for row in m:
        out.write(" ".join(repr(float(v)) for v in row) + "\n")


# ---- soft assignment -----------------------------------------------------------------------------


def student_t(z, mu, alpha):
    d2 = ((z[:, None, :] - mu[None, :, :]) ** 2).sum(-1)
    num = (1.0 + d2 / alpha) ** (-(alpha + 1.0) / 2.0)
    return num / num.sum(1, keepdim=True)


def target(q):
    w = q**2 / q.sum(0)
    return (w.t() / w.sum(1)).t()


def grads(z0, mu0, alpha0, loss_fn):
    z = torch.tensor(z0, requires_grad=True)
    mu = torch.tensor(mu0, requires_grad=True)
    alpha = torch.tensor(alpha0, requires_grad=True)
    q = student_t(z, mu, alpha)
    loss = loss_fn(q)
    loss.backward()
    return z.grad.numpy(), mu.grad.numpy(), alpha.grad.item()


def soft_assignment_cases():
    rng = np.random.default_rng(20240607)
    # (N, d, K, alpha, spread of the centres)
    shapes = [(5, 3, 2, 1.0, 1.0), (20, 4, 3, 1.0, 2.0), (37, 5, 4, 0.5, 1.5), (50, 8, 6, 2.5, 3.0),
              (12, 2, 7, 1.0, 1.0), (64, 3, 5, 1.0, 6.0), (150, 6, 10, 1.0, 2.0), (9, 1, 3, 7.0, 0.5)]
    path = os.path.join(DATA, "cluster_soft_assignment_cases.txt")
    with open(path, "w") as out:
        out.write("# produced by tests/reference/gen_cluster_fixtures.py with torch %s (float64 autograd)\n"
                  % torch.__version__)
        for index, (n, d, k, alpha, spread) in enumerate(shapes):
            mu = rng.normal(size=(k, d)) * spread
            z = mu[rng.integers(0, k, size=n)] + rng.normal(size=(n, d))
            zt, mut = torch.tensor(z), torch.tensor(mu)
            q = student_t(zt, mut, torch.tensor(alpha))
            p = target(q)
            p_given = rng.uniform(0.05, 1.0, size=(n, k)) ** 3
            p_given /= p_given.sum(1, keepdims=True)
            pg = torch.tensor(p_given)
            kl = torch.nn.functional.kl_div(q.log(), p, reduction="batchmean").item()
            kl_sum = torch.nn.functional.kl_div(q.log(), p, reduction="sum").item()
            kl_rev = torch.nn.functional.kl_div(p.log(), q, reduction="batchmean").item()
            bce = torch.nn.functional.binary_cross_entropy(q, p).item()
            kl_given = torch.nn.functional.kl_div(q.log(), pg, reduction="batchmean").item()
            bce_given = torch.nn.functional.binary_cross_entropy(q, pg).item()

            def kl_loss(qq):
                return torch.nn.functional.kl_div(qq.log(), target(qq).detach(), reduction="batchmean")

            def bce_loss(qq):
                return torch.nn.functional.binary_cross_entropy(qq, target(qq).detach())

            def given_loss(qq):
                return torch.nn.functional.kl_div(qq.log(), pg, reduction="batchmean")

            out.write(f"case {index} {n} {d} {k} {alpha!r}\n")
            write_matrix(out, "z", z)
            write_matrix(out, "mu", mu)
            write_matrix(out, "q", q.numpy())
            write_matrix(out, "p", p.numpy())
            write_matrix(out, "p_given", p_given)
            write_matrix(out, "values", [[kl, kl_sum, kl_rev, bce, kl_given, bce_given]])
            for name, fn in (("kl", kl_loss), ("bce", bce_loss), ("given", given_loss)):
                gz, gmu, ga = grads(z, mu, alpha, fn)
                write_matrix(out, f"{name}_grad_z", gz)
                write_matrix(out, f"{name}_grad_mu", gmu)
                write_matrix(out, f"{name}_grad_alpha", [[ga]])
    print("wrote", path)


# ---- Sinkhorn -------------------------------------------------------------------------------------


def swav_sinkhorn(scores, epsilon, iterations):
    """SwAV's distributed_sinkhorn for one process, in float64."""
    Q = torch.exp(torch.tensor(scores) / epsilon).t()
    B = Q.shape[1]
    K = Q.shape[0]
    Q /= torch.sum(Q)
    for _ in range(iterations):
        Q /= torch.sum(Q, dim=1, keepdim=True)
        Q /= K
        Q /= torch.sum(Q, dim=0, keepdim=True)
        Q /= B
    Q *= B
    return Q.t().numpy()


def pairwise(x, c, kind):
    d2 = ((x[:, None, :] - c[None, :, :]) ** 2).sum(-1)
    if kind == 0:
        return d2
    if kind == 1:
        return 1.0 - (x @ c.T) / (np.linalg.norm(x, axis=1)[:, None] * np.linalg.norm(c, axis=1)[None, :])
    return 0.5 * (1.0 + 1.0) * np.log1p(d2 / 1.0)


def sinkhorn_cases():
    rng = np.random.default_rng(77)
    path = os.path.join(DATA, "cluster_sinkhorn_cases.txt")
    index = 0
    stop = 1e-13
    with open(path, "w") as out:
        out.write("# produced by tests/reference/gen_cluster_fixtures.py with POT %s, torch %s\n"
                  % (ot.__version__, torch.__version__))
        # (kind, N, M, reg, reg_m, uniform marginals)
        specs = [(0, 5, 3, 1.0, 0, True), (0, 30, 7, 0.1, 0, False), (0, 40, 40, 0.5, 0, False),
                 (1, 5, 3, 1.0, 0, True), (1, 30, 7, 0.05, 0, False), (1, 100, 10, 0.02, 0, True),
                 (1, 40, 40, 0.1, 0, False),
                 (2, 20, 6, 0.1, 1.0, False), (2, 30, 30, 0.5, 0.2, False), (2, 8, 5, 1.0, 10.0, True)]
        for kind, n, m, reg, reg_m, uniform in specs:
            cost = rng.uniform(0.0, 1.0, size=(n, m))
            if uniform:
                a = np.full(n, 1.0 / n)
                b = np.full(m, 1.0 / m)
            else:
                a = rng.uniform(0.2, 1.0, size=n)
                a /= a.sum()
                b = rng.uniform(0.2, 1.0, size=m)
                b /= b.sum()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if kind == 0:
                    plan, log = ot.sinkhorn(a, b, cost, reg, method="sinkhorn", numItermax=200000, stopThr=stop,
                                            log=True)
                    converged = log["err"][-1] < stop
                elif kind == 1:
                    plan, log = ot.sinkhorn(a, b, cost, reg, method="sinkhorn_log", numItermax=200000, stopThr=stop,
                                            log=True)
                    converged = log["err"][-1] < stop
                else:
                    plan, log = ot.unbalanced.sinkhorn_unbalanced(a, b, cost, reg, reg_m, method="sinkhorn",
                                                                  numItermax=200000, stopThr=stop, log=True)
                    converged = log["err"][-1] < stop
            out.write(f"case {index} {kind} {n} {m} {reg!r} {reg_m!r} {int(converged)}\n")
            write_matrix(out, "M", cost)
            write_matrix(out, "a", [a])
            write_matrix(out, "b", [b])
            write_matrix(out, "plan", plan)
            write_matrix(out, "row_marginal", [plan.sum(1)])
            write_matrix(out, "col_marginal", [plan.sum(0)])
            index += 1
        # SwAV pseudo-labels
        for n, k, eps, iters, scale in [(16, 4, 0.05, 3, 1.0), (50, 7, 0.1, 3, 1.0), (9, 3, 0.5, 1, 1.0),
                                        (30, 5, 0.05, 10, 3.0)]:
            scores = np.tanh(rng.normal(size=(n, k)) * scale)
            q = swav_sinkhorn(scores, eps, iters)
            out.write(f"case {index} 3 {n} {k} {eps!r} {iters} 1\n")
            write_matrix(out, "M", scores)
            write_matrix(out, "a", [np.full(n, 1.0 / n)])
            write_matrix(out, "b", [np.full(k, 1.0 / k)])
            write_matrix(out, "plan", q)
            index += 1
        # costs from embeddings
        for cost_kind, n, m, d, reg in [(0, 25, 4, 3, 0.5), (1, 25, 4, 5, 0.05), (2, 30, 6, 4, 0.1)]:
            x = rng.normal(size=(n, d))
            c = rng.normal(size=(m, d))
            cost = pairwise(x, c, cost_kind)
            a = np.full(n, 1.0 / n)
            b = np.full(m, 1.0 / m)
            plan, log = ot.sinkhorn(a, b, cost, reg, method="sinkhorn_log", numItermax=200000, stopThr=stop,
                                    log=True)
            converged = log["err"][-1] < stop
            out.write(f"case {index} 4 {n} {m} {reg!r} {cost_kind} {int(converged)}\n")
            write_matrix(out, "M", cost)
            write_matrix(out, "a", [a])
            write_matrix(out, "b", [b])
            write_matrix(out, "plan", plan)
            write_matrix(out, "x", x)
            write_matrix(out, "centres", c)
            index += 1
    print("wrote", path)


# ---- k-means --------------------------------------------------------------------------------------


def kmeans_cases():
    rng = np.random.default_rng(4242)
    path = os.path.join(DATA, "cluster_kmeans_cases.txt")
    cases = []

    def blobs(n, d, k, spread, noise, offset=0.0):
        centres = rng.normal(size=(k, d)) * spread
        labels = rng.integers(0, k, size=n)
        return centres[labels] + rng.normal(size=(n, d)) * noise + offset

    # separated blobs, init = perturbed first points
    x = blobs(200, 3, 4, 8.0, 1.0)
    cases.append(dict(X=x, init=x[:4] + 0.1, max_iter=300, tol=1e-4))
    # overlapping Gaussians: many iterations
    x = rng.normal(size=(500, 5))
    cases.append(dict(X=x, init=x[rng.choice(500, 6, replace=False)], max_iter=300, tol=1e-4))
    # sample weights
    x = blobs(300, 4, 5, 3.0, 1.0)
    w = rng.uniform(0.1, 3.0, size=300)
    w[::17] = 0.0
    cases.append(dict(X=x, init=x[rng.choice(300, 5, replace=False)], weight=w, max_iter=300, tol=1e-4))
    # an empty cluster: one initial centre far from all points
    x = blobs(150, 2, 3, 5.0, 1.0)
    init = x[:3].copy()
    init[1] = [1000.0, 1000.0]
    cases.append(dict(X=x, init=init, max_iter=300, tol=1e-4))
    # two identical initial centres: the lower index takes every tie, the other cluster is empty
    x = blobs(120, 3, 3, 6.0, 1.0)
    init = x[[0, 5, 5]].copy()
    cases.append(dict(X=x, init=init, max_iter=300, tol=1e-4))
    # max_iter too small: stops without converging, then a final E-step
    x = rng.normal(size=(400, 6))
    cases.append(dict(X=x, init=x[:8], max_iter=3, tol=1e-4))
    # tol = 0: only strict convergence
    x = blobs(250, 4, 4, 2.0, 1.5)
    cases.append(dict(X=x, init=x[10:14], max_iter=500, tol=0.0))
    # far from the origin (the centring matters for GEMM distances)
    x = blobs(200, 5, 4, 1.0, 0.5, offset=1000.0)
    cases.append(dict(X=x, init=x[rng.choice(200, 4, replace=False)], max_iter=300, tol=1e-4))
    # k = 1 and k = N
    x = rng.normal(size=(30, 3))
    cases.append(dict(X=x, init=x[:1], max_iter=300, tol=1e-4))
    x = rng.normal(size=(12, 2))
    cases.append(dict(X=x, init=x[::-1].copy(), max_iter=300, tol=1e-4))
    # float32
    x = blobs(300, 6, 5, 4.0, 1.0).astype(np.float32)
    cases.append(dict(X=x, init=x[rng.choice(300, 5, replace=False)], max_iter=300, tol=1e-4))

    with open(path, "w") as out:
        out.write("# produced by tests/reference/gen_cluster_fixtures.py with scikit-learn %s\n" % sklearn.__version__)
        for index, c in enumerate(cases):
            x = c["X"]
            is32 = x.dtype == np.float32
            init = np.asarray(c["init"], dtype=x.dtype)
            k = init.shape[0]
            w = c.get("weight")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                km = KMeans(n_clusters=k, init=init, n_init=1, max_iter=c["max_iter"], tol=c["tol"],
                            algorithm="lloyd").fit(x, sample_weight=w)
            n, d = x.shape
            out.write(f"case {index} {n} {d} {k} {c['max_iter']} {c['tol']!r} {int(w is not None)} {int(is32)} "
                      f"{km.n_iter_}\n")
            write_matrix(out, "X", x.astype(np.float64))
            write_matrix(out, "init", init.astype(np.float64))
            if w is not None:
                write_matrix(out, "weight", [w])
            write_matrix(out, "centres", km.cluster_centers_.astype(np.float64))
            write_matrix(out, "labels", [km.labels_])
            write_matrix(out, "inertia", [[float(km.inertia_)]])
    print("wrote", path)


if __name__ == "__main__":
    soft_assignment_cases()
    sinkhorn_cases()
    kmeans_cases()
