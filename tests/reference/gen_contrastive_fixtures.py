#!/usr/bin/python3
"""Reference values and gradients for cellkit's contrastive losses (include/cellkit/contrastive/).

Writes tests/reference/data/contrastive_*.txt from PyTorch autograd (torch 1.13, CPU). Each loss is
written here directly from its formula (COMPONENTS.md and the papers), not from cellkit's tiling, so
the fixtures are an independent check of the definitions:

  contrastive_info_nce.txt          two-view InfoNCE, both directions, COMPONENTS.md's l_i verbatim
  contrastive_supcon.txt            SupCon L_out (SupConLoss, contrast_mode 'all', base_temperature = tau)
  contrastive_graph.txt             graph positives (seed 003 eq. 4.1), weighted mean over edges
  contrastive_bank.txt              MoCo: queries, keys, a bank of negatives (cross_entropy, target 0)
  contrastive_proto.txt             ProtoNCE (PCL) over T clusterings, per-cluster concentration,
                                    explicit sampled-negative masks
  contrastive_concentration.txt     PCL's concentration estimate (run_kmeans in PCL's main_pcl.py)
  contrastive_cross_correlation.txt Barlow-Twins cross-correlation loss (BatchNorm-style standardisation)
  contrastive_jensen_shannon.txt    Jensen-Shannon divergence between row softmaxes of logits

Every case is computed twice: in the case's dtype (float32 or float64; float32 inputs are float32
values written exactly) and in float64 on the same inputs. The C++ tests compare cellkit's float64
results with the float64 reference at 1e-12 and its float32 results with both.

Format: a line 'case p1 p2 ...' (parameters listed in each file's header), then matrices, each a line
'# name rows cols' followed by rows lines of cols numbers (shortest round-trip repr of doubles).
Run: /usr/bin/python3 tests/reference/gen_contrastive_fixtures.py
"""
import os

import numpy as np
import torch
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
EPS = 1e-12  # F.normalize's default eps, also cellkit's


def write_matrix(f, name, m):
    m = np.asarray(m, dtype=np.float64)
    if m.ndim == 0:
        m = m.reshape(1, 1)
    elif m.ndim == 1:
        m = m.reshape(1, -1)
    f.write(f"# {name} {m.shape[0]} {m.shape[1]}\n")
    for row in m:
        f.write(" ".join(repr(float(v)) for v in row) + "\n")


def embeddings(rng, n, d, dtype, zero_rows=()):
    """Rows with norms spread over [0.3, 3], some near-duplicates, exactly representable in dtype."""
    x = rng.standard_normal((n, d)) * rng.uniform(0.3, 3.0, size=(n, 1))
    if n >= 4:
        x[1] = x[0] * 1.7 + 0.01 * rng.standard_normal(d)  # near-duplicate direction
    for r in zero_rows:
        x[r] = 0.0
    return x.astype(dtype).astype(np.float64)


def run_both(fn, inputs, dtype):
    """fn(*tensors) -> loss; returns [(loss, grads)] for the case dtype and for float64."""
    results = []
    for dt in (dtype, torch.float64):
        ts = [torch.tensor(x, dtype=dt, requires_grad=True) for x in inputs]
        loss = fn(*ts)
        loss.backward()
        results.append((loss.detach().double().numpy(), [t.grad.double().numpy() for t in ts]))
    return results


def write_results(f, names, results):
    (loss, grads), (loss64, grads64) = results
    write_matrix(f, "loss", loss)
    for n, g in zip(names, grads):
        write_matrix(f, "grad_" + n, g)
    write_matrix(f, "loss64", loss64)
    for n, g in zip(names, grads64):
        write_matrix(f, "grad_" + n + "64", g)


def torch_dtype(is_float):
    return torch.float32 if is_float else torch.float64


def np_dtype(is_float):
    return np.float32 if is_float else np.float64


# ---- InfoNCE ----------------------------------------------------------------------------------

