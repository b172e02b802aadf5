#!/usr/bin/python3
"""Peer timings for bench/graph/bench_tagcn.cpp and bench/graph/bench_knn.cpp.

Names understood (the C++ benchmarks' names, without Google Benchmark's /real_time suffix):
  BM_tagcn_forward_backward<float>/n:N/k:K/f_in:F/f_out:G/hops:H/threads:T
  BM_tagcn_forward<float>/n:N/k:K/f_in:F/f_out:G/hops:H/threads:T
      The TAGCN layer Y = sum_{h=0..H} (A^h X) W_h + b in PyTorch: A an N x N sparse tensor with
      exactly K random, sorted, unique neighbours per row (no self-loops), weights 1, normalised
      D^-1/2 A D^-1/2 (as PyG's TAGConv); hops by torch.sparse.mm, dense products by torch.matmul
      (PyG's TAGConv computes the same way: one Linear per hop). forward_backward adds
      Y.backward(dY), which computes dX, every dW_h and db by autograd. The fastest of the sparse
      layouts that support autograd (CSR, coalesced COO) is reported, as {"name", "peer":
      "torch.sparse.mm", "variant", "seconds"}.
  BM_gcn_forward_backward<float>/n:N/k:K/f_in:F/f_out:G/threads:T
      The GCN layer Y = A (X W) + b with autograd, same graph.
  BM_knn_graph<float>/n:N/d:D/k:K/threads:T
      scikit-learn NearestNeighbors(n_neighbors=K, algorithm="brute").fit(X).kneighbors_graph()
      (the K nearest other points of every point as a CSR graph) for X ~ N(0, 1) of N x D float32,
      peer "sklearn.brute"; BLAS and OpenMP pools limited to T threads with threadpoolctl.
Graphs and data have the benchmarks' shapes and distributions, not their bits (other generators).

Timing: time.perf_counter around one call, best of N after one warm-up call (N >= 3, until ~3 s or
10 calls; --quick: N >= 1). torch.set_num_threads(T).

Usage: graph_torch.py [--names NAME ...] [--quick]
Without --names it runs the headline shapes (threads from CELLKIT_BENCH_THREADS, default 2).
"""

import argparse
import json
import os
import re
import sys
import time
import warnings

import numpy as np

TAGCN_RE = re.compile(r"^BM_tagcn_(forward_backward|forward)<float>/n:(\d+)/k:(\d+)/f_in:(\d+)/f_out:(\d+)/hops:(\d+)/threads:(\d+)$")
GCN_RE = re.compile(r"^BM_gcn_forward_backward<float>/n:(\d+)/k:(\d+)/f_in:(\d+)/f_out:(\d+)/threads:(\d+)$")
KNN_RE = re.compile(r"^BM_knn_graph<float>/n:(\d+)/d:(\d+)/k:(\d+)/threads:(\d+)$")


def default_names():
    t = int(os.environ.get("CELLKIT_BENCH_THREADS", "2"))
    return [f"BM_tagcn_forward_backward<float>/n:100000/k:15/f_in:128/f_out:64/hops:3/threads:{t}",
            f"BM_tagcn_forward<float>/n:100000/k:15/f_in:128/f_out:64/hops:3/threads:{t}",
            f"BM_gcn_forward_backward<float>/n:100000/k:15/f_in:128/f_out:64/threads:{t}",
            f"BM_knn_graph<float>/n:50000/d:50/k:15/threads:{t}"]


def best_time(fn, quick):
    fn()
    budget, max_calls, min_calls = (0.5, 2, 1) if quick else (3.0, 10, 3)
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


def knn_like_graph(torch, n, k, seed):
    """Normalised (D^-1/2 A D^-1/2) graph with k random neighbours per row: (indptr, indices, values)."""
    rng = np.random.default_rng(seed)
    cols = np.sort(rng.integers(0, n, size=(n, k)), axis=1)
    while True:  # redraw rows with a repeated column or a self-loop
        bad = np.any(np.diff(cols, axis=1) == 0, axis=1) | np.any(cols == np.arange(n)[:, None], axis=1)
        if not bad.any():
            break
        cols[bad] = np.sort(rng.integers(0, n, size=(int(bad.sum()), k)), axis=1)
    rows = np.repeat(np.arange(n), k)
    cols = cols.ravel()
    deg = np.full(n, float(k))  # row sums of the unit weights
    dinv = 1.0 / np.sqrt(deg)
    values = (dinv[rows] * dinv[cols]).astype(np.float32)
    return rows, cols, values


