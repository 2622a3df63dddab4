"""The `[matrices]` kind: symbolic matrices and nodes in the claim language, gradients element by element."""
from derive.core.plugin import Kind
from derive.kinds.matrices.derivation import Matrices, derive_matrices, load_matrices, notation

KIND = Kind("matrices", load_matrices, derive_matrices, Matrices, None, notation)
