"""Benchmarks, each a script: ``python bench/<name>.py`` (``--quick`` for a smoke run).

Shared helpers are in :mod:`bench.common`; the peer systems of ``bench/peers.py`` in
:mod:`bench.systems`. Results are written under ``bench/results/``.
"""
