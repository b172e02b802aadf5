#!/usr/bin/python3
"""Peer timings for bench/execution/bench_gemm.cpp and BM_gemm_large in bench/core/bench_machine.cpp.

Names understood:
  BM_gemm<T>/m:M/n:N/k:K/tb:0|1/threads:P    C (M x N) = A (M x K) @ B (K x N), or @ B.T with B
                                             stored N x K when tb:1
  BM_gemm_large<T>/n:N/threads:P             square N x N x N
For each it times numpy.matmul(a, b, out=c) and torch.matmul(a, b, out=c) with float32 or float64
inputs filled uniform in [-1, 1), on P threads (threadpoolctl limits for the BLAS and OpenMP pools,
plus torch.set_num_threads). On this Debian machine both numpy and torch call OpenBLAS 0.3.21
(pthreads build); `threadpoolctl.threadpool_info()` says which library is used.
Each prints {"name": ..., "peer": "numpy.matmul" | "torch.matmul", "seconds": t}.

Timing: time.perf_counter around one call, best of N after two warm-up calls (N >= 5, until
~0.5 s or 30 calls; --quick: N >= 3, ~0.1 s).

Usage: gemm_peers.py [--names NAME ...] [--quick]
Without --names it runs the grid of bench_gemm.cpp plus BM_gemm_large at n = 2560.
"""

import argparse
import json
import os
import re
import time

import numpy as np

GEMM_RE = re.compile(r"^BM_gemm<(float|double)>/m:(\d+)/n:(\d+)/k:(\d+)/tb:([01])/threads:(\d+)$")
LARGE_RE = re.compile(r"^BM_gemm_large<(float|double)>/n:(\d+)/threads:(\d+)$")
SHAPES = [(100_000, 20, 50, 1), (4096, 4096, 128, 1), (1024, 1024, 1024, 0), (100_000, 64, 128, 0)]


def default_names():
    threads = int(os.environ.get("CELLKIT_BENCH_THREADS", "2"))
    names = []
    for dtype in ("float", "double"):
        for m, n, k, tb in SHAPES:
            names.append(f"BM_gemm<{dtype}>/m:{m}/n:{n}/k:{k}/tb:{tb}/threads:{threads}")
    for dtype in ("float", "double"):
        names.append(f"BM_gemm_large<{dtype}>/n:2560/threads:{threads}")
    return names


def parse(name):
    """(dtype, m, n, k, tb, threads) or None."""
    match = GEMM_RE.match(name)
    if match:
        g = match.groups()
        return g[0], int(g[1]), int(g[2]), int(g[3]), g[4] == "1", int(g[5])
    match = LARGE_RE.match(name)
    if match:
        g = match.groups()
        n = int(g[1])
        return g[0], n, n, n, False, int(g[2])
    return None


def best_time(fn, quick):
    fn()
    fn()
    budget, max_calls, min_calls = (0.1, 10, 3) if quick else (0.5, 30, 5)
    best = float("inf")
    spent = 0.0
    calls = 0
    while calls < min_calls or (spent < budget and calls < max_calls):
        start = time.perf_counter()
        fn()
        elapsed = time.perf_counter() - start
        best = min(best, elapsed)
        spent += elapsed
        calls += 1
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--names", nargs="*", help="benchmark names to time (default: the full grid)")
    parser.add_argument("--quick", action="store_true", help="fewer timed calls")
    args = parser.parse_args()

    import torch
    from threadpoolctl import threadpool_limits

    names = args.names if args.names else default_names()
    for name in names:
        parsed = parse(name)
        if parsed is None:
            continue
        dtype_name, m, n, k, tb, threads = parsed
        np_dtype = np.float32 if dtype_name == "float" else np.float64
        rng = np.random.default_rng(1)
        a = rng.uniform(-1.0, 1.0, size=(m, k)).astype(np_dtype)
        b = rng.uniform(-1.0, 1.0, size=(n, k) if tb else (k, n)).astype(np_dtype)
        b_op = b.T if tb else b
        c = np.empty((m, n), dtype=np_dtype)
        with threadpool_limits(limits=threads):
            torch.set_num_threads(threads)
            seconds = best_time(lambda: np.matmul(a, b_op, out=c), args.quick)
            print(json.dumps({"name": name, "peer": "numpy.matmul", "seconds": seconds, "threads": threads}),
                  flush=True)
            ta, tb_t, tc = torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(c)
            tb_op = tb_t.t() if tb else tb_t
            seconds = best_time(lambda: torch.matmul(ta, tb_op, out=tc), args.quick)
            print(json.dumps({"name": name, "peer": "torch.matmul", "seconds": seconds, "threads": threads}),
                  flush=True)


if __name__ == "__main__":
    main()
