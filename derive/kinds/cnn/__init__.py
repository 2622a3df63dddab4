"""The `[cnn]` kind: convolution, pooling and dense layers, element by element (docs/cnn.md)."""
from derive.core.plugin import Kind
from derive.kinds.cnn.spec import Cnn, load_cnn
from derive.kinds.cnn.derivation import derive_cnn

KIND = Kind("cnn", load_cnn, derive_cnn, Cnn, printing="derive.kinds.cnn.printing")