def sparse_variants(torch, n, rows, cols, values):
    v = torch.from_numpy(values)
    coo = torch.sparse_coo_tensor(torch.from_numpy(np.vstack([rows, cols])), v, (n, n)).coalesce()
    variants = {"coo": coo}
    try:
        variants["csr"] = coo.to_sparse_csr()
    except Exception:  # pragma: no cover
        pass
    return variants


def tagcn_peer(torch, name, match, quick):
    kind, n, k, f_in, f_out, hops, threads = match.group(1), *map(int, match.groups()[1:])
    torch.set_num_threads(threads)
    rows, cols, values = knn_like_graph(torch, n, k, seed=n)
    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.uniform(-1, 1, size=(n, f_in)).astype(np.float32)).requires_grad_(kind != "forward")
    ws = [torch.from_numpy(rng.uniform(-1, 1, size=(f_in, f_out)).astype(np.float32)).requires_grad_(kind != "forward")
          for _ in range(hops + 1)]
    b = torch.from_numpy(rng.uniform(-1, 1, size=f_out).astype(np.float32)).requires_grad_(kind != "forward")
    dy = torch.from_numpy(rng.uniform(-1, 1, size=(n, f_out)).astype(np.float32))
    timings = {}
    for label, a in sparse_variants(torch, n, rows, cols, values).items():
        def step(a=a):
            for t in [x, b, *ws]:
                t.grad = None
            h = x
            y = h @ ws[0]
            for i in range(1, hops + 1):
                h = torch.sparse.mm(a, h)
                y = y + h @ ws[i]
            y = y + b
            if kind == "forward":
                return y
            y.backward(dy)
            return y
        try:
            if kind == "forward":
                with torch.no_grad():
                    timings[label] = best_time(step, quick)
            else:
                timings[label] = best_time(step, quick)
        except Exception as exc:  # a layout without autograd support
            print(f"graph_torch.py: {name}: variant {label} failed: {exc}", file=sys.stderr)
    best = min(timings, key=timings.get)
    print(json.dumps({"name": name, "peer": "torch.sparse.mm", "variant": best, "seconds": timings[best],
                      "threads": threads, "all": timings}), flush=True)


def gcn_peer(torch, name, match, quick):
    n, k, f_in, f_out, threads = map(int, match.groups())
    torch.set_num_threads(threads)
    rows, cols, values = knn_like_graph(torch, n, k, seed=n)
    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.uniform(-1, 1, size=(n, f_in)).astype(np.float32)).requires_grad_(True)
    w = torch.from_numpy(rng.uniform(-1, 1, size=(f_in, f_out)).astype(np.float32)).requires_grad_(True)
    b = torch.from_numpy(rng.uniform(-1, 1, size=f_out).astype(np.float32)).requires_grad_(True)
    dy = torch.from_numpy(rng.uniform(-1, 1, size=(n, f_out)).astype(np.float32))
    timings = {}
    for label, a in sparse_variants(torch, n, rows, cols, values).items():
        def step(a=a):
            for t in (x, w, b):
                t.grad = None
            y = torch.sparse.mm(a, x @ w) + b
            y.backward(dy)
        try:
            timings[label] = best_time(step, quick)
        except Exception as exc:
            print(f"graph_torch.py: {name}: variant {label} failed: {exc}", file=sys.stderr)
    best = min(timings, key=timings.get)
    print(json.dumps({"name": name, "peer": "torch.sparse.mm", "variant": best, "seconds": timings[best],
                      "threads": threads, "all": timings}), flush=True)


def knn_peer(name, match, quick):
    from sklearn.neighbors import NearestNeighbors
    from threadpoolctl import threadpool_limits

    n, d, k, threads = map(int, match.groups())
    x = np.random.default_rng(3).standard_normal((n, d)).astype(np.float32)
    with threadpool_limits(limits=threads):
        def run():
            return NearestNeighbors(n_neighbors=k, algorithm="brute").fit(x).kneighbors_graph()
        seconds = best_time(run, quick)
    print(json.dumps({"name": name, "peer": "sklearn.brute", "variant": "NearestNeighbors.kneighbors_graph",
                      "seconds": seconds, "threads": threads}), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--names", nargs="*", help="benchmark names to time (default: the headline shapes)")
    parser.add_argument("--quick", action="store_true", help="fewer timed calls")
    args = parser.parse_args()
    import torch

    warnings.filterwarnings("ignore", message=".*Sparse CSR tensor support is in beta.*")
    for name in args.names if args.names else default_names():
        name = re.sub(r"/real_time$", "", name)
        if m := TAGCN_RE.match(name):
            tagcn_peer(torch, name, m, args.quick)
        elif m := GCN_RE.match(name):
            gcn_peer(torch, name, m, args.quick)
        elif m := KNN_RE.match(name):
            knn_peer(name, m, args.quick)


if __name__ == "__main__":
    main()
