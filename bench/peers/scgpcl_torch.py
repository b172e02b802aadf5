#!/usr/bin/python3
"""PyTorch (CPU) peer of examples/scgpcl/ for its InfoNCE + ZINB pre-training step (seconds per epoch;
quality of the pre-trained representation as the ARI / NMI of k-means on it).

Data and preparation: those of dec_zinb_torch.py (imported from it: read_labels, preprocess; same genes,
cells, size factors s_i as examples/common/counts.hpp). The cell-gene graph has an edge (i, g) for
every expressed gene with weight w_ig = log1p(C_ig / s_i) (scipy CSR), as scgpcl::build_graph.

Model (float32; nn.Linear: xavier_uniform_ weights, zero biases; gene embedding N(0, 1) as nn.Embedding):
  views    per mini-batch and view: gene nodes kept with probability --gene-keep (0.8), gene-embedding
           columns and cell-feature columns (genes) zeroed with probability --feature-drop (0.2)
           (torch.rand; cellkit draws from Philox, so the masks differ but have the same law)
  encoder  graph layer relu(m W_m + b + x~ W_r) (256) with m_i = sum_g w_ig E~_g / ||w_i||_2 over the
           cell's kept genes (torch.sparse.mm of the batch's CSR slice, rows at unit norm, as COO) and
           x~_i the cell's scaled log expression (dec_zinb_torch's X) with the masked columns zeroed;
           then Linear(256, 64) = h
  decoder  h -> Linear(64, 256) -> ReLU -> mean / dispersion / dropout heads (dec_zinb_torch's
           activations and zinb_loss)
  loss     lambda1 * scGPCL's ins_contrastive_loss(h, h'; tau = 0.25) + (ZINB(view) + ZINB(view')) / 2,
           the two views stacked through the network as in the C++ model (one pass of 2B rows)
  optimiser AdamW(lr 1e-3, weight_decay 1e-4); batches of 256, reshuffled every epoch

Timing: seconds per epoch of the training steps (view construction included, k-means excluded), the
mean over --epochs epochs; the C++ side prints the same quantity with
`scgpcl DATA --pretrain-only --pretrain-epochs N`. Threads: --threads T (default 2) as in
dec_zinb_torch.py (set before the imports); run with OMP_WAIT_POLICY=PASSIVE on a shared machine.

Output: progress on stderr, one JSON object on stdout (dataset, seed, cells, genes, epochs, epoch_s,
epoch_s_min, losses, kmeans ARI / NMI of the pre-trained representation).

Usage: scgpcl_torch.py --data DIR [--epochs N] [--seed S] [--threads T] [--gene-keep P] [--feature-drop P]
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dec_zinb_torch as dz  # noqa: E402  (sets the thread variables from --threads before torch loads)

import json  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import scipy.io  # noqa: E402
import scipy.sparse as sp  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from sklearn.cluster import KMeans  # noqa: E402
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score  # noqa: E402

TAU = 0.25
LAMBDA1 = 1.0
EMBEDDING = 64
HIDDEN = 256
LATENT = 64


def log(msg):
    print(msg, file=sys.stderr, flush=True)


class Scgpcl(nn.Module):
    def __init__(self, genes):
        super().__init__()
        self.gene_embedding = nn.Parameter(torch.randn(genes, EMBEDDING))
        self.message = dz.linear(EMBEDDING, HIDDEN)
        self.root = nn.Linear(genes, HIDDEN, bias=False)
        nn.init.xavier_uniform_(self.root.weight)
        self.encoder = nn.Sequential(nn.ReLU(), dz.linear(HIDDEN, LATENT))
        self.decoder = nn.Sequential(dz.linear(LATENT, HIDDEN), nn.ReLU())
        self.dec_mean = dz.linear(HIDDEN, genes)
        self.dec_disp = dz.linear(HIDDEN, genes)
        self.dec_pi = dz.linear(HIDDEN, genes)

    def encode(self, graphs, embedding_masks, features):
        messages = [torch.sparse.mm(g, self.gene_embedding * m) for g, m in zip(graphs, embedding_masks)]
        return self.encoder(self.message(torch.cat(messages, 0)) + self.root(features))

    def decode(self, h):
        d = self.decoder(h)
        mean = torch.clamp(torch.exp(self.dec_mean(d)), 1e-5, 1e6)
        disp = torch.clamp(F.softplus(self.dec_disp(d)), 1e-4, 1e4)
        pi = torch.sigmoid(self.dec_pi(d))
        return mean, disp, pi


def ins_contrastive_loss(rep1, rep2, tau):
    """scGPCL's instance loss (models/scGPCL.py, ins_contrastive_loss): NT-Xent over both views."""
    n = rep1.size(0)
    pos_mask = torch.eye(n, dtype=torch.float32)
    neg_mask = 1 - pos_mask
    feats = torch.cat((F.normalize(rep1, dim=1), F.normalize(rep2, dim=1)), 0)
    logits = feats @ feats.T / tau
    logits_max, _ = torch.max(logits, dim=1, keepdim=True)
    logits = logits - logits_max.detach()
    pos_mask = pos_mask.repeat(2, 2)
    neg_mask = neg_mask.repeat(2, 2)
    logits_mask = torch.scatter(torch.ones_like(pos_mask), 1, torch.arange(2 * n).view(-1, 1), 0)
    pos_mask = pos_mask * logits_mask
    exp_logits = torch.exp(logits) * logits_mask * (neg_mask + pos_mask)
    log_prob = logits - torch.log(exp_logits.sum(1, keepdim=True))
    mean_log_prob_pos = (pos_mask * log_prob).sum(1) / pos_mask.sum(1)
    return (-mean_log_prob_pos).view(2, n).mean()