def info_nce_ref(a, b, tau):
    """COMPONENTS.md: l_i = s_ii'/tau - log(sum_{j!=i} e^{s(h_i,h_j)/tau} + sum_j e^{s(h_i,h'_j)/tau}),
    loss = -(1/2N) sum_i [l(h_i,h'_i) + l(h'_i,h_i)]."""
    n = a.shape[0]
    u = F.normalize(a, dim=1, eps=EPS)
    v = F.normalize(b, dim=1, eps=EPS)
    eye = torch.eye(n, dtype=torch.bool)

    def l(x, y):
        sxx = (x @ x.T / tau).masked_fill(eye, float("-inf"))
        sxy = x @ y.T / tau
        return torch.diagonal(sxy) - torch.logsumexp(torch.cat([sxx, sxy], dim=1), dim=1)

    return -(l(u, v) + l(v, u)).sum() / (2 * n)


def gen_info_nce(rng):
    # (N, d, tau, float32?, zero rows)
    cases = [(1, 3, 0.5, 0, ()), (5, 3, 0.5, 0, ()), (16, 8, 0.1, 0, ()), (33, 17, 0.01, 0, ()),
             (12, 6, 0.07, 0, (3,)), (16, 8, 0.1, 1, ()), (33, 17, 0.01, 1, ()), (48, 24, 0.2, 1, (5,))]
    with open(os.path.join(OUT, "contrastive_info_nce.txt"), "w") as f:
        f.write("# produced by tests/reference/gen_contrastive_fixtures.py (torch autograd)\n")
        f.write("# per case: 'case N d tau is_float32', then A, B, loss, grad_A, grad_B (case dtype), "
                "loss64, grad_A64, grad_B64 (float64 on the same inputs)\n")
        for n, d, tau, is_float, zero in cases:
            a = embeddings(rng, n, d, np_dtype(is_float), zero)
            b = embeddings(rng, n, d, np_dtype(is_float))
            results = run_both(lambda x, y: info_nce_ref(x, y, tau), [a, b], torch_dtype(is_float))
            f.write(f"case {n} {d} {tau!r} {is_float}\n")
            write_matrix(f, "A", a)
            write_matrix(f, "B", b)
            write_results(f, ["A", "B"], results)


def supcon_ref(a, b, labels, tau):
    """SupConLoss (Khosla et al.), contrast_mode 'all', base_temperature = temperature."""
    n = a.shape[0]
    z = F.normalize(torch.cat([a, b]), dim=1, eps=EPS)
    lab = torch.cat([labels, labels])
    sim = z @ z.T / tau
    self_mask = torch.eye(2 * n, dtype=torch.bool)
    pos = (lab[:, None] == lab[None, :]) & ~self_mask
    lse = torch.logsumexp(sim.masked_fill(self_mask, float("-inf")), dim=1, keepdim=True)
    log_prob = sim - lse
    mean_log_prob_pos = (log_prob * pos).sum(1) / pos.sum(1)
    return -mean_log_prob_pos.mean()


def gen_supcon(rng):
    # (N, d, tau, float32?, number of classes)
    cases = [(6, 4, 0.5, 0, 2), (20, 8, 0.1, 0, 4), (31, 12, 0.01, 0, 7), (10, 5, 0.3, 0, 10),
             (20, 8, 0.1, 1, 4), (31, 12, 0.05, 1, 3)]
    with open(os.path.join(OUT, "contrastive_supcon.txt"), "w") as f:
        f.write("# produced by tests/reference/gen_contrastive_fixtures.py (torch autograd)\n")
        f.write("# per case: 'case N d tau is_float32', then labels (1 x N, arbitrary integers), A, B, loss, "
                "grad_A, grad_B, loss64, grad_A64, grad_B64\n")
        for n, d, tau, is_float, classes in cases:
            a = embeddings(rng, n, d, np_dtype(is_float))
            b = embeddings(rng, n, d, np_dtype(is_float))
            raw = rng.integers(0, classes, size=n)
            raw[:classes] = np.arange(classes)  # every class present
            labels = (raw * 7 - 5)  # arbitrary values (negative, gaps)
            lab_t = torch.tensor(labels)
            results = run_both(lambda x, y: supcon_ref(x, y, lab_t, tau), [a, b], torch_dtype(is_float))
            f.write(f"case {n} {d} {tau!r} {is_float}\n")
            write_matrix(f, "labels", labels)
            write_matrix(f, "A", a)
            write_matrix(f, "B", b)
            write_results(f, ["A", "B"], results)


