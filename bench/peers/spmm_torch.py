#!/usr/bin/python3
"""Peer timings for bench/execution/bench_spmm.cpp: torch.sparse.mm (and SciPy) on the same shapes.

For every benchmark name BM_spmm<T>/rows:R/cols:C/threads:N it builds an R x R sparse matrix with
exactly 15 nonzeros per row at uniformly random, sorted, unique columns, values uniform in
[-1, 1), and an R x C dense X of type T. The matrix has the same shape, nnz per row and
distribution as the C++ benchmark's, not the same bits (different random generator).

It times, with torch.set_num_threads(N):
  - torch.sparse.mm(A_csr, X)  (CSR, int32 and int64 indices),
  - torch.sparse.mm(A_coo, X)  (coalesced COO, int64 indices),
and prints the fastest as {"name": ..., "peer": "torch.sparse.mm", "variant": ..., "seconds": t}.
With --scipy it also prints SciPy's single-threaded A @ X as peer "scipy".

Timing: time.perf_counter around one call, best of N calls after two warm-up calls (N >= 5, until
~0.5 s or 50 calls; --quick: N >= 3, ~0.1 s). Results of the variants are cross-checked.

Usage: spmm_torch.py [--names NAME ...] [--quick] [--scipy]
Without --names it runs the full grid of bench_spmm.cpp (threads from CELLKIT_BENCH_THREADS, default 2).
"""

import argparse
import json
import os
import re
import sys
import time
import warnings

import numpy as np

NNZ_PER_ROW = 15
NAME_RE = re.compile(r"^BM_spmm<(float|double)>/rows:(\d+)/cols:(\d+)/threads:(\d+)$")


def default_names():
    threads = int(os.environ.get("CELLKIT_BENCH_THREADS", "2"))
    names = []
    for dtype in ("float", "double"):
        for rows in (10_000, 100_000):
            for cols in (16, 64, 128):
                for t in sorted({1, threads}):
                    names.append(f"BM_spmm<{dtype}>/rows:{rows}/cols:{cols}/threads:{t}")
    return names


def random_csr(rows, seed):
    """indptr, indices (int64, sorted unique per row), values (float64) with 15 nonzeros per row."""
    rng = np.random.default_rng(seed)
    indices = np.sort(rng.integers(0, rows, size=(rows, NNZ_PER_ROW)), axis=1)
    while True:  # redraw the rows that drew a column twice
        bad = np.any(np.diff(indices, axis=1) == 0, axis=1)
        if not bad.any():
            break
        indices[bad] = np.sort(rng.integers(0, rows, size=(int(bad.sum()), NNZ_PER_ROW)), axis=1)
    indptr = np.arange(0, rows * NNZ_PER_ROW + 1, NNZ_PER_ROW, dtype=np.int64)
    values = rng.uniform(-1.0, 1.0, size=rows * NNZ_PER_ROW)
    return indptr, indices.ravel(), values


def best_time(fn, quick):
    fn()
    fn()
    budget, max_calls, min_calls = (0.1, 10, 3) if quick else (0.5, 50, 5)
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
    parser.add_argument("--scipy", action="store_true", help="also time SciPy (single-threaded)")
    args = parser.parse_args()

    import torch

    warnings.filterwarnings("ignore", message=".*Sparse CSR tensor support is in beta.*")
    names = args.names if args.names else default_names()
    matrices = {}
    for name in names:
        match = NAME_RE.match(name)
        if not match:
            continue
        dtype_name, rows, cols, threads = match.group(1), int(match.group(2)), int(match.group(3)), int(match.group(4))
        np_dtype = np.float32 if dtype_name == "float" else np.float64
        torch_dtype = torch.float32 if dtype_name == "float" else torch.float64
        if rows not in matrices:
            matrices[rows] = random_csr(rows, seed=rows)
        indptr, indices, values = matrices[rows]
        torch.set_num_threads(threads)

        rng = np.random.default_rng(7)
        x = torch.from_numpy(rng.uniform(-1.0, 1.0, size=(rows, cols)).astype(np_dtype))
        values_t = torch.from_numpy(values.astype(np_dtype))
        variants = {}
        for index_dtype, label in ((torch.int32, "csr-int32"), (torch.int64, "csr-int64")):
            a_csr = torch.sparse_csr_tensor(torch.from_numpy(indptr).to(index_dtype),
                                            torch.from_numpy(indices).to(index_dtype), values_t, (rows, rows))
            variants[label] = (lambda a=a_csr: torch.sparse.mm(a, x))
        row_ids = np.repeat(np.arange(rows, dtype=np.int64), NNZ_PER_ROW)
        a_coo = torch.sparse_coo_tensor(torch.from_numpy(np.vstack([row_ids, indices])), values_t,
                                        (rows, rows)).coalesce()
        variants["coo"] = lambda a=a_coo: torch.sparse.mm(a, x)

        reference = None
        timings = {}
        for label, fn in variants.items():
            result = fn()
            if reference is None:
                reference = result
            else:
                tol = 1e-4 if dtype_name == "float" else 1e-10
                if not torch.allclose(result, reference, rtol=tol, atol=tol):
                    print(f"spmm_torch.py: {name}: variant {label} disagrees with the first", file=sys.stderr)
            timings[label] = best_time(fn, args.quick)
        best_label = min(timings, key=timings.get)
        print(json.dumps({"name": name, "peer": "torch.sparse.mm", "variant": best_label,
                          "seconds": timings[best_label], "threads": threads,
                          "all": {k: v for k, v in timings.items()}}), flush=True)

        if args.scipy and threads == 1:
            import scipy.sparse as sp

            a_sp = sp.csr_matrix((values.astype(np_dtype), indices.astype(np.int32), indptr.astype(np.int32)),
                                 shape=(rows, rows))
            x_np = x.numpy()
            seconds = best_time(lambda: a_sp @ x_np, args.quick)
            print(json.dumps({"name": name, "peer": "scipy", "variant": "csr @ ndarray", "seconds": seconds,
                              "threads": 1}), flush=True)


if __name__ == "__main__":
    main()
