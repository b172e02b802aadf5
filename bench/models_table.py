#!/usr/bin/python3
"""ARI / NMI of the model examples on the raw-count datasets, next to k-means on PCA (issues #10, #11).

For every dataset under ../shared/data whose manifest says raw_counts (absent ones are skipped) and
every seed, runs each model example with K = the number of distinct labels in labels.tsv, parses
the final "ARI a  NMI b" line, and times the whole process. The baseline is examples/cluster_cells
with --k K: normalise, log1p, 2000 HVGs, scale, PCA 50, k-means (its "k-means" row).
Prints a markdown table of means (and the spread over seeds) and the mean wall time per run.

Usage: bench/models_table.py [--build-dir build] [--models NAME ...] [--datasets NAME ...]
       [--seeds 0 1 2] [--threads 2] [--epochs-scale F] [--out FILE.md]
--epochs-scale multiplies every model's default epoch counts (below) to trade quality for time.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "..", "shared", "data")

# model -> (binary under build/examples, {epoch flag: default count}, extra flags)
MODELS = {
    "kmeans_pca": ("cluster_cells/cluster_cells", {}, []),
    "dec_zinb": ("dec_zinb/dec_zinb", {"--pretrain-epochs": 300, "--max-epochs": 200}, []),
    "scdefer": ("scdefer/scdefer", {"--pretrain-epochs": 200, "--epochs": 50}, []),
    "scgpcl": ("scgpcl/scgpcl", {}, []),
    "scsiameseclu": ("scsiameseclu/scsiameseclu", {}, []),
}


def emit_table(lines, out=None):
    """Prints the markdown lines and, when `out` is given, writes them to that file too."""
    text = "\n".join(lines) + "\n"
    print(text)
    if out:
        with open(out, "w") as f:
            f.write(text)


def raw_count_datasets(wanted):
    names = []
    for name in sorted(os.listdir(DATA)) if os.path.isdir(DATA) else []:
        if wanted and name not in wanted:
            continue
        manifest = os.path.join(DATA, name, "manifest.json")
        if not os.path.exists(manifest):
            continue
        with open(manifest) as f:
            if json.load(f).get("raw_counts"):
                names.append(name)
    return names


def label_count(name):
    with open(os.path.join(DATA, name, "labels.tsv")) as f:
        next(f)
        return len({line.split("\t")[1] for line in f if line.strip()})


def run_one(build, model, dataset, k, seed, threads, scale, out_dir):
    binary, epochs, extra = MODELS[model]
    cmd = [os.path.join(build, "examples", binary), os.path.join(DATA, dataset), "--k", str(k), "--seed", str(seed),
           "--threads", str(threads), "--out", out_dir] + extra
    for flag, count in epochs.items():
        cmd += [flag, str(max(1, round(count * scale)))]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    if model == "kmeans_pca":
        m = re.search(r"^\s*k-means\s+([-0-9.]+)\s+([-0-9.]+)", proc.stdout, re.M)
    else:
        # the final summary line on stdout (progress goes to stderr)
        matches = list(re.finditer(r"ARI\s+([-0-9.]+)\s+NMI\s+([-0-9.]+)", proc.stdout))
        m = matches[-1] if matches else None
    if not m:
        raise RuntimeError(f"{' '.join(cmd)}: no ARI/NMI in its output:\n{proc.stdout[-2000:]}")
    return float(m.group(1)), float(m.group(2)), seconds


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build"))
    ap.add_argument("--models", nargs="*", default=list(MODELS))
    ap.add_argument("--datasets", nargs="*", default=[])
    ap.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--epochs-scale", type=float, default=1.0)
    ap.add_argument("--out")
    args = ap.parse_args()
    datasets = raw_count_datasets(args.datasets)
    if not datasets:
        print("no raw-count datasets found under", DATA)
        return 0
    rows = []
    for dataset in datasets:
        k = label_count(dataset)
        for model in args.models:
            results = []
            for seed in args.seeds:
                out_dir = os.path.join("/tmp", f"models_table_{model}_{dataset}_{seed}")
                ari, nmi, seconds = run_one(args.build_dir, model, dataset, k, seed, args.threads, args.epochs_scale,
                                            out_dir)
                print(f"{dataset:32s} {model:13s} seed {seed}: ARI {ari:.4f} NMI {nmi:.4f} {seconds:7.1f} s",
                      file=sys.stderr, flush=True)
                results.append((ari, nmi, seconds))
            aris, nmis, secs = zip(*results)
            rows.append((dataset, k, model, statistics.mean(aris), max(aris) - min(aris), statistics.mean(nmis),
                         statistics.mean(secs)))
    lines = [f"Seeds {args.seeds}, {args.threads} threads, epoch counts x {args.epochs_scale} "
             f"(`bench/models_table.py {' '.join(sys.argv[1:])}`).", "",
             "| dataset | K | model | ARI (mean) | ARI spread | NMI (mean) | s per run |", "|---|---|---|---|---|---|---|"]
    for dataset, k, model, ari, spread, nmi, secs in rows:
        lines.append(f"| {dataset} | {k} | {model} | {ari:.3f} | {spread:.3f} | {nmi:.3f} | {secs:.1f} |")
    emit_table(lines, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
