#!/usr/bin/python3
"""Peer timings for bench/metrics/bench_ranking_silhouette.cpp: scikit-learn 1.2 on the same shapes.

Names understood (those of the C++ benchmark, without Google Benchmark's /real_time suffix):
  BM_roc_auc<T>/n:N/threads:P                 sklearn.metrics.roc_auc_score(y, s)
  BM_average_precision<T>/n:N/threads:P       sklearn.metrics.average_precision_score(y, s)
  BM_silhouette_score<T>/n:N/d:D/k:K/threads:P  sklearn.metrics.silhouette_score(X, labels)
with T = float (float32) or double (float64). Inputs have the C++ benchmark's distributions, not its
bits: ranking labels int32 with P(1) = 0.3 and scores uniform [0, 1) + 0.5 for positives; silhouette
points from K Gaussian blobs in D dimensions (centres N(0, 2^2), unit spread). scikit-learn runs
with its defaults (silhouette: pairwise_distances_chunked with working_memory = 1024 MiB), its
BLAS and OpenMP pools limited to P threads (threadpoolctl); the ranking metrics are single-threaded
NumPy code whatever P is.

Each prints {"name": ..., "peer": "scikit-learn", "seconds": t, "threads": P, "peak_rss_mib": m}
where m is this process's peak resident set (ru_maxrss) after the call, inputs included.

Timing: time.perf_counter around one call. Calls shorter than 2 s: best of N >= 3 after one warm-up
(until ~1 s or 10 calls; --quick: N = 2). Longer calls (silhouette at n = 50000 takes minutes):
one timed call, no warm-up.

Usage: ranking_silhouette_sklearn.py [--names NAME ...] [--quick]
Without --names it runs the grid of bench_ranking_silhouette.cpp at P = CELLKIT_BENCH_THREADS (default 2).
"""

import argparse
import json
import os
import re
import resource
import time

import numpy as np

RANKING_RE = re.compile(r"^BM_(roc_auc|average_precision)<(float|double)>/n:(\d+)/threads:(\d+)$")
SILHOUETTE_RE = re.compile(r"^BM_silhouette_score<(float|double)>/n:(\d+)/d:(\d+)/k:(\d+)/threads:(\d+)$")


def default_names():
    threads = int(os.environ.get("CELLKIT_BENCH_THREADS", "2"))
    names = []
    for metric in ("roc_auc", "average_precision"):
        for dtype in ("float", "double"):
            for n in (100_000, 10_000_000):
                names.append(f"BM_{metric}<{dtype}>/n:{n}/threads:{threads}")
    for dtype in ("float", "double"):
        for n in (5000, 50_000):
            names.append(f"BM_silhouette_score<{dtype}>/n:{n}/d:50/k:10/threads:{threads}")
    return names


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def timed(fn, quick):
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    if first > 2.0:
        return first  # one call is representative (and a second would take as long again)
    best = float("inf")
    spent = 0.0
    calls = 0
    min_calls, budget, max_calls = (2, 0.2, 2) if quick else (3, 1.0, 10)
    while calls < min_calls or (spent < budget and calls < max_calls):
        start = time.perf_counter()
        fn()
        elapsed = time.perf_counter() - start
        best = min(best, elapsed)
        spent += elapsed
        calls += 1
    return best


def ranking_inputs(n, dtype):
    rng = np.random.default_rng(20261121 + n)
    y = (rng.random(n) < 0.3).astype(np.int32)
    s = (rng.random(n) + 0.5 * y).astype(dtype)
    return y, s


def blob_inputs(n, d, k, dtype):
    rng = np.random.default_rng(7 + n)
    centres = 2.0 * rng.standard_normal((k, d))
    labels = rng.integers(0, k, size=n).astype(np.int32)
    x = (centres[labels] + rng.standard_normal((n, d))).astype(dtype)
    return x, labels


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--names", nargs="*", help="benchmark names to time (default: the full grid)")
    parser.add_argument("--quick", action="store_true", help="fewer timed calls")
    args = parser.parse_args()

    from sklearn import metrics
    from threadpoolctl import threadpool_limits

    for name in args.names if args.names else default_names():
        ranking = RANKING_RE.match(name)
        silhouette = SILHOUETTE_RE.match(name)
        if ranking:
            metric, dtype_name, n, threads = ranking.group(1), ranking.group(2), int(ranking.group(3)), int(ranking.group(4))
            y, s = ranking_inputs(n, np.float32 if dtype_name == "float" else np.float64)
            fn = metrics.roc_auc_score if metric == "roc_auc" else metrics.average_precision_score
            with threadpool_limits(limits=threads):
                seconds = timed(lambda: fn(y, s), args.quick)
        elif silhouette:
            dtype_name = silhouette.group(1)
            n, d, k, threads = (int(silhouette.group(i)) for i in range(2, 6))
            x, labels = blob_inputs(n, d, k, np.float32 if dtype_name == "float" else np.float64)
            with threadpool_limits(limits=threads):
                seconds = timed(lambda: metrics.silhouette_score(x, labels), args.quick)
        else:
            continue
        print(json.dumps({"name": name, "peer": "scikit-learn", "seconds": seconds, "threads": threads,
                          "peak_rss_mib": round(peak_rss_mib(), 1)}), flush=True)


if __name__ == "__main__":
    main()
