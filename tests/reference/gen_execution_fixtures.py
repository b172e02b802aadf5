#!/usr/bin/python3
"""Reference values for cellkit's execution primitives (gemm, spmm, transform_reduce).

Writes tests/reference/data/{gemm,spmm}_*.txt from NumPy / SciPy.sparse computations in float64.
Each file: '#' comments, a header line, then rows. Inputs are generated here with a fixed seed and
written next to the results, so the C++ test reads both and does not regenerate anything.
Run: /usr/bin/python3 tests/reference/gen_execution_fixtures.py
"""
import os

import numpy as np
import scipy.sparse as sp

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


def write_matrix(f, name, m):
    m = np.atleast_2d(m)
    f.write(f"# {name} {m.shape[0]} {m.shape[1]}\n")
    for row in m:
        f.write(" ".join(repr(float(v)) for v in row) + "\n")


def gemm_cases(rng):
    # (m, n, k, transpose_a, transpose_b, alpha, beta)
    cases = [(5, 7, 3, 0, 0, 1.0, 0.0), (13, 9, 17, 1, 0, 0.5, 0.0), (8, 11, 6, 0, 1, -2.0, 0.25),
             (19, 4, 23, 1, 1, 1.5, -1.0), (1, 1, 1, 0, 0, 1.0, 1.0), (33, 65, 40, 0, 0, 1.0, 0.0)]
    with open(os.path.join(OUT, "gemm_cases.txt"), "w") as f:
        f.write("# produced by tests/reference/gen_execution_fixtures.py with numpy float64 matmul\n")
        f.write("# per case: a line 'case m n k ta tb alpha beta', then matrices A (stored), B (stored), C0, C\n")
        for m, n, k, ta, tb, alpha, beta in cases:
            a = rng.standard_normal((k, m) if ta else (m, k))
            b = rng.standard_normal((n, k) if tb else (k, n))
            c0 = rng.standard_normal((m, n))
            c = alpha * (a.T if ta else a) @ (b.T if tb else b) + beta * c0
            f.write(f"case {m} {n} {k} {ta} {tb} {alpha!r} {beta!r}\n")
            for name, mat in (("A", a), ("B", b), ("C0", c0), ("C", c)):
                write_matrix(f, name, mat)


def spmm_cases(rng):
    # (rows, cols, density, n, alpha, beta); includes empty rows and a width that is not a tile multiple
    cases = [(10, 8, 0.3, 3, 1.0, 0.0), (50, 40, 0.1, 37, 2.0, 0.5), (7, 40, 0.2, 129, 1.0, 0.0),
             (64, 64, 0.0, 5, 1.0, 1.0), (30, 30, 0.2, 1, -1.0, 0.0)]
    with open(os.path.join(OUT, "spmm_cases.txt"), "w") as f:
        f.write("# produced by tests/reference/gen_execution_fixtures.py with scipy.sparse csr @ dense, float64\n")
        f.write("# per case: 'case rows cols nnz n alpha beta', then indptr, indices, values, X, Y0, Y\n")
        for rows, cols, density, n, alpha, beta in cases:
            a = sp.random(rows, cols, density=density, format="csr", random_state=rng, dtype=np.float64)
            a.data = rng.standard_normal(a.nnz)
            a.sort_indices()
            x = rng.standard_normal((cols, n))
            y0 = rng.standard_normal((rows, n))
            y = alpha * (a @ x) + beta * y0
            f.write(f"case {rows} {cols} {a.nnz} {n} {alpha!r} {beta!r}\n")
            write_matrix(f, "indptr", a.indptr.astype(float))
            write_matrix(f, "indices", a.indices.astype(float) if a.nnz else np.zeros((1, 0)))
            write_matrix(f, "values", a.data if a.nnz else np.zeros((1, 0)))
            write_matrix(f, "X", x)
            write_matrix(f, "Y0", y0)
            write_matrix(f, "Y", y)


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(20261120)
    gemm_cases(rng)
    spmm_cases(rng)
