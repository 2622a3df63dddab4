"""Grading of one submission against one problem: answer files, numeric verdicts, LaTeX verdicts.

Numeric verdicts, for an answer printed with ``d`` decimals when ``a`` are asked
(tolerances are half a unit in the last place, decided exactly or by certified enclosures):

* ``correct``: within ``½·10^−a`` of the true value (more digits are fine when they are right);
* ``precision``: the true value rounded (or truncated) to the student's own ``d ≠ a`` decimals,
  with ``a − d`` at most the policy's ``precision_window``;
* ``carried``: within ``½·10^−min(d, a)`` of the value recomputed through the derivation from the
  student's *own* earlier answers (:func:`derive.core.evaluate.carry`): error carried forward;
* ``wrong``: none of these.  The feedback names a mistaken variant of the derivation
  (:mod:`derive.core.mistakes` and the kind's own) that reproduces the number, or else the step that defines it.

A LaTeX answer is parsed by :mod:`derive.grading.parse` and compared by :mod:`derive.verify.decide`:
``correct`` (equivalent), ``wrong`` (not equivalent), ``undetermined``, or ``invalid`` (it could
not be read: the reason is the feedback).  Those run in a worker process each (``derive.grading.submissions``).
"""
from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import sympy as sp

from derive.grading.slips import _depends
from derive.verify import decide as equiv
from derive import kinds
from derive.kinds import derive
from derive.core.errors import SpecError
from derive.core.evaluate import (PRECISIONS, Num, Undecided, carry, evaluate, precision, rational, value_of,
    within)
from derive.core.mistakes import Mistake
from derive.core.numbers import Literal, Stated
from derive.printing.plain import text_of
from derive.core.rounding import fixed
from derive.grading.parse import LatexError, Vocabulary, parse_answer, vocabulary
from derive.core.spec import _STATED_KEY, Spec
from derive.core.steps import Derivation, Given
from derive.grading.answers import (CARRIED, CORRECT, INVALID, PRECISION, UNDETERMINED,
                                    MAX_ANSWERS, VERDICTS, WRONG, Answer, Record, answers_of)

DEFAULT_CREDIT = {CORRECT: 1.0, CARRIED: 1.0, PRECISION: 0.5, WRONG: 0.0, UNDETERMINED: 0.0, INVALID: 0.0}


# ----------------------------------------------------------------------------- policy ([grading])

@dataclass
class Policy:
    decimals: int = 4
    decimals_for: dict[str, int] = field(default_factory=dict)
    points: float = 1.0
    points_for: dict[str, float] = field(default_factory=dict)
    credit: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_CREDIT))
    precision_window: int = 2
    ask: tuple[tuple[str, tuple[int, ...] | None], ...] | None = None
    log: str = "natural"
    allow: dict[str, tuple[str, ...]] = field(default_factory=dict)    # quantity -> extra names a formula may use
    forbid: dict[str, tuple[str, ...]] = field(default_factory=dict)   # quantity -> names a formula may not use
    numbers_only: tuple[str, ...] | bool = ()                          # quantities answered by a number only
    max_formulas: int | None = None        # LaTeX answers graded per file (None: check's default or option)
    formula_budget: float | None = None    # seconds of workers for one file's LaTeX answers together

    def asked_decimals(self, quantity: str) -> int:
        return self.decimals_for.get(quantity, self.decimals)

    def points_of(self, quantity: str) -> float:
        return self.points_for.get(quantity, self.points)


