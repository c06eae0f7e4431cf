"""Dataflows: compiling strategy graphs to Bytewax, kernels, returns, metrics operators."""
