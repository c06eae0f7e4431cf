"""Factor analysis of alphas (see :mod:`qmtl.factor.api`)."""
