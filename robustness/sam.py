"""Sharpness-aware minimisation: SAM (Foret et al., ICLR 2021) and adaptive SAM, ASAM (Kwon et al., ICML 2021).

SAM minimises the worst loss in a neighbourhood of radius `rho` around the weights instead of the loss at them.
Each step takes two gradients: `g` at the weights `w`, then `g'` at the point of (first-order) highest loss nearby,
`w + e(w)` with `e(w) = rho * T^2 g / ||T g||`, the norm taken over all parameters together; the base optimiser
then updates `w` with `g'`. SAM's neighbourhood is a ball (`T = I`); ASAM's is scaled elementwise by the weights
(`T = |w|`), so that its sharpness does not change when a layer's weights are rescaled (which leaves a ReLU or
batch-normalised network's function unchanged).

    optimizer = SAM(model.parameters(), lambda groups: torch.optim.SGD(groups, lr=0.1), rho=0.05)
    loss_fn(model(x), y).backward()  # g at w
    optimizer.first_step()  # w -> w + e(w)
    optimizer.zero_grad()
    loss_fn(model(x), y).backward()  # g' at w + e(w)
    optimizer.second_step()  # back to w, then the base optimiser's step with g'
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

BaseOptimizer = Callable[[list[dict[str, Any]]], torch.optim.Optimizer]
"""Builds the base optimiser over the parameter groups it is given (the SAM optimiser's own, shared)."""


class SAM(torch.optim.Optimizer):
    """SAM (or, with `adaptive`, ASAM) around a base optimiser built by `base` over the same parameter groups.

    The groups are shared: a learning-rate scheduler on the SAM optimiser drives the base optimiser, and a group may
    set its own `rho` and `adaptive`. `state_dict` is the base optimiser's (its momentum buffers, say), with the
    groups' `rho` and `adaptive`. Parameters without a gradient are neither perturbed nor updated.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        base: BaseOptimizer,
        *,
        rho: float = 0.05,
        adaptive: bool = False,
    ) -> None:
        if not rho > 0:
            raise ValueError(f"SAM needs rho > 0, got {rho}")
        super().__init__(params, {"rho": rho, "adaptive": adaptive})
        self.base = base(self.param_groups)
        self._link()
        self._origin: dict[torch.Tensor, torch.Tensor] = {}  # w of each perturbed parameter, until second_step

    def _link(self) -> None:
        """Share the base optimiser's groups and state (again after it loaded a state dict, which replaces them)."""
        for group in self.base.param_groups:
            for key, value in self.defaults.items():
                group.setdefault(key, value)
        self.param_groups = self.base.param_groups
        self.state = self.base.state

    def _perturbation(self, p: torch.Tensor, group: dict[str, Any]) -> torch.Tensor:
        """`T^2 g` of parameter `p` (without the common factor `rho / ||T g||`)."""
        assert p.grad is not None
        return p.grad * p.square() if group["adaptive"] else p.grad

    def _grad_norm(self) -> torch.Tensor:
        """`||T g||` over every parameter with a gradient (0 when there is none)."""
        norms = [
            (p.grad * p.abs() if group["adaptive"] else p.grad).norm(2)
            for group in self.param_groups
            for p in group["params"]
            if p.grad is not None
        ]
        if not norms:
            return torch.zeros(())
        return torch.stack([n.to(norms[0]) for n in norms]).norm(2)

    @torch.no_grad()
    def first_step(self) -> None:
        """Move each parameter with a gradient from `w` to `w + e(w)`, remembering `w` for `second_step`.

        A zero gradient (`||T g|| = 0`) leaves the weights where they are.
        """
        if self._origin:
            raise RuntimeError("SAM.first_step called twice without second_step in between")
        norm = self._grad_norm()
        for group in self.param_groups:
            scale = torch.where(norm > 0, group["rho"] / norm, torch.zeros_like(norm))
            for p in group["params"]:
                if p.grad is None:
                    continue
                self._origin[p] = p.detach().clone()
                p.add_(self._perturbation(p, group) * scale.to(p.device, p.dtype))

    @torch.no_grad()
    def second_step(self) -> None:
        """Put every perturbed parameter back at `w`, then take the base optimiser's step with the current gradient.

        That gradient is the one computed at `w + e(w)` after `first_step`.
        """
        for p, w in self._origin.items():
            p.copy_(w)
        self._origin.clear()
        self.base.step()

    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor:  # type: ignore[override]
        """One whole SAM step, the gradient at `w` being already in place (the caller's first backward pass).

        `closure` re-evaluates the loss on the same batch and backpropagates it (`loss = f(model(x), y);
        loss.backward(); return loss`); it is called at `w + e(w)`, with the gradients zeroed before. Returns its
        loss (the one at the perturbed point).
        """
        if closure is None:
            raise ValueError("SAM.step needs a closure that re-evaluates the loss and backpropagates it")
        self.first_step()
        self.zero_grad(set_to_none=True)
        with torch.enable_grad():
            loss = closure()
        self.second_step()
        return loss

    def state_dict(self) -> dict[str, Any]:
        """The base optimiser's state dict (its groups carry `rho` and `adaptive`)."""
        return self.base.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Continue from a `state_dict()`; its groups' settings win, as in torch.

        A bare base optimiser's state dict loads too, its groups taking this optimiser's `rho` and `adaptive`.
        """
        self.base.load_state_dict(state_dict)
        self._link()
