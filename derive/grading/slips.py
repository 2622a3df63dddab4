"""Naming the slips in a wrong formula that one known mistake does not explain.

Three searches, all bounded so that a wrong answer costs little more than a right one:

* **Two slips** (:func:`pair`): the answer equals the derivation with two of its mistaken variants
  (:mod:`derive.core.mistakes`, at two different steps) applied together.  Only a pool of variants is
  paired: the ``PAIR_POOL`` = 15 nearest the answered quantity (its own step first, then the steps
  it is computed from), plus the sign flips of a difference anywhere in its chain (ŷ − y written
  y − ŷ, the commonest slip; one per output).  A pool of n costs at most n(n − 1)/2 extra
  comparisons: 16 variants and 120 pairs on the 3-3-3-3 network, 17 and 136 on the 2-2-2 graph
  (its largest), each usually settled at its first random point (a pair that does not explain the
  answer differs there).  A number is compared with the pairs of a pool of
  ``PAIR_POOL_NUMBERS`` = 12 nearest (plus the sign flips): at most 78 pairs on those examples,
  since a number agrees with a variant only to its printed digits and more pairs would mean more
  chance matches.
* **Products whose shapes do not fit** (:func:`repaired`): an answer such as ``W² δ³`` on a
  non-square layer cannot be multiplied out; it is read again with each fix of each misfit
  (``Aᵀ B``, ``A Bᵀ``, ``A ⊙ B``; at most ``MAX_REPAIRS`` readings), and a fix that gives the right
  formula (or the right formula with one known mistake) is named as the slip: "used W² where W²ᵀ
  is needed", "a matrix product where the element-wise product ⊙ is needed".
* **A layer quantity the answer may not use** (:func:`neighbour`): ``W³ᵀ δ² ⊙ σ′(z²)`` for δ²
  uses δ² itself; when the same quantity of the next or previous layer gives the right formula,
  the slip is named ("used δ² where δ³ is needed") instead of refusing the answer.
"""
from __future__ import annotations

import itertools
from typing import Any, Callable

import sympy as sp

from derive.verify import decide as equiv
from derive.core.algebra import _is_mat
from derive.core.mistakes import Mistake
from derive.grading.parse import LatexError, parse_answer
from derive.grading.readlatex import Repairs, repairing

PAIR_POOL = 15
PAIR_POOL_NUMBERS = 12    # a number agrees with a pair only to its printed digits: fewer pairs, fewer chance matches
MAX_REPAIRS = 12


def relevant(p: Any, targets: set) -> list[Mistake]:
    """The mistakes at the target's own step or a step it depends on, nearest first."""
    out = []
    for m in sorted(p.mistakes, key=lambda m: -p.order[p.derivation.quantity(m.step).symbols()[0]]):
        syms = set(p.derivation.step(m.step).target.symbols())
        if targets & syms or _depends(p, targets, syms):
            out.append(m)
    return out


def pool_of(candidates: list[Mistake], size: int) -> list[Mistake]:
    """The ``size`` variants nearest the answer, and the sign flips of a difference (ŷ − y written
    y − ŷ: the commonest slip, wherever it is in the chain)."""
    near = candidates[:size]
    return near + [m for m in candidates[size:] if m.label.startswith("sign flipped")]


def pair(p: Any, value: Any, target: Any, seed: int) -> tuple[Mistake, Mistake] | None:
    """Two mistakes at different steps that together give ``value`` (see the module's docstring)."""
    targets = set(target) if _is_mat(target) else {target}
    pool = pool_of(relevant(p, targets), PAIR_POOL)
    for m1, m2 in itertools.combinations(pool, 2):
        if m1.step == m2.step:
            continue
        alt = {}
        for m in (m1, m2):
            alt.update(zip(p.derivation.step(m.step).target.symbols(), m.exprs))
        if equiv.matches(p.ctx, value, alt, target, seed):
            return m1, m2
    return None


def _describe(p: Any, fix: str, a: Any, b: Any) -> str:
    if fix == "hadamard":
        return "a matrix product where the element-wise product ⊙ is needed"
    m = a if fix == "transpose_left" else b
    name = _quantity_of(p, m)
    if name is None:
        side = "left" if fix == "transpose_left" else "right"
        return f"the {side} factor of a product of shapes {a.rows}x{a.cols} and {b.rows}x{b.cols} needs a transpose"
    plain, transposed = (name, name + "ᵀ") if m == p.derivation.quantity(name).matrix() else (name + "ᵀ", name)
    return f"used {plain} where {transposed} is needed"


