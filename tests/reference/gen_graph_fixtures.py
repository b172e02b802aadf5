#!/usr/bin/python3
"""Reference values for cellkit::graph (tests/graph/test_*.cpp).

Writes tests/reference/data/graph_*.txt. Inputs are generated here with fixed seeds and written next
to the results (float64), so the C++ tests read both and regenerate nothing.

References:
  - GCN, TAGCN, SGC, APPNP layers and gcn_norm: PyTorch Geometric (GCNConv, TAGConv, SGConv, APPNP,
    gcn_norm) when `import torch_geometric` works, else dense PyTorch implementations of the same
    formulas (the header of each file says which was used). PyG 2.3.1 imports with torch 1.13:
        pip download torch_geometric==2.3.1 --no-deps; tar xzf torch_geometric-2.3.1.tar.gz
        pip install --target /tmp/pydeps tqdm jinja2
        PYTHONPATH=torch_geometric-2.3.1:/tmp/pydeps /usr/bin/python3 tests/reference/gen_graph_fixtures.py
    PyG's edge_index is (source, target) and messages flow source -> target, so cellkit's CSR entry
    (i, j) (row i receives from column j) is the PyG edge j -> i. Gradients: torch autograd of
    L = sum(Y * dY) for a random dY.
  - KNN: sklearn.neighbors.NearestNeighbors(algorithm="brute") neighbour lists; UMAP connectivities:
    a NumPy transcription of umap-learn's smooth_knn_dist / compute_membership_strengths / fuzzy union.
  - Diffusion: dense NumPy / SciPy (inverse for exact PPR, scipy.linalg.expm for the heat kernel).
  - Decoders and masked attention: dense PyTorch with autograd.
Run: /usr/bin/python3 tests/reference/gen_graph_fixtures.py
"""
import os
import sys

import numpy as np
import scipy.linalg
import scipy.sparse as sp
import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
torch.set_default_dtype(torch.float64)

try:
    import torch_geometric  # noqa: F401
    from torch_geometric.nn import APPNP, GCNConv, SGConv, TAGConv
    from torch_geometric.nn.conv.gcn_conv import gcn_norm

    HAVE_PYG = True
    REFERENCE = f"PyTorch Geometric {torch_geometric.__version__} (torch {torch.__version__})"
except Exception as exc:  # pragma: no cover - depends on the machine
    HAVE_PYG = False
    REFERENCE = f"dense PyTorch {torch.__version__} (PyG not importable: {type(exc).__name__})"
print(f"reference: {REFERENCE}", file=sys.stderr)


def write_matrix(f, name, m):
    m = np.atleast_2d(np.asarray(m, dtype=np.float64))
    f.write(f"# {name} {m.shape[0]} {m.shape[1]}\n")
    for row in m:
        f.write(" ".join(repr(float(v)) for v in row) + "\n")


def write_csr(f, prefix, a):
    a = sp.csr_matrix(a)
    a.sort_indices()
    write_matrix(f, prefix + "indptr", a.indptr.astype(float))
    write_matrix(f, prefix + "indices", a.indices.astype(float) if a.nnz else np.zeros((1, 0)))
    write_matrix(f, prefix + "values", a.data if a.nnz else np.zeros((1, 0)))


# ---------------------------------------------------------------------------------------------------
# layer graphs


def random_graph(rng, n, p, symmetric, isolated):
    """Weighted graph without self-loops; node `isolated` (if not None) has no edges."""
    mask = rng.random((n, n)) < p
    np.fill_diagonal(mask, False)
    w = rng.uniform(0.2, 2.0, size=(n, n))
    if symmetric:
        mask = np.triu(mask, 1)
        mask = mask | mask.T
        w = np.triu(w, 1)
        w = w + w.T
    a = np.where(mask, w, 0.0)
    if isolated is not None:
        a[isolated, :] = 0
        a[:, isolated] = 0
    return a


def dense_norm(a, self_loop):
    m = a + self_loop * np.eye(a.shape[0])
    deg = m.sum(axis=1)
    with np.errstate(divide="ignore"):
        dinv = np.where(deg > 0, 1.0 / np.sqrt(deg), 0.0)
    return dinv[:, None] * m * dinv[None, :]


