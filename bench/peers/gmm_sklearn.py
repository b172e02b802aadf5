#!/usr/bin/python3
"""Peer timings for bench/cluster/bench_gmm.cpp: scikit-learn 1.2 GaussianMixture.

Names understood (T = double, P = threads):
  BM_gmm_em_iteration<T>/n:N/d:D/k:K/type:C/threads:P   GaussianMixture(K, covariance_type, tol=0,
        weights_init = 1/K, means_init = the first K rows, precisions_init = identity).fit(X) on
        uniform data in [-1, 1), per EM iteration: (t(2 + extra) - t(2)) / extra, each t the best of
        N fits (the same difference as the C++ side). type 0 full, 2 diag.
  BM_gmm_pass<T>/n:N/d:D/k:K/type:C/stats:S/threads:P   stats:0 the E-step alone (gm._e_step(X)),
        stats:1 E-step plus M-step (gm._e_step, gm._m_step), on a model fitted for 1 iteration.
  BM_gmm_bic_sweep<T>/n:N/d:D/kmax:M/threads:P   for K = 2..M: GaussianMixture(K, 'full', tol=1e-3,
        max_iter=100, random_state=0).fit(X).bic(X) on the 12-cluster mixture of bench_gmm.cpp
        (centre 4 sin(1.3 (c + 1)(a + 1)), c = i mod 12, noise frac(43758.5453 sin(12.9898 i +
        78.233 a)) - 0.5). One run (a loop of fits is what users run).
Each prints {"name": <our benchmark name>, "peer": ..., "seconds": t, "threads": P}.
Threads: threadpoolctl limits (BLAS and OpenMP pools). Timing: best of N after a warm-up (N = 3,
--quick: 1).

Usage: gmm_sklearn.py [--names NAME ...] [--quick]
"""

import argparse
import json
import os
import re
import time
import warnings

import numpy as np

EM_RE = re.compile(r"^BM_gmm_em_iteration<(double)>/n:(\d+)/d:(\d+)/k:(\d+)/type:(\d)/threads:(\d+)$")
PASS_RE = re.compile(r"^BM_gmm_pass<(double)>/n:(\d+)/d:(\d+)/k:(\d+)/type:(\d)/stats:(\d)/threads:(\d+)$")
SWEEP_RE = re.compile(r"^BM_gmm_bic_sweep<(double)>/n:(\d+)/d:(\d+)/kmax:(\d+)/threads:(\d+)$")
TYPES = ["full", "tied", "diag", "spherical"]


def default_names():
    p = int(os.environ.get("CELLKIT_BENCH_THREADS", "2"))
    names = [f"BM_gmm_em_iteration<double>/n:100000/d:50/k:20/type:{t}/threads:{p}" for t in (0, 2)]
    names += [f"BM_gmm_pass<double>/n:100000/d:50/k:20/type:{t}/stats:{s}/threads:{p}" for s in (0, 1) for t in (0, 2)]
    names.append(f"BM_gmm_bic_sweep<double>/n:20000/d:50/kmax:20/threads:{p}")
    return names


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def pattern(n, d, seed):
    """bench/support/machine_limits.hpp fill_pattern: a 64-bit LCG, uniform in [-1, 1)."""
    mult, inc, mask = 6364136223846793005, 1442695040888963407, (1 << 64) - 1
    state = (seed * mult + inc) & mask
    out = np.empty(n * d)
    # vectorised LCG: jump ahead in blocks would be faster; numpy uint64 arithmetic wraps mod 2^64
    states = np.empty(n * d, dtype=np.uint64)
    s = np.uint64(state)
    m, c = np.uint64(mult), np.uint64(inc)
    with np.errstate(over="ignore"):
        block = 1 << 16
        # multipliers for a jump of j steps: state_j = A_j state + C_j
        a = np.empty(block, dtype=np.uint64)
        cc = np.empty(block, dtype=np.uint64)
        a[0], cc[0] = m, c
        for j in range(1, block):
            a[j] = a[j - 1] * m
            cc[j] = cc[j - 1] * m + c
        for start in range(0, n * d, block):
            count = min(block, n * d - start)
            states[start:start + count] = a[:count] * s + cc[:count]
            s = states[start + count - 1]
    out[:] = (states >> np.uint64(11)).astype(np.float64) * (2.0 / 9007199254740992.0) - 1.0
    return out.reshape(n, d)


