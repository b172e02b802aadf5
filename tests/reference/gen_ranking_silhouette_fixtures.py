#!/usr/bin/python3
"""Reference values for cellkit/metrics/ranking.hpp and cellkit/metrics/silhouette.hpp from scikit-learn.

Writes, with a fixed seed (deterministic):
  tests/reference/data/ranking_cases.txt     roc_auc_score, average_precision_score, and for a subset the
                                             full roc_curve (drop_intermediate=True) and precision_recall_curve
  tests/reference/data/silhouette_cases.txt  silhouette_samples and silhouette_score (Euclidean)

Format (read by cellkit::test::read_fixture_cases): a line 'case p1 p2 ...' per case, then named
matrices, each a '# name rows cols' line followed by `rows` lines of `cols` numbers written with repr
(shortest round-trip: the C++ side reads the exact doubles). Labels and scores are written next to
the results, so the tests regenerate nothing.

ranking_cases.txt, per case:
  case <index> <n> <is_float32> <has_pos_label> <pos_label> <has_curves>
  y_true (1 x n), y_score (1 x n; float32 cases hold float32 values, exactly representable),
  scores (1 x 2): roc_auc_score (nan when only one class is present: sklearn raises),
                  average_precision_score (nan when y_true has no positive: sklearn returns -0.0,
                  cellkit throws by design)
  with has_curves: roc_fpr, roc_tpr, roc_thresholds, pr_precision, pr_recall, pr_thresholds (1 x m each;
                  single-class roc curves hold sklearn's nan rates)
Case kinds: continuous scores, heavy ties (scores rounded to 2..20 levels), all-equal scores,
perfectly separated, reversed, rare and common positives, single class, labels {-1, 1} and {2, 5}
with pos_label, negative scores with -0.0 / +0.0 ties; sizes 2 .. 10^4.

silhouette_cases.txt, per case:
  case <index> <N> <d> <n_labels> <sklearn_max_error>
  X (N x d, rounded to 3 decimals so the file stays small), labels (1 x N, arbitrary integers),
  s (1 x N): sklearn.metrics.silhouette_samples, score (1 x 1): sklearn.metrics.silhouette_score.
  sklearn_max_error = max |silhouette_samples - exact|, where exact is computed here from
  scipy.spatial.distance.cdist (coordinate differences, no cancellation). scikit-learn's GEMM-based
  distances lose digits for duplicate and near-duplicate points; the C++ test checks cellkit against
  sklearn to that error (plus 1e-12) and against its own exact brute-force oracle to 1e-12.
Case kinds: Gaussian blobs (2..30 clusters), singleton clusters, duplicate points, clusters far from
the origin (offset 1000: cancellation in ||x||^2 + ||y||^2 - 2 x.y), one point per cluster except
one, negative and non-contiguous labels; N up to ~2000, d up to 20.

Run: /usr/bin/python3 tests/reference/gen_ranking_silhouette_fixtures.py   (scikit-learn 1.2.1, numpy, scipy)
"""
import os
import warnings

import numpy as np
import scipy.spatial.distance
import sklearn
from sklearn.metrics import (average_precision_score, precision_recall_curve, roc_auc_score, roc_curve,
                             silhouette_samples, silhouette_score)

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


def fmt(v):
    return repr(float(v))


def write_row(f, name, values, integer=False):
    values = np.asarray(values).ravel()
    f.write(f"# {name} 1 {values.size}\n")
    f.write(" ".join(str(int(v)) if integer else fmt(v) for v in values) + "\n")


def write_matrix(f, name, m):
    f.write(f"# {name} {m.shape[0]} {m.shape[1]}\n")
    for row in m:
        f.write(" ".join(fmt(v) for v in row) + "\n")


# ------------------------------------------------------------------------------------------------------
# ranking