def edge_index_of(a):
    rows, cols = np.nonzero(a)  # row-major order: sorted by target, then source
    return torch.tensor(np.vstack([cols, rows]), dtype=torch.long), torch.tensor(a[rows, cols])


def pyg_dense_norm(a, add_self_loops):
    ei, ew = edge_index_of(a)
    ei2, ew2 = gcn_norm(ei, ew, a.shape[0], add_self_loops=add_self_loops)
    out = np.zeros_like(a)
    src, dst = ei2.numpy()
    np.add.at(out, (dst, src), ew2.detach().numpy())
    return out


def run_layer(kind, a, x, weights, bias, dy, k=None, alpha=None):
    """Returns Y, dX, dW list, db with PyG (if available) or dense torch."""
    xt = torch.tensor(x, requires_grad=True)
    ws = [torch.tensor(w, requires_grad=True) for w in weights]
    bt = torch.tensor(bias, requires_grad=True) if bias is not None else None
    if HAVE_PYG:
        ei, ew = edge_index_of(a)
        f_in = x.shape[1]
        if kind == "gcn":
            conv = GCNConv(f_in, weights[0].shape[1])
            conv.lin.weight = torch.nn.Parameter(ws[0].T)
            conv.bias = torch.nn.Parameter(bt)
            y = conv(xt, ei, ew)
            w_grads = lambda: [conv.lin.weight.grad.T.numpy()]  # noqa: E731
            b_grad = lambda: conv.bias.grad.numpy()  # noqa: E731
        elif kind == "tag":
            conv = TAGConv(f_in, weights[0].shape[1], K=k)
            for i, lin in enumerate(conv.lins):
                lin.weight = torch.nn.Parameter(ws[i].T)
            conv.bias = torch.nn.Parameter(bt)
            y = conv(xt, ei, ew)
            w_grads = lambda: [lin.weight.grad.T.numpy() for lin in conv.lins]  # noqa: E731
            b_grad = lambda: conv.bias.grad.numpy()  # noqa: E731
        elif kind == "sgc":
            conv = SGConv(f_in, weights[0].shape[1], K=k)
            conv.lin.weight = torch.nn.Parameter(ws[0].T)
            conv.lin.bias = torch.nn.Parameter(bt)
            y = conv(xt, ei, ew)
            w_grads = lambda: [conv.lin.weight.grad.T.numpy()]  # noqa: E731
            b_grad = lambda: conv.lin.bias.grad.numpy()  # noqa: E731
        elif kind == "appnp":
            conv = APPNP(K=k, alpha=alpha)
            y = conv(xt, ei, ew)
            w_grads = lambda: []  # noqa: E731
            b_grad = lambda: None  # noqa: E731
        (y * torch.tensor(dy)).sum().backward()
        return y.detach().numpy(), xt.grad.numpy(), w_grads(), b_grad()
    # dense torch fallback, same formulas
    if kind == "gcn":
        ah = torch.tensor(dense_norm(a, 1.0))
        y = ah @ xt @ ws[0] + bt
    elif kind == "tag":
        ah = torch.tensor(dense_norm(a, 0.0))
        h = xt
        y = h @ ws[0]
        for i in range(1, k + 1):
            h = ah @ h
            y = y + h @ ws[i]
        y = y + bt
    elif kind == "sgc":
        ah = torch.tensor(dense_norm(a, 1.0))
        h = xt
        for _ in range(k):
            h = ah @ h
        y = h @ ws[0] + bt
    elif kind == "appnp":
        ah = torch.tensor(dense_norm(a, 1.0))
        h = xt
        for _ in range(k):
            h = (1 - alpha) * (ah @ h) + alpha * xt
        y = h
    (y * torch.tensor(dy)).sum().backward()
    return (y.detach().numpy(), xt.grad.numpy(), [w.grad.numpy() for w in ws],
            bt.grad.numpy() if bt is not None else None)


