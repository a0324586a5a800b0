"""`Architect`: Adam steps on the architecture parameters from validation batches, with a resource penalty.

First order: the gradient of the validation objective at the current weights. Unrolled (second order, as in DARTS):
the gradient at the weights after one virtual SGD step `w' = w - eta (momentum v + dL_train/dw + weight_decay w)`,
`dL_val(w', a)/da - eta d2L_train/(da dw) dL_val/dw'`, the Hessian-vector product by central finite differences.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.func import functional_call

from dnas.darts.model_search_cnn import NetworkSearchCnn
from hw import COST_MODELS
from utils.errors import UsageError

UPSTREAM_MODES = {"Memory": "params", "Compute": "macs"}
"""The upstream `nas_optimization_mode` names and the `hw` cost models they stand for."""


def optimization_modes() -> list[str]:
    """Every `nas_optimization_mode`: `none`, the upstream `Memory` / `Compute`, and every `hw` cost model name."""
    return ["none", *UPSTREAM_MODES, *COST_MODELS.names()]


def mode_cost(mode: str) -> str | None:
    """The `hw` cost model a `nas_optimization_mode` penalises (None for `none`); unknown modes are a `UsageError`."""
    if mode not in optimization_modes():
        raise UsageError(f"unknown nas_optimization_mode {mode!r}; choose one of: {', '.join(optimization_modes())}")
    return None if mode == "none" else COST_MODELS.entry(UPSTREAM_MODES.get(mode, mode)).name


@dataclass(frozen=True)
class ResourcePenalty:
    """`weight · cost / reference` where `cost` is the expected cost of the candidates under `mode`.

    `mode` is `none`, `Memory` (parameters), `Compute` (MACs) or any `hw` cost model name. With a `budget` (in the
    cost model's unit: parameters for `Memory`, MACs per sample for `Compute`) the reference is the budget and only
    the excess counts: `weight · max(0, cost / budget - 1)`. Without one the reference is the expected cost at
    uniform alphas, so `weight` weighs a relative cost change against the validation loss.
    """

    mode: str = "none"
    weight: float = 1.0
    budget: float | None = None

    def __post_init__(self) -> None:
        mode_cost(self.mode)
        if self.weight < 0 or (self.budget is not None and self.budget <= 0):
            raise UsageError(f"resource_weight must be >= 0 and resource_budget > 0, got {self.weight}, {self.budget}")

    def __call__(self, model: NetworkSearchCnn) -> Tensor:
        """The penalty of `model`'s current alphas (differentiable in them)."""
        regularizer = mode_cost(self.mode)
        if regularizer is None:
            return model.alphas_normal.new_zeros(())
        cost = model.expected_cost(regularizer)
        if self.budget is not None:
            return self.weight * F.relu(cost / self.budget - 1.0)
        return self.weight * cost / model.expected_cost(regularizer, uniform=True)


def _grad(loss: Tensor, tensors: list[Tensor]) -> list[Tensor]:
    """Gradients of `loss`, zeros for tensors it does not use (the normal alphas of a net without normal cells)."""
    return list(torch.autograd.grad(loss, tensors, allow_unused=True, materialize_grads=True))


def beta_decay(model: NetworkSearchCnn) -> Tensor:
    """beta-DARTS regularisation: the mean over edges of `logsumexp(alphas)`, which keeps the alphas from growing."""
    return torch.cat([torch.logsumexp(a, dim=-1) for a in model.arch_parameters()]).mean()


class Architect:
    """Updates `model`'s alphas with Adam (betas 0.5, 0.999, as DARTS) on the validation objective.

    The objective is `cross_entropy + penalty(model) + beta_weight · beta_decay(model)`. `momentum` and
    `weight_decay` must be those of the weights' SGD optimiser (they enter the unrolled virtual step);
    `hessian_radius` sets the finite-difference step `eps = hessian_radius / |vector|` (DARTS uses 0.01; a smaller
    one is more exact in double precision).
    """

    def __init__(
        self,
        model: NetworkSearchCnn,
        *,
        arch_learning_rate: float = 3e-4,
        arch_weight_decay: float = 1e-3,
        unrolled: bool = False,
        momentum: float = 0.9,
        weight_decay: float = 3e-4,
        penalty: ResourcePenalty | None = None,
        beta_weight: float = 0.0,
        hessian_radius: float = 1e-2,
    ) -> None:
        self.model = model
        self.hessian_radius = hessian_radius
        self.unrolled = unrolled
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.penalty = penalty or ResourcePenalty()
        self.beta_weight = beta_weight
        self.optimizer = torch.optim.Adam(
            model.arch_parameters(), lr=arch_learning_rate, betas=(0.5, 0.999), weight_decay=arch_weight_decay
        )

    def regularization(self) -> Tensor:
        """The terms of the objective that depend on the alphas only: resource penalty and beta decay."""
        return self.penalty(self.model) + self.beta_weight * beta_decay(self.model)

    def objective(self, x: Tensor, y: Tensor) -> Tensor:
        """The validation objective at the current weights."""
        return F.cross_entropy(self.model(x), y) + self.regularization()

    def step(
        self,
        x_train: Tensor,
        y_train: Tensor,
        x_valid: Tensor,
        y_valid: Tensor,
        eta: float,
        network_optimizer: torch.optim.Optimizer,
    ) -> None:
        """One Adam step on the alphas (`eta`: the weights' current learning rate, for the unrolled step)."""
        grads = self.gradients(x_train, y_train, x_valid, y_valid, eta, network_optimizer)
        for alpha, grad in zip(self.model.arch_parameters(), grads, strict=True):
            alpha.grad = grad
        self.optimizer.step()

    def gradients(
        self,
        x_train: Tensor,
        y_train: Tensor,
        x_valid: Tensor,
        y_valid: Tensor,
        eta: float,
        network_optimizer: torch.optim.Optimizer,
    ) -> list[Tensor]:
        """The gradient of the validation objective in the alphas, first order or unrolled."""
        alphas = self.model.arch_parameters()
        if not self.unrolled:
            return _grad(self.objective(x_valid, y_valid), alphas)
        names, weights = self._weights()
        virtual = self._virtual_step(weights, x_train, y_train, eta, network_optimizer)
        logits = functional_call(self.model, dict(zip(names, virtual, strict=True)), (x_valid,))
        loss = F.cross_entropy(logits, y_valid) + self.regularization()
        grads = _grad(loss, [*alphas, *virtual])
        direct, vector = grads[: len(alphas)], grads[len(alphas) :]
        hessian = self._hessian_vector(weights, vector, x_train, y_train)
        return [d - eta * h for d, h in zip(direct, hessian, strict=True)]

    def _weights(self) -> tuple[list[str], list[Tensor]]:
        arch = {id(a) for a in self.model.arch_parameters()}
        pairs = [(n, p) for n, p in self.model.named_parameters() if id(p) not in arch]
        return [n for n, _ in pairs], [p for _, p in pairs]

    def _virtual_step(
        self,
        weights: list[Tensor],
        x: Tensor,
        y: Tensor,
        eta: float,
        network_optimizer: torch.optim.Optimizer,
    ) -> list[Tensor]:
        """`w - eta (momentum v + dL_train/dw + weight_decay w)`, detached, as leaves requiring grad."""
        grads = _grad(F.cross_entropy(self.model(x), y), weights)
        virtual = []
        for w, g in zip(weights, grads, strict=True):
            buffer = network_optimizer.state.get(w, {}).get("momentum_buffer")
            moment = self.momentum * buffer if buffer is not None else torch.zeros_like(w)
            virtual.append((w - eta * (moment + g + self.weight_decay * w)).detach().requires_grad_())
        return virtual

    def _hessian_vector(self, weights: list[Tensor], vector: list[Tensor], x: Tensor, y: Tensor) -> list[Tensor]:
        """`d2L_train/(da dw) · vector` by central differences at `w ± eps · vector`."""
        eps = self.hessian_radius / torch.cat([v.flatten() for v in vector]).norm().clamp_min(1e-12)
        alphas = self.model.arch_parameters()
        originals = [w.detach().clone() for w in weights]
        sides = []
        for sign in (1.0, -1.0):
            with torch.no_grad():
                for w, w0, v in zip(weights, originals, vector, strict=True):
                    w.copy_(w0 + sign * eps * v)
            sides.append(_grad(F.cross_entropy(self.model(x), y), alphas))
        with torch.no_grad():
            for w, w0 in zip(weights, originals, strict=True):
                w.copy_(w0)
        return [(p - m) / (2 * eps) for p, m in zip(*sides, strict=True)]