def graph_ref(z, rows, cols, w, tau):
    """seed 003 eq. 4.1: l_ij = -log e^{s_ij/tau} / sum_{k != i} e^{s_ik/tau}; weighted mean over edges."""
    n = z.shape[0]
    u = F.normalize(z, dim=1, eps=EPS)
    sim = u @ u.T / tau
    lse = torch.logsumexp(sim.masked_fill(torch.eye(n, dtype=torch.bool), float("-inf")), dim=1)
    wt = torch.tensor(w, dtype=z.dtype)
    return (wt * (lse[rows] - sim[rows, cols])).sum() / wt.sum()


def random_graph(rng, n, degree, weighted):
    indptr, indices, values = [0], [], []
    for i in range(n):
        k = int(rng.integers(0, degree + 1)) if i % 4 else degree  # some rows without edges
        cols = sorted(set(int(c) for c in rng.choice([c for c in range(n) if c != i], size=min(k, n - 1),
                                                     replace=False)))
        indices += cols
        values += [float(rng.uniform(0.25, 2.0)) if weighted else 1.0 for _ in cols]
        indptr.append(len(indices))
    return np.array(indptr), np.array(indices), np.array(values)


def gen_graph(rng):
    # (N, d, tau, float32?, max degree, weighted?)
    cases = [(8, 4, 0.5, 0, 2, 0), (25, 8, 0.1, 0, 4, 1), (40, 16, 0.01, 0, 6, 1), (25, 8, 0.1, 1, 4, 0),
             (40, 16, 0.05, 1, 6, 1)]
    with open(os.path.join(OUT, "contrastive_graph.txt"), "w") as f:
        f.write("# produced by tests/reference/gen_contrastive_fixtures.py (torch autograd)\n")
        f.write("# per case: 'case N d tau is_float32 nnz', then indptr, indices, values (CSR, 1 x ...), Z, loss, "
                "grad_Z, loss64, grad_Z64\n")
        for n, d, tau, is_float, degree, weighted in cases:
            indptr, indices, values = random_graph(rng, n, degree, weighted)
            values = values.astype(np_dtype(is_float)).astype(np.float64)
            rows = np.repeat(np.arange(n), np.diff(indptr))
            z = embeddings(rng, n, d, np_dtype(is_float))
            rows_t, cols_t = torch.tensor(rows), torch.tensor(indices)
            results = run_both(lambda x: graph_ref(x, rows_t, cols_t, values, tau), [z], torch_dtype(is_float))
            f.write(f"case {n} {d} {tau!r} {is_float} {len(indices)}\n")
            write_matrix(f, "indptr", indptr)
            write_matrix(f, "indices", indices)
            write_matrix(f, "values", values)
            write_matrix(f, "Z", z)
            write_results(f, ["Z"], results)


def bank_ref(q, k, bank, tau):
    """MoCo: logits [s(q_i,k_i), s(q_i, bank_j)...] / tau, cross-entropy with target 0."""
    uq = F.normalize(q, dim=1, eps=EPS)
    uk = F.normalize(k, dim=1, eps=EPS)
    ub = F.normalize(bank, dim=1, eps=EPS)
    logits = torch.cat([(uq * uk).sum(1, keepdim=True), uq @ ub.T], dim=1) / tau
    return F.cross_entropy(logits, torch.zeros(q.shape[0], dtype=torch.long))


def gen_bank(rng):
    # (N, d, N_bank, tau, float32?)
    cases = [(4, 3, 0, 0.5, 0), (10, 6, 7, 0.2, 0), (24, 12, 50, 0.07, 0), (17, 9, 33, 0.01, 0),
             (24, 12, 50, 0.07, 1), (17, 9, 33, 0.02, 1)]
    with open(os.path.join(OUT, "contrastive_bank.txt"), "w") as f:
        f.write("# produced by tests/reference/gen_contrastive_fixtures.py (torch autograd)\n")
        f.write("# per case: 'case N d N_bank tau is_float32', then Q, K, bank, loss, grad_Q, grad_K, grad_bank, "
                "loss64, grad_Q64, grad_K64, grad_bank64\n")
        for n, d, nb, tau, is_float in cases:
            q = embeddings(rng, n, d, np_dtype(is_float))
            k = embeddings(rng, n, d, np_dtype(is_float))
            bank = embeddings(rng, nb, d, np_dtype(is_float)) if nb else np.zeros((0, d))
            results = run_both(lambda x, y, z: bank_ref(x, y, z, tau), [q, k, bank], torch_dtype(is_float))
            f.write(f"case {n} {d} {nb} {tau!r} {is_float}\n")
            write_matrix(f, "Q", q)
            write_matrix(f, "K", k)
            f.write(f"# bank {nb} {d}\n")
            for row in bank:
                f.write(" ".join(repr(float(v)) for v in row) + "\n")
            write_results(f, ["Q", "K", "bank"], results)


