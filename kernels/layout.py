"""Where each quantity lives in a flat float array (no SymPy, no Numba: the warm path reads this).

Parameters of a network are one contiguous vector ``theta``: for each layer ``W{l}`` (shape
(out, in), row-major, like ``torch.nn.Linear.weight``) then ``b{l}``.  ``views`` gives NumPy views
into it, so an in-place SGD step on ``theta`` updates every view.
"""
from __future__ import annotations

from dataclasses import dataclass
from math import prod

import numpy as np


@dataclass(frozen=True)
class Slot:
    name: str
    shape: tuple[int, ...]
    offset: int

    @property
    def size(self) -> int:
        return prod(self.shape)


@dataclass(frozen=True)
class Layout:
    """Named slots, back to back."""

    slots: tuple[Slot, ...]

    @classmethod
    def of(cls, named_shapes) -> "Layout":
        slots, offset = [], 0
        for name, shape in named_shapes:
            slots.append(Slot(name, tuple(shape), offset))
            offset += prod(shape)
        return cls(tuple(slots))

    @property
    def size(self) -> int:
        return sum(s.size for s in self.slots)

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.slots]

    def slot(self, name: str) -> Slot:
        for s in self.slots:
            if s.name == name:
                return s
        raise KeyError(name)

    def views(self, flat: np.ndarray) -> dict[str, np.ndarray]:
        """Views of ``flat`` (last axis), one per slot; a leading axis of problems is kept."""
        lead = flat.shape[:-1]
        return {s.name: flat[..., s.offset:s.offset + s.size].reshape(lead + s.shape) for s in self.slots}

    def to_json(self) -> list:
        return [[s.name, list(s.shape), s.offset] for s in self.slots]

    @classmethod
    def from_json(cls, data) -> "Layout":
        return cls(tuple(Slot(str(n), tuple(int(d) for d in shape), int(off)) for n, shape, off in data))
