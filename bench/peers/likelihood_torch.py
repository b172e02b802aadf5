#!/usr/bin/python3
"""Peer timings for bench/likelihood/bench_zinb.cpp: PyTorch forward + backward of the standard
scDeepCluster ZINB loss on the same shapes.

For every benchmark name BM_zinb_nll<T>/csr:L/cells:C/genes:G/threads:N[/real_time] (L = 0 dense,
1 CSR; the torch loss is always computed on dense tensors, so both layouts map to the same torch run;
BM_zinb_nll_value names, the value-only pass, map to the same forward + backward run too) it builds
a C x G problem with the distribution of the C++ benchmark (same shapes and parameter ranges, not
the same bits: numpy's generator):

  - decoder mean  m_ij ~ LogNormal(0, 1)          (requires_grad)
  - size factors  s_i  ~ LogNormal(0, 0.3)        mean = s_i * m_ij, as scDeepCluster does
  - dispersion    theta_j ~ LogUniform(0.1, 100)  per gene, shape (G,)  (requires_grad)
  - dropout       pi_ij ~ Uniform(0.05, 0.6)      (requires_grad)
  - counts        0 with probability 0.9, otherwise 1 + Poisson(s_i m_ij)   (90% zeros)

and times, with torch.set_num_threads(N), one call of

    loss = ZINBLoss()(x, m, theta, pi, s); loss.backward()

where ZINBLoss is scDeepCluster's (eps = 1e-10, mean over all elements, ridge_lambda = 0):

    t1 = lgamma(disp+eps) + lgamma(x+1) - lgamma(x+disp+eps)
    t2 = (disp+x) * log(1 + mean/(disp+eps)) + x * (log(disp+eps) - log(mean+eps))
    nb_case = t1 + t2 - log(1-pi+eps)
    zero_case = -log(pi + (1-pi) * (disp/(disp+mean+eps))**disp + eps)
    loss = mean(where(x <= 1e-8, zero_case, nb_case))

Timing: time.perf_counter around forward + backward, best of N calls after one warm-up call (N >= 3,
until ~20 s; --quick: N = 1 after the warm-up); also the process CPU time of the best call
(time.process_time, all threads), for comparisons on a loaded machine. Prints one JSON object per name:
{"name": ..., "peer": "torch", "variant": "scDeepCluster ZINBLoss fwd+bwd", "seconds": t,
 "cpu_seconds": c, "threads": N}.

Usage: likelihood_torch.py [--names NAME ...] [--quick]
Without --names it runs the default grid of bench_zinb.cpp (threads from CELLKIT_BENCH_THREADS, default 2).
"""

import argparse
import json
import os
import re
import sys
import time

import numpy as np

NAME_RE = re.compile(r"^BM_zinb_nll(?:_value)?<(float|double)>/csr:([01])/cells:(\d+)/genes:(\d+)/threads:(\d+)"
                     r"(?:/real_time)?$")


def default_names():
    threads = int(os.environ.get("CELLKIT_BENCH_THREADS", "2"))
    return [f"BM_zinb_nll<{t}>/csr:{layout}/cells:10000/genes:2000/threads:{threads}/real_time"
            for t in ("float", "double") for layout in (0, 1)]


def make_problem(cells, genes, seed=12345):
    rng = np.random.default_rng(seed)
    m = rng.lognormal(0.0, 1.0, size=(cells, genes))
    s = rng.lognormal(0.0, 0.3, size=cells)
    theta = np.exp(rng.uniform(np.log(0.1), np.log(100.0), size=genes))
    pi = rng.uniform(0.05, 0.6, size=(cells, genes))
    nonzero = rng.random(size=(cells, genes)) < 0.1
    x = np.where(nonzero, 1.0 + rng.poisson(s[:, None] * m), 0.0)
    return x, m, s, theta, pi


def zinb_loss(torch, x, mean, disp, pi, scale_factor, ridge_lambda=0.0):
    """scDeepCluster's ZINBLoss.forward, verbatim apart from the argument names."""
    eps = 1e-10
    scale_factor = scale_factor[:, None]
    mean = mean * scale_factor
    t1 = torch.lgamma(disp + eps) + torch.lgamma(x + 1.0) - torch.lgamma(x + disp + eps)
    t2 = (disp + x) * torch.log(1.0 + (mean / (disp + eps))) + (x * (torch.log(disp + eps) - torch.log(mean + eps)))
    nb_final = t1 + t2
    nb_case = nb_final - torch.log(1.0 - pi + eps)
    zero_nb = torch.pow(disp / (disp + mean + eps), disp)
    zero_case = -torch.log(pi + ((1.0 - pi) * zero_nb) + eps)
    result = torch.where(torch.le(x, 1e-8), zero_case, nb_case)
    if ridge_lambda > 0:
        ridge = ridge_lambda * torch.square(pi)
        result += ridge
    return torch.mean(result)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--names", nargs="*", help="benchmark names to time (default: the standard grid)")
    parser.add_argument("--quick", action="store_true", help="one timed call")
    args = parser.parse_args()

    import torch

    names = args.names if args.names else default_names()
    done = {}
    problems = {}
    for name in names:
        match = NAME_RE.match(name)
        if not match:
            continue
        dtype_name, layout, cells, genes, threads = (match.group(1), match.group(2), int(match.group(3)),
                                                     int(match.group(4)), int(match.group(5)))
        key = (dtype_name, cells, genes, threads)
        if key not in done:
            if (cells, genes) not in problems:
                problems[(cells, genes)] = make_problem(cells, genes)
            x_np, m_np, s_np, theta_np, pi_np = problems[(cells, genes)]
            dtype = torch.float32 if dtype_name == "float" else torch.float64
            torch.set_num_threads(threads)
            x = torch.tensor(x_np, dtype=dtype)
            s = torch.tensor(s_np, dtype=dtype)
            m = torch.tensor(m_np, dtype=dtype, requires_grad=True)
            theta = torch.tensor(theta_np, dtype=dtype, requires_grad=True)
            pi = torch.tensor(pi_np, dtype=dtype, requires_grad=True)

            def step():
                for t in (m, theta, pi):
                    t.grad = None
                loss = zinb_loss(torch, x, m, theta, pi, s)
                loss.backward()
                return float(loss)

            step()  # warm-up
            budget, min_calls = (0.0, 1) if args.quick else (20.0, 3)
            best, best_cpu, spent, calls = float("inf"), float("inf"), 0.0, 0
            while calls < min_calls or spent < budget:
                start = time.perf_counter()
                cpu_start = time.process_time()
                value = step()
                elapsed = time.perf_counter() - start
                best_cpu = min(best_cpu, time.process_time() - cpu_start)
                best = min(best, elapsed)
                spent += elapsed
                calls += 1
            done[key] = (best, best_cpu, value)
            print(f"likelihood_torch.py: {dtype_name} {cells}x{genes} threads={threads}: loss {value:.9g}, "
                  f"best {best:.3f} s of {calls} (process CPU {best_cpu:.3f} s)", file=sys.stderr)
        seconds, cpu_seconds, _ = done[key]
        print(json.dumps({"name": name, "peer": "torch", "variant": "scDeepCluster ZINBLoss fwd+bwd",
                          "seconds": seconds, "cpu_seconds": cpu_seconds, "threads": threads}), flush=True)


if __name__ == "__main__":
    main()
