#!/usr/bin/python3
"""PyTorch (CPU) reference of a scDeepCluster-style DEC-ZINB model, the peer of examples/dec_zinb/
(quality: ARI / NMI; wall time per phase).

Data: --data DIR with counts.mtx.gz (Matrix Market, cells x genes, raw counts), labels.tsv (header line
`cell_index  label_int  label_name`, one row per cell; label_int is used) and manifest.json (a warning
is printed when it says raw_counts: false; the model is meant for raw counts).

Preprocessing (NumPy / SciPy, float32 matrices), in this order:
  1. drop genes with zero total count, then cells with zero total count;
  2. more than 2000 genes left: keep the 2000 highly variable genes of scanpy 1.9's
     highly_variable_genes(flavor='seurat', n_top_genes=2000) on log1p(normalize_total(counts)) (target:
     median total): mean and var (ddof=1, float64) of expm1 of the log data, dispersion = var / mean,
     log dispersion (0 -> NaN), log1p(mean), 20 equal-width bins of log1p(mean) (pandas.cut), z-score of
     the log dispersion within its bin (NaN skipped; a one-gene bin gets centre 0 and scale = its mean),
     cut-off = the 2000th largest finite normalised dispersion, genes with nan_to_num(norm) >= cut-off
     (ties can keep a few more than 2000, as in scanpy); statistics in float64. Same genes as
     tests/reference/gen_preprocess_fixtures.py's re-implementation (used by the other peers) on
     baron_mouse1, mouse_bladder_cell_select_2100 and worm_neuron_cell;
     after the selection, cells whose total over the kept genes is 0 are dropped (reported in
     "cells_dropped_after_hvg"; the size factors below would be 0 otherwise);
  3. C = raw counts of the kept genes; size factors s_i = total_i / median(total) (totals over kept genes);
  4. X = log1p(C / s_i), each gene scaled to zero mean and unit variance (population std, ddof=0; a gene
     with zero variance gets 0).
  K = number of distinct labels (of the kept cells).

Model (every nn.Linear: xavier_uniform_ weights, zero biases; float32):
  encoder  G -> 256 -> ReLU -> 64 -> ReLU -> 32 (z, no activation)
  decoder  32 -> 64 -> ReLU -> 256 -> ReLU, heads from the 256-d hidden:
           mean = clamp(exp(Linear), 1e-5, 1e6), disp = clamp(softplus(Linear), 1e-4, 1e4),
           pi = sigmoid(Linear)
  reconstruction path (training only): encoder(X + 2.5 * randn) -> decoder
  ZINB loss: scDeepCluster's ZINBLoss (eps = 1e-10, ridge 0), mean over all elements of the batch, with
             mu = s_i * mean
  soft assignment: Student-t, alpha = 1, on the noise-free z; target p = q^2 / f_j (f_j = column sums
             of q over ALL cells, once per epoch, detached), rows normalised; KL(P||Q) batchmean.

Training:
  pre-train  Adam(lr=1e-3), batch 256 (shuffled each epoch, last partial batch kept), --pretrain-epochs
             (300), loss = ZINB of the noisy-input reconstruction;
  init       sklearn KMeans(K, n_init=20, random_state=seed) on the noise-free latent of all cells;
  fine-tune  Adadelta(lr=1.0, rho=0.95) over the network parameters and the centroids; per epoch: q of
             all cells (noise-free, no grad), p, y_pred = argmax q; stop when epoch > 0 and the fraction
             of labels changed since the previous epoch < 0.001; else mini-batches (256, shuffled):
             loss = ZINB(noisy reconstruction) + gamma * KL(P_batch || Q_batch), gamma = 1, Q from the
             noise-free encoder of the batch. --max-epochs (200).
  final labels = argmax q of the noise-free encoder after training.
  "finetune_epochs" counts the epochs that ran mini-batch updates (the epoch that detects convergence
  runs none); "finetune_converged" says whether the tolerance stopped it.

Output: progress on stderr (every 10 epochs and the last), one JSON object on stdout: dataset, seed,
cells, genes, k, ari, nmi, read_s, preprocess_s, pretrain_s, kmeans_s, finetune_s, train_s
(= pretrain + kmeans + finetune), per-epoch times, finetune_epochs, threads, and a few extras.
--latent-out PATH writes the final latent (cells x 32) as TSV.
Threads: --threads T (default 2) sets OMP/OPENBLAS/MKL_NUM_THREADS before the imports (KMeans) and
torch.set_num_threads(T). On a busy machine (more runnable processes than cores) libgomp's default
spin-waiting makes torch with 2 threads up to ~10x slower per step than with 1; run with
OMP_WAIT_POLICY=PASSIVE there (the script leaves the policy to the environment), or time on a quiet
machine.

Usage: dec_zinb_torch.py --data DIR [--seed S] [--threads T] [--pretrain-epochs N] [--max-epochs N]
                         [--latent-out PATH]
"""