def ranking_inputs(rng, kind, n):
    """(y_true, y_score) for one case kind; y in {0, 1}."""
    prevalence = rng.uniform(0.2, 0.8)
    y = (rng.random(n) < prevalence).astype(np.int64)
    if kind == "rare":
        y = (rng.random(n) < 0.02).astype(np.int64)
    elif kind == "common":
        y = (rng.random(n) < 0.98).astype(np.int64)
    if kind not in ("single_negative", "single_positive") and n >= 2 and y.min() == y.max():
        y[rng.integers(n)] = 1 - y[0]  # keep both classes
    if kind == "single_negative":
        y[:] = 0
    elif kind == "single_positive":
        y[:] = 1
    shift = rng.uniform(0.0, 2.0)
    scores = rng.standard_normal(n) + shift * y
    if kind == "continuous" or kind in ("rare", "common", "single_negative", "single_positive"):
        scores = np.round(scores, 6)
    elif kind == "ties":
        levels = int(rng.integers(2, 21))
        scores = np.round((scores - scores.min()) / (np.ptp(scores) + 1e-12) * (levels - 1)) / 8.0
    elif kind == "all_equal":
        scores = np.full(n, 0.375)
    elif kind == "separated":
        scores = np.round(rng.random(n), 5) + 2.0 * y
    elif kind == "reversed":
        scores = np.round(rng.random(n), 5) - 2.0 * y
    elif kind == "signed_zero":
        scores = rng.choice(np.array([-1.5, -0.0, 0.0, 0.25, 2.0]), size=n)
    return y, scores


def ranking_case(rng, f, index, kind, n, as_float32, pos_label_mode, with_curves):
    y, scores = ranking_inputs(rng, kind, n)
    if as_float32:
        scores = (np.round(scores * 4096.0) / 4096.0).astype(np.float32)  # exact in float32
    else:
        scores = scores.astype(np.float64)
    labels = y
    pos_label = None
    if pos_label_mode == "minus_one":
        labels = np.where(y == 1, 1, -1)
        pos_label = 1
    elif pos_label_mode == "two_five":
        labels = np.where(y == 1, 5, 2)
        pos_label = 5
    positives = int(y.sum())
    negatives = n - positives
    auc = np.nan
    if positives > 0 and negatives > 0:
        auc = roc_auc_score(y, scores)  # roc_auc_score has no pos_label: binarised y is the same
    ap = np.nan
    if positives > 0:
        ap = average_precision_score(labels, scores, pos_label=1 if pos_label is None else pos_label)
    f.write(f"case {index} {n} {int(as_float32)} {int(pos_label is not None)} "
            f"{0 if pos_label is None else pos_label} {int(with_curves)}\n")
    write_row(f, "y_true", labels, integer=True)
    write_row(f, "y_score", scores)
    write_row(f, "scores", [auc, ap])
    if with_curves:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # single-class curves warn (nan rates / recall set to 1)
            fpr, tpr, thr = roc_curve(labels, scores, pos_label=pos_label, drop_intermediate=True)
            precision, recall, pr_thr = precision_recall_curve(labels, scores, pos_label=pos_label)
        assert thr.dtype == scores.dtype and pr_thr.dtype == scores.dtype
        write_row(f, "roc_fpr", fpr)
        write_row(f, "roc_tpr", tpr)
        write_row(f, "roc_thresholds", thr)
        write_row(f, "pr_precision", precision)
        write_row(f, "pr_recall", recall)
        write_row(f, "pr_thresholds", pr_thr)


def ranking_cases(rng):
    kinds = ["continuous", "ties", "ties", "all_equal", "separated", "reversed", "rare", "common", "signed_zero"]
    plan = []
    # Small hand-picked shapes first (every kind at n = 2, 3 and 7), then random sizes up to 10^4.
    for n in (2, 3, 7):
        for kind in kinds:
            plan.append((kind, n))
    for kind in ("single_negative", "single_positive"):
        for n in (1, 5, 40):
            plan.append((kind, n))
    while len(plan) < 112:
        kind = kinds[int(rng.integers(len(kinds)))]
        n = int(round(np.exp(rng.uniform(np.log(2), np.log(10_000)))))
        plan.append((kind, n))
    plan += [("ties", 10_000), ("continuous", 10_000), ("all_equal", 10_000)]
    with open(os.path.join(OUT, "ranking_cases.txt"), "w") as f:
        f.write(f"# produced by tests/reference/gen_ranking_silhouette_fixtures.py with scikit-learn {sklearn.__version__}\n")
        f.write("# per case: 'case index n is_float32 has_pos_label pos_label has_curves', then y_true, y_score,\n")
        f.write("# scores = [roc_auc_score, average_precision_score] (nan: undefined), and with has_curves the\n")
        f.write("# roc_curve (drop_intermediate=True) and precision_recall_curve arrays\n")
        for index, (kind, n) in enumerate(plan):
            as_float32 = index % 4 == 1
            pos_label_mode = ["none", "none", "none", "minus_one", "two_five"][index % 5 if index % 7 else 0]
            with_curves = n <= 400 or kind in ("all_equal", "ties") and n <= 3000
            ranking_case(rng, f, index, kind, n, as_float32, pos_label_mode, with_curves)
    return len(plan)