def layer_cases(rng):
    # (n, edge probability, symmetric, isolated node, f_in, f_out, K)
    cases = [(9, 0.35, True, 4, 5, 3, 3), (8, 0.3, False, None, 3, 6, 2), (12, 0.25, True, 0, 7, 7, 1)]
    path = os.path.join(OUT, "graph_layers.txt")
    with open(path, "w") as f:
        f.write("# produced by tests/reference/gen_graph_fixtures.py\n")
        f.write(f"# reference: {REFERENCE}; float64; gradients by autograd of sum(Y * dY)\n")
        f.write("# per case: 'case n f_in f_out K symmetric', then the raw graph (indptr, indices, values),\n")
        f.write("# the dense normalisations (norm_sym1 = gcn_norm with self-loops, norm_sym0 without,\n")
        f.write("# norm_rw1 = D^-1 (A + I), norm_col1 = (A + I) D_col^-1), X, and per layer its weights, output\n")
        f.write("# and gradients: gcn_W gcn_b gcn_Y gcn_dY gcn_dX gcn_dW gcn_db; tag_W (stacked) ...;\n")
        f.write("# sgc_* (K hops with self-loops); appnp_Y appnp_dX (K iterations, alpha = 0.1)\n")
        for n, p, symmetric, isolated, f_in, f_out, k in cases:
            a = random_graph(rng, n, p, symmetric, isolated)
            x = rng.standard_normal((n, f_in))
            f.write(f"case {n} {f_in} {f_out} {k} {int(symmetric)}\n")
            write_csr(f, "", a)
            write_matrix(f, "X", x)
            norm1 = dense_norm(a, 1.0)
            norm0 = dense_norm(a, 0.0)
            if HAVE_PYG:
                assert np.allclose(pyg_dense_norm(a, True), norm1, rtol=1e-14, atol=1e-15)
                assert np.allclose(pyg_dense_norm(a, False), norm0, rtol=1e-14, atol=1e-15)
                norm1, norm0 = pyg_dense_norm(a, True), pyg_dense_norm(a, False)
            write_matrix(f, "norm_sym1", norm1)
            write_matrix(f, "norm_sym0", norm0)
            m = a + np.eye(n)
            write_matrix(f, "norm_rw1", m / m.sum(axis=1)[:, None])
            write_matrix(f, "norm_col1", m / m.sum(axis=0)[None, :])
            # GCN
            w = rng.standard_normal((f_in, f_out))
            b = rng.standard_normal(f_out)
            dy = rng.standard_normal((n, f_out))
            y, dx, dws, db = run_layer("gcn", a, x, [w], b, dy)
            for name, mat in (("W", w), ("b", b), ("Y", y), ("dY", dy), ("dX", dx), ("dW", dws[0]), ("db", db)):
                write_matrix(f, "gcn_" + name, mat)
            # TAGCN
            ws = [rng.standard_normal((f_in, f_out)) for _ in range(k + 1)]
            b = rng.standard_normal(f_out)
            dy = rng.standard_normal((n, f_out))
            y, dx, dws, db = run_layer("tag", a, x, ws, b, dy, k=k)
            hops = [x]
            for _ in range(k):
                hops.append(norm0 @ hops[-1])
            for name, mat in (("W", np.vstack(ws)), ("b", b), ("Y", y), ("dY", dy), ("dX", dx),
                              ("dW", np.vstack(dws)), ("db", db), ("hops", np.hstack(hops))):
                write_matrix(f, "tag_" + name, mat)
            # SGC
            w = rng.standard_normal((f_in, f_out))
            b = rng.standard_normal(f_out)
            dy = rng.standard_normal((n, f_out))
            y, dx, dws, db = run_layer("sgc", a, x, [w], b, dy, k=k)
            for name, mat in (("W", w), ("b", b), ("Y", y), ("dY", dy), ("dX", dx), ("dW", dws[0]), ("db", db)):
                write_matrix(f, "sgc_" + name, mat)
            # APPNP
            dy = rng.standard_normal((n, f_in))
            y, dx, _, _ = run_layer("appnp", a, x, [], None, dy, k=4, alpha=0.1)
            for name, mat in (("Y", y), ("dY", dy), ("dX", dx)):
                write_matrix(f, "appnp_" + name, mat)
    print(f"wrote {path}", file=sys.stderr)




# ---------------------------------------------------------------------------------------------------
# KNN


