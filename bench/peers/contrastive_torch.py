#!/usr/bin/python3
"""Peer timings and peak memory for bench/contrastive/bench_info_nce.cpp: PyTorch's NT-Xent (InfoNCE
over two views) forward + backward on the same shapes.

Timing: for every benchmark name
    BM_info_nce<T>/n:N/d:D/threads:t        loss + gradients of both views (forward + backward)
    BM_info_nce_value<T>/n:N/d:D/threads:t  loss only (forward, under torch.no_grad())
it builds two N x D views of type T (the C++ pattern is not reproduced: uniform [-1, 1) values, the
second view a perturbed copy of the first, as in the C++ benchmark), temperature 0.1, and times with
torch.set_num_threads(t) the two usual PyTorch formulations:
  - "cross_entropy": z = normalize(cat(a, b)); s = z z^T / tau; s.fill_diagonal_(-inf);
                     F.cross_entropy(s, partner) (SimCLR's NT-Xent as most code bases write it),
  - "logsumexp":     the COMPONENTS.md formula with masked_fill and logsumexp,
and prints the fastest as {"name": ..., "peer": "torch", "variant": ..., "seconds": t}. Both variants
are cross-checked against each other.
Timing method: time.perf_counter around one call, best of the calls after one warm-up (at least 3,
until ~2 s or 20 calls; --quick: at least 2).

Peak memory: `--peak-memory N [N ...]` runs, for each N, one forward + backward (float32, d = 128,
the cross_entropy variant) in a fresh child process and prints
    {"name": "peak_memory/info_nce<float>/n:N/d:128", "peer": "torch", "peak_rss_bytes": ...,
     "rss_before_bytes": ..., "status": "ok" | "out of memory", "limit_bytes": ...}
where peak_rss_bytes is resource.getrusage(RUSAGE_SELF).ru_maxrss after the call and rss_before the
same after importing torch and creating the inputs. The child runs under an address-space limit
(--memory-limit-gib, default: the smaller of 12 GiB and 60% of MemAvailable) so that a size that
does not fit fails cleanly instead of pushing a shared machine into swap or the OOM killer.

Usage: contrastive_torch.py [--names NAME ...] [--quick] [--peak-memory N ...] [--memory-limit-gib G]
Without --names (and without --peak-memory) it times the full grid of bench_info_nce.cpp.
"""

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import time

NAME_RE = re.compile(r"^BM_info_nce(_value)?<(float|double)>/n:(\d+)/d:(\d+)/threads:(\d+)$")
TEMPERATURE = 0.1


def default_names():
    threads = int(os.environ.get("CELLKIT_BENCH_THREADS", "2"))
    names = []
    for kind in ("BM_info_nce", "BM_info_nce_value"):
        for n in (1024, 4096):
            names.append(f"{kind}<float>/n:{n}/d:128/threads:{threads}")
        names.append(f"{kind}<float>/n:4096/d:128/threads:1")
    names.append(f"BM_info_nce<double>/n:4096/d:128/threads:{threads}")
    return names


def make_views(torch, n, d, dtype, seed=1):
    gen = torch.Generator().manual_seed(seed)
    a = torch.rand((n, d), generator=gen, dtype=torch.float64) * 2 - 1
    b = a + 0.3 * (torch.rand((n, d), generator=gen, dtype=torch.float64) * 2 - 1)
    return a.to(dtype), b.to(dtype)


def nt_xent_cross_entropy(torch, F, a, b, tau):
    n = a.shape[0]
    z = F.normalize(torch.cat([a, b]), dim=1)
    s = z @ z.T / tau
    s.fill_diagonal_(float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)])
    return F.cross_entropy(s, target)


def nt_xent_logsumexp(torch, F, a, b, tau):
    n = a.shape[0]
    z = F.normalize(torch.cat([a, b]), dim=1)
    s = z @ z.T / tau
    eye = torch.eye(2 * n, dtype=torch.bool)
    lse = torch.logsumexp(s.masked_fill(eye, float("-inf")), dim=1)
    pos = torch.cat([torch.diagonal(s, n), torch.diagonal(s, -n)])
    return (lse - pos).mean()


def best_time(fn, quick):
    fn()  # warm-up
    budget, max_calls, min_calls = (0.5, 5, 2) if quick else (2.0, 20, 3)
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


