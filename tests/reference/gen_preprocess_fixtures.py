#!/usr/bin/python3
"""Reference values for cellkit/preprocess/{filter,normalize,highly_variable,scale,pca}.hpp.

scanpy is not installed, so its definitions (scanpy 1.9: pp.filter_cells, pp.filter_genes,
pp.normalize_total, pp.log1p, pp.highly_variable_genes flavor='seurat' / 'cell_ranger' for one batch,
pp.scale) are re-implemented below with NumPy, step for step from scanpy's source (pandas' pd.cut and
groupby, statsmodels' robust.mad and NumPy's percentile written out), and PCA is scikit-learn 1.2.1's
PCA(svd_solver='full').

Writes tests/reference/data/preprocess_chain_cases.txt (read by cellkit::test::read_fixture_cases):
  case <index> <n_cells> <n_genes> <target_sum or 0 = median> <n_top_genes> <max_value> <n_components>
  counts (n x g): the raw integer counts (small integers: the C++ test runs the chain itself)
  cells_kept (1 x n'), genes_kept (1 x g'): filter_cells(min_genes=3) then filter_genes(min_cells=2)
  totals (1 x n'), target (1 x 1): normalize_total's library sizes and target
  norm_log_row0 (1 x g'): log1p(normalize_total(x)) of the first kept cell (dense)
  seurat_means, seurat_dispersions, seurat_norm (1 x g'): flavor='seurat' per-gene statistics
  seurat_top (1 x h): indices of highly_variable_genes(n_top_genes) (flavor='seurat')
  seurat_cutoff (1 x m): indices selected with the default cut-offs (min_mean=0.0125, max_mean=3,
                        min_disp=0.5)
  ranger_means, ranger_dispersions, ranger_norm (1 x g'), ranger_top (1 x h2): flavor='cell_ranger'
  scale_mean, scale_sd (1 x h): of the seurat_top subset; scaled_head (5 x h): first 5 rows of
  scale(max_value) (both sides clipped, scanpy >= 1.10), clipped (1 x 1): entries clipped
  pca_scores (n' x k), pca_components (k x h), pca_variance, pca_ratio, pca_singular (1 x k):
  PCA(n_components=k, svd_solver='full') of the scaled matrix
NaN is written as 'nan'.

Run: /usr/bin/python3 tests/reference/gen_preprocess_fixtures.py
"""

import os

import numpy as np
import sklearn
from sklearn.decomposition import PCA

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data")
MAD_C = 0.6744897501960817  # scipy.stats.norm.ppf(0.75), statsmodels' default


def write_matrix(out, name, m):
    m = np.atleast_2d(np.asarray(m, dtype=np.float64))
    out.write(f"# {name} {m.shape[0]} {m.shape[1]}\n")
    for row in m:
        out.write(" ".join(repr(float(v)) if np.isfinite(v) else "nan" for v in row) + "\n")


# ---- scanpy's preprocessing on dense float64 arrays --------------------------------------------


def filter_cells(x, min_genes):
    return np.flatnonzero((x != 0).sum(1) >= min_genes)


def filter_genes(x, min_cells):
    return np.flatnonzero((x != 0).sum(0) >= min_cells)


def normalize_total(x, target_sum=None):
    counts = x.sum(1)
    after = np.median(counts[counts > 0]) if target_sum is None else target_sum
    c = counts + (counts == 0)
    c = c / after
    return x * (1.0 / c)[:, None], counts, after  # sparsefuncs.inplace_row_scale(X, 1 / counts)


def sparse_mean_var(x):
    """scanpy._utils.sparse_mean_var_minor_axis on the stored (non-zero) entries, ddof=1 applied."""
    n = x.shape[0]
    nz = x != 0
    means = np.where(nz, x, 0.0).sum(0) / n
    diff = np.where(nz, x - means, 0.0)
    var = (diff**2).sum(0)
    var += (n - nz.sum(0)) * means**2
    var /= n
    var *= n / (n - 1)
    return means, var