def sklearn_neighbors(x, k, metric):
    """k nearest other points per row (self removed; with duplicates self may not come first)."""
    from sklearn.neighbors import NearestNeighbors

    nn = NearestNeighbors(n_neighbors=k + 1, algorithm="brute", metric=metric).fit(x)
    dist, idx = nn.kneighbors(x)
    out_i = np.zeros((x.shape[0], k), dtype=np.int64)
    out_d = np.zeros((x.shape[0], k))
    for i in range(x.shape[0]):
        keep = [p for p in range(k + 1) if idx[i, p] != i][:k]
        out_i[i] = idx[i, keep]
        out_d[i] = dist[i, keep]
    return out_i, out_d


def umap_memberships(idx, dist):
    """umap-learn's smooth_knn_dist + compute_membership_strengths (self in column 0), dense."""
    n, k = idx.shape
    full_d = np.hstack([np.zeros((n, 1)), dist])
    full_i = np.hstack([np.arange(n)[:, None], idx])
    target = np.log2(k + 1)
    mean_all = full_d.mean()
    sigma = np.zeros(n)
    rho = np.zeros(n)
    for i in range(n):
        row = full_d[i]
        nz = row[row > 0]
        rho[i] = nz[0] if nz.shape[0] >= 1 else 0.0
        lo, hi, mid = 0.0, np.inf, 1.0
        for _ in range(64):
            psum = 0.0
            for j in range(1, k + 1):
                d = row[j] - rho[i]
                psum += np.exp(-(d / mid)) if d > 0 else 1.0
            if abs(psum - target) < 1e-5:
                break
            if psum > target:
                hi = mid
                mid = (lo + hi) / 2.0
            else:
                lo = mid
                mid = mid * 2 if hi == np.inf else (lo + hi) / 2.0
        sigma[i] = mid
        floor = 1e-3 * (row.mean() if rho[i] > 0 else mean_all)
        sigma[i] = max(sigma[i], floor)
    p = np.zeros((n, n))
    for i in range(n):
        for j in range(k + 1):
            t = full_i[i, j]
            if t == i:
                continue
            d = full_d[i, j] - rho[i]
            p[i, t] = 1.0 if d <= 0 or sigma[i] == 0 else np.exp(-(d / sigma[i]))
    return p, sigma, rho


def knn_cases(rng):
    path = os.path.join(OUT, "graph_knn.txt")
    with open(path, "w") as f:
        f.write("# produced by tests/reference/gen_graph_fixtures.py with sklearn.neighbors.NearestNeighbors(\n")
        f.write("# algorithm='brute') in float64; 'case n d k metric(0 euclidean, 1 cosine) batches';\n")
        f.write("# X, then idx/dist: the k nearest other points (k + 1 columns, the last one to detect ties\n")
        f.write("# at the boundary); umap_P_indptr/indices/values (directed memberships, CSR), umap_sigma, umap_rho (umap-learn\n")
        f.write("# smooth_knn_dist transcribed); for batches > 1: batch labels and bb_dist (k per batch, merged)\n")
        # (n, d, k, metric, duplicates, batches)
        for n, d, k, metric, dups, batches in [(300, 6, 7, "euclidean", 5, 1), (250, 9, 5, "cosine", 3, 1),
                                               (120, 4, 10, "euclidean", 0, 1), (200, 5, 3, "euclidean", 0, 3),
                                               (150, 7, 4, "cosine", 0, 2)]:
            x = rng.standard_normal((n, d))
            if metric == "cosine":
                x[7] = 0.0  # a zero row: cosine distance 1 to everything
            for t in range(dups):  # exact duplicates: ties broken by the lower index
                x[n - 1 - t] = x[t * 3]
            f.write(f"case {n} {d} {k} {int(metric == 'cosine')} {batches}\n")
            write_matrix(f, "X", x)
            idx, dist = sklearn_neighbors(x, k + 1, metric)
            write_matrix(f, "idx", idx)
            write_matrix(f, "dist", dist)
            p, sigma, rho = umap_memberships(idx[:, :k], dist[:, :k])
            write_csr(f, "umap_P_", p)
            write_matrix(f, "umap_sigma", sigma)
            write_matrix(f, "umap_rho", rho)
            if batches > 1:
                labels = rng.integers(0, batches, size=n)
                merged = []
                for i in range(n):
                    row = []
                    for b in range(batches):
                        members = np.nonzero(labels == b)[0]
                        members = members[members != i]
                        if metric == "cosine":
                            xi = x[i] / max(np.linalg.norm(x[i]), 1e-300)
                            xm = x[members] / np.maximum(np.linalg.norm(x[members], axis=1), 1e-300)[:, None]
                            dd = np.clip(1 - xm @ xi, 0, 2)
                            dd[np.linalg.norm(x[members], axis=1) == 0] = 1.0
                            if np.linalg.norm(x[i]) == 0:
                                dd[:] = 1.0
                        else:
                            dd = np.linalg.norm(x[members] - x[i], axis=1)
                        row.extend(np.sort(dd)[:k])
                    merged.append(sorted(row))
                write_matrix(f, "batch", labels)
                write_matrix(f, "bb_dist", np.array(merged))
    print(f"wrote {path}", file=sys.stderr)


