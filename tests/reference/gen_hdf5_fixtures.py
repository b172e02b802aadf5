#!/usr/bin/python3
"""Small HDF5 files for cellkit/io/hdf5.hpp (tests/io/test_hdf5.cpp): AnnData .h5ad and 10x Genomics .h5.

One 6 x 5 matrix (cells x genes, an empty cell and an empty gene) is written in every layout the readers
accept; tests/reference/data/hdf5/<name>.expected.txt holds what a reader must return, as tab-separated
lines (values as Python's shortest round-trip repr, so they parse exactly):

  shape   <rows> <cols>
  row     <value> ... (one line per cell, the dense matrix)
  cell_names / gene_names / gene_ids   <name> ...
  labels  <column> <code> ...          (codes after the reader's mapping: -1 becomes the extra 'nan' category)
  categories <column> <name> ...

Good files:
  anndata_csr.h5ad   written by anndata 0.8 itself (the independent reference for the on-disk layout):
                     X float32 CSR, layers/counts int64 CSR, obs categoricals cell_type (one missing value),
                     batch, cluster (integer categories), a numeric column; var index + gene_ids column
  h5py_csc.h5ad      X float64 CSC (log-normalised values), anndata 0.7's categorical layout
                     (obs/__categories/<column> + integer codes dataset), fixed-length byte-string index
  h5py_dense.h5ad    X a dense int32 2-D dataset, new-style categorical with int categories
  h5py_unsorted.h5ad X CSR with unsorted columns and a duplicate inside rows (summed, as SciPy does)
  tenx_v3.h5         Cell Ranger 3: matrix/{data,indices,indptr,shape,barcodes,features/{id,name,...}}
  tenx_v2.h5         Cell Ranger 2: GRCh38/{data,indices,indptr,shape,barcodes,genes,gene_names}
Malformed files: bad_*.h5ad / bad_*.h5 (one defect each; see MALFORMED below) and not_hdf5.h5ad (text).

Run: /usr/bin/python3 tests/reference/gen_hdf5_fixtures.py   (needs python3-h5py, python3-anndata, scipy)
"""

import os
import shutil

import h5py
import numpy as np
import scipy.sparse as sp

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "data", "hdf5")

rng = np.random.default_rng(17)
N_CELLS, N_GENES = 6, 5
counts = rng.poisson(2.0, size=(N_CELLS, N_GENES)) * (rng.random((N_CELLS, N_GENES)) < 0.6)
counts[2, :] = 0  # an empty cell
counts[:, 3] = 0  # an empty gene
counts[0, 0] = 7  # at least one value per other row / column
counts[1, 4] = 3
counts[4, 1] = 1
counts = counts.astype(np.int64)
lognorm = np.log1p(counts / np.maximum(counts.sum(axis=1, keepdims=True), 1) * 1e4)

cell_names = [f"AAACCTG{i:02d}-1" for i in range(N_CELLS)]
gene_names = ["CD3E", "MS4A1", "NKG7", "G\u00e8ne4", "LYZ"]
gene_ids = [f"ENSG{j:05d}" for j in range(N_GENES)]
cell_type = ["T cell", "B cell", "T cell", None, "NK", "B cell"]
batch = ["b1", "b1", "b2", "b2", "b1", "b2"]
cluster = [2, 0, 1, 1, 0, 2]


def utf8(names):
    return np.array(names, dtype=h5py.string_dtype("utf-8"))


def fixed(names):
    return np.array([n.encode() for n in names], dtype=f"S{max(len(n.encode()) for n in names)}")


def categorical_codes(values):
    cats = sorted({v for v in values if v is not None})
    return cats, np.array([cats.index(v) if v is not None else -1 for v in values], dtype=np.int8)