def _quantity_of(p: Any, m: Any) -> str | None:
    """The quantity whose matrix (or transposed matrix) ``m`` is, if it is one."""
    first = next(iter(m), None)
    if not isinstance(first, sp.Symbol):
        return None
    name = first.name.split("[")[0]
    if name not in p.derivation:
        return None
    q = p.derivation.quantity(name).matrix()
    return name if m in (q, q.T) else None


def repaired(p: Any, text: str, target: Any, seed: int, single: Callable, misuse: Callable
             ) -> tuple[str, Any] | None:
    """(the slips named, the repaired value) for an answer whose products do not fit, when fixing
    them gives the right formula or one known mistake (``single(value)`` names it); else None.
    ``misuse(value)`` says why a reading uses names it may not (then it is not a fix)."""
    shape = target.shape if _is_mat(target) else (1, 1)
    seen, queue, tried = {()}, [()], 0
    while queue and tried < MAX_REPAIRS:
        choices = queue.pop(0)
        tried += 1
        r = Repairs(choices)
        try:
            with repairing(r):
                value = parse_answer(text, p.vocab)
        except (LatexError, ValueError, TypeError, ArithmeticError):
            value = None
        used = tuple(choices[j] if j < len(choices) else 0 for j in range(len(r.options)))
        for k, n in enumerate(r.options):      # the other fixes of each misfit met on this reading
            for c in range(n):
                nxt = used[:k] + (c,)
                if c != used[k] and nxt not in seen:
                    seen.add(nxt)
                    queue.append(nxt)
        if value is None or not r.made:
            continue
        if (value.shape if _is_mat(value) else (1, 1)) != shape or misuse(value):
            continue
        fixes = "; ".join(dict.fromkeys(_describe(p, *made) for made in r.made))
        try:
            decision = equiv.decide(p.ctx, value, target, seed)
        except (OverflowError, ValueError, TypeError, ArithmeticError, RecursionError):
            continue
        if decision.verdict == equiv.EQUIVALENT:
            return fixes, value
        if decision.verdict == equiv.NOT_EQUIVALENT:
            label = single(value)
            if label:
                return f"{fixes}; and {label}", value
    return None


def neighbour(p: Any, value: Any, target: Any, seed: int, misuse: Callable, allowed: set) -> str | None:
    """"used δ² where δ³ is needed" when an answer that may not use a layer quantity (δ² in δ²'s own
    formula, h² in z²'s) is the right formula with it taken from the next or previous layer; None
    otherwise.  At most two readings per quantity the answer may not use."""
    import re
    free = value.free_symbols if not _is_mat(value) else set().union(*(e.free_symbols for e in value))
    names = sorted({p.step_of[x].name for x in free - allowed if x in p.step_of})
    for name in names:
        m = re.fullmatch(r"([A-Za-z_]+?)(\d+)", name)
        if m is None:
            continue
        q = p.derivation.quantity(name)
        for k in (int(m.group(2)) + 1, int(m.group(2)) - 1):
            other = f"{m.group(1)}{k}"
            if other not in p.derivation or p.derivation.quantity(other).shape != q.shape:
                continue
            swap = dict(zip(q.symbols(), p.derivation.quantity(other).symbols()))
            v2 = value.xreplace(swap)
            if misuse(v2):
                continue
            try:
                if equiv.decide(p.ctx, v2, target, seed).verdict == equiv.EQUIVALENT:
                    return f"used {name} where {other} is needed"
            except (OverflowError, ValueError, TypeError, ArithmeticError, RecursionError):
                continue
    return None


def _depends(p: Any, targets: set, syms: set) -> bool:
    """Whether a target element is computed, step by step, from one of ``syms``."""
    seen, stack = set(), [s for t in targets for s in p.deps.get(t, ())]
    while stack:
        s = stack.pop()
        if s in syms:
            return True
        if s in seen:
            continue
        seen.add(s)
        stack.extend(p.deps.get(s, ()))
    return False