def _int(v: Any, path: str, lo: int, hi: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise SpecError(path, f"expected a whole number from {lo} to {hi}")
    return v


def _num(v: Any, path: str, lo: float, hi: float) -> float:
    try:
        x = float(str(v)) if not isinstance(v, bool) else float("nan")
    except ValueError:
        x = float("nan")
    if not (lo <= x <= hi):
        raise SpecError(path, f"expected a number from {lo:g} to {hi:g}")
    return x


def policy(spec: Spec) -> Policy:
    """The spec's ``[grading]`` table, validated (errors name the key path)."""
    g = spec.grading
    allowed = {"decimals", "points", "credit", "precision_window", "ask", "log", "allow", "forbid", "numbers_only",
               "max_formulas", "formula_budget"}
    for k in g:
        if k not in allowed:
            raise SpecError(f"grading.{k}", f"unknown key (allowed: {', '.join(sorted(allowed))})")
    p = Policy()
    dec = g.get("decimals", 4)
    if isinstance(dec, dict):
        p.decimals = _int(dec.get("default", 4), "grading.decimals.default", 0, 12)
        p.decimals_for = {str(k): _int(v, f"grading.decimals.{k}", 0, 12) for k, v in dec.items() if k != "default"}
    else:
        p.decimals = _int(dec, "grading.decimals", 0, 12)
    pts = g.get("points", 1)
    if isinstance(pts, dict):
        p.points = _num(pts.get("default", 1), "grading.points.default", 0, 1e6)
        p.points_for = {str(k): _num(v, f"grading.points.{k}", 0, 1e6) for k, v in pts.items() if k != "default"}
    else:
        p.points = _num(pts, "grading.points", 0, 1e6)
    credit = g.get("credit", {})
    if not isinstance(credit, dict):
        raise SpecError("grading.credit", "expected a table such as { carried = 1, precision = 0.5 }")
    for k, v in credit.items():
        if k not in DEFAULT_CREDIT:
            raise SpecError(f"grading.credit.{k}", f"unknown verdict (known: {', '.join(VERDICTS)})")
        p.credit[k] = _num(v, f"grading.credit.{k}", 0, 1)
    p.precision_window = _int(g.get("precision_window", 2), "grading.precision_window", 0, 12)
    log = g.get("log", "natural")
    if log not in ("natural", "10", "2"):
        raise SpecError("grading.log", "expected 'natural', '10' or '2' (what \\log means in answers)")
    p.log = log
    if "ask" in g:
        ask = g["ask"]
        if not isinstance(ask, list) or not all(isinstance(a, str) for a in ask):
            raise SpecError("grading.ask", "expected a list of quantity names such as ['h1', 'grad_w5', 'z1[0]']")
        items = []
        for i, a in enumerate(ask):
            m = _STATED_KEY.fullmatch(a)
            if not m:
                raise SpecError(f"grading.ask[{i}]", "expected a quantity name such as 'z1' or 'z1[2]'")
            idx = tuple(int(x) for x in m.group("idx").split(",")) if m.group("idx") else None
            items.append((m.group("name"), idx))
        p.ask = tuple(items)
    p.allow = _name_lists(g.get("allow", {}), "grading.allow")
    p.forbid = _name_lists(g.get("forbid", {}), "grading.forbid")
    only = g.get("numbers_only", [])
    if isinstance(only, bool):
        p.numbers_only = only
    elif isinstance(only, list) and all(isinstance(x, str) for x in only):
        p.numbers_only = tuple(only)
    else:
        raise SpecError("grading.numbers_only", "expected a list of quantity names such as ['Error'], or true for all")
    if "max_formulas" in g:
        p.max_formulas = _int(g["max_formulas"], "grading.max_formulas", 1, MAX_ANSWERS)
    if "formula_budget" in g:
        p.formula_budget = _seconds(g["formula_budget"], "grading.formula_budget")
    return p


MAX_BUDGET = 1e6    # seconds, the bound of the command's --formula-budget too


def _seconds(v: Any, path: str) -> float:
    """A number of seconds above 0 and at most MAX_BUDGET: a TOML integer or float (which the loader
    keeps as its text, a :class:`Literal`), not a quoted string."""
    x = float(v) if isinstance(v, (int, float, Literal)) and not isinstance(v, bool) else math.nan
    if not 0 < x <= MAX_BUDGET:
        raise SpecError(path, f"expected a number of seconds above 0 and at most {MAX_BUDGET:g}")
    return x


def _name_lists(table: Any, path: str) -> dict[str, tuple[str, ...]]:
    """``{ delta2 = ["delta3"] }``: quantity -> quantity names (checked against the derivation later)."""
    if not isinstance(table, dict):
        raise SpecError(path, "expected a table such as { delta2 = [\"delta3\"] }")
    out = {}
    for k, v in table.items():
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise SpecError(f"{path}.{k}", "expected a list of quantity names such as [\"delta3\", \"W3\"]")
        out[str(k)] = tuple(v)
    return out


# ----------------------------------------------------------------------------- the problem

@dataclass
class Problem:
    """One problem prepared for grading: derivation, exact values, mistakes, vocabulary."""

    spec: Spec
    derivation: Derivation
    values: dict
    policy: Policy
    vocab: Vocabulary
    ctx: equiv.Context
    mistakes: list[Mistake]
    order: dict            # symbol -> position in the derivation
    step_of: dict          # symbol -> its step
    deps: dict             # symbol -> free symbols of its definition
    _expected: dict = field(default_factory=dict)
    _upstream: dict = field(default_factory=dict)
    _names: Any = None

    # -- the course's notation, in feedback
    def display(self, name: str) -> str:
        """A quantity or element (``delta2``, ``grad_W3[0,2]``) as the handout writes it, in plain
        text (``δ²``, ``∂L/∂w³₁₃``); the name itself when the notation does not know it."""
        if self._names is None:
            self._names = _handout_names(self.spec, self.derivation) or False
        if not self._names:
            return name
        try:
            return text_of(self._names(name))
        except (KeyError, ValueError, TypeError):
            return name

    def latex(self, name: str) -> str:
        """A symbol's LaTeX as the handout writes it (else a plain rendering of the engine name)."""
        self.display(name)          # builds the notation once
        if self._names:
            try:
                return self._names(name)
            except (KeyError, ValueError, TypeError):
                pass
        return _latex_name(name)

    def text(self, expr: sp.Expr) -> str:
        """An expression in the course's notation, as plain text ("o₁ - y₁")."""
        names = {x: self.latex(x.name) for x in expr.free_symbols}
        return text_of(sp.latex(expr, symbol_names=names, order="old"))   # y₁ - o₁, 1 - o₁ (positive first)

    def readable(self, text: str) -> str:
        """Feedback with every engine identifier (a name with a digit or ``_``, as in ``h1``,
        ``grad_w5``, ``gprime1[0]``) written in the course's notation; plain words are left alone."""
        if not text:
            return text
        known = self.derivation

        def one(m: re.Match) -> str:
            token = m.group(0)
            base = m.group(1)
            if base not in known:
                return token
            if not (any(c.isdigit() for c in base) or "_" in base or m.group(2)) and not _in_formula(m):
                return token    # a plain word; a one-letter name (t, x) only between operators
            return self.display(token)
        out = re.sub(r"\b([A-Za-z][A-Za-z0-9_]*)(\[\d+(?:,\d+)?\])?", one, text)
        return out.replace("ᵀᵀ", "")     # deck 003 prints W² as Wᵀ: (Wᵀ)ᵀ is its W

    @classmethod
    def build(cls, spec: Spec) -> "Problem":
        d = derive(spec)
        if d is None:
            raise SpecError(spec.name, "a spec of formulas only has no quantities to answer")
        if getattr(d, "wide", False):
            from derive.kinds.network.spec import MAX_EXACT_PARAMS
            raise SpecError("network", f"check grades networks of at most {MAX_EXACT_PARAMS} parameters (this one has "
                                       "wide layers: 'nnderive solve --json' gives every value to compare against)")
        pol = policy(spec)
        values = evaluate(d) if _numeric(d) else {}
        params = {}
        if spec.problem is not None and hasattr(spec.problem, "layers"):
            for layer in spec.problem.layers:
                if hasattr(layer.activation, "name"):   # a perceptron's layer names its activation only
                    params.setdefault(layer.activation.name, layer.activation.kwargs)
        shown = _handout_names(spec, d)
        vocab = vocabulary(d, pol.log, params, shown)
        ctx = equiv.context(d, dict(spec.symbols))
        order, step_of, deps = {}, {}, {}
        for step in d.steps:
            for sym, expr in step.items():
                order[sym] = len(order)
                step_of[sym] = step
                deps[sym] = expr.free_symbols if not isinstance(step, Given) else set()
        problem = cls(spec, d, values, pol, vocab, ctx, kinds.mistakes(d), order, step_of, deps, _names=shown or False)
        problem.asked()  # an unknown quantity in [grading] ask is the spec's error, reported now
        problem._check_uses()
        return problem

    def _check_uses(self) -> None:
        """Every name in [grading] allow / forbid / numbers_only is a quantity of the derivation."""
        pol = self.policy
        for key, table in (("allow", pol.allow), ("forbid", pol.forbid)):
            for q, names in table.items():
                if q not in self.derivation:
                    raise SpecError(f"grading.{key}.{q}", f"unknown quantity {q!r}")
                for i, n in enumerate(names):
                    if n not in self.derivation:
                        raise SpecError(f"grading.{key}.{q}[{i}]", f"unknown quantity {n!r}")
                    if key == "allow" and self.derivation.resolve(n) == self.derivation.resolve(q):
                        raise SpecError(f"grading.{key}.{q}[{i}]", "a formula may never use the quantity it answers")
        if not isinstance(pol.numbers_only, bool):
            for i, n in enumerate(pol.numbers_only):
                if n not in self.derivation:
                    raise SpecError(f"grading.numbers_only[{i}]", f"unknown quantity {n!r}")

    # -- what a formula may use
    def numbers_only(self, quantity: str) -> bool:
        only = self.policy.numbers_only
        if isinstance(only, bool):
            return only
        return any(self.derivation.resolve(n) == self.derivation.resolve(quantity) for n in only)

    def upstream(self, sym: sp.Symbol) -> frozenset:
        """Every symbol ``sym`` is computed from, through the derivation's definitions (cached)."""
        if sym not in self._upstream:
            seen, stack = set(), list(self.deps.get(sym, ()))
            while stack:
                s = stack.pop()
                if s not in seen:
                    seen.add(s)
                    stack.extend(self.deps.get(s, ()))
            self._upstream[sym] = frozenset(seen)
        return self._upstream[sym]

    def _policy_names(self, table: dict, quantity: str) -> set:
        d = self.derivation
        names = [n for q, ns in table.items() if d.resolve(q) == d.resolve(quantity) for n in ns]
        return {x for n in names for x in d.quantity(n).symbols()}

    def may_use(self, quantity: str, index) -> tuple[set, set]:
        """(symbols a formula answering ``quantity[index]`` may use, the asked symbols themselves).

        By default: every given value and what the asked element(s) are computed from, never the
        quantity itself; ``[grading] allow`` / ``forbid`` widen or narrow that per quantity."""
        q = self.derivation.quantity(quantity)
        own = set(q.symbols())
        targets = own if (index is None and q.shape) else {self.element_symbol(quantity, index)}
        allowed = {s for s, step in self.step_of.items() if isinstance(step, Given)}
        for t in targets:
            allowed |= self.upstream(t)
        allowed |= self._policy_names(self.policy.allow, quantity)
        allowed -= self._policy_names(self.policy.forbid, quantity)
        return allowed - own, targets

    def misuse(self, quantity: str, index, value: Any) -> str | None:
        """Why a formula may not use some of its names (itself, something computed from it, ...), or None."""
        allowed, targets = self.may_use(quantity, index)
        bad = value.free_symbols - allowed
        if not bad:
            return None
        name = lambda s: self.step_of[s].name
        asked = quantity + ("" if index is None else "[" + ",".join(map(str, index)) + "]")
        first = min(bad, key=lambda s: self.order[s])
        own = set(self.derivation.quantity(quantity).symbols())
        if bad & own:
            why = f"the answer uses {quantity} itself"
        elif any(t in self.upstream(s) for s in bad for t in targets):
            later = min((s for s in bad if targets & self.upstream(s)), key=lambda s: self.order[s])
            why = f"the answer uses {name(later)}, which is computed from {quantity}"
        elif first in self._policy_names(self.policy.forbid, quantity):
            why = f"the answer uses {name(first)}, which this problem does not allow for {asked}"
        else:
            why = f"the answer uses {name(first)}, which {asked} is not computed from"
        inputs = dict.fromkeys(name(s) for t in sorted(targets, key=lambda s: self.order[s])
                               for s in sorted(self.deps.get(t, ()), key=lambda s: self.order[s])
                               if s in allowed and self.deps.get(s))
        hint = f" and earlier quantities such as {', '.join(list(inputs)[:4])}" if inputs else ""
        return f"{why}; write {asked} in terms of the given values{hint}"

    # -- answer keys
    def expected(self, sym: sp.Symbol, quantity: str) -> str:
        """The true value of ``sym`` rounded to the decimals asked for ``quantity`` (cached)."""
        key = (sym, quantity)
        if key not in self._expected:
            self._expected[key] = rounded(self.values[sym], self.policy.asked_decimals(quantity))
        return self._expected[key]

    def element_symbol(self, quantity: str, index: tuple[int, ...] | None) -> sp.Symbol:
        from derive.core.spec import Statement
        from derive.verify.stated import resolve
        return resolve(self.derivation, Statement(quantity, index, Stated("", sp.Integer(0), 0), quantity))

    def asked(self) -> list[tuple[str, tuple[int, ...] | None]]:
        """Elements asked: the policy's ``ask`` expanded to elements (empty without ``ask``)."""
        out, seen = [], {}
        for k, (name, idx) in enumerate(self.policy.ask or ()):
            if name not in self.derivation:
                from derive.verify.stated import unknown_quantity
                raise SpecError("grading.ask", unknown_quantity(name, self.derivation))
            q = self.derivation.quantity(name)
            if idx is not None:
                self.element_symbol(name, idx)  # raises, naming the index, when it is out of range
            items = [(name, idx)] if idx is not None or not q.shape else [(name, i) for i in q.indices()]
            for n, i in items:
                sym = self.element_symbol(n, i)
                if sym in seen:
                    raise SpecError(f"grading.ask[{k}]", f"{self.policy.ask[k][0]} asks again for {seen[sym]}")
                seen[sym] = n + ("" if i is None else "[" + ",".join(map(str, i)) + "]")
            out.extend(items)
        return out


def _in_formula(m: re.Match) -> bool:
    """The match stands next to an operator (``h1 - t``, ``= x``): a name in a formula, not a word."""
    before = m.string[:m.start()].rstrip()[-1:]
    after = m.string[m.end():].lstrip()[:1]
    return bool(before and before in "-+·⊙=(−/" or after and after in "-+·⊙=)−/")


def _handout_names(spec: Spec, d: Derivation) -> Any:
    """The names the handout of ``spec`` prints (derive/names.py), or None for a kind without a
    notation of its own: then answers and feedback use the engine's names only."""
    from derive.kinds import of_spec
    try:
        return of_spec(spec, d)
    except Exception:
        return None


def _numeric(d: Derivation) -> bool:
    from derive.core.evaluate import is_numeric
    return is_numeric(d)


# ----------------------------------------------------------------------------- answer files


# ----------------------------------------------------------------------------- numbers

@lru_cache(maxsize=64)
def half(decimals: int) -> sp.Rational:
    return sp.Rational(1, 2) * sp.Rational(10) ** (-decimals)


def rounded(value: Num, decimals: int) -> str:
    """``value`` rounded to ``decimals`` as printed text: the handouts' rule (half away from zero)."""
    return fixed(value, decimals)


def _num_text(value: Num) -> str:
    return f"{float(value):.6g}"


class NumericGrader:
    """The numeric answers of one submission, graded together (carried values need all of them)."""

    def __init__(self, problem: Problem, answers: list[tuple[sp.Symbol, Answer]]):
        self.p = problem
        self.answers = sorted(answers, key=lambda sa: problem.order[sa[0]])
        # the bases of carried values: the student's numbers that are precise enough to compute from
        self.stated = {sym: a.stated.value for sym, a in self.answers if self.base(a)}
        self.verdicts: dict[sp.Symbol, str] = {}

    def within_window(self, a: Answer) -> bool:
        """Printed to at least ``asked − precision_window`` decimals (``0e9`` is printed to −9)."""
        return a.stated.decimals >= self.p.policy.asked_decimals(a.quantity) - self.p.policy.precision_window

    def significant(self, a: Answer) -> bool:
        """Not zero at the decimals asked (``0.000007`` with 4 asked is zero there): it shows a digit."""
        s = a.stated
        return abs(s.value) >= half(min(s.decimals, self.p.policy.asked_decimals(a.quantity)))

    def base(self, a: Answer) -> bool:
        """May later answers be carried from this one?  Only when it is printed within the precision
        window, is not zero at the asked decimals, and shows two significant digits (``0.001`` says
        only 'somewhere from 0.0005 to 0.0015': too little to tell a computed value from a guess)."""
        s = a.stated
        digits = len(str(abs(int(s.value * sp.Integer(10) ** s.decimals)))) if s.decimals >= 0 else 0
        return self.within_window(a) and self.significant(a) and digits >= 2

    def run(self) -> list[tuple[sp.Symbol, Answer, str, str, str]]:
        for bits in PRECISIONS:
            try:
                return self._run(bits)
            except Undecided:
                pass
        try:
            # A threshold unit (sgn, step) fed a printed number's whole rounding interval may not be
            # decidable at any precision; carry the printed numbers themselves instead.
            return self._run(PRECISIONS[0], spread=False)
        except Undecided:
            return [(s, a, UNDETERMINED, None, "too close to a rounding boundary to decide") for s, a in self.answers]

    def _run(self, bits: int, spread: bool = True):
        p = self.p
        spread = {sym: half(a.stated.decimals) for sym, a in self.answers if sym in self.stated} if spread else None
        carried, touched = carry(p.derivation, p.values, self.stated, bits, spread)
        self.carried, self.touched, self.bits = carried, touched, bits
        self._point = None
        out = []
        with precision(bits):
            for sym, a in self.answers:
                verdict, feedback = self.judge(sym, a)
                self.verdicts[sym] = verdict
                out.append((sym, a, verdict, p.expected(sym, a.quantity), feedback))
        return out

    def judge(self, sym: sp.Symbol, a: Answer) -> tuple[str, str]:
        p, s = self.p, a.stated
        v = p.values[sym]
        asked = p.policy.asked_decimals(a.quantity)
        if within(v, s.value, half(asked)):
            return CORRECT, ""
        d = s.decimals
        window = p.policy.precision_window
        if d < asked and asked - d <= window and within(v, s.value, half(d)):
            return PRECISION, f"right value rounded to {d} decimal{'s' if d != 1 else ''}; {asked} asked"
        # carried: printed within the window and not zero at the asked decimals (a zero shows no work)
        if sym in self.touched and self.within_window(a) and self.significant(a) and \
                _possibly_within(self.carried[sym], s.value, half(min(d, asked))):
            if d < asked:
                return PRECISION, f"{self.carried_feedback(sym)}; rounded to {d} decimals, {asked} asked"
            return CARRIED, self.carried_feedback(sym)
        if asked - window <= d <= asked and s.value != 0:
            sign = 1 if s.value > 0 else -1
            if within(v, s.value + sign * half(d), half(d)):
                return PRECISION, f"truncated instead of rounded ({p.expected(sym, a.quantity)} to {asked} decimals)"
        return WRONG, self.wrong_feedback(sym, a)

    # -- feedback
    def frontier(self, sym: sp.Symbol) -> list[sp.Symbol]:
        """The answered quantities this one is computed from (through unanswered intermediates)."""
        seen, out, stack = set(), [], list(self.p.deps.get(sym, ()))
        while stack:
            s = stack.pop()
            if s in seen:
                continue
            seen.add(s)
            if s in self.stated:
                out.append(s)
            else:
                stack.extend(self.p.deps.get(s, ()))
        return sorted(out, key=lambda s: self.p.order[s])

    def carried_feedback(self, sym: sp.Symbol) -> str:
        """Name the earlier answers the error comes from (through carried ones, back to the slip)."""
        inputs = self.frontier(sym)
        roots, seen, stack = [], set(), list(inputs)
        while stack:
            s = stack.pop()
            if s in seen:
                continue
            seen.add(s)
            verdict = self.verdicts.get(s)
            if verdict == CARRIED:
                stack.extend(self.frontier(s))
            elif verdict not in (CORRECT, None):
                roots.append(s)
        roots.sort(key=lambda s: self.p.order[s])
        if roots:
            names = ", ".join(f"{s.name} = {_stated_text(self, s)} ({self.verdicts[s]})" for s in roots[:4])
            return f"follows from your {names}: error carried forward"
        names = ", ".join(f"{s.name} = {_stated_text(self, s)}" for s in inputs[:4])
        return f"follows from your rounded {names}"

    def wrong_feedback(self, sym: sp.Symbol, a: Answer) -> str:
        p = self.p
        asked = p.policy.asked_decimals(a.quantity)
        expected = rounded(p.values[sym], asked)
        if not self.within_window(a):  # too coarse to earn credit, or to say which slip it matches
            d = a.stated.decimals
            coarse = (f"expected {expected}; printed to {d} decimal{'s' if d != 1 else ''}, {asked} asked "
                      f"(partial credit needs at least {asked - p.policy.precision_window})")
            if within(p.values[sym], a.stated.value, half(d)):   # only rounded too far: blame no slip
                return f"right value rounded to {d} decimal{'s' if d != 1 else ''}, too far; {coarse}"
            label = self.matching_mistake(sym, a, exact=True)   # only a slip that gives this very number
            return f"matches a known slip ({label}) exactly; {coarse}" if label else coarse
        label = self.matching_mistake(sym, a)
        base = f"expected {expected}"
        if sym in self.touched and _apart(self.carried[sym], p.values[sym]):
            base += f" (about {_num_text(self.carried[sym])} from your own earlier answers)"
        if label:       # a number cannot prove a slip, only agree with one at its printed precision
            return f"matches a known slip ({label}); {base}"
        tol = half(min(a.stated.decimals, asked))
        own = self.carried[sym] if sym in self.touched else p.values[sym]
        # the right value (from the student's own numbers, anywhere their printed digits allow) negated
        if a.stated.value != 0 and _possibly_within(own, -a.stated.value, tol):
            return f"sign flipped: {base}; the value is right up to its sign"
        step = p.step_of[sym]
        return f"{base}; check how it is computed: {p.display(sym.name)} = {_short(step.exprs[step.target.symbols().index(sym)])}"

    def matching_mistake(self, sym: sp.Symbol, a: Answer, exact: bool = False) -> str | None:
        """The label of a mistaken variant that reproduces the answer at its printed precision
        (``exact``: that gives exactly the printed number, for answers too coarse for a tolerance)."""
        p = self.p
        ancestors = self._ancestors(sym)
        tol = sp.Integer(0) if exact else half(min(a.stated.decimals, p.policy.asked_decimals(a.quantity)))
        if self._point is None:  # values recomputed from the student's numbers taken exactly
            self._point = carry(p.derivation, p.values, self.stated, self.bits)[0]
        base_env = {s: (rational(self.stated[s]) if s in self.stated else self._point[s]) for s in self._point}
        candidates = [m for m in p.mistakes if m.step == p.step_of[sym].name or
                      any(t in ancestors for t in p.derivation.quantity(m.step).symbols())]
        candidates.sort(key=lambda m: -p.order[p.derivation.quantity(m.step).symbols()[0]])
        for env in (base_env, p.values):
            for m in candidates:
                value = self._through((m,), sym, ancestors, env)
                try:
                    if value is not None and within(value, a.stated.value, tol):
                        return m.label
                except Undecided:
                    continue
        # two slips at two steps, among the variants nearest the answer (bounded: see derive/slips.py);
        # only for a number of 3 significant digits or more: fewer agree with too many pairs by chance
        s = a.stated
        if s.decimals < 0 or len(str(abs(int(s.value * sp.Integer(10) ** s.decimals)))) < 3:
            return None
        from derive.grading.slips import PAIR_POOL_NUMBERS, pool_of
        from itertools import combinations
        for m1, m2 in combinations(pool_of(candidates, PAIR_POOL_NUMBERS), 2):
            if m1.step == m2.step:
                continue
            value = self._through((m1, m2), sym, ancestors, base_env)
            try:
                if value is not None and within(value, a.stated.value, tol):
                    return f"two slips: {m1.label}; and {m2.label}"
            except Undecided:
                continue
        return None

    def _ancestors(self, sym: sp.Symbol) -> set:
        """Unanswered symbols whose value reaches ``sym`` (stopping at the student's answers)."""
        seen, stack = set(), list(self.p.deps.get(sym, ()))
        while stack:
            s = stack.pop()
            if s in seen or s in self.stated:
                continue
            seen.add(s)
            stack.extend(self.p.deps.get(s, ()))
        return seen

    def _through(self, ms: tuple[Mistake, ...], target: sp.Symbol, ancestors: set, env_in: dict) -> Num | None:
        p = self.p
        mutated, first = {}, None
        for m in ms:
            syms = p.derivation.step(m.step).target.symbols()
            mutated.update(zip(syms, m.exprs))
            first = p.order[syms[0]] if first is None else min(first, p.order[syms[0]])
        region = sorted((s for s in ancestors | {target} if p.order[s] >= first), key=lambda s: p.order[s])
        env = dict(env_in)
        try:
            for s in region:
                if s in mutated:
                    env[s] = value_of(mutated[s], env)
                elif s in self.stated and s != target:
                    continue
                elif not isinstance(p.step_of[s], Given):
                    env[s] = value_of(_definition(p, s), env)
            return env[target]
        except (ValueError, ZeroDivisionError, ArithmeticError, KeyError, TypeError):
            return None


def _possibly_within(value: Num, target: sp.Rational, tol: sp.Rational) -> bool:
    """Some point of ``value``'s enclosure is within ``tol`` of ``target`` (exact when it is exact)."""
    if value.exact is not None:
        return abs(value.exact - target) <= tol
    gap = abs(value.enclosure - rational(target).enclosure)
    return bool(gap.a <= rational(tol).enclosure.b)


def _apart(a: Num, b: Num) -> bool:
    """Certainly more than 1e-12 apart (for feedback text only)."""
    if a.exact is not None and b.exact is not None:
        return abs(a.exact - b.exact) > sp.Rational(1, 10**12)
    gap = abs(a.enclosure - b.enclosure)
    return bool(gap.a > 1e-12)


def _definition(p: Problem, s: sp.Symbol) -> sp.Expr:
    step = p.step_of[s]
    return step.exprs[step.target.symbols().index(s)]


def _stated_text(g: NumericGrader, s: sp.Symbol) -> str:
    for sym, a in g.answers:
        if sym == s:
            return a.text
    return "?"


def _short(e: sp.Expr) -> str:
    t = sp.sstr(e).replace("**", "^").replace("*", "·")
    return t if len(t) <= 120 else t[:117] + "..."


# ----------------------------------------------------------------------------- a submission

def grade_data(p: Problem, data: dict) -> tuple[list[Record], list[tuple[int, Answer]]]:
    """Records for every answer of a parsed file; LaTeX answers come back as (record index, answer) to grade apart.

    Each element is scored once: the first answer to it in the file counts (a whole-vector formula
    counts for the elements no earlier answer gave), a later one that adds nothing is ``invalid``.
    With ``ask``, only asked elements carry points, so no file scores above the asked total."""
    answers, problems = answers_of(data)
    records: list[Record] = []
    for a in problems:
        records.append(Record(a.quantity, a.index, a.text or None, INVALID, 0.0, 0.0, None, a.reason))
    asked = p.asked()
    asked_points = {p.element_symbol(n, i): p.policy.points_of(n) for n, i in asked} \
        if p.policy.ask is not None else None
    claimed: dict[sp.Symbol, str] = {}      # element -> the answer that counts for it
    slots: list[tuple[Answer, sp.Symbol | None, float]] = []
    for a in answers:
        sym, pts = None, 0.0
        if a.quantity is not None:
            try:
                sym = _resolve(p, a)
            except SpecError as err:
                if a.kind != INVALID:
                    a.kind, a.reason = INVALID, err.message
        if sym is not None:
            elements = _elements(p, a)
            new = [e for e in elements if e not in claimed]
            if not new:
                if a.kind != INVALID:
                    first = claimed[elements[0]]
                    a.kind, a.reason = INVALID, (f"{_label(a)} is answered twice" if first == _label(a) else
                                                 f"{_label(a)} is already answered by {first}") + \
                        " (the first answer counts)"
            for e in new:
                claimed[e] = _label(a)
                pts += asked_points.get(e, 0.0) if asked_points is not None else p.policy.points_of(a.quantity)
            if a.kind == "latex" and p.numbers_only(a.quantity):
                a.kind, a.reason = INVALID, f"a number is asked for {a.quantity}, not a formula; give its value"
            if a.kind == "number" and not p.values:
                a.kind, a.reason = INVALID, "this problem has no numbers (it leaves symbols); answer with $LaTeX$"
        slots.append((a, sym, pts))
    numeric = [(sym, a) for a, sym, _ in slots if a.kind == "number" and sym is not None]
    graded = {}
    if numeric:
        for sym, a, verdict, expected, feedback in NumericGrader(p, numeric).run():
            graded[id(a)] = (verdict, expected, feedback)
    latex: list[tuple[int, Answer]] = []
    for a, sym, pts in slots:
        if a.kind == INVALID:
            records.append(Record(a.quantity, a.index, a.text or None, INVALID, 0.0, pts, None, a.reason))
        elif a.kind == "number":
            verdict, expected, feedback = graded[id(a)]
            records.append(Record(a.quantity, a.index, a.text, verdict, pts * p.policy.credit[verdict], pts,
                                  expected, p.readable(feedback)))
        else:
            records.append(Record(a.quantity, a.index, a.text, UNDETERMINED, 0.0, pts, None, "not graded yet"))
            latex.append((len(records) - 1, a))
    for name, idx in asked:
        sym = p.element_symbol(name, idx)
        if sym not in claimed:
            exp = rounded(p.values[sym], p.policy.asked_decimals(name)) if p.values else None
            records.append(Record(name, idx, None, WRONG, 0.0, asked_points[sym], exp, "not answered"))
    return records, latex


def _is_vector(p: Problem, quantity: str) -> bool:
    return quantity in p.derivation and bool(p.derivation.quantity(quantity).shape)


def _resolve(p: Problem, a: Answer) -> sp.Symbol | None:
    """The element symbol of a numeric answer, or (for a whole-quantity LaTeX answer) None-checked name."""
    if a.kind == "latex" and a.index is None and _is_vector(p, a.quantity or ""):
        return p.derivation.quantity(a.quantity).symbols()[0]
    if a.kind == "number" and a.index is None and _is_vector(p, a.quantity or "") and \
            p.derivation.quantity(a.quantity).shape != (1,):
        raise SpecError(a.quantity, f"{a.quantity} has {p.derivation.quantity(a.quantity).size} elements; "
                                    "give a list of numbers or index it as name[i]")
    return p.element_symbol(a.quantity, a.index)


def _elements(p: Problem, a: Answer) -> list[sp.Symbol]:
    """The element symbols an answer gives (aliases resolved): all of them for a whole-quantity formula."""
    if a.kind == "latex" and a.index is None and _is_vector(p, a.quantity):
        return list(p.derivation.quantity(a.quantity).symbols())
    return [p.element_symbol(a.quantity, a.index)]


def _label(a: Answer) -> str:
    return (a.quantity or "") + ("" if a.index is None else "[" + ",".join(map(str, a.index)) + "]")


# ----------------------------------------------------------------------------- LaTeX answers

def grade_latex(p: Problem, quantity: str, index, text: str, seed: int = 0) -> dict:
    """Verdict, expected formula and feedback for one LaTeX answer (run this in a worker); the
    feedback names quantities in the course's notation."""
    out = _grade_latex(p, quantity, index, text, seed)
    out["feedback"] = p.readable(out["feedback"])
    return out


def _grade_latex(p: Problem, quantity: str, index, text: str, seed: int = 0) -> dict:
    try:
        value = parse_answer(text, p.vocab)
    except LatexError as err:
        if str(err).startswith("a product of shapes"):     # a known slip may explain the misfit
            found = _misfit_slip(p, quantity, index, text, seed)
            if found:
                return {"verdict": WRONG, "expected": found[1], "feedback": found[0]}
        return {"verdict": INVALID, "expected": None, "feedback": str(err)}
    except (OverflowError, ValueError, TypeError, ArithmeticError, RecursionError) as err:
        return {"verdict": INVALID, "expected": None, "feedback": f"could not be read as a number or formula "
                                                                  f"({type(err).__name__})"}
    q = p.derivation.quantity(quantity)
    if index is None and q.shape:
        target = q.matrix()
    else:
        target = p.element_symbol(quantity, index)
    expected = _expected_text(p, target)
    misuse = p.misuse(quantity, index, value)
    if misuse:
        from derive.grading.slips import neighbour
        label = neighbour(p, value, target, seed, lambda v: p.misuse(quantity, index, v),
                          p.may_use(quantity, index)[0])
        if label:       # δ² in δ²'s own formula where δ³ belongs: a wrong layer index, named
            return {"verdict": WRONG, "expected": expected, "feedback": label}
        return {"verdict": INVALID, "expected": expected, "feedback": misuse}
    try:
        decision = equiv.decide(p.ctx, value, target, seed)
    except (OverflowError, ValueError, TypeError, ArithmeticError, RecursionError) as err:
        return {"verdict": UNDETERMINED, "expected": expected,
                "feedback": f"could not be compared ({type(err).__name__}); needs a human look"}
    if decision.verdict == equiv.EQUIVALENT:
        return {"verdict": CORRECT, "expected": expected, "feedback": decision.method}
    if decision.verdict == equiv.UNDETERMINED:
        return {"verdict": UNDETERMINED, "expected": expected, "feedback": decision.method + "; needs a human look"}
    if decision.method == "at a kink":
        return {"verdict": WRONG, "expected": expected, "feedback": (
            "equal everywhere except where a piecewise function switches branch: at "
            f"{decision.counterexample.split(': lhs')[0]} the answer differs by {decision.counterexample.split('= ')[-1]}. "
            "Use the derivation's value of the derivative at the kink (for example relu′(0) = 0)")}
    label = _symbolic_mistake(p, value, target, seed)
    where = _factor_difference(p, value, target)
    if decision.method == "shape":
        feedback = f"{label}; {decision.detail}" if label else f"not equivalent: {decision.detail}"
    elif label and where and "sign" in label:      # say where the sign went wrong, not a factor that is right
        feedback = "sign flipped: " + where.replace(" (its sign is flipped)", "")
    elif label:
        feedback = f"{label}; {where}" if where and "factor" not in label and "is needed" not in label else label
    elif where:
        feedback = f"not equivalent to the derivation's formula: {where}"
    else:
        feedback = "not equivalent to the derivation's formula (the expected form is shown)"
    return {"verdict": WRONG, "expected": expected, "feedback": feedback}


def _factors(e: sp.Expr) -> Counter:
    """The factors of a product, a sum's common number taken out (2·o₁ − 2·y₁ is 2 and o₁ − y₁)."""
    out: Counter = Counter()
    for f in sp.Mul.make_args(e):
        c, rest = f.primitive() if f.is_Add else (sp.Integer(1), f)
        for g in (c, rest):
            if g != 1:
                out[g] += 1
    return out


def _factor_difference(p: Problem, value: Any, target: Any) -> str | None:
    """Which factor of a product differs from the derivation's, compared factor by factor after
    unfolding both: "the factor y₁ − o₁ should be o₁ − y₁"; None when it is not one factor's slip."""
    if hasattr(value, "shape") or hasattr(target, "shape"):
        return None
    try:
        a, b = p.ctx.unfold(value), p.ctx.unfold(target)
    except Exception:      # an answer that does not unfold is explained by the other feedback
        return None
    fa, fb = _factors(a), _factors(b)
    extra, missing = fa - fb, fb - fa
    common = fa & fb
    if not common or len(extra) + len(missing) > 2 or (not extra and not missing):
        return None
    show = p.text
    if set(extra) | set(missing) <= {sp.Integer(-1)}:
        return "the whole product has the wrong sign"
    if len(extra) == 1 and len(missing) == 1:
        (e,), (m,) = extra, missing
        flipped = " (its sign is flipped)" if sp.expand(e + m) == 0 else ""
        return f"the factor {show(e)} should be {show(m)}{flipped}"
    if missing and not extra:
        return "missing the factor " + " and ".join(show(m) for m in missing)
    if extra and not missing:
        return "the factor " + " and ".join(show(e) for e in extra) + " should not be there"
    return None


def _expected_text(p: Problem, target: Any) -> str:
    back = equiv.unfold_backward(p.ctx, target)
    free = back.free_symbols if not hasattr(back, "shape") else set().union(*(e.free_symbols for e in back))
    names = {x: p.latex(x.name) for x in free}
    text = sp.latex(back, symbol_names=names)
    return text if len(text) <= 400 else text[:397] + "..."


def _latex_name(name: str) -> str:
    """``h2[0]`` -> ``h2_{1}``, ``W1[0,1]`` -> ``W1_{12}`` (1-based, as printed), ``learning_rate`` -> η."""
    if name == "learning_rate":
        return r"\eta"
    m = re.fullmatch(r"(\w+)\[(\d+)(?:,(\d+))?\]", name)
    if not m:
        return sp.latex(sp.Symbol(name))
    base = sp.latex(sp.Symbol(m.group(1)))
    idx = str(int(m.group(2)) + 1) + ("" if m.group(3) is None else "," + str(int(m.group(3)) + 1))
    return f"{{{base}}}_{{{idx}}}"


def _misfit_slip(p: Problem, quantity: str, index, text: str, seed: int) -> tuple[str, str] | None:
    """(feedback, expected) when fixing a product whose shapes do not fit explains the answer."""
    from derive.grading.slips import repaired
    q = p.derivation.quantity(quantity)
    target = q.matrix() if index is None and q.shape else p.element_symbol(quantity, index)
    try:
        found = repaired(p, text, target, seed, lambda v: _symbolic_mistake(p, v, target, seed, pairs=False),
                         lambda v: p.misuse(quantity, index, v))
    except (OverflowError, ValueError, TypeError, ArithmeticError, RecursionError):
        return None
    return (found[0], _expected_text(p, target)) if found else None


def _symbolic_mistake(p: Problem, value: Any, target: Any, seed: int, pairs: bool = True) -> str | None:
    targets = set(target) if hasattr(target, "shape") else {target}
    chosen = None
    nearest_first = sorted(p.mistakes, key=lambda m: -p.order[p.derivation.quantity(m.step).symbols()[0]])
    for m in nearest_first:
        step = p.derivation.step(m.step)
        syms = step.target.symbols()
        # only mistakes in the target's own step or in a step it depends on
        if not (targets & set(syms)) and not _depends(p, targets, set(syms)):
            continue
        if equiv.matches(p.ctx, value, dict(zip(syms, m.exprs)), target, seed):
            chosen = m.label
            break
    if chosen is None and pairs:
        from derive.grading.slips import pair
        two = pair(p, value, target, seed)
        if two:
            chosen = f"two slips: {two[0].label}; and {two[1].label}"
    return chosen


