#!/usr/bin/python3
"""Small synthetic files for cellkit/io (tests/io/test_*.cpp), with SciPy 1.10 as the reference reader.

Writes, deterministically (fixed seed), under tests/reference/data/:

  io_small.mtx             a 7 x 5 integer count matrix, cells x genes, Matrix Market 'integer general'
                           with comments, a blank line, unsorted entries and one duplicate (summed)
  io_small.mtx.gz          the same bytes gzip-compressed (mtime 0: reproducible)
  io_small_truncated.mtx.gz  the .gz cut in the middle of the deflate stream
  io_small_dense.txt       scipy.io.mmread('io_small.mtx').toarray() (7 x 5), the reference
  io_real_symmetric.mtx    a 4 x 4 'real symmetric' matrix; io_real_symmetric_dense.txt its mmread
  io_pattern.mtx           a 3 x 4 'pattern general' matrix; io_pattern_dense.txt its mmread
  io_labels.tsv            labels for io_small in the shared-data layout (cell_index/label_int/label_name)
  io_labels_plain.tsv      the same labels as one name per line (codes from the sorted names)
  io_dataset/              a shared-data folder: counts.mtx.gz, labels.tsv, genes.tsv, manifest.json
  io_10x/                  a Cell Ranger 3 directory: matrix.mtx.gz (genes x cells = io_small
                           transposed), barcodes.tsv.gz, features.tsv.gz (id, symbol, type)

Run: /usr/bin/python3 tests/reference/gen_io_fixtures.py
"""

import gzip
import io
import os

import numpy as np
import scipy
import scipy.io

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data")

rng = np.random.default_rng(9)
N_CELLS, N_GENES = 7, 5


def gz(data: bytes) -> bytes:
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, filename="") as f:
        f.write(data)
    return out.getvalue()


def write(path, data: bytes):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def dense_text(a):
    return "".join(" ".join(repr(float(v)) for v in row) + "\n" for row in a)


# ---- the count matrix: hand-written text so that comments, blank lines, order and a duplicate are exercised
counts = rng.poisson(1.5, size=(N_CELLS, N_GENES)) * (rng.random((N_CELLS, N_GENES)) < 0.6)
counts[3, :] = 0  # an empty cell
entries = [(i + 1, j + 1, int(counts[i, j])) for i in range(N_CELLS) for j in range(N_GENES) if counts[i, j] != 0]
rng.shuffle(entries)
# a duplicate: split the first entry into 1 + (v - 1) when v >= 2
i0, j0, v0 = next(e for e in entries if e[2] >= 2)
entries.remove((i0, j0, v0))
entries += [(i0, j0, 1), (i0, j0, v0 - 1)]
lines = ["%%MatrixMarket matrix coordinate integer general", "% rows = cells, columns = genes", "%",
         f"{N_CELLS} {N_GENES} {len(entries)}"]
for k, (i, j, v) in enumerate(entries):
    lines.append(f"{i} {j} {v}")
    if k == 2:
        lines += ["% a comment between entries", ""]
small = ("\n".join(lines) + "\n").encode()
write(os.path.join(DATA, "io_small.mtx"), small)
write(os.path.join(DATA, "io_small.mtx.gz"), gz(small))
compressed = gz(small)
write(os.path.join(DATA, "io_small_truncated.mtx.gz"), compressed[: len(compressed) // 2])
reference = scipy.io.mmread(os.path.join(DATA, "io_small.mtx")).toarray()
assert np.array_equal(reference, counts)
write(os.path.join(DATA, "io_small_dense.txt"), dense_text(reference).encode())

# ---- real symmetric and pattern
sym = ("%%MatrixMarket matrix coordinate real symmetric\n4 4 5\n1 1 2.5\n2 1 -1.25\n3 2 1e-3\n4 4 7\n4 1 0.5\n").encode()
write(os.path.join(DATA, "io_real_symmetric.mtx"), sym)
write(os.path.join(DATA, "io_real_symmetric_dense.txt"),
      dense_text(scipy.io.mmread(os.path.join(DATA, "io_real_symmetric.mtx")).toarray()).encode())
pat = ("%%MatrixMarket matrix coordinate pattern general\n3 4 4\n1 2\n3 4\n2 1\n3 1\n").encode()
write(os.path.join(DATA, "io_pattern.mtx"), pat)
write(os.path.join(DATA, "io_pattern_dense.txt"),
      dense_text(scipy.io.mmread(os.path.join(DATA, "io_pattern.mtx")).toarray()).encode())

# ---- labels: names with a numeric-looking one to check the code order (sorted names)
names = np.array(["T cell", "B cell", "NK", "B cell", "T cell", "Mono", "NK"])
categories = sorted(set(names))
codes = [categories.index(n) for n in names]
table = "cell_index\tlabel_int\tlabel_name\n" + "".join(f"{i}\t{c}\t{n}\n" for i, (c, n) in enumerate(zip(codes, names)))
write(os.path.join(DATA, "io_labels.tsv"), table.encode())
write(os.path.join(DATA, "io_labels_plain.tsv"), "".join(f"{n}\n" for n in names).encode())

# ---- a shared-data folder
genes = [f"GENE{j}" for j in range(N_GENES)]
write(os.path.join(DATA, "io_dataset", "counts.mtx.gz"), gz(small))
write(os.path.join(DATA, "io_dataset", "labels.tsv"), table.encode())
write(os.path.join(DATA, "io_dataset", "genes.tsv"), "".join(g + "\n" for g in genes).encode())
write(os.path.join(DATA, "io_dataset", "manifest.json"),
      ('{\n  "name": "io_fixture",\n  "n_cells": %d,\n  "n_genes": %d,\n  "raw_counts": true\n}\n'
       % (N_CELLS, N_GENES)).encode())

# ---- a 10x directory: genes x cells on disk
t_lines = ["%%MatrixMarket matrix coordinate integer general", "%metadata_json: {}", f"{N_GENES} {N_CELLS} {int((counts != 0).sum())}"]
for j in range(N_GENES):
    for i in range(N_CELLS):
        if counts[i, j] != 0:
            t_lines.append(f"{j + 1} {i + 1} {int(counts[i, j])}")
write(os.path.join(DATA, "io_10x", "matrix.mtx.gz"), gz(("\n".join(t_lines) + "\n").encode()))
write(os.path.join(DATA, "io_10x", "barcodes.tsv.gz"), gz("".join(f"AAAC{i:04d}-1\n" for i in range(N_CELLS)).encode()))
write(os.path.join(DATA, "io_10x", "features.tsv.gz"),
      gz("".join(f"ENSG{j:05d}\tGENE{j}\tGene Expression\n" for j in range(N_GENES)).encode()))

print("scipy", scipy.__version__, "-> io fixtures written")