import argparse
import os
import sys


def _threads_from_argv():
    for i, a in enumerate(sys.argv):
        if a == "--threads" and i + 1 < len(sys.argv):
            return sys.argv[i + 1]
        if a.startswith("--threads="):
            return a.split("=", 1)[1]
    return "2"


_THREADS = _threads_from_argv()
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = _THREADS

import json  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import scipy.io  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from sklearn.cluster import KMeans  # noqa: E402
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score  # noqa: E402

N_HVG = 2000
SIGMA = 2.5
GAMMA = 1.0
ALPHA = 1.0
BATCH = 256
TOL = 0.001


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---- data ----------------------------------------------------------------------------------------


def read_labels(path):
    """labels.tsv: header, then cell_index, label_int, label_name."""
    with open(path) as f:
        header = f.readline().rstrip("\n").split("\t")
        col = header.index("label_int") if "label_int" in header else 1
        return np.array([int(line.rstrip("\n").split("\t")[col]) for line in f if line.strip()])


def pd_cut_equal_width(values, n_bins):
    """pd.cut(values, bins=n_bins).codes (right-closed), pandas 1.5."""
    mn, mx = values.min(), values.max()
    if mn == mx:
        mn -= 0.001 * abs(mn) if mn != 0 else 0.001
        mx += 0.001 * abs(mx) if mx != 0 else 0.001
        bins = np.linspace(mn, mx, n_bins + 1, endpoint=True)
    else:
        bins = np.linspace(mn, mx, n_bins + 1, endpoint=True)
        bins[0] -= (mx - mn) * 0.001
    return np.searchsorted(bins, values, side="left") - 1


def seurat_hvg(counts, n_top, n_bins=20):
    """scanpy 1.9 normalize_total (median) -> log1p -> highly_variable_genes(flavor='seurat', n_top_genes)
    on a CSR count matrix; returns the sorted indices of the selected genes. Computed in float64 as
    tests/reference/gen_preprocess_fixtures.py does (scanpy on float32 data can swap a near-tie gene at
    the cut-off: 1 of 2000 on baron_mouse1)."""
    n = counts.shape[0]
    x = counts.astype(np.float64)
    totals = np.asarray(x.sum(1)).ravel()
    after = np.median(totals[totals > 0])
    c = (totals + (totals == 0)) / after
    x.data = x.data * np.repeat(1.0 / c, np.diff(x.indptr))
    d = np.expm1(np.log1p(x.data))  # flavor='seurat' works on expm1 of the log data
    s1 = np.bincount(x.indices, weights=d, minlength=x.shape[1])
    s2 = np.bincount(x.indices, weights=d * d, minlength=x.shape[1])
    mean = s1 / n
    var = np.maximum(s2 / n - mean**2, 0.0) * (n / (n - 1))
    mean[mean == 0] = 1e-12
    dispersion = var / mean
    dispersion[dispersion == 0] = np.nan
    dispersion = np.log(dispersion)
    mean = np.log1p(mean)
    codes = pd_cut_equal_width(mean, n_bins)
    centre = np.full(n_bins, np.nan)
    scale = np.full(n_bins, np.nan)
    for b in range(n_bins):
        grp = dispersion[(codes == b) & ~np.isnan(dispersion)]
        m = grp.mean() if grp.size else np.nan
        s = grp.std(ddof=1) if grp.size >= 2 else np.nan
        if np.isnan(s):  # one gene in the bin: std <- mean, mean <- 0 (scanpy)
            centre[b], scale[b] = 0.0, m
        else:
            centre[b], scale[b] = m, s
    norm = (dispersion - centre[codes]) / scale[codes]
    finite = np.sort(norm[~np.isnan(norm)])[::-1]
    cut = finite[min(n_top, finite.size) - 1]
    return np.flatnonzero(np.nan_to_num(norm) >= cut)


def preprocess(counts):
    """counts: CSR float32 (cells x genes). Returns X (scaled log data), C (raw counts), s (size factors),
    kept cell indices, kept gene indices, cells dropped after HVG."""
    genes = np.flatnonzero(np.asarray(counts.sum(0)).ravel() > 0)
    x = counts[:, genes].tocsr()
    cells = np.flatnonzero(np.asarray(x.sum(1)).ravel() > 0)
    x = x[cells]
    dropped = 0
    if x.shape[1] > N_HVG:
        sel = seurat_hvg(x, N_HVG)
        genes = genes[sel]
        x = x[:, sel].tocsr()
        keep = np.flatnonzero(np.asarray(x.sum(1)).ravel() > 0)
        dropped = x.shape[0] - keep.size
        if dropped:
            cells, x = cells[keep], x[keep]
    C = x.toarray().astype(np.float32)
    totals = C.sum(1, dtype=np.float64)
    s = (totals / np.median(totals)).astype(np.float32)
    X = np.log1p(C / s[:, None]).astype(np.float32)
    mu = X.mean(0, dtype=np.float64)
    sd = X.std(0, dtype=np.float64)
    X = np.where(sd > 0, (X - mu) / np.where(sd > 0, sd, 1.0), 0.0).astype(np.float32)
    return X, C, s, cells, genes, dropped


