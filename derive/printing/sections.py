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


@dataclass(frozen=True)
class Handout:
    """A handout: title, lines under it, sections of blocks, tables and drawings."""

    name: str
    title: str
    meta: tuple
    sections: tuple[Section, ...]

    def tex(self) -> str:
        from derive.printing.render import document_tex
        return document_tex(self)

    def markdown(self, figures: str | None = None) -> str:
        """Markdown; drawings as ``<figures>-figure<k>.svg`` (default: the handout's name), none with ""."""
        from derive.printing.render import document_md
        return document_md(self, figures)

    def figures(self) -> list:
        from derive.printing.tikz import Figure
        return [item for s in self.sections for item in s.items if isinstance(item, Figure)]

    def _repr_markdown_(self) -> str:
        return self.markdown()

    def _repr_latex_(self) -> str:
        """The handout's maths for Jupyter (MathJax shows maths, not a whole document)."""
        from derive.printing.latex import Block
        from derive.printing.render import math_rows
        chains = [c for s in self.sections for item in s.items if isinstance(item, Block) for c in item.chains]
        return "$$\\begin{aligned}\n" + math_rows(chains, 90) + "\n\\end{aligned}$$"
