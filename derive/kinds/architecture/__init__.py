"""The `[architecture]` kind: parameter counts from layer sizes alone."""
from derive.core.plugin import Kind
from derive.kinds.architecture.derivation import Architecture, derive_architecture, load_architecture, notation

KIND = Kind("architecture", load_architecture, derive_architecture, Architecture, None, notation)