def pd_cut_equal_width(values, n_bins):
    """pd.cut(values, bins=n_bins).codes (right-closed), pandas 1.5 _bins_to_cuts."""
    mn, mx = values.min(), values.max()
    if mn == mx:
        mn -= 0.001 * abs(mn) if mn != 0 else 0.001
        mx += 0.001 * abs(mx) if mx != 0 else 0.001
        bins = np.linspace(mn, mx, n_bins + 1, endpoint=True)
    else:
        bins = np.linspace(mn, mx, n_bins + 1, endpoint=True)
        bins[0] -= (mx - mn) * 0.001
    return np.searchsorted(bins, values, side="left") - 1, n_bins


def pd_cut_edges(values, edges):
    if len(np.unique(edges)) != len(edges):
        raise ValueError("Bin edges must be unique")
    return np.searchsorted(edges, values, side="left") - 1, len(edges) - 1


def hvg(x_log, flavor, n_top_genes=None, n_bins=20, min_mean=0.0125, max_mean=3, min_disp=0.5, max_disp=np.inf):
    x = x_log.copy()
    if flavor == "seurat":
        x = np.expm1(x)
    mean, var = sparse_mean_var(x)
    mean[mean == 0] = 1e-12
    dispersion = var / mean
    if flavor == "seurat":
        dispersion[dispersion == 0] = np.nan
        dispersion = np.log(dispersion)
        mean = np.log1p(mean)
    if flavor == "seurat":
        codes, nb = pd_cut_equal_width(mean, n_bins)
        centre = np.full(nb, np.nan)
        scale = np.full(nb, np.nan)
        for b in range(nb):
            d = dispersion[(codes == b) & ~np.isnan(dispersion)]  # groupby mean/std skip NaN
            m = d.mean() if d.size else np.nan
            s = d.std(ddof=1) if d.size >= 2 else np.nan
            if np.isnan(s):  # one_gene_per_bin: std <- mean, mean <- 0
                centre[b], scale[b] = 0.0, m
            else:
                centre[b], scale[b] = m, s
        norm = (dispersion - centre[codes]) / scale[codes]
    else:
        edges = np.r_[-np.inf, np.percentile(mean, np.arange(10, 105, 5)), np.inf]
        codes, nb = pd_cut_edges(mean, edges)
        centre = np.full(nb, np.nan)
        scale = np.full(nb, np.nan)
        for b in range(nb):
            group = dispersion[codes == b]
            if group.size == 0:
                continue
            centre[b] = np.nanmedian(group)  # groupby median skips NaN
            scale[b] = np.median(np.abs(group - np.median(group)) / MAD_C)  # robust.mad: NaN if any NaN
        norm = (dispersion - centre[codes]) / scale[codes]
    if n_top_genes is not None:
        finite = norm[~np.isnan(norm)]
        finite[::-1].sort()
        cut = finite[min(n_top_genes, finite.size) - 1]
        subset = np.nan_to_num(norm) >= cut
    else:
        normz = norm.copy()
        normz[np.isnan(normz)] = 0
        subset = np.logical_and.reduce((mean > min_mean, mean < max_mean, normz > min_disp, normz < max_disp))
    return mean, dispersion, norm, np.flatnonzero(subset)


def scale(x, max_value):
    mean = x.mean(0)
    var = ((x - mean) ** 2).sum(0) / (x.shape[0] - 1)
    sd = np.sqrt(var)
    sd[sd == 0] = 1
    y = (x - mean) / sd
    clipped = int(((y > max_value) | (y < -max_value)).sum())
    return np.clip(y, -max_value, max_value), mean, sd, clipped


# ---- data ----------------------------------------------------------------------------------------


