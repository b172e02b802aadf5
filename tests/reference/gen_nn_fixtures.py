#!/usr/bin/python3
"""Reference values for cellkit::nn (tests/nn/test_*.cpp), from PyTorch (float64, autograd).

Writes tests/reference/data/nn_*.txt in the 'case' format read by read_fixture_cases
(tests/support/test_support.hpp): a 'case p1 p2 ...' line, then named matrices, each a
'# name rows cols' line followed by its rows. Inputs are generated here with fixed seeds.

  - nn_dense.txt: torch.nn.functional.linear(x, W^T, b) and autograd of sum(Y * dY).
  - nn_activation.txt: relu, elu(alpha), sigmoid, softplus, exp, and the bounded heads
    clamp(exp(x), 1e-5, 1e6) / clamp(softplus(x), 1e-4, 1e4) (scDeepCluster's MeanAct/DispAct),
    values and autograd gradients.
  - nn_optimizer.txt: torch.optim.SGD / Adam / AdamW / Adadelta (PyTorch's single-tensor code
    paths, foreach=False) on one parameter over 6 steps with given gradients.
  - nn_clip.txt: torch.nn.utils.clip_grad_norm_ over two tensors.
Run: /usr/bin/python3 tests/reference/gen_nn_fixtures.py
"""
import os

import numpy as np
import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
torch.set_default_dtype(torch.float64)


def write_matrix(f, name, m):
    m = np.atleast_2d(np.asarray(m, dtype=np.float64))
    f.write(f"# {name} {m.shape[0]} {m.shape[1]}\n")
    for row in m:
        f.write(" ".join(repr(float(v)) for v in row) + "\n")


def dense_cases(f):
    rng = np.random.default_rng(7)
    for n, fin, fout, bias in [(5, 3, 4, 1), (1, 7, 2, 0), (300, 17, 9, 1), (2100, 2, 1, 1)]:
        x = rng.normal(size=(n, fin))
        w = rng.normal(size=(fin, fout))
        b = rng.normal(size=fout) if bias else np.zeros(fout)
        dy = rng.normal(size=(n, fout))
        xt = torch.tensor(x, requires_grad=True)
        wt = torch.tensor(w, requires_grad=True)
        bt = torch.tensor(b, requires_grad=True)
        y = torch.nn.functional.linear(xt, wt.T, bt if bias else None)
        (y * torch.tensor(dy)).sum().backward()
        f.write(f"case {n} {fin} {fout} {bias}\n")
        write_matrix(f, "x", x)
        write_matrix(f, "w", w)
        write_matrix(f, "b", b[None, :])
        write_matrix(f, "dy", dy)
        write_matrix(f, "y", y.detach().numpy())
        write_matrix(f, "dx", xt.grad.numpy())
        write_matrix(f, "dw", wt.grad.numpy())
        write_matrix(f, "db", bt.grad.numpy()[None, :] if bias else np.zeros((1, fout)))


ACTIVATIONS = [
    # id, parameter, function
    (0, 0.0, torch.relu),
    (1, 1.0, lambda x: torch.nn.functional.elu(x, alpha=1.0)),
    (1, 0.5, lambda x: torch.nn.functional.elu(x, alpha=0.5)),
    (2, 0.0, torch.sigmoid),
    (3, 0.0, lambda x: torch.nn.functional.softplus(x, threshold=1e300)),  # exact softplus, no x>20 shortcut
    (4, 0.0, torch.exp),
    (5, 0.0, lambda x: torch.clamp(torch.exp(x), min=1e-5, max=1e6)),
    (6, 0.0, lambda x: torch.clamp(torch.nn.functional.softplus(x, threshold=1e300), min=1e-4, max=1e4)),
]