# ---- ProtoNCE -----------------------------------------------------------------------------------

MASK32 = 0xFFFFFFFF


def philox4x32_10(counter, key):
    """Random123's philox4x32_R(10, counter, key) (cellkit/core/random.hpp)."""
    c = list(counter)
    k = list(key)
    for r in range(10):
        if r > 0:
            k[0] = (k[0] + 0x9E3779B9) & MASK32
            k[1] = (k[1] + 0xBB67AE85) & MASK32
        p0 = 0xD2511F53 * c[0]
        p1 = 0xCD9E8D57 * c[2]
        c = [((p1 >> 32) ^ c[1] ^ k[0]) & MASK32, p1 & MASK32, ((p0 >> 32) ^ c[3] ^ k[1]) & MASK32, p0 & MASK32]
    return c


class PhiloxEngine:
    """cellkit::philox_engine(seed, stream_id, element): words of blocks j = 0, 1, ..."""

    def __init__(self, seed, stream, element):
        self.key = [seed & MASK32, (seed >> 32) & MASK32]
        self.counter_rest = [element & MASK32, (element >> 32) & MASK32, stream & MASK32]
        self.block = 0
        self.words = []

    def next_u32(self):
        if not self.words:
            self.words = philox4x32_10([self.block] + self.counter_rest, self.key)
            self.block += 1
        return self.words.pop(0)


def uniform_below(eng, rng_range):
    """Lemire's unbiased integer in [0, range) (detail/proto_nce_impl.hpp)."""
    m = eng.next_u32() * rng_range
    low = m & MASK32
    if low < rng_range:
        threshold = ((1 << 32) - rng_range) % rng_range
        while low < threshold:
            m = eng.next_u32() * rng_range
            low = m & MASK32
    return m >> 32


def denominator_mask(k, positive, r, seed, stream, anchor):
    """Floyd's sampling of r of the other k - 1 prototypes, as cellkit's mark_denominator."""
    if r < 0 or r >= k - 1:
        return np.ones(k, dtype=bool)
    mask = np.zeros(k, dtype=bool)
    mask[positive] = True
    slot = lambda p: p if p < positive else p + 1
    eng = PhiloxEngine(seed, stream, anchor)
    for j in range(k - 1 - r, k - 1):
        t = uniform_below(eng, j + 1)
        if mask[slot(t)]:
            mask[slot(j)] = True
        else:
            mask[slot(t)] = True
    return mask


def proto_ref(h, centroid_list, assignments, phis, masks):
    """-(1/N) sum_i (1/T) sum_t [logit_pos - logsumexp over the mask], logit = cos(h_i, z_j) / phi_j."""
    u = F.normalize(h, dim=1, eps=EPS)
    total = 0
    for c, a, phi, mask in zip(centroid_list, assignments, phis, masks):
        z = F.normalize(c, dim=1, eps=EPS)
        logits = (u @ z.T) / torch.tensor(phi, dtype=h.dtype)
        lse = torch.logsumexp(logits.masked_fill(~torch.tensor(mask), float("-inf")), dim=1)
        total = total + (lse - logits[torch.arange(h.shape[0]), torch.tensor(a)]).sum()
    return total / (h.shape[0] * len(centroid_list))