def simulate(rng, n, g, groups):
    """Negative-binomial-like counts with group-specific means: genes of very different levels."""
    base = np.exp(rng.normal(-0.5, 1.3, size=g))
    label = rng.integers(0, groups, size=n)
    effect = np.exp(rng.normal(0, 0.8, size=(groups, g)) * (rng.random((groups, g)) < 0.3))
    size = np.exp(rng.normal(1.5, 0.3, size=n))
    lam = base[None, :] * effect[label] * size[:, None]
    lam = rng.gamma(2.0, lam / 2.0)
    x = rng.poisson(lam).astype(np.float64)
    x[:, 0] = 0  # an unexpressed gene (filtered out)
    x[0, :] = 0  # an empty cell (filtered out)
    x[:, 1] = 0
    x[2, 1] = 1  # a gene in one cell only (filtered out by min_cells = 2)
    x[:, 2] = 0
    x[:3, 2] = 1  # a rare gene: a low-mean bin of its own
    return x


def main():
    rng = np.random.default_rng(20240609)
    path = os.path.join(DATA, "preprocess_chain_cases.txt")
    with open(path, "w") as out:
        out.write(f"# preprocess chain against scanpy 1.9 definitions; scikit-learn {sklearn.__version__}\n")
        configs = [(70, 90, 0, 30, 10.0, 6, 4), (50, 70, 1e4, 20, 2.5, 4, 3)]
        for index, (n, g, target, n_top, max_value, k, groups) in enumerate(configs):
            counts = simulate(rng, n, g, groups)
            cells = filter_cells(counts, 3)
            x = counts[cells]
            genes = filter_genes(x, 2)
            x = x[:, genes]
            norm, totals, after = normalize_total(x, None if target == 0 else target)
            logx = np.log1p(norm)
            s_mean, s_disp, s_norm, s_top = hvg(logx, "seurat", n_top_genes=n_top)
            _, _, _, s_cut = hvg(logx, "seurat")
            r_mean, r_disp, r_norm, r_top = hvg(logx, "cell_ranger", n_top_genes=n_top)
            sub = logx[:, s_top]
            scaled, sc_mean, sc_sd, clipped = scale(sub, max_value)
            pca = PCA(n_components=k, svd_solver="full")
            scores = pca.fit_transform(scaled)
            out.write(f"case {index} {n} {g} {target!r} {n_top} {max_value!r} {k}\n")
            write_matrix(out, "counts", counts)
            write_matrix(out, "cells_kept", cells)
            write_matrix(out, "genes_kept", genes)
            write_matrix(out, "totals", totals)
            write_matrix(out, "target", [after])
            write_matrix(out, "norm_log_row0", logx[0])
            write_matrix(out, "seurat_means", s_mean)
            write_matrix(out, "seurat_dispersions", s_disp)
            write_matrix(out, "seurat_norm", s_norm)
            write_matrix(out, "seurat_top", s_top)
            write_matrix(out, "seurat_cutoff", s_cut)
            write_matrix(out, "ranger_means", r_mean)
            write_matrix(out, "ranger_dispersions", r_disp)
            write_matrix(out, "ranger_norm", r_norm)
            write_matrix(out, "ranger_top", r_top)
            write_matrix(out, "scale_mean", sc_mean)
            write_matrix(out, "scale_sd", sc_sd)
            write_matrix(out, "scaled_head", scaled[:5])
            write_matrix(out, "clipped", [clipped])
            write_matrix(out, "pca_scores", scores)
            write_matrix(out, "pca_components", pca.components_)
            write_matrix(out, "pca_variance", pca.explained_variance_)
            write_matrix(out, "pca_ratio", pca.explained_variance_ratio_)
            write_matrix(out, "pca_singular", pca.singular_values_)
            print(f"case {index}: {len(cells)} cells, {len(genes)} genes, seurat top {len(s_top)}, cutoff "
                  f"{len(s_cut)}, cell_ranger top {len(r_top)}, clipped {clipped}")
    print("wrote", path, os.path.getsize(path), "bytes")


if __name__ == "__main__":
    main()