# ---- model ---------------------------------------------------------------------------------------


def linear(i, o):
    layer = nn.Linear(i, o)
    nn.init.xavier_uniform_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class DecZinb(nn.Module):
    def __init__(self, g, hidden=(256, 64), latent=32):
        super().__init__()
        h1, h2 = hidden
        self.encoder = nn.Sequential(linear(g, h1), nn.ReLU(), linear(h1, h2), nn.ReLU(), linear(h2, latent))
        self.decoder = nn.Sequential(linear(latent, h2), nn.ReLU(), linear(h2, h1), nn.ReLU())
        self.dec_mean = linear(h1, g)
        self.dec_disp = linear(h1, g)
        self.dec_pi = linear(h1, g)
        self.mu = None  # centroids, nn.Parameter after k-means

    def decode(self, z):
        h = self.decoder(z)
        mean = torch.clamp(torch.exp(self.dec_mean(h)), 1e-5, 1e6)
        disp = torch.clamp(F.softplus(self.dec_disp(h)), 1e-4, 1e4)
        pi = torch.sigmoid(self.dec_pi(h))
        return mean, disp, pi

    def reconstruct_noisy(self, x):
        return self.decode(self.encoder(x + torch.randn_like(x) * SIGMA))

    def soft_assign(self, z):
        d2 = torch.sum((z.unsqueeze(1) - self.mu) ** 2, dim=2)
        q = 1.0 / (1.0 + d2 / ALPHA)
        q = q ** ((ALPHA + 1.0) / 2.0)
        return q / torch.sum(q, dim=1, keepdim=True)


def zinb_loss(x, mean, disp, pi, scale_factor):
    """scDeepCluster's ZINBLoss (ridge_lambda = 0): mean of -log ZINB over all elements."""
    eps = 1e-10
    mean = mean * scale_factor[:, None]
    t1 = torch.lgamma(disp + eps) + torch.lgamma(x + 1.0) - torch.lgamma(x + disp + eps)
    t2 = (disp + x) * torch.log(1.0 + (mean / (disp + eps))) + (x * (torch.log(disp + eps) - torch.log(mean + eps)))
    nb_case = t1 + t2 - torch.log(1.0 - pi + eps)
    zero_nb = torch.pow(disp / (disp + mean + eps), disp)
    zero_case = -torch.log(pi + ((1.0 - pi) * zero_nb) + eps)
    return torch.mean(torch.where(torch.le(x, 1e-8), zero_case, nb_case))


def target_distribution(q):
    p = q**2 / q.sum(0)
    return (p.t() / p.sum(1)).t()


def batches(n, gen):
    perm = torch.randperm(n, generator=gen)
    return [perm[i:i + BATCH] for i in range(0, n, BATCH)]


# ---- run -----------------------------------------------------------------------------------------


