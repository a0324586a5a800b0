"""`mlp`: upstream's small multi-layer perceptron (two hidden layers of 300, ReLU, dropout 0.2, SmoothL1, Adam).

Trained full-batch on the CPU, with early stopping on a held-out 20 % of the data: training stops after `patience`
epochs without a better validation loss and the best weights are restored. Targets are standardised.

Determinism without touching torch's global random state: one `torch.Generator` seeded from `seed` draws the
initial weights (PyTorch's default `U(±1/sqrt(fan_in))`), the validation split and every dropout mask (dropout
is a small module that samples from that generator instead of the global one).

Threads: training runs with one torch intra-op thread, set for the duration of `fit` and `predict` and restored
afterwards (the network is far too small to gain from more, and on shared cores several threads are an order of
magnitude slower); torch's global thread setting is left as it was.

Encoding: `"onehot"` (one input per choice of each gene, 138 inputs for OFA MobileNetV3) is the default because it
predicted better: held-out Kendall tau 0.76 against 0.60 for `"scaled"` (each gene mapped to [0, 1]) on a smooth,
mostly monotone synthetic OFA target, and 0.62 against 0.20 on one with per-choice effects, from 100 training
architectures. With one input per choice, the first layer can give every choice its own weight instead of
squeezing a gene's effect through one slope.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from acc_predictor.base import MIN_CV_POINTS, Predictor
from acc_predictor.registry import register_predictor

ENCODINGS = ("scaled", "onehot")


@register_predictor("mlp", help="two-hidden-layer perceptron", min_points=MIN_CV_POINTS)
class MLPPredictor(Predictor):
    """Two-hidden-layer ReLU perceptron with dropout, trained with Adam and early stopping on a 20 % hold-out."""

    name = "mlp"

    def __init__(
        self,
        xl: np.ndarray,
        xu: np.ndarray,
        seed: int = 0,
        cv_folds: int = 5,
        hidden: int = 300,
        dropout: float = 0.2,
        lr: float = 8e-4,
        max_epochs: int = 1000,
        patience: int = 50,
        val_fraction: float = 0.2,
        encoding: str = "onehot",
    ) -> None:
        super().__init__(xl, xu, seed=seed, cv_folds=cv_folds)
        if encoding not in ENCODINGS:
            raise ValueError(f"encoding must be one of {ENCODINGS}, got {encoding!r}")
        if hidden < 1 or max_epochs < 1 or patience < 1:
            raise ValueError("hidden, max_epochs and patience must be positive")
        if not (0.0 <= dropout < 1.0 and 0.0 <= val_fraction < 1.0 and lr > 0):
            raise ValueError("dropout and val_fraction must lie in [0, 1) and lr must be positive")
        self.hidden = int(hidden)
        self.dropout = float(dropout)
        self.lr = float(lr)
        self.max_epochs = int(max_epochs)
        self.patience = int(patience)
        self.val_fraction = float(val_fraction)
        self.encoding = encoding
        self.net: nn.Module | None = None
        self.epochs_run = 0
        self._y_mean = 0.0
        self._y_std = 1.0

    def _features(self, x: np.ndarray) -> torch.Tensor:
        if self.encoding == "scaled":
            feats = self.scale(x)
        else:
            sizes = (self.xu - self.xl + 1).astype(int)
            offsets = np.concatenate(([0], np.cumsum(sizes)[:-1]))
            feats = np.zeros((len(x), int(sizes.sum())))
            cols = offsets + (x - self.xl).astype(int)
            feats[np.arange(len(x))[:, None], cols] = 1.0
        return torch.as_tensor(feats, dtype=torch.float32)

    def _fit(self, x: np.ndarray, y: np.ndarray) -> None:
        with _one_torch_thread():
            self._train(x, y)

    def _train(self, x: np.ndarray, y: np.ndarray) -> None:
        gen = torch.Generator().manual_seed(self.seed)
        feats = self._features(x)
        self._y_mean = float(y.mean())
        self._y_std = float(y.std()) or 1.0
        target = torch.as_tensor((y - self._y_mean) / self._y_std, dtype=torch.float32)[:, None]

        n = len(x)
        n_val = round(self.val_fraction * n) if n >= 5 else 0
        order = torch.randperm(n, generator=gen)
        val, train = order[:n_val], order[n_val:]

        net = _build(feats.shape[1], self.hidden, self.dropout, gen)
        opt = torch.optim.Adam(net.parameters(), lr=self.lr)
        loss_fn = nn.SmoothL1Loss()
        best_loss, best_state, since_best = math.inf, None, 0
        self.epochs_run = 0
        for _ in range(self.max_epochs):
            self.epochs_run += 1
            net.train()
            opt.zero_grad()
            loss = loss_fn(net(feats[train]), target[train])
            loss.backward()
            opt.step()
            if n_val == 0:
                continue
            net.eval()
            with torch.no_grad():
                val_loss = float(loss_fn(net(feats[val]), target[val]))
            if val_loss < best_loss:
                best_loss, since_best = val_loss, 0
                best_state = {k: v.clone() for k, v in net.state_dict().items()}
            else:
                since_best += 1
                if since_best >= self.patience:
                    break
        if best_state is not None:
            net.load_state_dict(best_state)
        net.eval()
        self.net = net

    def _predict(self, x: np.ndarray) -> np.ndarray:
        assert self.net is not None
        with _one_torch_thread(), torch.no_grad():
            out = self.net(self._features(x))[:, 0].double().numpy()
        return out * self._y_std + self._y_mean


@contextmanager
def _one_torch_thread() -> Iterator[None]:
    """Run the body with one torch intra-op thread, then restore the previous setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class _SeededDropout(nn.Module):
    """Inverted dropout whose masks come from a given generator rather than torch's global one."""

    def __init__(self, p: float, generator: torch.Generator) -> None:
        super().__init__()
        self.p = p
        self.generator = generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Zero each element with probability `p` in training (scaling the rest by 1/(1-p)); identity in eval."""
        if not self.training or self.p == 0.0:
            return x
        keep = torch.rand(x.shape, generator=self.generator) >= self.p
        return x * keep / (1.0 - self.p)


def _build(n_in: int, hidden: int, dropout: float, gen: torch.Generator) -> nn.Sequential:
    """The network with PyTorch's default `nn.Linear` initialisation drawn from `gen`."""
    layers: list[nn.Module] = []
    widths = [n_in, hidden, hidden]
    for a, b in itertools.pairwise(widths):
        layers += [_linear(a, b, gen), nn.ReLU(), _SeededDropout(dropout, gen)]
    layers.append(_linear(hidden, 1, gen))
    return nn.Sequential(*layers)


def _linear(n_in: int, n_out: int, gen: torch.Generator) -> nn.Linear:
    """`nn.Linear` with weights and bias drawn from U(±1/sqrt(n_in)) by `gen` (what its default init amounts to)."""
    layer = nn.utils.skip_init(nn.Linear, n_in, n_out)  # no default init: that would draw from the global RNG
    bound = 1.0 / math.sqrt(n_in)
    with torch.no_grad():
        layer.weight.uniform_(-bound, bound, generator=gen)
        layer.bias.uniform_(-bound, bound, generator=gen)
    return layer
