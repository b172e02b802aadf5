#!/usr/bin/python3
"""Peer timings for bench/preprocess/bench_pipeline.cpp on 10x PBMC (../shared/data/10x_pbmc_top2000).

Names understood (T = float | double, P = threads):
  BM_read_counts/threads:P           scipy.io.mmread(counts.mtx.gz).tocsr()
  BM_preprocess<T>/threads:P         the scanpy chain on a scipy CSR matrix with NumPy/SciPy (scanpy is not
                                     installed; the same definitions as tests/reference/gen_preprocess_fixtures.py,
                                     vectorised for sparse input): filter cells (>= 1 count) and genes (>= 1 cell),
                                     normalize_total (median), log1p, 2000 Seurat HVGs, scale(max_value=10) dense
  BM_pca<T>/n:N/d:D/k:K/threads:P    sklearn PCA(n_components=K, svd_solver='randomized', random_state=0) fit_transform
                                     of the scaled matrix (7 power iterations, 10 oversamples: the same as ours)
  BM_pipeline<T>/threads:P           preprocess + PCA
Each prints {"name": ..., "peer": ..., "seconds": t, "threads": P}; t is the best of N calls after a warm-up
(N = 3, --quick: 1). Threads: threadpoolctl limits the BLAS / OpenMP pools.
Env CELLKIT_SHARED_DATA_DIR overrides the data folder.

Usage: preprocess_sklearn.py [--names NAME ...] [--quick]
"""

import argparse
import json
import os
import re
import time

import numpy as np
import scipy.io
import scipy.sparse as sp

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.environ.get("CELLKIT_SHARED_DATA_DIR", os.path.join(HERE, "..", "..", "..", "shared", "data"))
COUNTS = os.path.join(ROOT, "10x_pbmc_top2000", "counts.mtx.gz")
NAME_RE = re.compile(r"^BM_(read_counts|preprocess<(float|double)>|pca<(float|double)>/n:\d+/d:\d+/k:(\d+)|"
                     r"pipeline<(float|double)>)/threads:(\d+)$")


def read_counts():
    return scipy.io.mmread(COUNTS).tocsr()


def sparse_mean_var(x):
    n = x.shape[0]
    mean = np.asarray(x.sum(0)).ravel() / n
    sq = np.asarray(x.multiply(x).sum(0)).ravel() / n
    var = (sq - mean**2) * (n / (n - 1))
    return mean, var


def preprocess(counts, dtype):
    x = counts.astype(dtype)
    x = x[np.flatnonzero(np.asarray(x.sum(1)).ravel() >= 1)]
    x = x[:, np.flatnonzero(np.asarray((x != 0).sum(0)).ravel() >= 1)]
    totals = np.asarray(x.sum(1)).ravel()
    after = np.median(totals[totals > 0])
    x = sp.diags((after / np.where(totals == 0, 1, totals)).astype(dtype)) @ x
    x.data = np.log1p(x.data)
    e = x.copy()
    e.data = np.expm1(e.data)
    mean, var = sparse_mean_var(e)
    mean[mean == 0] = 1e-12
    disp = var / mean
    disp[disp == 0] = np.nan
    disp = np.log(disp)
    mean = np.log1p(mean)
    lo, hi = mean.min(), mean.max()
    edges = np.linspace(lo, hi, 21)
    edges[0] -= (hi - lo) * 0.001
    codes = np.searchsorted(edges, mean, side="left") - 1
    norm = np.empty_like(disp)
    for b in range(20):
        members = codes == b
        d = disp[members & ~np.isnan(disp)]
        m = d.mean() if d.size else np.nan
        s = d.std(ddof=1) if d.size >= 2 else np.nan
        if np.isnan(s):
            m, s = 0.0, m
        norm[members] = (disp[members] - m) / s
    finite = np.sort(norm[~np.isnan(norm)])[::-1]
    cut = finite[min(2000, finite.size) - 1]
    genes = np.flatnonzero(np.nan_to_num(norm) >= cut)
    dense = x[:, genes].toarray()
    mu = dense.mean(0)
    sd = dense.std(0, ddof=1)
    sd[sd == 0] = 1
    dense -= mu
    dense /= sd
    np.clip(dense, -10, 10, out=dense)
    return dense


def pca(dense, k):
    from sklearn.decomposition import PCA
    return PCA(n_components=k, svd_solver="randomized", random_state=0).fit_transform(dense)


def best(fn, repetitions):
    fn()
    times = []
    for _ in range(repetitions):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--names", nargs="*", help="benchmark names to time")
    parser.add_argument("--quick", action="store_true", help="one timed repetition")
    args = parser.parse_args()
    from threadpoolctl import threadpool_limits
    repetitions = 1 if args.quick else 3
    p = int(os.environ.get("CELLKIT_BENCH_THREADS", "2"))
    names = args.names or [f"BM_read_counts/threads:{p}", f"BM_preprocess<float>/threads:{p}",
                           f"BM_pca<float>/n:4271/d:2000/k:50/threads:{p}", f"BM_pipeline<float>/threads:{p}"]
    if not os.path.exists(COUNTS):
        raise SystemExit(f"dataset absent: {COUNTS}")
    counts = read_counts()
    for name in names:
        m = NAME_RE.match(name)
        if not m:
            continue
        kind = m.group(1).split("<")[0]
        dtype = np.float32 if "float" in name else np.float64
        threads = int(m.group(6))
        with threadpool_limits(limits=threads):
            if kind == "read_counts":
                peer, run = "scipy.io.mmread", read_counts
            elif kind == "preprocess":
                peer, run = "numpy/scipy scanpy chain", lambda: preprocess(counts, dtype)  # noqa: E731
            elif kind == "pca":
                dense = preprocess(counts, dtype)
                k = int(m.group(4))
                peer, run = "sklearn PCA(randomized)", lambda: pca(dense, k)  # noqa: E731
            else:
                peer, run = "numpy/scipy chain + sklearn PCA", lambda: pca(preprocess(counts, dtype), 50)  # noqa: E731
            seconds = best(run, repetitions)
        print(json.dumps({"name": name, "peer": peer, "seconds": seconds, "threads": threads}), flush=True)


if __name__ == "__main__":
    main()