def sweep_data(n, d):
    i = np.arange(n)[:, None].astype(np.float64)
    a = np.arange(d)[None, :].astype(np.float64)
    c = (np.arange(n) % 12)[:, None].astype(np.float64)
    centre = 4.0 * np.sin(1.3 * (c + 1.0) * (a + 1.0))
    s = np.sin(12.9898 * i + 78.233 * a) * 43758.5453
    return centre + (s - np.floor(s)) - 0.5


def given_model(kind, x, k, iterations):
    from sklearn.mixture import GaussianMixture

    d = x.shape[1]
    precisions = np.array([np.eye(d)] * k) if kind == "full" else np.ones((k, d))
    return GaussianMixture(k, covariance_type=kind, tol=0.0, max_iter=iterations, weights_init=np.full(k, 1.0 / k),
                           means_init=x[:k].copy(), precisions_init=precisions, init_params="random", random_state=0)


def em_peer(n, d, k, kind, repetitions):
    x = pattern(n, d, 6)
    extra = 3

    def fit(iterations):
        gm = given_model(kind, x, k, iterations)
        seconds = timed(lambda: gm.fit(x))
        if gm.n_iter_ != iterations:
            raise RuntimeError("scikit-learn stopped early")
        return seconds

    fit(1)
    t0 = min(fit(2) for _ in range(repetitions))
    t1 = min(fit(2 + extra) for _ in range(repetitions))
    return f"sklearn GaussianMixture({kind}) per EM iteration", max(t1 - t0, 1e-12) / extra


def pass_peer(n, d, k, kind, stats, repetitions):
    x = pattern(n, d, 6)
    gm = given_model(kind, x, k, 1).fit(x)

    def run():
        _, log_resp = gm._e_step(x)
        if stats:
            gm._m_step(x, log_resp)

    run()
    label = "E+M step" if stats else "E-step"
    return f"sklearn GaussianMixture({kind}) {label}", min(timed(run) for _ in range(repetitions))


def sweep_peer(n, d, k_max):
    from sklearn.mixture import GaussianMixture

    x = sweep_data(n, d)

    def run():
        for k in range(2, k_max + 1):
            gm = GaussianMixture(k, covariance_type="full", tol=1e-3, max_iter=100, random_state=0).fit(x)
            gm.bic(x)

    return "sklearn GaussianMixture loop + bic", timed(run)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--names", nargs="*", help="benchmark names to time (default: the full grid)")
    parser.add_argument("--quick", action="store_true", help="one timed repetition")
    args = parser.parse_args()
    from threadpoolctl import threadpool_limits

    repetitions = 1 if args.quick else 3
    warnings.simplefilter("ignore")
    for name in args.names if args.names else default_names():
        em, ps, sw = EM_RE.match(name), PASS_RE.match(name), SWEEP_RE.match(name)
        if em:
            g = em.groups()
            threads = int(g[5])
            run = lambda: em_peer(int(g[1]), int(g[2]), int(g[3]), TYPES[int(g[4])], repetitions)  # noqa: E731
        elif ps:
            g = ps.groups()
            threads = int(g[6])
            run = lambda: pass_peer(int(g[1]), int(g[2]), int(g[3]), TYPES[int(g[4])], int(g[5]), repetitions)  # noqa: E731
        elif sw:
            g = sw.groups()
            threads = int(g[4])
            run = lambda: sweep_peer(int(g[1]), int(g[2]), int(g[3]))  # noqa: E731
        else:
            continue
        with threadpool_limits(limits=threads):
            peer, seconds = run()
        print(json.dumps({"name": name, "peer": peer, "seconds": seconds, "threads": threads}), flush=True)


if __name__ == "__main__":
    main()
