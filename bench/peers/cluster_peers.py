#!/usr/bin/python3
"""Peer timings for bench/cluster/bench_{soft_assignment,sinkhorn,kmeans}.cpp.

Names understood (T = float | double, P = threads):
  BM_student_t_loss<T>/n:N/d:D/k:K/threads:P    PyTorch forward + backward of the DEC head: q (Student-t,
                                                alpha = 1, broadcast distances), p = target(q).detach(),
                                                F.kl_div(q.log(), p, reduction='batchmean'), .backward()
                                                for dL/dz and dL/dmu
  BM_student_t_assign<T>/n:N/d:D/k:K/threads:P  the forward q alone (torch.no_grad)
  BM_sinkhorn_kernel<T>/n:N/m:M/threads:P       POT ot.sinkhorn(method='sinkhorn'), per iteration
  BM_sinkhorn_log<T>/n:N/m:M/threads:P          POT ot.sinkhorn(method='sinkhorn_log'), per iteration
  BM_kmeans_lloyd<T>/n:N/d:D/k:K/threads:P      scikit-learn KMeans(algorithm='lloyd', init=<centres>,
                                                n_init=1, tol=0).fit, per Lloyd iteration
Per-iteration times use the same difference as the C++ side: (t(i0 + extra) - t(i0)) / extra with
stopThr = 0 / tol = 0, each t the best of N runs, so the one-off work cancels (K = exp(-M/reg),
input validation, centring).
Each prints {"name": <our benchmark name>, "peer": ..., "seconds": t, "threads": P}.

Threads: threadpoolctl limits (BLAS and OpenMP pools) and torch.set_num_threads.
Timing: best of N repetitions after a warm-up (N = 3, --quick: 1).

Usage: cluster_peers.py [--names NAME ...] [--quick]
Without --names it runs the grid of the three benchmark files.
"""

import argparse
import json
import os
import re
import time
import warnings

import numpy as np

LOSS_RE = re.compile(r"^BM_student_t_(loss|assign)<(float|double)>/n:(\d+)/d:(\d+)/k:(\d+)/threads:(\d+)$")
SINKHORN_RE = re.compile(r"^BM_sinkhorn_(kernel|log)<(float|double)>/n:(\d+)/m:(\d+)/threads:(\d+)$")
KMEANS_RE = re.compile(r"^BM_kmeans_lloyd<(float|double)>/n:(\d+)/d:(\d+)/k:(\d+)/threads:(\d+)$")


def default_names():
    p = int(os.environ.get("CELLKIT_BENCH_THREADS", "2"))
    names = []
    for t in ("float", "double"):
        for kind in ("loss", "assign"):
            for n in (100_000, 10_000):
                names.append(f"BM_student_t_{kind}<{t}>/n:{n}/d:32/k:20/threads:{p}")
        for method in ("kernel", "log"):
            for n, m in ((20_000, 20), (5_000, 5_000)):
                names.append(f"BM_sinkhorn_{method}<{t}>/n:{n}/m:{m}/threads:{p}")
        names.append(f"BM_kmeans_lloyd<{t}>/n:100000/d:50/k:20/threads:{p}")
    return names


def best(fn, repetitions):
    fn()
    return min(fn() for _ in range(repetitions))


def difference(run, extra, repetitions):
    """(best t(2 + extra) - best t(2)) / extra, each the best of `repetitions` runs after a warm-up:
    load from other processes only ever adds time, so the minima are the cleanest estimates."""
    run(2)
    t0 = min(run(2) for _ in range(repetitions))
    t1 = min(run(2 + extra) for _ in range(repetitions))
    return max(t1 - t0, 1e-12) / extra


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def pattern(shape, seed, dtype):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1.0, 1.0, size=shape).astype(dtype)