def gen_proto(rng):
    # (N, d, [K_t...], negatives r, seed, use concentration?, float32?); some prototypes get no member
    cases = [(12, 4, [3], -1, 0, 0, 0), (30, 8, [4, 9], -1, 0, 1, 0), (40, 6, [10, 5, 20], 3, 7, 1, 0),
             (25, 5, [8], 0, 1, 0, 0), (25, 5, [8], 20, 1, 1, 0), (40, 6, [10, 20], 4, 12345678901, 1, 1),
             (30, 8, [4, 9], -1, 0, 0, 1)]
    with open(os.path.join(OUT, "contrastive_proto.txt"), "w") as f:
        f.write("# produced by tests/reference/gen_contrastive_fixtures.py (torch autograd; the sampled "
                "negatives from a Python Philox4x32-10 + Floyd, as cellkit)\n")
        f.write("# per case: 'case N d T negatives seed has_concentration is_float32 temperature', then H, and per "
                "clustering t: assign_t (1 x N), C_t (K_t x d), phi_t (1 x K_t); then loss, grad_H, grad_C_t..., "
                "loss64, grad_H64, grad_C_t64...\n")
        for n, d, ks, r, seed, has_phi, is_float in cases:
            temperature = 0.1
            dt = np_dtype(is_float)
            h = embeddings(rng, n, d, dt)
            assigns, cents, phis, masks = [], [], [], []
            for t, k in enumerate(ks):
                a = rng.integers(0, k, size=n)
                a[a == k - 1] = 0  # the last prototype has no member
                cents.append(embeddings(rng, k, d, dt))
                phi = (rng.uniform(0.05, 0.5, size=k) if has_phi else np.full(k, temperature)).astype(dt).astype(
                    np.float64)
                assigns.append(a)
                phis.append(phi)
                masks.append(np.stack([denominator_mask(k, int(a[i]), r, seed, t, i) for i in range(n)]))
            results = run_both(lambda x, *cs: proto_ref(x, cs, assigns, phis, masks), [h] + cents,
                               torch_dtype(is_float))
            f.write(f"case {n} {d} {len(ks)} {r} {seed} {has_phi} {is_float} {temperature!r}\n")
            write_matrix(f, "H", h)
            for t in range(len(ks)):
                write_matrix(f, f"assign_{t}", assigns[t])
                write_matrix(f, f"C_{t}", cents[t])
                write_matrix(f, f"phi_{t}", phis[t])
            write_results(f, ["H"] + [f"C_{t}" for t in range(len(ks))], results)


def concentration_ref(x, assign, centroids, k, alpha, temperature):
    """PCL main_pcl.py run_kmeans (sqrt of faiss's squared distances replaced by exact distances)."""
    dist = np.linalg.norm(x - centroids[assign], axis=1)
    density = np.zeros(k)
    for i in range(k):
        d_i = dist[assign == i]
        if len(d_i) > 1:
            density[i] = d_i.mean() / np.log(len(d_i) + alpha)
    dmax = density.max()
    for i in range(k):
        if np.sum(assign == i) <= 1:
            density[i] = dmax
    density = density.clip(np.percentile(density, 10), np.percentile(density, 90))
    return temperature * density / density.mean()


def gen_concentration(rng):
    cases = [(50, 4, 5, 10.0, 0.2), (200, 16, 12, 10.0, 0.2), (60, 3, 20, 5.0, 0.1), (9, 2, 4, 10.0, 0.2)]
    with open(os.path.join(OUT, "contrastive_concentration.txt"), "w") as f:
        f.write("# produced by tests/reference/gen_contrastive_fixtures.py (numpy, PCL's run_kmeans formula)\n")
        f.write("# per case: 'case N d K alpha temperature', then X, assign (1 x N), C (centroids), phi\n")
        for n, d, k, alpha, temperature in cases:
            x = rng.standard_normal((n, d))
            assign = np.concatenate([np.arange(k), rng.integers(0, k, size=n - k)])
            assign[-1] = k - 2  # cluster k-1 keeps a single member
            assign[k - 1] = k - 1
            if n > k:
                assign[k:][assign[k:] == k - 1] = 0
            centroids = np.stack([x[assign == i].mean(0) for i in range(k)]) + 0.01 * rng.standard_normal((k, d))
            phi = concentration_ref(x, assign, centroids, k, alpha, temperature)
            f.write(f"case {n} {d} {k} {alpha!r} {temperature!r}\n")
            write_matrix(f, "X", x)
            write_matrix(f, "assign", assign)
            write_matrix(f, "C", centroids)
            write_matrix(f, "phi", phi)


# ---- cross-correlation and Jensen-Shannon ----------------------------------------------------------

