"""Numba kernels printed from nnderive's derived expressions (see kernels/codegen.py)."""
