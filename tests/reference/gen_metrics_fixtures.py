#!/usr/bin/python3
"""Reference values for the clustering metrics (include/cellkit/metrics/{contingency,pair_counting,
information,accuracy,scores}.hpp; tests/metrics/test_*.cpp).

Run with the system Python (numpy, scipy 1.10, scikit-learn 1.2, mpmath):

    /usr/bin/python3 tests/reference/gen_metrics_fixtures.py [--exact-only]

Deterministic (numpy default_rng with fixed seeds). Writes two files to tests/reference/data/:

metrics_clustering_cases.txt -- random and limit-case labelings with scikit-learn 1.2 values.
  The labels are stored as contingency triplets (true label, predicted label, count): the C++ test
  expands them into label arrays in triplet order and shuffles them with its own fixed generator
  (every metric is invariant under a common permutation, so the values below stay valid; the C++
  side never depends on numpy's RNG). Label values are negative, non-contiguous or up to +-2^53
  (exact in the double text format). Format (tests/support/test_support.hpp read_fixture_cases):
      case <id> <n> <fits_int32> <fits_uint32> <sklearn_ami_is_noise>
      # sklearn 1 17     ari ri mi nmi_arithmetic nmi_geometric nmi_min nmi_max ami_arithmetic
                         ami_geometric ami_min ami_max homogeneity completeness v_measure
                         v_measure_beta_0.5 fowlkes_mallows accuracy
      # exact 1 8        mi h_true h_pred emi nmi_arithmetic ami_arithmetic homogeneity completeness
      # triplets k 3     one "true pred count" line per nonzero cell
  'sklearn': scikit-learn's functions on the expanded labels (mutual_info_score raises for n = 0:
  nan; accuracy: scipy.optimize.linear_sum_assignment(maximize=True) on the contingency matrix,
  nan for n = 0; non-arithmetic AMI is nan when scikit-learn would take too long).
  'exact': mpmath at 40 digits (MI and entropies term by term; EMI from lgamma-normalised
  hypergeometric pmfs, an evaluation independent of the C++ recurrence), rounded to double; nan for
  degenerate tables (n = 0, a single row or column, identical partitions) and, for EMI/AMI, when
  too expensive. sklearn_ami_is_noise = 1 marks all-singleton labelings such as n = 2 and 4, where
  scikit-learn's AMI (0/0 resolved by rounding) is 0.0 and cellkit's documented value is 1.0 (set
  for every identical-partition case where scikit-learn's AMI is not 1).

metrics_clustering_exact.txt -- constructed tables with huge counts (n from 1e8 to ~4.6e18) and
  their pair counts and ARI / RI / FMI computed with Python integers and fractions.Fraction
  (float(Fraction) is correctly rounded; FMI via 60-digit Decimal square root), plus 40-digit
  mpmath MI / NMI / AMI where affordable. Line format:
      table <name>
      cell <row> <col> <count>
      pairs <x> <A> <B> <N>              exact integers (decimal)
      value <metric> <double repr>       metric in ari ri fmi mi nmi ami
"""

import decimal
import fractions
import math
import os
import sys
import warnings
from collections import Counter

import mpmath as mp
import numpy as np
import scipy
import sklearn
from scipy.optimize import linear_sum_assignment
from sklearn import metrics as skm
from sklearn.metrics.cluster import contingency_matrix

warnings.simplefilter("ignore")
mp.mp.dps = 40
HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data")
NAN = float("nan")


def r(v):
    return repr(float(v))


# ---- exact (mpmath) references ---------------------------------------------------------------------

def exact_entropy(sizes, n):
    if len(sizes) <= 1:
        return mp.mpf(0)
    nn = mp.mpf(n)
    return mp.fsum(mp.mpf(s) / nn * mp.log(nn / s) for s in sizes)


def exact_mi(cells, a, b, n):
    nn = mp.mpf(n)
    return mp.fsum(mp.mpf(c) / nn * mp.log(nn * c / (mp.mpf(a[i]) * b[j])) for (i, j), c in cells.items())