# ------------------------------------------------------------------------------------------------------
# silhouette


def silhouette_inputs(rng, kind, n, d, k):
    centres = rng.standard_normal((k, d)) * rng.uniform(0.5, 4.0)
    labels = np.concatenate([np.arange(k), rng.integers(0, k, size=n - k)])
    rng.shuffle(labels)
    x = centres[labels] + rng.standard_normal((n, d))
    if kind == "singletons":
        # clusters 0 .. k-2 hold one point each, the rest is cluster k-1
        labels = np.full(n, k - 1)
        labels[rng.choice(n, size=k - 1, replace=False)] = np.arange(k - 1)
    elif kind == "duplicates":
        source = rng.integers(0, n, size=n // 3)
        target = rng.integers(0, n, size=n // 3)
        x[target] = x[source]
        labels[target] = labels[source] if rng.random() < 0.5 else labels[target]
    elif kind == "near_duplicates":
        source = rng.integers(0, n, size=n // 3)
        target = rng.integers(0, n, size=n // 3)
        x[target] = x[source] + 1e-3 * rng.choice([-1.0, 1.0], size=(n // 3, d))
    elif kind == "far":
        x = x * 0.05 + 1000.0
    x = np.round(x, 3)
    if kind == "duplicates":
        x[: n // 10] = x[n // 10: 2 * (n // 10)]  # exact duplicates across possibly different clusters
    # arbitrary integer labels: negative, with gaps
    names = rng.choice(np.arange(-50, 50) * 7, size=k, replace=False)
    return x, names[labels]


def exact_silhouette(x, labels):
    _, codes = np.unique(labels, return_inverse=True)
    dist = scipy.spatial.distance.cdist(x, x)  # coordinate differences: no cancellation
    sizes = np.bincount(codes)
    sums = np.stack([dist[:, codes == c].sum(axis=1) for c in range(sizes.size)], axis=1)
    own = codes
    a = sums[np.arange(len(x)), own] / np.maximum(sizes[own] - 1, 1)
    other = sums / sizes
    other[np.arange(len(x)), own] = np.inf
    b = other.min(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        s = (b - a) / np.maximum(a, b)
    s[sizes[own] == 1] = 0.0
    return np.nan_to_num(s)


def silhouette_cases(rng):
    plan = [("blobs", 3, 1, 2), ("blobs", 4, 2, 3), ("blobs", 10, 3, 2), ("singletons", 12, 2, 5),
            ("duplicates", 30, 2, 3), ("blobs", 60, 5, 4), ("far", 80, 3, 3), ("near_duplicates", 120, 4, 6),
            ("singletons", 150, 3, 30), ("duplicates", 300, 4, 8), ("blobs", 400, 20, 10), ("far", 500, 5, 7),
            ("blobs", 700, 8, 25), ("duplicates", 900, 3, 12), ("near_duplicates", 1100, 6, 9),
            ("blobs", 1500, 2, 2), ("singletons", 1300, 4, 20), ("blobs", 2000, 3, 30)]
    with open(os.path.join(OUT, "silhouette_cases.txt"), "w") as f:
        f.write(f"# produced by tests/reference/gen_ranking_silhouette_fixtures.py with scikit-learn {sklearn.__version__}\n")
        f.write("# per case: 'case index N d n_labels sklearn_max_error', then X, labels, s (silhouette_samples),\n")
        f.write("# score (silhouette_score); sklearn_max_error = max |s - exact| (exact from scipy cdist)\n")
        worst = 0.0
        for index, (kind, n, d, k) in enumerate(plan):
            x, labels = silhouette_inputs(rng, kind, n, d, k)
            s = silhouette_samples(x, labels)
            score = silhouette_score(x, labels)
            exact = exact_silhouette(x, labels)
            error = float(np.abs(s - exact).max())
            assert error < 1e-6, (kind, error)
            assert abs(score - np.mean(s)) <= 1e-15
            worst = max(worst, error)
            f.write(f"case {index} {n} {d} {np.unique(labels).size} {fmt(error)}\n")
            write_matrix(f, "X", x)
            write_row(f, "labels", labels, integer=True)
            write_row(f, "s", s)
            write_row(f, "score", [score])
    return len(plan), worst


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(20261121)
    count = ranking_cases(rng)
    silhouette_count, worst = silhouette_cases(rng)
    print(f"{count} ranking cases, {silhouette_count} silhouette cases "
          f"(largest sklearn - exact silhouette difference {worst:.3g})")
