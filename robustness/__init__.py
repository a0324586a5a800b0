"""Robustness NAS (FlatNAS): flatness of the loss landscape, `top1_robust`, corruptions and mCE, SAM training.

- `robustness.flatness`: the FlatNAS flatness measure (`robustness`) of a network on a split.
- `robustness.corruptions`: the 15 CIFAR-10-C corruptions at 5 severities, generated at any resolution.
- `robustness.ood`: corrupted test sets (generated, Hendrycks `.npy` files or ImageNet-C folders) and mCE.
- `robustness.sam`: the SAM / ASAM optimiser used by the fine-tuning loop (`--optim sam|asam`).
- `python -m robustness.evaluate`: a chosen network's mCE and flatness, written to its `net.stats`.

The package imports nothing at load time, so that `training` can use `robustness.sam` without a cycle.
"""
