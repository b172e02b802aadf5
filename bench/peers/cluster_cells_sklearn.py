#!/usr/bin/python3
"""Peer of examples/cluster_cells: the same pipeline with NumPy / SciPy / scikit-learn, following
scanpy 1.9's definitions (scanpy is not installed).

  counts -> filter cells (>= 1 expressed gene) and genes (expressed in >= 3 cells)
         -> normalize_total (target: median total) -> log1p  (as the demo: raw counts get both, linear
            expression (RPKM, TPM) only log1p, log-normalised data neither; --input, or decided as the
            demo decides: counts when manifest.json says raw_counts (integer values without a manifest),
            else log-normalised when every value is <= 50, else linear)
         -> highly_variable_genes(flavor='seurat', n_top_genes=2000) when more than 2000 genes remain
            (tests/reference/gen_preprocess_fixtures.py's re-implementation, imported from there)
         -> scale (zero_center, clip to [-10, 10]) -> PCA(n_components=min(50, min(n, d) - 1),
            random_state=0, default solver) -> GaussianMixture(covariance_type='full', random_state=0,
            n_init=--n-init (default 1: the demo's default)) for K = 2..20 (minimum BIC) or a fixed --k
         -> predict, membership entropy
         -> KMeans(n_clusters=K, n_init=10, random_state=0) -> ARI, NMI, homogeneity, completeness

Prints one JSON line: dataset, cells, genes, hvg, chosen_k, true_k, scores per method, seconds per
step, total seconds, peak RSS (MiB, resource.getrusage ru_maxrss).
Threads: 2 (OMP_NUM_THREADS / OPENBLAS_NUM_THREADS / MKL_NUM_THREADS and threadpoolctl), --threads.

Usage: cluster_cells_sklearn.py DATASET_DIR [--k K | --k-min A --k-max B] [--n-init N] [--seed S]
                                [--threads T] [--input counts|linear|log]
"""

import argparse
import os
import sys


def _threads_from_argv():
    for i, a in enumerate(sys.argv):
        if a == "--threads" and i + 1 < len(sys.argv):
            return sys.argv[i + 1]
        if a.startswith("--threads="):
            return a.split("=", 1)[1]
    return "2"


_THREADS = _threads_from_argv()
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = _THREADS

import json  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import scipy.io  # noqa: E402
import scipy.sparse as sp  # noqa: E402
from sklearn import metrics  # noqa: E402
from sklearn.cluster import KMeans  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402
from sklearn.mixture import GaussianMixture  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "reference"))
import gen_preprocess_fixtures as ref  # noqa: E402  (scanpy's HVG and scale, re-implemented)

try:
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover
    threadpool_limits = None


def read_labels(path):
    """labels.tsv: header, then cell_index, label_int, label_name."""
    with open(path) as f:
        header = f.readline().rstrip("\n").split("\t")
        col = header.index("label_int") if "label_int" in header else 1
        return np.array([int(line.rstrip("\n").split("\t")[col]) for line in f if line.strip()])


def scores(truth, predicted):
    h, c, _ = metrics.homogeneity_completeness_v_measure(truth, predicted)
    return {"ari": metrics.adjusted_rand_score(truth, predicted),
            "nmi": metrics.normalized_mutual_info_score(truth, predicted),
            "homogeneity": h, "completeness": c}


def input_kind(data_dir, counts):
    """examples/cluster_cells/main.cpp's rule."""
    raw = None
    manifest = os.path.join(data_dir, "manifest.json")
    if os.path.exists(manifest):
        with open(manifest) as f:
            raw = json.load(f).get("raw_counts")
    if raw is None:
        raw = bool(np.all(counts.data == np.floor(counts.data)))
    if raw:
        return "counts"
    return "log" if counts.data.size == 0 or counts.data.max() <= 50.0 else "linear"


