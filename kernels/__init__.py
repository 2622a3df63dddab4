"""Numba kernels printed from nnderive's derived expressions (docs/kernels.md).

``kernels.compile(spec)`` returns an object with ``forward``, ``loss_and_grad``, ``sgd_step``,
``many_sgd_step``, ``trace`` and ``.source``.  Importing this package imports neither Numba nor
SymPy; ``compile`` does.
"""
from __future__ import annotations


def compile(spec, *, dtype="float64", shape: str = "auto", cache_dir=None):
    """Kernels for a spec (see :func:`kernels.api.compile`)."""
    from .api import compile as _compile
    return _compile(spec, dtype=dtype, shape=shape, cache_dir=cache_dir)


def __getattr__(name):
    if name in ("NonFiniteError", "NetworkKernel", "GraphKernel"):
        from . import api
        return getattr(api, name)
    raise AttributeError(name)