def run(args):
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)  # mini-batch order
    out = {"dataset": os.path.basename(os.path.normpath(args.data)), "seed": args.seed}

    manifest = os.path.join(args.data, "manifest.json")
    if os.path.exists(manifest):
        with open(manifest) as f:
            if json.load(f).get("raw_counts") is False:
                log("warning: manifest says raw_counts: false; the ZINB model expects raw counts")

    t = time.perf_counter()
    counts = scipy.io.mmread(os.path.join(args.data, "counts.mtx.gz")).tocsr().astype(np.float32)
    counts.eliminate_zeros()
    labels_all = read_labels(os.path.join(args.data, "labels.tsv"))
    out["read_s"] = time.perf_counter() - t
    out["cells_in"], out["genes_in"] = map(int, counts.shape)

    t = time.perf_counter()
    X, C, s, cells, genes, dropped = preprocess(counts)
    out["preprocess_s"] = time.perf_counter() - t
    truth = labels_all[cells]
    k = int(np.unique(truth).size)
    n, g = X.shape
    out.update(cells=int(n), genes=int(g), k=k, hvg="seurat" if out["genes_in"] > N_HVG else "none",
               cells_dropped_after_hvg=int(dropped))
    log(f"{out['dataset']}: {n} cells x {g} genes, K = {k}, preprocessing {out['preprocess_s']:.2f} s")

    X, C, s = torch.from_numpy(X), torch.from_numpy(C), torch.from_numpy(s)
    model = DecZinb(g)

    # pre-training
    t = time.perf_counter()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    for epoch in range(args.pretrain_epochs):
        total = 0.0
        for idx in batches(n, gen):
            mean, disp, pi = model.reconstruct_noisy(X[idx])
            loss = zinb_loss(C[idx], mean, disp, pi, s[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * idx.numel()
        if (epoch + 1) % 10 == 0 or epoch + 1 == args.pretrain_epochs:
            log(f"pretrain epoch {epoch + 1}: ZINB {total / n:.6f} ({time.perf_counter() - t:.1f} s)")
    out["pretrain_s"] = time.perf_counter() - t
    out["pretrain_final_loss"] = total / n if args.pretrain_epochs else None

    # k-means initialisation of the centroids
    t = time.perf_counter()
    with torch.no_grad():
        z = model.encoder(X)
    km = KMeans(n_clusters=k, n_init=20, random_state=args.seed).fit(z.numpy())
    model.mu = nn.Parameter(torch.tensor(km.cluster_centers_, dtype=torch.float32))
    y_last = km.labels_.copy()
    out["kmeans_s"] = time.perf_counter() - t
    out["kmeans_ari"] = adjusted_rand_score(truth, km.labels_)
    out["kmeans_nmi"] = normalized_mutual_info_score(truth, km.labels_)
    log(f"k-means init: ARI {out['kmeans_ari']:.4f} NMI {out['kmeans_nmi']:.4f} ({out['kmeans_s']:.2f} s)")

    # fine-tuning
    t = time.perf_counter()
    opt = torch.optim.Adadelta(model.parameters(), lr=1.0, rho=0.95)
    epochs, converged = 0, False
    for epoch in range(args.max_epochs):
        with torch.no_grad():
            q = model.soft_assign(model.encoder(X))
            p = target_distribution(q)
        y_pred = torch.argmax(q, dim=1).numpy()
        delta = float(np.sum(y_pred != y_last)) / n
        y_last = y_pred
        if epoch > 0 and delta < TOL:
            converged = True
            log(f"finetune epoch {epoch + 1}: delta_label {delta:.6f} < {TOL}, stop")
            break
        tz = tk = 0.0
        for idx in batches(n, gen):
            xb = X[idx]
            mean, disp, pi = model.reconstruct_noisy(xb)
            qb = model.soft_assign(model.encoder(xb))
            rec = zinb_loss(C[idx], mean, disp, pi, s[idx])
            kl = F.kl_div(torch.log(qb), p[idx], reduction="batchmean")  # sum p log(p / q), mean over cells
            loss = rec + GAMMA * kl
            opt.zero_grad()
            loss.backward()
            opt.step()
            tz += rec.item() * idx.numel()
            tk += kl.item() * idx.numel()
        epochs += 1
        if (epoch + 1) % 10 == 0 or epoch + 1 == args.max_epochs:
            log(f"finetune epoch {epoch + 1}: ZINB {tz / n:.6f} KL {tk / n:.6f} delta_label {delta:.6f} "
                f"ARI(start of epoch) {adjusted_rand_score(truth, y_pred):.4f} ({time.perf_counter() - t:.1f} s)")
    out["finetune_s"] = time.perf_counter() - t

    with torch.no_grad():
        z = model.encoder(X)
        y = torch.argmax(model.soft_assign(z), dim=1).numpy()
    out["ari"] = adjusted_rand_score(truth, y)
    out["nmi"] = normalized_mutual_info_score(truth, y)
    out["train_s"] = out["pretrain_s"] + out["kmeans_s"] + out["finetune_s"]
    out["pretrain_epochs"] = args.pretrain_epochs
    out["pretrain_epoch_s"] = out["pretrain_s"] / args.pretrain_epochs if args.pretrain_epochs else None
    out["finetune_epochs"] = epochs
    out["finetune_converged"] = converged
    out["finetune_epoch_s"] = out["finetune_s"] / max(epochs, 1)
    out["clusters_used"] = int(np.unique(y).size)
    out["threads"] = args.threads
    out["torch"] = torch.__version__
    if args.latent_out:
        np.savetxt(args.latent_out, z.numpy(), delimiter="\t", fmt="%.7g")
    log(f"final: ARI {out['ari']:.4f} NMI {out['nmi']:.4f}, train {out['train_s']:.1f} s")
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="dataset folder (counts.mtx.gz, labels.tsv, manifest.json)")
    parser.add_argument("--seed", type=int, default=0, help="seeds torch, numpy and KMeans")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--pretrain-epochs", type=int, default=300)
    parser.add_argument("--max-epochs", type=int, default=200)
    parser.add_argument("--latent-out", help="write the final latent (cells x 32) as TSV")
    args = parser.parse_args()
    print(json.dumps(run(args)), flush=True)


if __name__ == "__main__":
    main()