# ---------------------------------------------------------------------------------------------------
# diffusion (GDC, heat kernel, PPR)


def diffusion_cases(rng):
    path = os.path.join(OUT, "graph_diffusion.txt")
    with open(path, "w") as f:
        f.write("# produced by tests/reference/gen_graph_fixtures.py; dense NumPy/SciPy float64 references\n")
        f.write("# 'case n alpha t topk'; raw graph; H; T = gcn_norm with self-loops (dense); ppr_S = alpha\n")
        f.write("# (I - (1-alpha) T)^-1; ppr_Z = ppr_S H; heat_Y = expm(-t (I - T)) H; gdc = per-row top-k of\n")
        f.write("# ppr_S, then row-normalised (PyG GDC exact ppr, topk dim=0, normalization_out='col', transposed\n")
        f.write(f"# to cellkit's convention{'; checked against PyG GDC' if HAVE_PYG else ''})\n")
        for n, p, alpha, t, k in [(10, 0.4, 0.15, 2.0, 3), (14, 0.25, 0.3, 0.7, 4)]:
            a = random_graph(rng, n, p, True, 3)
            h = rng.standard_normal((n, 3))
            tm = dense_norm(a, 1.0)
            s_mat = alpha * np.linalg.inv(np.eye(n) - (1 - alpha) * tm)
            heat = scipy.linalg.expm(-t * (np.eye(n) - tm)) @ h
            keep = np.zeros_like(s_mat)
            for i in range(n):
                order = sorted(range(n), key=lambda j: (-s_mat[i, j], j))[:k]
                keep[i, order] = s_mat[i, order]
            gdc = keep / keep.sum(axis=1)[:, None]
            if HAVE_PYG:
                from torch_geometric.data import Data
                from torch_geometric.transforms import GDC

                ei, ew = edge_index_of(a)
                # GDC.__init__ imports numba (for the approximate PPR); the exact path does not need
                # it, so the object is set up without calling __init__.
                gdc_obj = GDC.__new__(GDC)
                gdc_obj.self_loop_weight, gdc_obj.normalization_in, gdc_obj.normalization_out = 1, "sym", "col"
                gdc_obj.diffusion_kwargs = dict(method="ppr", alpha=alpha)
                gdc_obj.sparsification_kwargs = dict(method="topk", k=k, dim=0)
                gdc_obj.exact = True
                data = gdc_obj(Data(edge_index=ei, edge_attr=ew, num_nodes=n))
                pyg = np.zeros((n, n))
                src, dst = data.edge_index.numpy()
                pyg[dst, src] = data.edge_attr.numpy()
                assert np.allclose(pyg, gdc, atol=1e-12), "GDC pipeline disagrees with PyG"
            f.write(f"case {n} {alpha!r} {t!r} {k}\n")
            write_csr(f, "", a)
            for name, mat in (("H", h), ("T", tm), ("ppr_S", s_mat), ("ppr_Z", s_mat @ h), ("heat_Y", heat),
                              ("gdc", gdc)):
                write_matrix(f, name, mat)
    print(f"wrote {path}", file=sys.stderr)


# ---------------------------------------------------------------------------------------------------
# decoders and masked attention (dense torch, autograd)


