"""Differentiable NAS engines over one façade (`dnas.base.DNAS`): `dnas.pit`, `dnas.darts`, `dnas.fbnetv2`.

Their costs come from `hw`, by cost-model name (see README.md).
"""