def emi_cost(a, b, n):
    """Rough number of pmf terms the mpmath EMI evaluates (distinct pairs x ~14 sigma + 4)."""
    da, db = Counter(a), Counter(b)
    total = 0.0
    for av in da:
        for bv in db:
            total += 14.0 * math.sqrt(av * bv / n) + 4.0
    return total


def emi_terms(a, b, n):
    """Number of pmf terms exact_emi evaluates: ~ 2 x 10 sigma + 4 per distinct pair (sigma^2 = Var n_ij)."""
    da, db = Counter(a), Counter(b)
    total = 0.0
    for av in da:
        for bv in db:
            var = av * bv * (n - av) * (n - bv) / (n * n * max(n - 1, 1))
            total += 20.0 * math.sqrt(var) + 4.0
    return total


def exact_emi(a, b, n):
    """sum over distinct (a, b) of mult * E[(k/n) log(n k / (a b))], k ~ hypergeometric, with each pmf
    value exp(lgamma(...)) from mpmath's loggamma (no self-normalisation), summed outward from the mode
    until terms drop below 1e-45 of the largest."""
    da, db = Counter(a), Counter(b)
    nn = mp.mpf(n)
    lg_n = mp.loggamma(n + 1)
    total = mp.mpf(0)
    for av, ma in sorted(da.items()):
        for bv, mb in sorted(db.items()):
            lo, hi = max(0, av + bv - n), min(av, bv)
            mode = min(max((av + 1) * (bv + 1) // (n + 2), lo), hi)
            base = mp.loggamma(av + 1) + mp.loggamma(bv + 1) + mp.loggamma(n - av + 1) + mp.loggamma(n - bv + 1) - lg_n

            def pmf(k):
                return mp.exp(base - mp.loggamma(k + 1) - mp.loggamma(av - k + 1) - mp.loggamma(bv - k + 1)
                              - mp.loggamma(n - av - bv + k + 1))

            p_mode = pmf(mode)
            s = mp.mpf(0)
            for direction in (1, -1):
                k = mode if direction == 1 else mode - 1
                p = pmf(k) if lo <= k <= hi else mp.mpf(0)
                while lo <= k <= hi:
                    if k > 0:
                        s += p * (k / nn) * mp.log(nn * k / (mp.mpf(av) * bv))
                    if p < p_mode * mp.mpf(10) ** -45:
                        break
                    # ratio recurrence at 40 digits (the pmf values themselves came from loggamma)
                    if direction == 1:
                        p = p * (av - k) * (bv - k) / ((k + 1) * mp.mpf(n - av - bv + k + 1))
                    else:
                        p = p * k * mp.mpf(n - av - bv + k) / ((av - k + 1) * mp.mpf(bv - k + 1))
                    k += direction
            total += ma * mb * s
    return total


# ---- label generation --------------------------------------------------------------------------------

def proportions(rng, k, kind):
    if kind == "uniform":
        p = np.ones(k)
    elif kind.startswith("dirichlet"):
        p = rng.dirichlet(np.full(k, float(kind.split(":")[1])))
    elif kind.startswith("zipf"):
        p = np.arange(1, k + 1, dtype=float) ** -float(kind.split(":")[1])
        rng.shuffle(p)
    p = p + 1e-12
    return p / p.sum()


def label_values(rng, k, mode):
    if mode == "contiguous":
        return np.arange(k, dtype=np.int64)
    if mode == "negative":
        return -3 * k + 7 * np.arange(k, dtype=np.int64)
    if mode == "sparse32":
        return np.sort(rng.choice(np.arange(-2**31, 2**31 - 1, 4099, dtype=np.int64), size=k, replace=False))
    if mode == "unsigned32":
        return np.sort(rng.choice(np.arange(0, 2**32 - 1, 8191, dtype=np.int64), size=k, replace=False))
    if mode == "sparse53":
        vals = set()
        while len(vals) < k:
            vals.add(int(rng.integers(-2**53 + 1, 2**53 - 1)))
        return np.array(sorted(vals), dtype=np.int64)
    raise ValueError(mode)


def random_labelings(rng, n, r_classes, c_classes, kind_true, kind_pred, noise, mode_true, mode_pred):
    t = rng.choice(r_classes, size=n, p=proportions(rng, r_classes, kind_true))
    if r_classes == c_classes and rng.random() < 0.5:
        mapping = rng.permutation(c_classes)
    else:
        mapping = rng.integers(0, c_classes, size=r_classes)
    p = mapping[t]
    flip = rng.random(n) < noise
    p[flip] = rng.choice(c_classes, size=int(flip.sum()), p=proportions(rng, c_classes, kind_pred))
    return label_values(rng, r_classes, mode_true)[t], label_values(rng, c_classes, mode_pred)[p]


# ---- one case ------------------------------------------------------------------------------------------

def sklearn_values(t, p, cheap_ami):
    n = len(t)
    out = {}
    out["ari"] = skm.adjusted_rand_score(t, p)
    out["ri"] = skm.rand_score(t, p)
    out["mi"] = skm.mutual_info_score(t, p) if n > 0 else NAN
    for m in ("arithmetic", "geometric", "min", "max"):
        out["nmi_" + m] = skm.normalized_mutual_info_score(t, p, average_method=m)
    out["ami_arithmetic"] = skm.adjusted_mutual_info_score(t, p)
    for m in ("geometric", "min", "max"):
        out["ami_" + m] = skm.adjusted_mutual_info_score(t, p, average_method=m) if cheap_ami else NAN
    h, c, v = skm.homogeneity_completeness_v_measure(t, p)
    out["homogeneity"], out["completeness"], out["v_measure"] = h, c, v
    out["v_measure_beta_0.5"] = skm.v_measure_score(t, p, beta=0.5)
    out["fowlkes_mallows"] = skm.fowlkes_mallows_score(t, p)
    if n > 0:
        m = contingency_matrix(t, p)
        rows, cols = linear_sum_assignment(m, maximize=True)
        out["accuracy"] = m[rows, cols].sum() / n
    else:
        out["accuracy"] = NAN
    return out


SKLEARN_COLUMNS = ["ari", "ri", "mi", "nmi_arithmetic", "nmi_geometric", "nmi_min", "nmi_max", "ami_arithmetic",
                   "ami_geometric", "ami_min", "ami_max", "homogeneity", "completeness", "v_measure",
                   "v_measure_beta_0.5", "fowlkes_mallows", "accuracy"]
EXACT_COLUMNS = ["mi", "h_true", "h_pred", "emi", "nmi_arithmetic", "ami_arithmetic", "homogeneity", "completeness"]


def exact_values(cells, a, b, n, emi_budget):
    out = {c: NAN for c in EXACT_COLUMNS}
    identical = len(a) == len(b) == len(cells)
    if n == 0 or len(a) <= 1 or len(b) <= 1 or identical:
        return out
    mi = exact_mi(cells, a, b, n)
    ht, hp = exact_entropy(a, n), exact_entropy(b, n)
    out["mi"], out["h_true"], out["h_pred"] = float(mi), float(ht), float(hp)
    out["nmi_arithmetic"] = float(mi / ((ht + hp) / 2)) if mi != 0 else 0.0
    out["homogeneity"], out["completeness"] = float(mi / ht), float(mi / hp)
    if emi_cost(a, b, n) <= emi_budget:
        emi = exact_emi(a, b, n)
        out["emi"] = float(emi)
        out["ami_arithmetic"] = float((mi - emi) / ((ht + hp) / 2 - emi))
    return out


def table_of(t, p):
    cells = Counter(zip(t.tolist(), p.tolist()))
    rows = sorted(set(t.tolist()))
    cols = sorted(set(p.tolist()))
    ri = {v: i for i, v in enumerate(rows)}
    ci = {v: j for j, v in enumerate(cols)}
    a = [0] * len(rows)
    b = [0] * len(cols)
    index_cells = {}
    for (tv, pv), c in cells.items():
        a[ri[tv]] += c
        b[ci[pv]] += c
        index_cells[(ri[tv], ci[pv])] = c
    return cells, index_cells, a, b


def write_case(out, case_id, t, p, noise_flag=0, emi_budget=4e5):
    t = np.asarray(t, dtype=np.int64)
    p = np.asarray(p, dtype=np.int64)
    n = len(t)
    cells, index_cells, a, b = table_of(t, p)
    cheap_ami = sum(min(x, y) for x in a for y in b) < 3e7
    sk = sklearn_values(t, p, cheap_ami)
    ex = exact_values(index_cells, a, b, n, emi_budget)
    if len(a) == len(b) == len(cells) and n > 0 and abs(sk["ami_arithmetic"] - 1.0) > 1e-9:
        noise_flag = 1  # identical partitions whose AMI scikit-learn resolves as 0/0 by rounding
    values = t.tolist() + p.tolist()
    fits32 = int(all(-2**31 <= v < 2**31 for v in values))
    fitsu32 = int(all(0 <= v < 2**32 for v in values))
    out.write("case %d %d %d %d %d\n" % (case_id, n, fits32, fitsu32, noise_flag))
    out.write("# sklearn 1 %d\n" % len(SKLEARN_COLUMNS))
    out.write(" ".join(r(sk[c]) for c in SKLEARN_COLUMNS) + "\n")
    out.write("# exact 1 %d\n" % len(EXACT_COLUMNS))
    out.write(" ".join(r(ex[c]) for c in EXACT_COLUMNS) + "\n")
    out.write("# triplets %d 3\n" % len(cells))
    for (tv, pv), c in sorted(cells.items()):
        out.write("%d %d %d\n" % (tv, pv, c))
    return len(cells)


def limit_cases():
    """(true, pred, sklearn_ami_is_noise) for every limit case the documentation lists."""
    cases = [([], [], 0), ([5], [7], 0), ([-3], [-3], 0), ([1, 1], [2, 2], 0), ([1, 2], [3, 4], 1),
             ([0, 1, 2], [5, 6, 7], 0), ([0, 1, 2, 3], [9, 8, 7, 6], 1), (list(range(10)), list(range(10)), 0),
             (list(range(10)), list(range(9, -1, -1)), 0), ([0, 1, 2, 3], [0, 0, 0, 0], 0),
             ([0, 0, 0, 0], [0, 1, 2, 3], 0), ([0, 0, 0, 0], [0, 0, 1, 1], 0), ([0, 0, 1, 1], [0, 0, 0, 0], 0),
             ([0, 0, 1, 1, 2], [5, 5, 3, 3, 9], 0), ([0, 1], [0, 0], 0), ([0, 0, 1, 1], [0, 1, 0, 1], 0),
             ([7] * 50, [-1] * 50, 0), ([0] * 30 + [1] * 30, [4] * 60, 0),
             ([0, 0, 0, 1, 1, 1], [1, 1, 1, 0, 0, 0], 0), ([2**40, -2**40, 2**40], [-1, 1, -1], 0),
             (list(range(100)), [0] * 100, 0), ([0] * 99 + [1], [0] * 99 + [1], 0),
             ([0] * 99 + [1], [0] * 100, 0), ([0] * 99 + [1], [1] + [0] * 99, 0)]
    # a big one-cluster / all-singleton pair
    cases.append((list(range(1000)), [3] * 1000, 0))
    cases.append(([i // 2 for i in range(1000)], [i // 2 for i in range(1000)], 0))
    return cases


def random_case_parameters(rng, count):
    kinds = ["uniform", "dirichlet:0.3", "dirichlet:1", "dirichlet:5", "zipf:1.1", "zipf:2"]
    modes = ["contiguous", "negative", "sparse32", "unsigned32", "sparse53"]
    params = []
    for k in range(count):
        scale = rng.random()
        if scale < 0.35:
            n = int(rng.integers(2, 200))
        elif scale < 0.8:
            n = int(rng.integers(200, 5000))
        elif scale < 0.95:
            n = int(rng.integers(5000, 30000))
        else:
            n = int(rng.integers(30000, 100001))
        max_classes = 2000 if n >= 5000 and k % 4 == 0 else 60
        r_classes = int(min(max_classes, max(1, rng.integers(1, max_classes + 1))))
        c_classes = int(min(max_classes, max(1, rng.integers(1, max_classes + 1))))
        if n > 30000:  # keep the triplet count (file size) bounded
            r_classes, c_classes = min(r_classes, 40), min(c_classes, 40)
        params.append(dict(n=n, r=r_classes, c=c_classes, kind_true=kinds[rng.integers(len(kinds))],
                           kind_pred=kinds[rng.integers(len(kinds))], noise=float(rng.choice([0.0, 0.05, 0.3, 0.7, 1.0])),
                           mode_true=modes[rng.integers(len(modes))], mode_pred=modes[rng.integers(len(modes))]))
    # Two cases with 2000 x 2000 requested classes and skewed sizes (EMI and accuracy at scale).
    params.append(dict(n=20000, r=2000, c=2000, kind_true="zipf:1.1", kind_pred="dirichlet:0.3", noise=0.3,
                       mode_true="negative", mode_pred="sparse32"))
    params.append(dict(n=30000, r=1500, c=2000, kind_true="uniform", kind_pred="zipf:1.1", noise=0.05,
                       mode_true="sparse53", mode_pred="contiguous"))
    return params


# ---- exactness tables -----------------------------------------------------------------------------

def exact_pair_tables():
    """(name, [(row, col, count), ...]) tables with huge counts."""
    tables = []
    tables.append(("n1e8_3x3", [(0, 0, 30000000), (0, 1, 3000000), (1, 1, 25000000), (1, 2, 2000000),
                                (2, 0, 1000000), (2, 2, 39000000)]))
    tables.append(("n1e9_2x2", [(0, 0, 400000000), (0, 1, 100000000), (1, 0, 100000000), (1, 1, 400000000)]))
    tables.append(("n3e9_few_cells", [(-5, 10, 3000000000), (-5, 11, 7), (8, 10, 1), (8, 12, 123456789)]))
    # exact independence in counts (n_ij = u_i v_j): ARI is a tiny negative number; doubles cancel
    u, v = [37, 61, 2], [1000003, 999983]
    tables.append(("independent_1e8", [(i, j, ui * vj * 500) for i, ui in enumerate(u) for j, vj in enumerate(v)]))
    tables.append(("independent_perturbed", [(i, j, ui * vj * 500 + (1 if (i, j) == (0, 0) else 0))
                                             for i, ui in enumerate(u) for j, vj in enumerate(v)]))
    tables.append(("n1e12_3x2", [(0, 0, 400000000000), (1, 0, 100000000000), (1, 1, 250000000000),
                                 (2, 1, 249999999999), (2, 0, 1)]))
    # n close to 2^62: N ~ 2^123, products ~ 2^246 (the 256-bit path)
    big = 2**60
    tables.append(("n_2e18", [(0, 0, big), (0, 1, big // 3), (1, 1, big + 12345), (2, 0, 17), (2, 2, big // 7)]))
    # nearly identical labelings at 1e9: ARI = 1 - tiny
    tables.append(("nearly_identical_1e9", [(0, 0, 500000000), (1, 1, 499999999), (1, 0, 1)]))
    return tables


def pair_counts(cells):
    rows, cols, total = Counter(), Counter(), 0
    x = 0
    for (i, j, c) in cells:
        rows[i] += c
        cols[j] += c
        total += c
        x += c * (c - 1) // 2
    a = sum(s * (s - 1) // 2 for s in rows.values())
    b = sum(s * (s - 1) // 2 for s in cols.values())
    n = total * (total - 1) // 2
    return x, a, b, n, rows, cols, total


def write_exact_tables(path):
    decimal.getcontext().prec = 60
    with open(path, "w") as out:
        out.write("# Generated by tests/reference/gen_metrics_fixtures.py (Python integers, fractions.Fraction, "
                  "decimal at 60 digits, mpmath %s at %d digits). Do not edit.\n" % (mp.__version__, mp.mp.dps))
        for name, cells in exact_pair_tables():
            x, a, b, n, rows, cols, total = pair_counts(cells)
            out.write("table %s\n" % name)
            for (i, j, c) in cells:
                out.write("cell %d %d %d\n" % (i, j, c))
            out.write("pairs %d %d %d %d\n" % (x, a, b, n))
            if a == x and b == x:
                ari = 1.0
            else:
                ari = float(fractions.Fraction(2 * (n * x - a * b), n * (a + b) - 2 * a * b))
            ri = float(fractions.Fraction(n - a - b + 2 * x, n))
            fmi = float(decimal.Decimal(x) / (decimal.Decimal(a) * decimal.Decimal(b)).sqrt()) if x else 0.0
            out.write("value ari %s\nvalue ri %s\nvalue fmi %s\n" % (r(ari), r(ri), r(fmi)))
            row_list = sorted(rows)
            col_list = sorted(cols)
            asz = [rows[i] for i in row_list]
            bsz = [cols[j] for j in col_list]
            index_cells = {(row_list.index(i), col_list.index(j)): c for (i, j, c) in cells}
            mi = exact_mi(index_cells, asz, bsz, total)
            ht, hp = exact_entropy(asz, total), exact_entropy(bsz, total)
            out.write("value mi %s\nvalue nmi %s\n" % (r(mi), r(mi / ((ht + hp) / 2))))
            if emi_terms(asz, bsz, total) < 4e5:
                emi = exact_emi(asz, bsz, total)
                out.write("value ami %s\n" % r((mi - emi) / ((ht + hp) / 2 - emi)))
            print("  table %s: ARI %r RI %r" % (name, ari, ri))
    print("wrote %s" % path)


def main():
    os.makedirs(DATA, exist_ok=True)
    if "--exact-only" in sys.argv:  # only metrics_clustering_exact.txt (seconds instead of minutes)
        write_exact_tables(os.path.join(DATA, "metrics_clustering_exact.txt"))
        return
    rng = np.random.default_rng(20240601)
    path = os.path.join(DATA, "metrics_clustering_cases.txt")
    total_cells = 0
    with open(path, "w") as out:
        out.write("# Generated by tests/reference/gen_metrics_fixtures.py (scikit-learn %s, scipy %s, numpy %s, "
                  "mpmath %s at %d digits). Do not edit.\n" % (sklearn.__version__, scipy.__version__,
                                                               np.__version__, mp.__version__, mp.mp.dps))
        case_id = 0
        for t, p, noise in limit_cases():
            total_cells += write_case(out, case_id, t, p, noise)
            case_id += 1
        for prm in random_case_parameters(rng, 200):
            t, p = random_labelings(rng, prm["n"], prm["r"], prm["c"], prm["kind_true"], prm["kind_pred"],
                                    prm["noise"], prm["mode_true"], prm["mode_pred"])
            total_cells += write_case(out, case_id, t, p)
            case_id += 1
    print("wrote %s (%d cases, %d triplets, %.2f MB)" % (path, case_id, total_cells, os.path.getsize(path) / 1e6))
    write_exact_tables(os.path.join(DATA, "metrics_clustering_exact.txt"))


if __name__ == "__main__":
    main()