def decoder_cases(rng):
    path = os.path.join(OUT, "graph_decoders.txt")
    with open(path, "w") as f:
        f.write("# produced by tests/reference/gen_graph_fixtures.py; dense torch float64 with autograd\n")
        f.write("# 'case n d pos_weight'; target graph A (CSR, values in (0, 1], not symmetric); Z;\n")
        f.write("# bce_loss / bce_dZ: mean over n^2 of -[w a log s(zz) + (1-a) log(1-s(zz))];\n")
        f.write("# sq_loss / sq_dZ: mean over n^2 of (s(zz) - a)^2\n")
        for n, d, pos_weight in [(12, 3, 2.5), (7, 5, 1.0)]:
            a = random_graph(rng, n, 0.3, False, None)
            a = np.where(a > 0, np.minimum(a / 2.0, 1.0), 0.0)
            z = rng.standard_normal((n, d))
            f.write(f"case {n} {d} {pos_weight!r}\n")
            write_csr(f, "", a)
            write_matrix(f, "Z", z)
            at = torch.tensor(a)
            for name in ("bce", "sq"):
                zt = torch.tensor(z, requires_grad=True)
                logits = zt @ zt.T
                if name == "bce":
                    loss = torch.nn.functional.binary_cross_entropy_with_logits(
                        logits, at, pos_weight=torch.full((n,), pos_weight))
                else:
                    loss = ((torch.sigmoid(logits) - at) ** 2).mean()
                loss.backward()
                write_matrix(f, name + "_loss", [[loss.item()]])
                write_matrix(f, name + "_dZ", zt.grad.numpy())
    print(f"wrote {path}", file=sys.stderr)


def attention_cases(rng):
    path = os.path.join(OUT, "graph_attention.txt")
    with open(path, "w") as f:
        f.write("# produced by tests/reference/gen_graph_fixtures.py; dense torch float64 with autograd\n")
        f.write("# 'case n_q n_k d d_v'; mask (CSR; row 2 empty); Q K V dOut; out, attention (mask order),\n")
        f.write("# dQ dK dV of sum(out * dOut) with softmax over each row's masked keys, scale 1/sqrt(d);\n")
        f.write("# importance = column sums of the attention\n")
        for nq, nk, d, dv in [(7, 9, 4, 3), (5, 5, 2, 6)]:
            mask = rng.random((nq, nk)) < 0.45
            mask[2, :] = False
            mask[0, 1] = True
            q, k, v = rng.standard_normal((nq, d)), rng.standard_normal((nk, d)), rng.standard_normal((nk, dv))
            dout = rng.standard_normal((nq, dv))
            qt, kt, vt = (torch.tensor(m, requires_grad=True) for m in (q, k, v))
            scores = (qt @ kt.T) / np.sqrt(d)
            scores = scores.masked_fill(~torch.tensor(mask), float("-inf"))
            att = torch.softmax(scores, dim=1)
            att = torch.nan_to_num(att, nan=0.0)  # rows without keys
            out = att @ vt
            (out * torch.tensor(dout)).sum().backward()
            m = sp.csr_matrix(mask.astype(float))
            m.sort_indices()
            rows = np.repeat(np.arange(nq), np.diff(m.indptr))
            f.write(f"case {nq} {nk} {d} {dv}\n")
            write_csr(f, "", m)
            for name, mat in (("Q", q), ("K", k), ("V", v), ("dOut", dout), ("out", out.detach().numpy()),
                              ("attention", att.detach().numpy()[rows, m.indices]), ("dQ", qt.grad.numpy()),
                              ("dK", kt.grad.numpy()), ("dV", vt.grad.numpy()),
                              ("importance", att.detach().numpy().sum(axis=0))):
                write_matrix(f, name, mat)
    print(f"wrote {path}", file=sys.stderr)


def main():
    os.makedirs(OUT, exist_ok=True)
    layer_cases(np.random.default_rng(20240611))
    knn_cases(np.random.default_rng(20240612))
    diffusion_cases(np.random.default_rng(20240613))
    decoder_cases(np.random.default_rng(20240614))
    attention_cases(np.random.default_rng(20240615))


if __name__ == "__main__":
    main()
