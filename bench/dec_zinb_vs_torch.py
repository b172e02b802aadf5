#!/usr/bin/python3
"""ARI / NMI of examples/dec_zinb next to its PyTorch peer on every raw-count dataset (issue #10).

For every dataset under ../shared/data whose manifest says raw_counts and every seed, runs
  cellkit:  <build>/examples/dec_zinb/dec_zinb DATA --k K --seed S --threads T
            --pretrain-epochs P --max-epochs M --out <runs>/<dataset>/cellkit_seed<S>
  PyTorch:  /usr/bin/python3 bench/peers/dec_zinb_torch.py --data DATA --seed S --threads T
            --pretrain-epochs P --max-epochs M
one process at a time, with K = the number of distinct labels in labels.tsv. It parses the final
"ARI a  NMI b" line of dec_zinb and the JSON object the peer prints on stdout, and times each whole
process (reading, preprocessing, training). Both see OMP_WAIT_POLICY=PASSIVE unless the caller set
it. The stdout / stderr of every run is kept under --runs-dir/<dataset>/. A failed run is recorded
with the last lines of its stderr and the table goes on.

Prints (and with --out writes) a markdown table: per dataset the mean ARI / NMI of each
implementation (with the min-max range of ARI over the seeds), the mean ARI difference
(cellkit - PyTorch) and the mean wall time per run; then one row per dataset and seed.

Usage: bench/dec_zinb_vs_torch.py [--build-dir build] [--datasets NAME ...] [--seeds 0 1 2]
       [--pretrain-epochs 30] [--max-epochs 30] [--threads 2] [--runs-dir DIR] [--out FILE.md]
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from models_table import DATA, ROOT, emit_table, label_count, raw_count_datasets  # noqa: E402

PEER = os.path.join(ROOT, "bench", "peers", "dec_zinb_torch.py")
PYTHON = "/usr/bin/python3"  # Debian python with numpy / scipy / sklearn / torch


def run_logged(cmd, log_prefix):
    """Runs cmd, keeps its stdout / stderr as log_prefix.{stdout,stderr}; returns (proc, seconds)."""
    env = dict(os.environ)
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    except OSError as e:  # e.g. the binary is missing: record it like a failed run
        proc = subprocess.CompletedProcess(cmd, 127, "", f"cannot run {cmd[0]}: {e}")
    seconds = time.perf_counter() - start
    with open(log_prefix + ".stdout", "w") as f:
        f.write(proc.stdout)
    with open(log_prefix + ".stderr", "w") as f:
        f.write(f"$ {' '.join(cmd)}\n{proc.stderr}")
    return proc, seconds


def failure(proc, what):
    tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
    return f"{what} (exit {proc.returncode}): {tail}"


def run_cellkit(args, dataset, k, seed, run_dir):
    """Returns {ari, nmi, seconds, cells, finetune_epochs} or {error, seconds}."""
    binary = os.path.join(args.build_dir, "examples", "dec_zinb", "dec_zinb")
    cmd = [binary, os.path.join(DATA, dataset), "--k", str(k), "--seed", str(seed), "--threads", str(args.threads),
           "--pretrain-epochs", str(args.pretrain_epochs), "--max-epochs", str(args.max_epochs),
           "--out", os.path.join(run_dir, f"cellkit_seed{seed}")]
    proc, seconds = run_logged(cmd, os.path.join(run_dir, f"cellkit_seed{seed}"))
    if proc.returncode != 0:
        return {"error": failure(proc, "dec_zinb failed"), "seconds": seconds}
    scores = list(re.finditer(r"ARI\s+([-0-9.]+)\s+NMI\s+([-0-9.]+)", proc.stdout))
    if not scores:
        return {"error": "dec_zinb printed no ARI / NMI line", "seconds": seconds}
    result = {"ari": float(scores[-1].group(1)), "nmi": float(scores[-1].group(2)), "seconds": seconds}
    m = re.search(r"^cells (\d+)\s+genes (\d+)\s+K (\d+).*finetune (\d+) epochs", proc.stdout, re.M)
    if m:
        result.update(cells=int(m.group(1)), genes=int(m.group(2)), k=int(m.group(3)), finetune_epochs=int(m.group(4)))
    return result


def run_torch(args, dataset, seed, run_dir):
    """Returns {ari, nmi, seconds, cells, finetune_epochs} or {error, seconds}."""
    cmd = [PYTHON, PEER, "--data", os.path.join(DATA, dataset), "--seed", str(seed), "--threads", str(args.threads),
           "--pretrain-epochs", str(args.pretrain_epochs), "--max-epochs", str(args.max_epochs)]
    proc, seconds = run_logged(cmd, os.path.join(run_dir, f"torch_seed{seed}"))
    if proc.returncode != 0:
        return {"error": failure(proc, "dec_zinb_torch.py failed"), "seconds": seconds}
    report = None
    for line in reversed(proc.stdout.strip().splitlines()):
        try:
            report = json.loads(line)
            break
        except ValueError:
            continue
    if not isinstance(report, dict) or "ari" not in report:
        return {"error": "dec_zinb_torch.py printed no JSON object with ari", "seconds": seconds}
    result = {"ari": float(report["ari"]), "nmi": float(report["nmi"]), "seconds": seconds}
    for key in ("cells", "genes", "k", "finetune_epochs", "cells_dropped_after_hvg"):
        if key in report:
            result[key] = report[key]
    return result


def n_cells(dataset):
    with open(os.path.join(DATA, dataset, "labels.tsv")) as f:
        next(f)
        return sum(1 for line in f if line.strip())


def summary(results):
    """'mean ARI / mean NMI (min-max ARI)' over the successful runs, and their mean ARI and seconds."""
    ok = [r for r in results if "ari" in r]
    if not ok:
        return "failed", None, None
    aris = [r["ari"] for r in ok]
    text = f"{statistics.mean(aris):.3f} / {statistics.mean(r['nmi'] for r in ok):.3f} " \
           f"({min(aris):.3f}-{max(aris):.3f})"
    if len(ok) < len(results):
        text += f" [{len(results) - len(ok)} failed]"
    return text, statistics.mean(aris), statistics.mean(r["seconds"] for r in ok)


def cell(result):
    if "ari" not in result:
        return "failed"
    extra = f", {result['finetune_epochs']} ft ep" if "finetune_epochs" in result else ""
    return f"{result['ari']:.3f} / {result['nmi']:.3f} ({result['seconds']:.0f} s{extra})"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build"))
    ap.add_argument("--datasets", nargs="*", default=[])
    ap.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    ap.add_argument("--pretrain-epochs", type=int, default=30)
    ap.add_argument("--max-epochs", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs-dir", default="/tmp/deczinb_runs", help="per-run logs and dec_zinb outputs")
    ap.add_argument("--out", help="also write the table to this markdown file")
    args = ap.parse_args()

    datasets = raw_count_datasets(args.datasets)
    if not datasets:
        print("no raw-count datasets found under", DATA)
        return 0
    started = time.perf_counter()
    per_dataset = []  # (dataset, cells, k, [(seed, cellkit result, torch result)])
    for dataset in datasets:
        k = label_count(dataset)
        run_dir = os.path.join(args.runs_dir, dataset)
        os.makedirs(run_dir, exist_ok=True)
        runs = []
        for seed in args.seeds:
            ours = run_cellkit(args, dataset, k, seed, run_dir)
            theirs = run_torch(args, dataset, seed, run_dir)
            for name, r in (("cellkit", ours), ("pytorch", theirs)):
                state = f"ARI {r['ari']:.4f} NMI {r['nmi']:.4f}" if "ari" in r else r["error"]
                print(f"{dataset:32s} seed {seed} {name:8s} {state} {r['seconds']:7.1f} s", file=sys.stderr,
                      flush=True)
            runs.append((seed, ours, theirs))
        per_dataset.append((dataset, n_cells(dataset), k, runs))

    lines = [f"DEC-ZINB, cellkit vs PyTorch: seeds {args.seeds}, {args.pretrain_epochs} pre-training + at most "
             f"{args.max_epochs} fine-tuning epochs, {args.threads} threads, OMP_WAIT_POLICY="
             f"{os.environ.get('OMP_WAIT_POLICY', 'PASSIVE')} (`bench/dec_zinb_vs_torch.py {' '.join(sys.argv[1:])}`, "
             f"{(time.perf_counter() - started) / 60:.1f} min in all). Seconds are whole-process wall times.", "",
             "| dataset (cells, K) | cellkit ARI / NMI (min-max ARI) | PyTorch ARI / NMI (min-max ARI) "
             "| mean ARI difference | cellkit s per run | PyTorch s per run |",
             "|---|---|---|---|---|---|"]
    for dataset, cells, k, runs in per_dataset:
        ours_text, ours_ari, ours_s = summary([r[1] for r in runs])
        theirs_text, theirs_ari, theirs_s = summary([r[2] for r in runs])
        paired = [o["ari"] - t["ari"] for _, o, t in runs if "ari" in o and "ari" in t]
        diff = f"{statistics.mean(paired):+.3f}" if paired else "n/a"
        lines.append(f"| {dataset} ({cells}, {k}) | {ours_text} | {theirs_text} | {diff} | "
                     f"{'n/a' if ours_s is None else f'{ours_s:.1f}'} | "
                     f"{'n/a' if theirs_s is None else f'{theirs_s:.1f}'} |")
    lines += ["", "Per seed (ARI / NMI (seconds, fine-tuning epochs run)):", "",
              "| dataset | seed | cellkit | PyTorch | ARI difference | cells used (cellkit / PyTorch) |",
              "|---|---|---|---|---|---|"]
    notes = []
    for dataset, cells, k, runs in per_dataset:
        for seed, o, t in runs:
            diff = f"{o['ari'] - t['ari']:+.3f}" if "ari" in o and "ari" in t else "n/a"
            used = f"{o.get('cells', '?')} / {t.get('cells', '?')}"
            lines.append(f"| {dataset} | {seed} | {cell(o)} | {cell(t)} | {diff} | {used} |")
            for name, r in (("cellkit", o), ("PyTorch", t)):
                if "error" in r:
                    notes.append(f"- {dataset} seed {seed} {name}: {r['error']}")
                elif r.get("cells", cells) != cells:
                    notes.append(f"- {dataset} seed {seed} {name}: used {r['cells']} of {cells} cells")
                if "k" in r and r["k"] != k:
                    notes.append(f"- {dataset} seed {seed} {name}: K = {r['k']} (labels.tsv has {k})")
    if notes:
        lines += ["", "Notes:", ""] + notes
    emit_table(lines, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