def run(data_dir, k_min, k_max, seed, kind=None, n_hvg=2000, clip=10.0, components=50, n_init=1):
    times = {}

    def timed(name, fn):
        start = time.perf_counter()
        out = fn()
        times[name] = time.perf_counter() - start
        return out

    t0 = time.perf_counter()
    def read():
        m = scipy.io.mmread(os.path.join(data_dir, "counts.mtx.gz")).tocsr().astype(np.float64)
        m.eliminate_zeros()  # "expressed" = non-zero
        return m

    counts = timed("read", read)
    labels_path = os.path.join(data_dir, "labels.tsv")
    labels = read_labels(labels_path) if os.path.exists(labels_path) else None
    cells_in, genes_in = counts.shape
    kind = kind or input_kind(data_dir, counts)

    def filter_():
        cells = np.flatnonzero(np.diff(counts.indptr) >= 1)
        x = counts[cells]
        genes = np.flatnonzero(np.bincount(x.indices, minlength=x.shape[1]) >= 3)
        return cells, x[:, genes].tocsr()

    cells, x = timed("filter cells and genes", filter_)

    def normalize_log():
        if kind != "counts":
            y = x.copy()
            if kind == "linear":
                y.data = np.log1p(y.data)
            return y
        totals = np.asarray(x.sum(1)).ravel()
        after = np.median(totals[totals > 0])
        c = (totals + (totals == 0)) / after
        y = sp.diags(1.0 / c) @ x  # scanpy: sparsefuncs.inplace_row_scale(X, 1 / counts)
        y = y.tocsr()
        y.data = np.log1p(y.data)
        return y

    if kind != "log":
        x = timed("normalize_total + log1p" if kind == "counts" else "log1p", normalize_log)

    def hvg():
        if x.shape[1] <= n_hvg:
            return x.toarray()
        _, _, _, genes = ref.hvg(x.toarray(), "seurat", n_top_genes=n_hvg)
        return x[:, genes].toarray()

    dense = timed("highly variable genes", hvg)
    dense = timed("scale (z-score, clip)", lambda: ref.scale(dense, clip)[0])
    n, d = dense.shape
    k_pc = min(components, min(n, d) - 1)
    pca = PCA(n_components=k_pc, random_state=seed)
    emb = timed("PCA", lambda: pca.fit_transform(dense))

    def sweep():
        best, table = None, []
        for k in range(k_min, min(k_max, n) + 1):
            g = GaussianMixture(n_components=k, covariance_type="full", random_state=seed, n_init=n_init).fit(emb)
            bic = g.bic(emb)
            table.append({"k": k, "bic": bic, "lower_bound": float(g.lower_bound_), "n_iter": int(g.n_iter_),
                          "converged": bool(g.converged_)})
            if best is None or bic < best[0]:
                best = (bic, k, g)
        return best[2], table

    gmm, table = timed("GMM sweep (BIC)", sweep)
    k = gmm.n_components

    def assign():
        p = gmm.predict_proba(emb)
        with np.errstate(divide="ignore", invalid="ignore"):
            ent = -np.where(p > 0, p * np.log(p), 0.0).sum(1)
        return gmm.predict(emb), ent

    gmm_labels, entropy = timed("GMM assign", assign)
    km = timed("k-means", lambda: KMeans(n_clusters=k, n_init=10, random_state=seed).fit(emb))
    out = {"dataset": os.path.basename(os.path.normpath(data_dir)), "cells": int(n), "cells_in": int(cells_in),
           "genes_in": int(genes_in), "input": kind, "genes": int(x.shape[1]), "hvg": int(d), "pca_components": int(k_pc),
           "pca_solver": pca._fit_svd_solver,
           "pca_variance_ratio": float(pca.explained_variance_ratio_.sum()), "chosen_k": int(k), "n_init": n_init,
           "sweep": table,
           "mean_entropy": float(entropy.mean())}
    if labels is not None:
        truth = labels[cells]
        out["true_k"] = int(np.unique(truth).size)
        out["scores"] = timed("scores", lambda: {"GMM": scores(truth, gmm_labels),
                                                 "k-means": scores(truth, km.labels_)})
    out["seconds"] = times
    out["total_seconds"] = time.perf_counter() - t0
    out["total_seconds_excluding_read"] = out["total_seconds"] - times["read"]
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    out["threads"] = int(_THREADS)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", help="dataset folder (counts.mtx.gz, labels.tsv)")
    parser.add_argument("--k", type=int, help="fixed number of mixture components")
    parser.add_argument("--k-min", type=int, default=2)
    parser.add_argument("--k-max", type=int, default=20)
    parser.add_argument("--n-init", type=int, default=1, help="GaussianMixture n_init (EM starts per K)")
    parser.add_argument("--seed", type=int, default=0, help="random_state of PCA, GaussianMixture, KMeans")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--input", choices=["counts", "linear", "log"], help="default: decided as the demo does")
    args = parser.parse_args()
    k_min, k_max = (args.k, args.k) if args.k else (args.k_min, args.k_max)
    if args.n_init < 1:
        parser.error("--n-init must be >= 1")
    if threadpool_limits is not None:
        with threadpool_limits(limits=args.threads):
            out = run(args.data, k_min, k_max, args.seed, args.input, n_init=args.n_init)
    else:
        out = run(args.data, k_min, k_max, args.seed, args.input, n_init=args.n_init)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