def expected(name, dense, columns, cells=cell_names, genes=gene_names, ids=None):
    lines = [f"# {name}: written by tests/reference/gen_hdf5_fixtures.py", f"shape\t{dense.shape[0]}\t{dense.shape[1]}"]
    lines += ["row\t" + "\t".join(repr(float(v)) for v in row) for row in dense]
    lines.append("cell_names\t" + "\t".join(cells))
    lines.append("gene_names\t" + "\t".join(genes))
    if ids is not None:
        lines.append("gene_ids\t" + "\t".join(ids))
    for column, (cats, codes) in columns.items():
        cats = [str(c) for c in cats]
        if (codes < 0).any():  # the reader maps missing values to an extra last category 'nan'
            codes = np.where(codes < 0, len(cats), codes)
            cats = cats + ["nan"]
        lines.append(f"labels\t{column}\t" + "\t".join(str(int(c)) for c in codes))
        lines.append(f"categories\t{column}\t" + "\t".join(cats))
    with open(os.path.join(OUT, name + ".expected.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def write_dataframe(group, index, columns, old_style=False, index_fixed=False):
    """An anndata dataframe group: index dataset named by the _index attribute, categorical columns."""
    group.attrs["encoding-type"] = "dataframe"
    group.attrs["encoding-version"] = "0.2.0"
    group.attrs["_index"] = "_index"
    group.attrs["column-order"] = utf8(list(columns)) if columns else np.array([], dtype=np.float64)
    group.create_dataset("_index", data=fixed(index) if index_fixed else utf8(index))
    for column, (cats, codes) in columns.items():
        cat_data = utf8(cats) if isinstance(cats[0], str) else np.array(cats, dtype=np.int64)
        if old_style:  # anndata 0.7: codes dataset + obs/__categories/<column>
            group.create_dataset(column, data=codes)
            group.require_group("__categories").create_dataset(column, data=cat_data)
        else:
            g = group.create_group(column)
            g.attrs["encoding-type"] = "categorical"
            g.attrs["encoding-version"] = "0.2.0"
            g.attrs["ordered"] = False
            g.create_dataset("categories", data=cat_data)
            g.create_dataset("codes", data=codes)


def write_sparse(group_parent, name, matrix, fmt, shape=None):
    g = group_parent.create_group(name)
    g.attrs["encoding-type"] = f"{fmt}_matrix"
    g.attrs["encoding-version"] = "0.1.0"
    g.attrs["shape"] = np.array(shape if shape is not None else matrix.shape, dtype=np.int64)
    g.create_dataset("data", data=matrix.data)
    g.create_dataset("indices", data=matrix.indices)
    g.create_dataset("indptr", data=matrix.indptr)
    return g


def h5ad(path, write_x, obs_columns, old_style=False, index_fixed=False):
    with h5py.File(path, "w", libver="latest") as f:
        f.attrs["encoding-type"] = "anndata"
        f.attrs["encoding-version"] = "0.1.0"
        write_x(f)
        write_dataframe(f.create_group("obs"), cell_names, obs_columns, old_style, index_fixed)
        write_dataframe(f.create_group("var"), gene_names, {}, index_fixed=index_fixed)


def tenx_v3(path, matrix_gc, barcodes=cell_names, drop=None):
    with h5py.File(path, "w", libver="latest") as f:
        m = f.create_group("matrix")
        for key, value in {"data": matrix_gc.data.astype(np.int32), "indices": matrix_gc.indices.astype(np.int64),
                           "indptr": matrix_gc.indptr.astype(np.int64),
                           "shape": np.array(matrix_gc.shape, dtype=np.int32), "barcodes": fixed(barcodes)}.items():
            if key != drop:
                m.create_dataset(key, data=value)
        feats = m.create_group("features")
        feats.create_dataset("id", data=fixed(gene_ids))
        feats.create_dataset("name", data=fixed(gene_names))
        feats.create_dataset("feature_type", data=fixed(["Gene Expression"] * N_GENES))
        feats.create_dataset("genome", data=fixed(["GRCh38"] * N_GENES))


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    csr = sp.csr_matrix(counts.astype(np.float32))
    cats_ct, codes_ct = categorical_codes(cell_type)
    cats_b, codes_b = categorical_codes(batch)
    cats_cl, codes_cl = categorical_codes(cluster)
    columns = {"cell_type": (cats_ct, codes_ct), "batch": (cats_b, codes_b), "cluster": (cats_cl, codes_cl)}

    # ---- anndata itself
    import anndata
    import pandas as pd
    obs = pd.DataFrame({"cell_type": pd.Categorical(cell_type), "batch": pd.Categorical(batch),
                        "cluster": pd.Categorical(cluster), "n_counts": counts.sum(axis=1)}, index=cell_names)
    var = pd.DataFrame({"gene_ids": gene_ids}, index=gene_names)
    adata = anndata.AnnData(X=csr, obs=obs, var=var, layers={"counts": sp.csr_matrix(counts)})
    adata.write_h5ad(os.path.join(OUT, "anndata_csr.h5ad"))
    with h5py.File(os.path.join(OUT, "anndata_csr.h5ad"), "r") as f:  # the layout the reader relies on
        assert f["X"].attrs["encoding-type"] == "csr_matrix" and f["X/data"].dtype == np.float32
        assert f["obs/cell_type"].attrs["encoding-type"] == "categorical"
        assert f["obs/cluster/categories"].dtype == np.int64
        assert h5py.check_string_dtype(f["var/gene_ids"].dtype) is not None
    expected("anndata_csr", counts, columns, ids=gene_ids)

    # ---- h5py following the spec: CSC float64 with anndata 0.7's categoricals; dense int32; unsorted CSR
    csc = sp.csc_matrix(lognorm)
    h5ad(os.path.join(OUT, "h5py_csc.h5ad"), lambda f: write_sparse(f, "X", csc, "csc"),
         {"cell_type": (cats_ct, codes_ct.astype(np.int16))}, old_style=True, index_fixed=True)
    expected("h5py_csc", lognorm, {"cell_type": (cats_ct, codes_ct)})

    h5ad(os.path.join(OUT, "h5py_dense.h5ad"), lambda f: f.create_dataset("X", data=counts.astype(np.int32)),
         {"cluster": (cats_cl, codes_cl)})
    expected("h5py_dense", counts, {"cluster": (cats_cl, codes_cl)})

    # row 0: columns 4, 0, 4 (4 twice: summed); row 1: 2, 1
    indptr = np.array([0, 3, 5, 5, 5, 5, 5], dtype=np.int64)
    indices = np.array([4, 0, 4, 2, 1], dtype=np.int32)
    data = np.array([1.5, 2.0, 0.25, 3.0, 4.0], dtype=np.float64)
    unsorted = sp.csr_matrix((data, indices, indptr), shape=(N_CELLS, N_GENES))

    def write_unsorted(f):
        g = f.create_group("X")
        g.attrs["encoding-type"] = "csr_matrix"
        g.attrs["shape"] = np.array([N_CELLS, N_GENES], dtype=np.int64)
        g.create_dataset("data", data=data)
        g.create_dataset("indices", data=indices)
        g.create_dataset("indptr", data=indptr)

    h5ad(os.path.join(OUT, "h5py_unsorted.h5ad"), write_unsorted, {})
    expected("h5py_unsorted", unsorted.toarray(), {})  # toarray sums duplicates

    # ---- 10x
    genes_by_cells = sp.csc_matrix(counts.T)  # genes x cells, CSC: one column per cell
    tenx_v3(os.path.join(OUT, "tenx_v3.h5"), genes_by_cells)
    expected("tenx_v3", counts, {}, ids=gene_ids)
    with h5py.File(os.path.join(OUT, "tenx_v2.h5"), "w", libver="latest") as f:
        g = f.create_group("GRCh38")
        g.create_dataset("data", data=genes_by_cells.data.astype(np.int32))
        g.create_dataset("indices", data=genes_by_cells.indices.astype(np.int64))
        g.create_dataset("indptr", data=genes_by_cells.indptr.astype(np.int64))
        g.create_dataset("shape", data=np.array(genes_by_cells.shape, dtype=np.int32))
        g.create_dataset("barcodes", data=fixed(cell_names))
        g.create_dataset("genes", data=fixed(gene_ids))
        g.create_dataset("gene_names", data=fixed(gene_names))
    expected("tenx_v2", counts, {}, ids=gene_ids)

    # ---- malformed: a valid spec file with one defect each (the test checks the message for each)
    def sparse_x(**override):
        def write(f):
            g = write_sparse(f, "X", csr, "csr")
            for key, value in override.items():
                if key == "shape_attr":
                    g.attrs["shape"] = value
                elif key == "encoding":
                    g.attrs["encoding-type"] = value
                elif value is None:
                    del g[key]
                else:
                    del g[key]
                    g.create_dataset(key, data=value)
        return write

    good_indptr = csr.indptr.astype(np.int64)
    bad_indptr = good_indptr.copy()
    bad_indptr[2], bad_indptr[3] = bad_indptr[3], bad_indptr[2] - 1  # decreasing
    out_of_range = csr.indices.copy()
    out_of_range[1] = N_GENES
    nan_data = csr.data.copy()
    nan_data[0] = np.nan
    fractional = csr.data.copy()
    fractional[0] = 0.5
    negative = csr.data.copy()
    negative[0] = -1.0
    malformed = {
        "bad_no_x": lambda f: None,
        "bad_indptr_length": sparse_x(indptr=good_indptr[:-1]),
        "bad_indptr_decreasing": sparse_x(indptr=bad_indptr),
        "bad_indptr_end": sparse_x(indptr=np.append(good_indptr[:-1], good_indptr[-1] + 1)),
        "bad_indices_range": sparse_x(indices=out_of_range),
        "bad_indices_float": sparse_x(indices=csr.indices.astype(np.float64)),
        "bad_data_length": sparse_x(data=csr.data[:-1]),
        "bad_data_string": sparse_x(data=utf8(["x"] * len(csr.data))),
        "bad_data_nan": sparse_x(data=nan_data),
        "bad_data_fractional": sparse_x(data=fractional),
        "bad_data_negative": sparse_x(data=negative),
        "bad_no_indices": sparse_x(indices=None),
        "bad_shape_attr": sparse_x(shape_attr=np.array([N_CELLS], dtype=np.int64)),
        "bad_encoding": sparse_x(encoding="coo_matrix"),
        "bad_dense_3d": lambda f: f.create_dataset("X", data=np.zeros((2, 2, 2))),
        "bad_obs_rows": lambda f: write_sparse(f, "X", csr[: N_CELLS - 1], "csr"),  # obs keeps 6 cells
    }
    for name, writer in malformed.items():
        h5ad(os.path.join(OUT, name + ".h5ad"), writer, {"cell_type": (cats_ct, codes_ct)})
    bad_codes = codes_ct.copy()
    bad_codes[0] = len(cats_ct)
    h5ad(os.path.join(OUT, "bad_codes_range.h5ad"), sparse_x(), {"cell_type": (cats_ct, bad_codes)})
    h5ad(os.path.join(OUT, "bad_codes_length.h5ad"), sparse_x(), {"cell_type": (cats_ct, codes_ct[:-1])})
    tenx_v3(os.path.join(OUT, "bad_tenx_barcodes.h5"), genes_by_cells, barcodes=cell_names[:-1])
    tenx_v3(os.path.join(OUT, "bad_tenx_no_indptr.h5"), genes_by_cells, drop="indptr")
    with h5py.File(os.path.join(OUT, "bad_tenx_empty.h5"), "w", libver="latest") as f:
        f.attrs["note"] = "no matrix group"
    with open(os.path.join(OUT, "anndata_csr.h5ad"), "rb") as f:
        whole = f.read()
    with open(os.path.join(OUT, "bad_truncated.h5ad"), "wb") as f:
        f.write(whole[: len(whole) // 3])
    with open(os.path.join(OUT, "not_hdf5.h5ad"), "w") as f:
        f.write("this is not an HDF5 file\n")


if __name__ == "__main__":
    main()
