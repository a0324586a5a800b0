"""Differentiable NAS engines, each usable on its own: `dnas.pit` (PIT), with cost models shared in `dnas.hw`."""
