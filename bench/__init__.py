"""Benchmarks that print and save numbers (JSON plus a markdown table in bench/README.md)."""