def activation_cases(f):
    rng = np.random.default_rng(11)
    special = np.array([-800.0, -40.0, -12.0, -9.3, -3.0, -1e-9, 0.0, 1e-9, 0.5, 3.0, 13.0, 14.0, 30.0, 700.0])
    x = np.concatenate([special, rng.normal(scale=4.0, size=34)])
    # keep away from the clamp corners (kinks) where a finite difference and the one-sided derivative differ
    x = x.reshape(6, 8)
    dy = rng.normal(size=x.shape)
    for kind, param, fn in ACTIVATIONS:
        xt = torch.tensor(x, requires_grad=True)
        y = fn(xt)
        (y * torch.tensor(dy)).sum().backward()
        f.write(f"case {kind} {param}\n")
        write_matrix(f, "x", x)
        write_matrix(f, "dy", dy)
        write_matrix(f, "y", y.detach().numpy())
        write_matrix(f, "dx", xt.grad.numpy())


OPTIMIZERS = [
    # id (0 sgd, 1 adam, 2 adamw, 3 adadelta), lr, a, b, c, wd, flag, constructor
    (0, 0.1, 0.0, 0.0, 0.0, 0.0, 0, lambda p: torch.optim.SGD(p, lr=0.1)),
    (0, 0.05, 0.9, 0.1, 0.0, 0.01, 0, lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01)),
    (0, 0.05, 0.8, 0.0, 0.0, 0.0, 1, lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.8, nesterov=True)),
    (1, 1e-3, 0.9, 0.999, 1e-8, 0.0, 0, lambda p: torch.optim.Adam(p, lr=1e-3, foreach=False)),
    (1, 0.01, 0.8, 0.99, 1e-6, 0.1, 1,
     lambda p: torch.optim.Adam(p, lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1, amsgrad=True, foreach=False)),
    (2, 0.01, 0.9, 0.999, 1e-8, 0.05, 0,
     lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.05, foreach=False)),
    (3, 1.0, 0.95, 1e-6, 0.0, 0.0, 0, lambda p: torch.optim.Adadelta(p, lr=1.0, rho=0.95, foreach=False)),
    (3, 0.5, 0.9, 1e-4, 0.0, 0.02, 0,
     lambda p: torch.optim.Adadelta(p, lr=0.5, rho=0.9, eps=1e-4, weight_decay=0.02, foreach=False)),
]


def optimizer_cases(f):
    rng = np.random.default_rng(13)
    p0 = rng.normal(size=(3, 4))
    grads = [rng.normal(size=(3, 4)) * (1 + k) for k in range(6)]
    for kind, lr, a, b, c, wd, flag, make in OPTIMIZERS:
        p = torch.nn.Parameter(torch.tensor(p0))
        opt = make([p])
        f.write(f"case {kind} {lr} {a} {b} {c} {wd} {flag}\n")
        write_matrix(f, "p0", p0)
        for k, g in enumerate(grads):
            p.grad = torch.tensor(g)
            opt.step()
            write_matrix(f, f"g{k}", g)
            write_matrix(f, f"p{k + 1}", p.detach().numpy())


def clip_cases(f):
    rng = np.random.default_rng(17)
    for max_norm in [0.5, 3.0, 100.0]:
        g1 = rng.normal(size=(4, 3))
        g2 = rng.normal(size=(5, 1))
        a = torch.nn.Parameter(torch.zeros(4, 3))
        b = torch.nn.Parameter(torch.zeros(5, 1))
        a.grad = torch.tensor(g1)
        b.grad = torch.tensor(g2)
        norm = torch.nn.utils.clip_grad_norm_([a, b], max_norm)
        f.write(f"case {max_norm} {float(norm)}\n")
        write_matrix(f, "g1", g1)
        write_matrix(f, "g2", g2)
        write_matrix(f, "c1", a.grad.numpy())
        write_matrix(f, "c2", b.grad.numpy())


def main():
    os.makedirs(OUT, exist_ok=True)
    header = f"# generated by tests/reference/gen_nn_fixtures.py with torch {torch.__version__}\n"
    for name, fn in [("nn_dense.txt", dense_cases), ("nn_activation.txt", activation_cases),
                     ("nn_optimizer.txt", optimizer_cases), ("nn_clip.txt", clip_cases)]:
        with open(os.path.join(OUT, name), "w") as f:
            f.write(header)
            fn(f)


if __name__ == "__main__":
    main()
