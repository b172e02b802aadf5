#!/usr/bin/python3
"""Peer timings for bench/metrics/bench_clustering.cpp: scikit-learn 1.2 and SciPy 1.10 on the same shapes.

Names understood (those of the C++ benchmark, without Google Benchmark's /real_time suffix):
  BM_contingency_table/labels:N/classes:C/threads:P            sklearn.metrics.cluster.contingency_matrix(t, p, sparse=True)
  BM_adjusted_rand_index/labels:N/classes:C/threads:P          sklearn.metrics.adjusted_rand_score
  BM_normalized_mutual_info/labels:N/classes:C/threads:P       sklearn.metrics.normalized_mutual_info_score
  BM_homogeneity_completeness_v/labels:N/classes:C/threads:P   sklearn.metrics.homogeneity_completeness_v_measure
  BM_adjusted_mutual_info[/sizes:zipf]/labels:N/classes:C/threads:P  sklearn.metrics.adjusted_mutual_info_score
  BM_linear_sum_assignment/n:K                                 scipy.optimize.linear_sum_assignment (K x K uniform costs)
Inputs have the C++ benchmark's distributions, not its bits: int32 labels_true uniform over C classes
(or Zipf 1/rank^1.1 sizes), labels_pred = a fixed permutation of the true class with probability
0.7, else drawn like the true classes. scikit-learn's clustering metrics and SciPy's assignment are
single-threaded whatever P is (NumPy / Cython code); P only names the C++ row they are compared with.

Each prints one JSON line {"name": ..., "peer": "scikit-learn" | "scipy", "seconds": t, "threads": P}.

Timing: time.perf_counter around one call. Calls shorter than 2 s: best of N >= 3 after one warm-up
(until ~1 s or 10 calls; --quick: N = 2). Longer calls (AMI with 2000 x 2000 classes runs for
minutes in scikit-learn): one timed call, no warm-up.

Usage: metrics_sklearn.py [--names NAME ...] [--quick]
Without --names it runs the grid of bench_clustering.cpp at P = CELLKIT_BENCH_THREADS (default 2).
--quick only shortens the repetitions (the shapes are the names'); leave the AMI names out of quick
runs, scikit-learn needs minutes for them.
"""

import argparse
import json
import os
import re
import time
import warnings

import numpy as np

LABEL_RE = re.compile(r"^BM_(contingency_table|adjusted_rand_index|normalized_mutual_info|homogeneity_completeness_v|"
                      r"adjusted_mutual_info)(/sizes:zipf)?/labels:(\d+)/classes:(\d+)/threads:(\d+)$")
LSA_RE = re.compile(r"^BM_linear_sum_assignment/n:(\d+)$")


def default_names():
    threads = int(os.environ.get("CELLKIT_BENCH_THREADS", "2"))
    names = []
    for metric in ("contingency_table", "adjusted_rand_index", "normalized_mutual_info", "homogeneity_completeness_v"):
        names.append(f"BM_{metric}/labels:10000000/classes:50/threads:{threads}")
    names.append(f"BM_adjusted_mutual_info/labels:1000000/classes:2000/threads:{threads}")
    names.append(f"BM_adjusted_mutual_info/sizes:zipf/labels:1000000/classes:2000/threads:{threads}")
    names.append("BM_linear_sum_assignment/n:1000")
    return names


def labelings(n, classes, zipf, seed):
    rng = np.random.default_rng(seed)
    if zipf:
        weights = np.arange(1, classes + 1, dtype=float) ** -1.1
        weights /= weights.sum()
        draw = lambda size: rng.choice(classes, size=size, p=weights).astype(np.int32)  # noqa: E731
    else:
        draw = lambda size: rng.integers(0, classes, size=size, dtype=np.int32)  # noqa: E731
    truth = draw(n)
    permutation = rng.permutation(classes).astype(np.int32)
    keep = rng.random(n) < 0.7
    predicted = np.where(keep, permutation[truth], draw(n)).astype(np.int32)
    return truth, predicted


def timed(fn, quick):
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    if first > 2.0:
        return first
    best = float("inf")
    spent = 0.0
    calls = 0
    min_calls = 2 if quick else 3
    while calls < min_calls or (spent < 1.0 and calls < 10):
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
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    from scipy.optimize import linear_sum_assignment
    from sklearn import metrics
    from sklearn.metrics.cluster import contingency_matrix

    functions = {
        "contingency_table": lambda t, p: contingency_matrix(t, p, sparse=True),
        "adjusted_rand_index": metrics.adjusted_rand_score,
        "normalized_mutual_info": metrics.normalized_mutual_info_score,
        "homogeneity_completeness_v": metrics.homogeneity_completeness_v_measure,
        "adjusted_mutual_info": metrics.adjusted_mutual_info_score,
    }
    for name in args.names or default_names():
        name = name.replace("/real_time", "")
        match = LABEL_RE.match(name)
        if match:
            metric, zipf, n, classes, threads = match.groups()
            n = int(n)
            truth, predicted = labelings(n, int(classes), zipf is not None, seed=20240601 + n + int(classes))
            seconds = timed(lambda: functions[metric](truth, predicted), args.quick)
            print(json.dumps({"name": name, "peer": "scikit-learn", "seconds": seconds, "threads": int(threads)}),
                  flush=True)
            continue
        match = LSA_RE.match(name)
        if match:
            k = int(match.group(1))
            cost = np.random.default_rng(77).random((k, k))
            seconds = timed(lambda: linear_sum_assignment(cost), args.quick)
            print(json.dumps({"name": name, "peer": "scipy", "seconds": seconds, "threads": 1}), flush=True)
            continue
        print(json.dumps({"name": name, "error": "not understood by metrics_sklearn.py"}), flush=True)


if __name__ == "__main__":
    main()