def view_graph(expression, idx, keep_p, gen):
    """The batch's rows of the cell-gene graph restricted to the kept genes, rows at unit norm."""
    keep = (torch.rand(expression.shape[1], generator=gen) < keep_p).numpy()
    sub = expression[idx]
    sub = sub.multiply(keep[None, :].astype(np.float32)).tocsr()
    sub.eliminate_zeros()
    totals = np.sqrt(np.asarray(sub.multiply(sub).sum(1)).ravel())
    sub = sp.diags(np.where(totals > 0, 1.0 / np.where(totals > 0, totals, 1.0), 0.0).astype(np.float32)) @ sub
    coo = sub.tocoo()
    return torch.sparse_coo_tensor(np.vstack([coo.row, coo.col]), coo.data.astype(np.float32), coo.shape).coalesce()


def run(args):
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    out = {"dataset": os.path.basename(os.path.normpath(args.data)), "seed": args.seed}
    counts = scipy.io.mmread(os.path.join(args.data, "counts.mtx.gz")).tocsr().astype(np.float32)
    counts.eliminate_zeros()
    labels_path = os.path.join(args.data, "labels.tsv")
    labels_all = dz.read_labels(labels_path) if os.path.exists(labels_path) else None
    X, C, s, cells, genes, dropped = dz.preprocess(counts)
    n, g = C.shape
    expression = sp.csr_matrix(np.log1p(C / s[:, None]).astype(np.float32))
    out.update(cells=int(n), genes=int(g), nnz=int(expression.nnz))
    log(f"{out['dataset']}: {n} cells x {g} genes, {expression.nnz} edges")

    X, C, s = torch.from_numpy(X), torch.from_numpy(C), torch.from_numpy(s)
    model = Scgpcl(g)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    epoch_times, losses = [], []
    for epoch in range(args.epochs):
        t = time.perf_counter()
        tz = ti = 0.0
        for idx in dz.batches(n, gen):  # batches of dz.BATCH = 256
            rows = idx.numpy()
            graphs = [view_graph(expression, rows, args.gene_keep, gen) for _ in range(2)]
            masks = [(torch.rand(EMBEDDING, generator=gen) >= args.feature_drop).float() for _ in range(2)]
            xb = X[idx]
            features = torch.cat([xb * (torch.rand(g, generator=gen) >= args.feature_drop).float() for _ in range(2)])
            h = model.encode(graphs, masks, features)
            mean, disp, pi = model.decode(h)
            cb = C[idx]
            rec = dz.zinb_loss(torch.cat((cb, cb), 0), mean, disp, pi, torch.cat((s[idx], s[idx]), 0))
            ins = ins_contrastive_loss(h[: len(rows)], h[len(rows):], TAU)
            loss = rec + LAMBDA1 * ins
            opt.zero_grad()
            loss.backward()
            opt.step()
            tz += rec.item() * len(rows)
            ti += ins.item() * len(rows)
        epoch_times.append(time.perf_counter() - t)
        losses.append((tz / n, ti / n))
        log(f"pretrain epoch {epoch + 1}: ZINB {tz / n:.5f} InfoNCE {ti / n:.5f} ({epoch_times[-1]:.2f} s)")
    out["epochs"] = args.epochs
    out["epoch_s"] = float(np.mean(epoch_times))
    out["epoch_s_min"] = float(np.min(epoch_times))
    out["final_zinb"], out["final_infonce"] = losses[-1]
    with torch.no_grad():
        norms = np.sqrt(np.asarray(expression.multiply(expression).sum(1)).ravel())
        coo = (sp.diags((1.0 / norms).astype(np.float32)) @ expression).tocoo()
        m = torch.sparse_coo_tensor(np.vstack([coo.row, coo.col]), coo.data, coo.shape)
        h = model.encode([m], [torch.ones(EMBEDDING)], X).numpy()
    if labels_all is not None:
        truth = labels_all[cells]
        k = int(np.unique(truth).size)
        km = KMeans(n_clusters=k, n_init=20, random_state=args.seed).fit(h)
        out["kmeans_ari"] = adjusted_rand_score(truth, km.labels_)
        out["kmeans_nmi"] = normalized_mutual_info_score(truth, km.labels_)
        log(f"k-means on the pre-trained representation: ARI {out['kmeans_ari']:.4f} NMI {out['kmeans_nmi']:.4f}")
    out["threads"] = args.threads
    out["torch"] = torch.__version__
    log(f"{out['epoch_s']:.3f} s per epoch (min {out['epoch_s_min']:.3f})")
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="dataset folder (counts.mtx.gz, labels.tsv, manifest.json)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--gene-keep", type=float, default=0.8)
    parser.add_argument("--feature-drop", type=float, default=0.2)
    args = parser.parse_args()
    print(json.dumps(run(args)), flush=True)


if __name__ == "__main__":
    main()
