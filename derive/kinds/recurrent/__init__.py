"""The `[recurrent]` kind: an Elman RNN or an LSTM cell unrolled over time (docs/recurrent.md)."""
from derive.core.plugin import Kind
from derive.kinds.recurrent.derivation import Recurrent, derive_recurrent, load_recurrent

KIND = Kind("recurrent", load_recurrent, derive_recurrent, Recurrent, printing="derive.kinds.recurrent.printing")
