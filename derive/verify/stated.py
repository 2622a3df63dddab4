"""Verdicts for stated numbers, computed with the engine's exact arithmetic.

For a number printed with ``d`` decimals:

* ``exact``: ``|stated − true| ≤ ½·10^−d`` (the true value rounds to it; a tie counts either way);
* ``carried``: not exact, but within ``½·10^−d`` of the value recomputed from the *stated* values of
  its inputs (:func:`derive.core.evaluate.carry`): the slide's, or the student's, own rounded intermediates;
* ``wrong``: neither.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass

import sympy as sp

from derive.kinds import derive
from derive.core.errors import SpecError
from derive.core.evaluate import PRECISIONS, Num, Undecided, carry, evaluate, precision, within
from derive.core.numbers import Stated
from derive.core.spec import Spec, Statement
from derive.core.steps import Derivation

EXACT, CARRIED, WRONG = "exact", "carried", "wrong"


@dataclass(frozen=True)
class Record:
    quantity: str
    index: tuple[int, ...] | None
    stated: Stated
    value: Num
    carried: Num | None  # None when no stated number feeds this quantity
    verdict: str
    frame: str = ""


@dataclass(frozen=True)
class Report:
    name: str
    title: str
    source: str
    records: tuple[Record, ...]
    claims: tuple = ()
    notes: str = ""

    def count(self, verdict: str) -> int:
        return sum(r.verdict == verdict for r in self.records) + sum(c.verdict == verdict for c in self.claims)

    @property
    def failed(self) -> bool:
        return any(r.verdict == WRONG for r in self.records) or any(c.verdict == "differs" for c in self.claims)


def verdict(stated: Stated, value: Num, carried: Num | None) -> str:
    if within(value, stated.value, stated.half_ulp):
        return EXACT
    if carried is not None and within(carried, stated.value, stated.half_ulp):
        return CARRIED
    return WRONG


MAX_LISTED = 40


def unknown_quantity(name: str, derivation: Derivation) -> str:
    """The message for a name that is no quantity: the closest names, else the names there are."""
    names = list(dict.fromkeys(derivation.names + [a for a, _ in derivation.aliases]))
    hint = difflib.get_close_matches(name, names, n=3)
    if hint:
        return f"unknown quantity {name!r}; did you mean {', '.join(hint)}?"
    listed = ", ".join(names[:MAX_LISTED]) + (f", … ({len(names)} in all)" if len(names) > MAX_LISTED else "")
    return f"unknown quantity {name!r} (the quantities: {listed})"


def resolve(derivation: Derivation, st: Statement) -> sp.Symbol:
    """The element symbol a statement refers to, or a SpecError naming its key path."""
    if st.quantity not in derivation:
        raise SpecError(st.path, unknown_quantity(st.quantity, derivation))
    q = derivation.quantity(st.quantity)
    index = st.index or ()
    if index == () and q.shape == (1,):
        index = (0,)
    if len(index) != len(q.shape):
        what = "a scalar" if not q.shape else f"of shape {'x'.join(map(str, q.shape))}"
        raise SpecError(st.path, f"{st.quantity} is {what}; the stated value has {len(index)} indices")
    if st.written is not None and st.written != q.shape:     # a list shorter or longer than the quantity
        row = len(st.written) == len(q.shape) == 2 and st.written[0] == q.shape[0]
        where = st.path.rsplit("[", 1 if row or len(st.written) == 1 else 2)[0]   # the list, or its bad row
        raise SpecError(where, f"{st.quantity} {_shape(q.shape)}; the stated list {_shape(st.written)} "
                               f"(write \"\" for an entry that was not printed)")
    for i, n in zip(index, q.shape):
        if not 0 <= i < n:
            raise SpecError(st.path, f"index {i} out of range for {st.quantity} of shape {q.shape}")
    return q.symbol(index)


def _shape(shape: tuple[int, ...]) -> str:
    return f"is {shape[0]} x {shape[1]}" if len(shape) == 2 else f"has {shape[0]} numbers" if shape else "is a scalar"


def check_statements(derivation: Derivation, values, statements, frame: str = "",
                     base: dict | None = None, bits: int = PRECISIONS[0]) -> list[Record]:
    """Records for ``statements``; ``base`` holds other stated values that feed the recomputation."""
    symbols = [resolve(derivation, st) for st in statements]
    stated = dict(base or {})
    stated.update({sym: st.stated.value for sym, st in zip(symbols, statements)})
    for sym, st in zip(symbols, statements):
        if not isinstance(values[sym], Num):
            raise SpecError(st.path, f"{st.quantity} is symbolic here; a stated number needs numeric inputs")
    carried, touched = carry(derivation, values, stated, bits)
    records = []
    with precision(bits):
        for sym, st in zip(symbols, statements):
            c = carried[sym] if sym in touched else None
            records.append(Record(st.quantity, st.index, st.stated, values[sym], c,
                                  verdict(st.stated, values[sym], c), frame))
    return records


def _records(spec: Spec, derivation: Derivation, bits: int) -> list[Record]:
    if not (spec.stated or spec.frames):
        return []
    values = evaluate(derivation, bits=bits)
    records = check_statements(derivation, values, spec.stated, bits=bits)
    base = {resolve(derivation, st): st.stated.value for st in spec.stated}
    for frame in spec.frames:
        records += check_statements(derivation, values, frame.statements, frame.label, base, bits)
    return records


def verify_spec(spec: Spec) -> Report:
    """Every stated number of the spec with its verdict, and every claim with its proof status."""
    from derive.verify.claims import check_claims

    derivation = derive(spec)
    records: list[Record] = []
    if derivation is not None:
        for bits in PRECISIONS:
            try:
                records = _records(spec, derivation, bits)
                break
            except Undecided:
                if bits == PRECISIONS[-1]:
                    raise
    elif spec.stated or spec.frames:
        raise SpecError("stated", "stated numbers need a [network] or [graph]")
    return Report(spec.name, spec.title, spec.source, tuple(records), tuple(check_claims(spec, derivation)),
                  spec.notes)
