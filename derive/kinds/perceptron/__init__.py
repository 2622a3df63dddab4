"""The `[perceptron]` kind: threshold units, truth tables and the perceptron learning rule."""
from derive.core.plugin import Kind
from derive.kinds.perceptron.derivation import Perceptron, derive_perceptron, load_perceptron
from derive.kinds.perceptron.mistakes import MAKERS
from derive.kinds.perceptron.printing import notation, sections

KIND = Kind("perceptron", load_perceptron, derive_perceptron, Perceptron, sections, notation, mistakes=MAKERS)
