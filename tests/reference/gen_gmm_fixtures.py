#!/usr/bin/python3
"""Reference values for cellkit/cluster/gmm.hpp and gmm_select.hpp from scikit-learn 1.2.1.

Writes, deterministically (fixed seeds, float64):

  tests/reference/data/gmm_fit_cases.txt     GaussianMixture fits from given initial parameters
  tests/reference/data/gmm_sweep_cases.txt   a BIC / AIC curve over K (model selection)

Format (read by cellkit::test::read_fixture_cases): 'case p1 p2 ...', then named matrices, each a
'# name rows cols' line followed by `rows` lines of `cols` numbers written with repr (shortest
round trip: the C++ side reads the exact doubles).

gmm_fit_cases.txt, per case:
  case <index> <N> <d> <K> <type> <max_iter> <reg_covar> <tol>
  type: 0 full, 1 tied, 2 diag, 3 spherical (cellkit::cluster::gmm_covariance order).
  X (N x d, only in the first case of each data set: type 0); weights_init (1 x K), means_init (K x d), precisions_init (1 x size; full K*d*d, tied
  d*d, diag K*d, spherical K, row-major);
  from GaussianMixture(K, covariance_type, tol, reg_covar, max_iter, weights_init, means_init,
  precisions_init).fit(X): weights (1 x K), means (K x d), covariances (1 x size),
  precisions_cholesky (1 x size), lower_bound, n_iter, converged (1 x 3), bic, aic (1 x 2),
  score_samples (1 x N), predict_proba (N x K), predict (1 x N) (first data set only).
  With tol = 0 the fit runs exactly max_iter iterations (|change| < 0 never holds).

gmm_sweep_cases.txt: one case per (K, covariance type) of a sweep K = 1..6 over full and diag on
three well separated blobs (N = 240, d = 2):
  case <index> <N> <d> <K> <type> <n_iter> <converged>
  X (N x d) in the first case only; weights_init, means_init, precisions_init: the parameters
  scikit-learn's own k-means initialisation gives (GaussianMixture(max_iter=0, random_state=0));
  criteria (1 x 3): bic, aic, lower_bound of GaussianMixture(K, type, tol=1e-3, max_iter=100,
  weights_init, means_init, precisions_init = those).fit(X).

Run: /usr/bin/python3 tests/reference/gen_gmm_fixtures.py
"""

import os
import warnings

import numpy as np
import sklearn
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data")
TYPES = ["full", "tied", "diag", "spherical"]


def write_matrix(out, name, m):
    m = np.atleast_2d(np.asarray(m, dtype=np.float64))
    out.write(f"# {name} {m.shape[0]} {m.shape[1]}\n")
    for row in m:
        out.write(" ".join(repr(float(v)) for v in row) + "\n")


def mixture(rng, n, d, k, spread):
    centres = rng.normal(size=(k, d)) * spread
    labels = rng.integers(0, k, size=n)
    scales = rng.uniform(0.5, 1.5, size=(k, d))
    return centres[labels] + rng.normal(size=(n, d)) * scales[labels]


def random_precisions(rng, kind, k, d):
    def spd():
        a = rng.normal(size=(d, d))
        return a @ a.T / d + np.eye(d) * 0.5

    if kind == "full":
        return np.array([np.linalg.inv(spd()) for _ in range(k)])
    if kind == "tied":
        return np.linalg.inv(spd())
    if kind == "diag":
        return rng.uniform(0.3, 2.0, size=(k, d))
    return rng.uniform(0.3, 2.0, size=k)


def fit_cases():
    rng = np.random.default_rng(20240808)
    path = os.path.join(DATA, "gmm_fit_cases.txt")
    # (N, d, K, spread, max_iter, reg_covar, data offset)
    shapes = [(100, 3, 3, 4.0, 5, 1e-6, 0.0), (150, 4, 4, 1.5, 12, 1e-6, 0.0), (90, 2, 5, 2.0, 20, 1e-3, 5.0)]
    index = 0
    with open(path, "w") as out:
        out.write(f"# produced by tests/reference/gen_gmm_fixtures.py with scikit-learn {sklearn.__version__}\n")
        for shape, (n, d, k, spread, max_iter, reg, offset) in enumerate(shapes):
            x = mixture(rng, n, d, k, spread) + offset
            for t, kind in enumerate(TYPES):
                weights = rng.uniform(0.5, 1.5, size=k)
                weights /= weights.sum()
                means = x[rng.choice(n, size=k, replace=False)] + rng.normal(size=(k, d)) * 0.3
                precisions = random_precisions(rng, kind, k, d)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    g = GaussianMixture(k, covariance_type=kind, tol=0.0, reg_covar=reg, max_iter=max_iter,
                                        weights_init=weights, means_init=means, precisions_init=precisions,
                                        init_params="random", random_state=0).fit(x)
                out.write(f"case {index} {n} {d} {k} {t} {max_iter} {reg!r} 0.0\n")
                if t == 0:
                    write_matrix(out, "X", x)
                write_matrix(out, "weights_init", weights)
                write_matrix(out, "means_init", means)
                write_matrix(out, "precisions_init", np.ravel(precisions))
                write_matrix(out, "weights", g.weights_)
                write_matrix(out, "means", g.means_)
                write_matrix(out, "covariances", np.ravel(g.covariances_))
                write_matrix(out, "precisions_cholesky", np.ravel(g.precisions_cholesky_))
                write_matrix(out, "fit", [[g.lower_bound_, g.n_iter_, float(g.converged_)]])
                write_matrix(out, "criteria", [[g.bic(x), g.aic(x)]])
                if shape == 0:
                    write_matrix(out, "score_samples", g.score_samples(x))
                    write_matrix(out, "predict_proba", g.predict_proba(x))
                    write_matrix(out, "predict", g.predict(x))
                index += 1
    print("wrote", path)


def sweep_cases():
    rng = np.random.default_rng(99)
    n, d = 240, 2
    centres = np.array([[0.0, 0.0], [8.0, 0.0], [0.0, 8.0]])
    x = centres[np.arange(n) % 3] + rng.normal(size=(n, d)) * np.array([1.0, 0.6])
    path = os.path.join(DATA, "gmm_sweep_cases.txt")
    index = 0
    with open(path, "w") as out:
        out.write(f"# produced by tests/reference/gen_gmm_fixtures.py with scikit-learn {sklearn.__version__}\n")
        for kind in ("full", "diag"):
            t = TYPES.index(kind)
            for k in range(1, 7):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    start = GaussianMixture(k, covariance_type=kind, max_iter=0, random_state=0).fit(x)
                    g = GaussianMixture(k, covariance_type=kind, tol=1e-3, max_iter=100,
                                        weights_init=start.weights_, means_init=start.means_,
                                        precisions_init=start.precisions_, random_state=0).fit(x)
                out.write(f"case {index} {n} {d} {k} {t} {g.n_iter_} {int(g.converged_)}\n")
                if index == 0:
                    write_matrix(out, "X", x)
                write_matrix(out, "weights_init", start.weights_)
                write_matrix(out, "means_init", start.means_)
                write_matrix(out, "precisions_init", np.ravel(start.precisions_))
                write_matrix(out, "criteria", [[g.bic(x), g.aic(x), g.lower_bound_]])
                index += 1
    print("wrote", path)


if __name__ == "__main__":
    fit_cases()
    sweep_cases()