def cross_correlation_ref(za, zb, lam, eps, unbiased):
    """Barlow Twins: c = bn(z1).T @ bn(z2) / N; on_diag (1 - c_ii)^2 + lambda off_diag c_ij^2."""
    n = za.shape[0]

    def standardise(z):
        mu = z.mean(0)
        var = z.var(0, unbiased=bool(unbiased))
        return (z - mu) / torch.sqrt(var + eps)

    c = standardise(za).T @ standardise(zb) / n
    on = (torch.diagonal(c) - 1).pow(2).sum()
    off = (c - torch.diag(torch.diagonal(c))).pow(2).sum()
    return on + lam * off


def gen_cross_correlation(rng):
    # (N, d, lambda, eps, unbiased, float32?)
    cases = [(2, 3, 0.0051, 1e-5, 0, 0), (16, 8, 0.0051, 1e-5, 0, 0), (40, 12, 0.5, 1e-5, 0, 0),
             (25, 30, 0.01, 1e-3, 1, 0), (40, 12, 0.0051, 1e-5, 0, 1), (25, 30, 0.02, 1e-5, 1, 1)]
    with open(os.path.join(OUT, "contrastive_cross_correlation.txt"), "w") as f:
        f.write("# produced by tests/reference/gen_contrastive_fixtures.py (torch autograd; BatchNorm-style "
                "standardisation written out)\n")
        f.write("# per case: 'case N d lambda eps unbiased is_float32', then A, B, loss, grad_A, grad_B, loss64, "
                "grad_A64, grad_B64\n")
        for n, d, lam, eps, unbiased, is_float in cases:
            za = embeddings(rng, n, d, np_dtype(is_float))
            zb = (za * 0.8 + 0.5 * rng.standard_normal((n, d))).astype(np_dtype(is_float)).astype(np.float64)
            za[:, 0] = za[0, 0]  # a constant column: variance 0, eps keeps it finite
            results = run_both(lambda x, y: cross_correlation_ref(x, y, lam, eps, unbiased), [za, zb],
                               torch_dtype(is_float))
            f.write(f"case {n} {d} {lam!r} {eps!r} {unbiased} {is_float}\n")
            write_matrix(f, "A", za)
            write_matrix(f, "B", zb)
            write_results(f, ["A", "B"], results)


def js_ref(x, y):
    p = F.softmax(x, dim=1)
    q = F.softmax(y, dim=1)
    m = 0.5 * (p + q)
    kl_pm = (p * (F.log_softmax(x, dim=1) - torch.log(m))).sum(1)
    kl_qm = (q * (F.log_softmax(y, dim=1) - torch.log(m))).sum(1)
    return (0.5 * (kl_pm + kl_qm)).mean()


def gen_jensen_shannon(rng):
    # (N, K, logit scale, float32?)
    cases = [(1, 1, 1.0, 0), (5, 3, 1.0, 0), (20, 10, 4.0, 0), (13, 7, 30.0, 0), (20, 10, 4.0, 1), (13, 7, 10.0, 1)]
    with open(os.path.join(OUT, "contrastive_jensen_shannon.txt"), "w") as f:
        f.write("# produced by tests/reference/gen_contrastive_fixtures.py (torch autograd, softmax of logits)\n")
        f.write("# per case: 'case N K scale is_float32', then X, Y (logits), loss, grad_X, grad_Y, loss64, grad_X64, "
                "grad_Y64\n")
        for n, k, scale, is_float in cases:
            x = (scale * rng.standard_normal((n, k))).astype(np_dtype(is_float)).astype(np.float64)
            y = (scale * rng.standard_normal((n, k))).astype(np_dtype(is_float)).astype(np.float64)
            if n > 2:
                y[1] = x[1]  # identical rows: JS = 0
            results = run_both(js_ref, [x, y], torch_dtype(is_float))
            f.write(f"case {n} {k} {scale!r} {is_float}\n")
            write_matrix(f, "X", x)
            write_matrix(f, "Y", y)
            write_results(f, ["X", "Y"], results)


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(1)
    rng = np.random.default_rng(20240606)
    gen_info_nce(rng)
    gen_supcon(rng)
    gen_graph(rng)
    gen_bank(rng)
    gen_proto(rng)
    gen_concentration(rng)
    gen_cross_correlation(rng)
    gen_jensen_shannon(rng)
