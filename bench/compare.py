#!/usr/bin/python3
"""Runs cellkit's benchmarks and their peers (torch, numpy, SciPy) and prints one comparison table.

    bench/compare.py [--build-dir build] [--filter REGEX] [--quick] [--markdown] [--json FILE]

For each entry of ENTRIES below it runs <build-dir>/bench/<binary> with --benchmark_format=json and
the entry's filter (intersected with --filter), then the entry's peer scripts with --names set to
the benchmarks that ran (so the peers time exactly the same shapes), matches peer rows to ours by
the entry's rule, and prints:

    name | cellkit | peer | peer time | speed-up (peer / cellkit) | GB/s | frac_triad | GFLOP/s | frac_gemm

cellkit time: the benchmark's real time per iteration (mean over the iterations of one repetition,
the minimum over --repetitions repetitions and --rounds rounds). Peer time: best single call after
warm-up (minimum over rounds).
Speed-up > 1 means cellkit is faster. The counters are those of support/machine_limits.hpp.

--quick: the small sizes only, short runs (--benchmark_min_time=0.01, one repetition), smaller
machine-limit measurements (env CELLKIT_BENCH_QUICK=1: the limits are then indicative only);
meant for a CI smoke run (< 60 s). --markdown prints the table as GitHub markdown.

Adding a component: append an Entry to ENTRIES (binary, filter, quick filter, peer scripts, match).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import subprocess
import sys
import time
from typing import Callable, Optional

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
PYTHON = "/usr/bin/python3"


@dataclasses.dataclass
class Entry:
    binary: str  # executable under <build-dir>/bench/, e.g. bench_execution_spmm
    filter: str  # Google Benchmark filter regex for the full run
    quick_filter: Optional[str]  # the same for --quick (small sizes); None: skipped with --quick
    peers: list[list[str]]  # peer scripts (path relative to bench/, then extra arguments); each gets --names
    # Matching rule: maps our (normalised) benchmark name to the peer row's "name"; None = identical names.
    match: Optional[Callable[[str], str]] = None


# ---- the comparison table: later components add entries here --------------------------------------
def _experiment_to_library_name(name: str) -> str:
    """BM_spmm_experiment<T>/rows:R/cols:C/distance:D/threads:N -> BM_spmm<T>/rows:R/cols:C/threads:N"""
    return re.sub(r"/distance:\d+", "", name.replace("BM_spmm_experiment<", "BM_spmm<"))


ENTRIES = [
    Entry(binary="bench_core_machine", filter=".", quick_filter=".",
          peers=[["peers/gemm_peers.py"]]),
    Entry(binary="bench_execution_spmm", filter="^BM_spmm<", quick_filter="^BM_spmm<.*>/rows:10000/cols:16/",
          peers=[["peers/spmm_torch.py", "--scipy"]]),
    # A private rewrite of the SpMM kernel (bench_spmm.cpp, namespace experiment), timed against the
    # torch runs of the matching BM_spmm case (the match rule drops "/distance:D").
    Entry(binary="bench_execution_spmm", filter="^BM_spmm_experiment<", quick_filter=None,
          peers=[["peers/spmm_torch.py", "--scipy"]], match=_experiment_to_library_name),
    Entry(binary="bench_execution_gemm", filter="^BM_gemm<", quick_filter="^BM_gemm<.*>/m:1024/",
          peers=[["peers/gemm_peers.py"]]),
    Entry(binary="bench_metrics_ranking_silhouette", filter="BM_(roc_auc|average_precision|silhouette_score)",
          quick_filter="BM_(roc_auc|average_precision)<.*>/n:100000/|BM_silhouette_score<.*>/n:5000/",
          peers=[["peers/ranking_silhouette_sklearn.py"]]),
    Entry(binary="bench_metrics_clustering", filter="BM_",
          quick_filter=None,  # scikit-learn needs seconds per call at these sizes: not in the CI smoke run
          peers=[["peers/metrics_sklearn.py"]]),
    Entry(binary="bench_contrastive_info_nce", filter="BM_info_nce", quick_filter=None,
          peers=[["peers/contrastive_torch.py"]]),
    Entry(binary="bench_likelihood_zinb", filter="BM_zinb_nll|BM_lgamma", quick_filter=None,
          peers=[["peers/likelihood_torch.py"]]),
    Entry(binary="bench_graph_tagcn", filter="BM_", quick_filter=None, peers=[["peers/graph_torch.py"]]),
    Entry(binary="bench_graph_knn", filter="BM_", quick_filter=None, peers=[["peers/graph_torch.py"]]),
    Entry(binary="bench_cluster_soft_assignment", filter="BM_", quick_filter=None,
          peers=[["peers/cluster_peers.py"]]),
    Entry(binary="bench_cluster_sinkhorn", filter="BM_", quick_filter=None, peers=[["peers/cluster_peers.py"]]),
    Entry(binary="bench_cluster_kmeans", filter="BM_", quick_filter=None, peers=[["peers/cluster_peers.py"]]),
    Entry(binary="bench_cluster_gmm", filter="BM_", quick_filter=None, peers=[["peers/gmm_sklearn.py"]]),
    # Needs ../shared/data/10x_pbmc_top2000 (both sides skip without it).
    Entry(binary="bench_preprocess_pipeline", filter="BM_", quick_filter=None,
          peers=[["peers/preprocess_sklearn.py"]]),
]
# ------------------------------------------------------------------------------------------------------

# Suffixes Google Benchmark appends to a name for registration options; peers use the bare name.
_OPTION_SUFFIX = re.compile(r"/(real_time|manual_time|process_time|min_time:[^/]+|iterations:\d+|repeats:\d+)")
_TIME_UNIT = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}
COUNTERS = ["GB/s", "frac_triad", "GFLOP/s", "frac_gemm"]


def normalise(name: str) -> str:
    return _OPTION_SUFFIX.sub("", name)


def log(message: str) -> None:
    print(f"[compare] {message}", file=sys.stderr, flush=True)


def list_benchmarks(binary: str, regex: str, env: dict) -> list[str]:
    result = subprocess.run([binary, "--benchmark_list_tests=true", f"--benchmark_filter={regex}"],
                            capture_output=True, text=True, env=env)
    if result.returncode != 0:
        return []
    return [line.strip() for line in result.stdout.splitlines() if line.strip()]


# "[machine_limits] triad: 29.05 GB/s ..." / "[machine_limits] gemm<float>: 129.0 GFLOP/s ..."
_LIMIT_LINE = re.compile(r"\[machine_limits\] (triad|gemm<float>|gemm<double>): ([0-9.]+) (GB/s|GFLOP/s)")
# Best machine limit seen in any process of this run (bytes/s or flop/s), by kind.
LIMITS: dict[str, float] = {}


def run_ours(binary: str, regex: str, quick: bool, repetitions: int, env: dict) -> dict[str, dict]:
    """Our rows by normalised name: {"seconds", counters...}; the minimum over repetitions."""
    cmd = [binary, "--benchmark_format=json", f"--benchmark_filter={regex}"]
    if quick:
        cmd.append("--benchmark_min_time=0.01")
    if repetitions > 1:
        cmd += [f"--benchmark_repetitions={repetitions}", "--benchmark_report_aggregates_only=false"]
    log(" ".join(cmd))
    result = subprocess.run(cmd, capture_output=True, text=True, env=env)
    for line in result.stderr.splitlines():  # machine-limit lines and warnings
        print(f"  {line}", file=sys.stderr)
        limit = _LIMIT_LINE.search(line)
        if limit:
            LIMITS[limit.group(1)] = max(LIMITS.get(limit.group(1), 0.0), float(limit.group(2)) * 1e9)
    if result.returncode != 0:
        log(f"{binary} failed with exit code {result.returncode}")
        return {}
    report = json.loads(result.stdout)
    rows: dict[str, dict] = {}
    for bench in report.get("benchmarks", []):
        if bench.get("run_type", "iteration") != "iteration" or bench.get("error_occurred"):
            continue
        name = normalise(bench.get("run_name", bench["name"]))
        seconds = bench["real_time"] * _TIME_UNIT[bench.get("time_unit", "ns")]
        row = {"seconds": seconds}
        for counter in COUNTERS:
            if counter in bench:
                row[counter] = bench[counter]
        if name not in rows or seconds < rows[name]["seconds"]:
            rows[name] = row
    return rows


def run_peer(script: list[str], names: list[str], quick: bool, env: dict) -> list[dict]:
    cmd = [PYTHON, os.path.join(BENCH_DIR, script[0]), *script[1:]]
    if quick:
        cmd.append("--quick")
    log(" ".join(cmd) + f" --names <{len(names)} names>")
    result = subprocess.run(cmd + ["--names", *names], capture_output=True, text=True, env=env)
    for line in result.stderr.splitlines():
        print(f"  {line}", file=sys.stderr)
    if result.returncode != 0:
        log(f"{script[0]} failed with exit code {result.returncode}")
    rows = []
    for line in result.stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                log(f"{script[0]}: unreadable line {line!r}")
    return rows


def format_time(seconds: Optional[float]) -> str:
    if seconds is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def format_number(value) -> str:
    if value is None:
        return "-"
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"


def table_rows(results: list[dict]) -> list[list[str]]:
    rows = []
    for r in results:
        ratio = None
        if r["peer_seconds"] is not None and r["seconds"]:
            ratio = r["peer_seconds"] / r["seconds"]
        peer = r["peer"] or "-"
        if r.get("variant"):
            peer += f" [{r['variant']}]"
        rows.append([r["name"], format_time(r["seconds"]), peer, format_time(r["peer_seconds"]),
                     "-" if ratio is None else f"{ratio:.2f}x",
                     *[format_number(r["counters"].get(c)) for c in COUNTERS]])
    return rows


HEADER = ["name", "cellkit", "peer", "peer time", "speed-up", *COUNTERS]


def print_table(rows: list[list[str]], markdown: bool) -> None:
    if markdown:
        print("| " + " | ".join(HEADER) + " |")
        print("|" + "|".join(["---"] + ["---:"] * (len(HEADER) - 1)) + "|")
        for row in rows:  # names in backticks: "<float>" would otherwise be read as an HTML tag
            cells = [f"`{row[0]}`", *(cell.replace("|", "\\|") for cell in row[1:])]
            print("| " + " | ".join(cells) + " |")
        return
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(HEADER)]
    print("  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(HEADER, widths))))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))


def print_limits(markdown: bool) -> None:
    limits_line = ", ".join(f"{kind} {value * 1e-9:.1f} {'GB/s' if kind == 'triad' else 'GFLOP/s'}"
                            for kind, value in sorted(LIMITS.items()))
    if limits_line:
        print(f"machine limits (best seen, {os.environ.get('CELLKIT_BENCH_THREADS', '2')} threads): {limits_line}"
              + ("\n" if markdown else ""))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build-dir", default="build", help="CMake build directory (default: build)")
    parser.add_argument("--filter", default=None, help="regex on benchmark names (applied to every entry)")
    parser.add_argument("--quick", action="store_true", help="small sizes and short runs (CI smoke)")
    parser.add_argument("--markdown", action="store_true", help="print the table as markdown")
    parser.add_argument("--repetitions", type=int, default=None,
                        help="repetitions of our benchmarks, minimum taken (default 3; 1 with --quick)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run everything this many times, interleaved, and keep each row's best time "
                             "(for shared machines; default 1)")
    parser.add_argument("--no-peers", action="store_true", help="run only cellkit's benchmarks")
    parser.add_argument("--json", metavar="FILE", help="also write the matched rows as JSON")
    parser.add_argument("--from-json", metavar="FILE", help="print the table of a run saved with --json; run nothing")
    args = parser.parse_args()

    if args.from_json:
        with open(args.from_json, encoding="utf-8") as saved_file:
            saved = json.load(saved_file)
        LIMITS.update(saved.get("limits", {}))
        rows = [r for r in saved["rows"] if args.filter is None or re.search(args.filter, r["name"])]
        print_limits(args.markdown)
        print_table(table_rows(rows), args.markdown)
        return 0 if rows else 1

    repetitions = args.repetitions or (1 if args.quick else 3)
    env = dict(os.environ)
    if args.quick:
        env["CELLKIT_BENCH_QUICK"] = "1"
    user_filter = re.compile(args.filter) if args.filter else None
    started = time.monotonic()

    # Best (minimum) time per row over the rounds, ours and peers alike: on a shared machine, load from
    # other processes only ever makes a run slower, and interleaving rounds exposes both sides to it.
    ours_best: dict[tuple[int, str], dict] = {}
    peer_best: dict[tuple[int, str, str], dict] = {}
    for round_index in range(args.rounds):
        if args.rounds > 1:
            log(f"round {round_index + 1} of {args.rounds}")
        peer_cache: dict[tuple[str, ...], dict[str, list[dict]]] = {}
        for entry_index, entry in enumerate(ENTRIES):
            binary = os.path.join(args.build_dir, "bench", entry.binary)
            if not os.access(binary, os.X_OK):
                if round_index == 0:
                    log(f"skipping {entry.binary}: {binary} is not built (ninja -C {args.build_dir} cellkit_benchmarks)")
                continue
            entry_regex = entry.quick_filter if args.quick else entry.filter
            if entry_regex is None:
                continue
            listed = [n for n in list_benchmarks(binary, entry_regex, env)
                      if user_filter is None or user_filter.search(normalise(n))]
            if not listed:
                continue
            # One regex selecting exactly the listed benchmarks.
            regex = "^(" + "|".join(re.escape(n) for n in listed) + ")$"
            ours = run_ours(binary, regex, args.quick, repetitions, env)
            for name, row in ours.items():
                key = (entry_index, name)
                if key not in ours_best or row["seconds"] < ours_best[key]["seconds"]:
                    ours_best[key] = row
            if args.no_peers or not ours:
                continue
            match = entry.match or (lambda name: name)
            wanted = sorted({match(name) for name in ours})
            for script in entry.peers:
                # Peers already timed in this round for another entry (same script and arguments) are reused.
                cache = peer_cache.setdefault(tuple(script), {})
                missing = [n for n in wanted if n not in cache]
                if missing:
                    for p in run_peer(script, missing, args.quick, env):
                        cache.setdefault(p.get("name", ""), []).append(p)
                    for n in missing:
                        cache.setdefault(n, [])
                for p in [p for n in wanted for p in cache[n]]:
                    key = (entry_index, p.get("name", ""), p.get("peer", "?"))
                    if p.get("seconds") is not None and (key not in peer_best or
                                                         p["seconds"] < peer_best[key]["seconds"]):
                        peer_best[key] = p

    # Each process measured its own limits; on a loaded machine some of them are low. Rescale every
    # fraction to the best limit seen in this run (BM_triad and BM_gemm_large rows measure the same
    # thing), so that all rows share one denominator.
    for (_, name), row in ours_best.items():
        for prefix, kind, counter in (("BM_triad/", "triad", "GB/s"), ("BM_gemm_large<float>/", "gemm<float>", "GFLOP/s"),
                                      ("BM_gemm_large<double>/", "gemm<double>", "GFLOP/s")):
            if name.startswith(prefix) and counter in row:
                LIMITS[kind] = max(LIMITS.get(kind, 0.0), row[counter] * 1e9)
    for (_, name), row in ours_best.items():
        if "GB/s" in row and "triad" in LIMITS:
            row["frac_triad"] = row["GB/s"] * 1e9 / LIMITS["triad"]
        kind = "gemm<float>" if "<float>" in name else "gemm<double>" if "<double>" in name else None
        if "GFLOP/s" in row and "frac_gemm" in row and kind in LIMITS:
            row["frac_gemm"] = row["GFLOP/s"] * 1e9 / LIMITS[kind]

    results: list[dict] = []
    for (entry_index, name), row in ours_best.items():
        match = ENTRIES[entry_index].match or (lambda name: name)
        key = match(name)
        matched = [p for (e, n, _), p in peer_best.items() if e == entry_index and n == key]
        counters = {c: row[c] for c in COUNTERS if c in row}
        if not matched:
            results.append({"name": name, "seconds": row["seconds"], "peer": None, "variant": None,
                            "peer_seconds": None, "counters": counters})
        for p in matched:
            results.append({"name": name, "seconds": row["seconds"], "peer": p.get("peer"),
                            "variant": p.get("variant"), "peer_seconds": p.get("seconds"), "counters": counters})

    print_limits(args.markdown)
    print_table(table_rows(results), args.markdown)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump({"limits": LIMITS, "rows": results}, out, indent=1)
    log(f"done in {time.monotonic() - started:.1f} s")
    return 0 if results else 1


if __name__ == "__main__":
    sys.exit(main())