def student_t_peer(kind, dtype_name, n, d, k, repetitions):
    import torch

    tdtype = torch.float32 if dtype_name == "float" else torch.float64
    np_dtype = np.float32 if dtype_name == "float" else np.float64
    mu0 = pattern((k, d), 7, np_dtype) * 3
    z0 = pattern((n, d), 8, np_dtype) + mu0[np.arange(n) % k]
    z = torch.tensor(z0, dtype=tdtype, requires_grad=(kind == "loss"))
    mu = torch.tensor(mu0, dtype=tdtype, requires_grad=(kind == "loss"))
    alpha = 1.0

    def q_of(z, mu):
        d2 = ((z.unsqueeze(1) - mu.unsqueeze(0)) ** 2).sum(2)
        num = (1.0 + d2 / alpha) ** (-(alpha + 1.0) / 2.0)
        return num / num.sum(1, keepdim=True)

    def step():
        if kind == "assign":
            with torch.no_grad():
                return timed(lambda: q_of(z, mu))

        def run():
            z.grad = None
            mu.grad = None
            q = q_of(z, mu)
            w = q**2 / q.sum(0)
            p = (w.t() / w.sum(1)).t().detach()
            loss = torch.nn.functional.kl_div(q.log(), p, reduction="batchmean")
            loss.backward()

        return timed(run)

    return "torch forward+backward" if kind == "loss" else "torch forward", best(step, repetitions)


def sinkhorn_peer(method, dtype_name, n, m, repetitions):
    import ot

    np_dtype = np.float32 if dtype_name == "float" else np.float64
    cost = (0.5 * (pattern((n, m), 3, np.float64) + 1.0)).astype(np_dtype)
    a = np.full(n, 1.0 / n, dtype=np_dtype)
    b = np.full(m, 1.0 / m, dtype=np_dtype)
    extra = 10 if n * m >= 10_000_000 else 200
    pot_method = "sinkhorn" if method == "kernel" else "sinkhorn_log"

    def solve(iterations):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return timed(lambda: ot.sinkhorn(a, b, cost, 0.1, method=pot_method, numItermax=iterations, stopThr=0.0))

    return f"POT ot.sinkhorn({pot_method})", difference(solve, extra, repetitions)


def kmeans_peer(dtype_name, n, d, k, repetitions):
    from sklearn.cluster import KMeans

    np_dtype = np.float32 if dtype_name == "float" else np.float64
    x = pattern((n, d), 6, np_dtype)  # no cluster structure: Lloyd runs its full budget
    init = x[:k].copy()
    extra = 10

    def fit(iterations):
        km = KMeans(n_clusters=k, init=init, n_init=1, max_iter=iterations, tol=0.0, algorithm="lloyd")
        seconds = timed(lambda: km.fit(x))
        if km.n_iter_ != iterations:
            raise RuntimeError(f"scikit-learn converged after {km.n_iter_} < {iterations} iterations")
        return seconds

    return "sklearn KMeans(lloyd)", difference(fit, extra, repetitions)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--names", nargs="*", help="benchmark names to time (default: the full grid)")
    parser.add_argument("--quick", action="store_true", help="one timed repetition")
    args = parser.parse_args()

    import torch
    from threadpoolctl import threadpool_limits

    repetitions = 1 if args.quick else 3
    for name in args.names if args.names else default_names():
        match_loss = LOSS_RE.match(name)
        match_sinkhorn = SINKHORN_RE.match(name)
        match_kmeans = KMEANS_RE.match(name)
        if match_loss:
            g = match_loss.groups()
            threads = int(g[5])
            run = lambda: student_t_peer(g[0], g[1], int(g[2]), int(g[3]), int(g[4]), repetitions)  # noqa: E731
        elif match_sinkhorn:
            g = match_sinkhorn.groups()
            threads = int(g[4])
            run = lambda: sinkhorn_peer(g[0], g[1], int(g[2]), int(g[3]), repetitions)  # noqa: E731
        elif match_kmeans:
            g = match_kmeans.groups()
            threads = int(g[4])
            run = lambda: kmeans_peer(g[0], int(g[1]), int(g[2]), int(g[3]), repetitions)  # noqa: E731
        else:
            continue
        with threadpool_limits(limits=threads):
            torch.set_num_threads(threads)
            peer, seconds = run()
        print(json.dumps({"name": name, "peer": peer, "seconds": seconds, "threads": threads}), flush=True)


if __name__ == "__main__":
    main()
