"""nnderive: derive backpropagation symbolically, then check numbers and formulas against it.

The pieces, each small: ``primitives`` (the registry), ``spec`` (load and validate spec files),
``graph`` (scalar computational graph), ``backprop`` (the derivation as step records),
``evaluate`` (exact and certified values), ``verify`` (verdicts for stated numbers), ``claims``
(formula checks), ``cli`` (the ``nnderive`` command).  Importing this package does not import Numba.
"""

__version__ = "0.1.0"
