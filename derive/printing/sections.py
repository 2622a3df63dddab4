"""What a handout is made of, below the kinds: a section of items, and the order steps are shown in."""
from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Section:
    title: str
    items: tuple


def _steps(derivation, *classes):
    return [s for s in derivation.steps if isinstance(s, classes)]


def _natural_key(name: str) -> tuple:
    """What to compare for the natural order: ``grad_o12`` → (("grad_o#",), (12,)); with a layer first
    (``grad_h3[2]``), the layer belongs to the stem: (("grad_h#[#]", 3), (2,)) (layers keep their order)."""
    stem, nums = re.sub(r"\d+", "#", name), tuple(int(n) for n in re.findall(r"\d+", name))
    return ((stem,), nums) if len(nums) < 2 else ((stem, nums[0]), nums[1:])


def natural_order(steps) -> tuple:
    """The steps with siblings in their natural order (∂/∂o₁ before ∂/∂o₂), no step moved before one
    it reads: neighbours of the same stem and out of numeric order swap while neither reads the other."""
    out = list(steps)
    moved = True
    while moved:
        moved = False
        for k in range(len(out) - 1):
            a, b = out[k], out[k + 1]
            ka, kb = _natural_key(a.name), _natural_key(b.name)
            if ka[0] == kb[0] and kb[1] < ka[1] and a.name not in b.inputs and b.name not in a.inputs:
                out[k], out[k + 1] = b, a
                moved = True
    return tuple(out)