def time_names(names, quick):
    import torch
    import torch.nn.functional as F

    for name in names:
        match = NAME_RE.match(name)
        if not match:
            continue
        value_only = match.group(1) is not None
        dtype = torch.float32 if match.group(2) == "float" else torch.float64
        n, d, threads = int(match.group(3)), int(match.group(4)), int(match.group(5))
        torch.set_num_threads(threads)
        a0, b0 = make_views(torch, n, d, dtype)
        variants = {"cross_entropy": nt_xent_cross_entropy, "logsumexp": nt_xent_logsumexp}
        timings, values = {}, {}
        for label, loss_fn in variants.items():
            if value_only:
                def run(loss_fn=loss_fn):
                    with torch.no_grad():
                        return loss_fn(torch, F, a0, b0, TEMPERATURE).item()
            else:
                def run(loss_fn=loss_fn):
                    a = a0.clone().requires_grad_(True)
                    b = b0.clone().requires_grad_(True)
                    loss = loss_fn(torch, F, a, b, TEMPERATURE)
                    loss.backward()
                    return loss.item()
            values[label] = run()
            timings[label] = best_time(run, quick)
        ref = values["cross_entropy"]
        for label, v in values.items():
            if abs(v - ref) > 1e-4 * max(1.0, abs(ref)):
                print(f"contrastive_torch.py: {name}: variant {label} gives {v}, cross_entropy {ref}", file=sys.stderr)
        best = min(timings, key=timings.get)
        print(json.dumps({"name": name, "peer": "torch", "variant": best, "seconds": timings[best], "threads": threads,
                          "loss": values[best], "all": timings}), flush=True)


def mem_available_bytes():
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 << 30


def peak_memory_child(n, d, limit):
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(int(os.environ.get("CELLKIT_BENCH_THREADS", "2")))
    name = f"peak_memory/info_nce<float>/n:{n}/d:{d}"
    status, seconds, loss_value = "ok", None, None
    try:
        a, b = make_views(torch, n, d, torch.float32)
        a.requires_grad_(True)
        b.requires_grad_(True)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        start = time.perf_counter()
        loss = nt_xent_cross_entropy(torch, F, a, b, TEMPERATURE)
        loss.backward()
        seconds = time.perf_counter() - start
        loss_value = loss.item()
    except (RuntimeError, MemoryError) as error:  # allocation failure under the limit
        status = "out of memory"
        before = before if "before" in locals() else None
        print(f"contrastive_torch.py: n = {n}: {str(error).splitlines()[0]}", file=sys.stderr)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"name": name, "peer": "torch", "peak_rss_bytes": peak, "rss_before_bytes": before,
                      "status": status, "limit_bytes": limit, "seconds": seconds, "loss": loss_value,
                      "similarity_matrix_bytes": (2 * n) ** 2 * 4}), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--names", nargs="*", help="benchmark names to time (default: the full grid)")
    parser.add_argument("--quick", action="store_true", help="fewer timed calls")
    parser.add_argument("--peak-memory", nargs="*", type=int, metavar="N", help="measure peak RSS for these N")
    parser.add_argument("--memory-limit-gib", type=float, default=None, help="address-space cap of the children")
    parser.add_argument("--d", type=int, default=128, help="embedding width for --peak-memory (default 128)")
    parser.add_argument("--child", nargs=3, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        peak_memory_child(*args.child)
        return
    if args.peak_memory:
        limit = int((args.memory_limit_gib * (1 << 30)) if args.memory_limit_gib else
                    min(12 << 30, 0.6 * mem_available_bytes()))
        for n in args.peak_memory:
            result = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", str(n), str(args.d),
                                     str(limit)], capture_output=True, text=True)
            sys.stderr.write(result.stderr)
            lines = [l for l in result.stdout.splitlines() if l.startswith("{")]
            if lines:
                print(lines[-1], flush=True)
            else:  # killed before it could report
                print(json.dumps({"name": f"peak_memory/info_nce<float>/n:{n}/d:{args.d}", "peer": "torch",
                                  "status": f"child exited with {result.returncode}", "limit_bytes": limit}),
                      flush=True)
        return
    time_names(args.names if args.names else default_names(), args.quick)


if __name__ == "__main__":
    main()
