"""Batch kernels of every operator; importing this package registers them."""

from dataflows.kernels import builtin as builtin
from dataflows.kernels.base import KERNELS, Kernel, make_kernel, register

__all__ = ["KERNELS", "Kernel", "make_kernel", "register"]
