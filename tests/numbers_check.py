"""Every number a handout shows, checked against the engine's values (the tests' oracle here).

A display chain ``lhs = f₁ = f₂ ≈ v`` is read back from the text.  Its last form, when it is a
number or a matrix of numbers, must be the value of ``lhs`` rounded as displayed (exactly that
value when the relation is ``=``).  Any other form made only of numbers must be the form before it
with each symbol replaced by that symbol's value rounded as displayed, and each constant kept.  A
numeric form that is neither is reported: nothing numeric goes unchecked.
"""
from __future__ import annotations

from fractions import Fraction

from mpmath.libmp import to_rational


from texparse import Mat, Num, Sym, Tokenizer, chains, decimals, displays, longtable_rows, \
    markdown_table_rows, tikz_labels


class NumberCheck:
    def __init__(self, handout_names, derivations, values, report=None):
        self.names, self.report, self.row = handout_names, report, 0
        self.tok = Tokenizer(handout_names)
        self.quantities = {s.name: s.target for d in derivations for s in d.steps}
        self.values = {s.name: v for s, v in values.items()}
        self.checked = 0
        self.problems: list[str] = []

    # -- one number
    def true(self, name: str) -> Fraction | float:
        """The engine's value: exact when it has one (or its enclosure has width zero), else a float."""
        v = self.values[name]
        sign = self.names.sign(name)
        if v.exact is not None:
            return sign * Fraction(int(v.exact.p), int(v.exact.q))
        lo, hi = (Fraction(*to_rational(end)) for end in v.enclosure._mpi_)
        return sign * (lo if lo == hi else float(v))

    def number(self, text: str, name: str, exact: bool = False, where: str = "") -> None:
        """``text`` is the value of ``name`` rounded as shown (``exact``: is that value itself)."""
        shown, true = Fraction(text), self.true(name)
        half = Fraction(1, 2 * 10 ** decimals(text))
        if isinstance(true, Fraction):
            ok = shown == true if exact else abs(shown - true) <= half
        else:  # irrational: never shown as exact; the float is far closer than the rounding
            ok = not exact and abs(float(shown) - true) <= float(half) + 1e-12
        self.checked += 1
        if not ok:
            self.problems.append(f"{where}: {name} shown as {text}, engine value {float(true)!r}")

    def quantity(self, cells, name: str, exact: bool, where: str) -> None:
        syms = [s.name for s in self.quantities[name].symbols()]
        if len(cells) != len(syms):
            self.problems.append(f"{where}: {name} has {len(syms)} elements, {len(cells)} shown")
            return
        for cell, s in zip(cells, syms):
            if len(cell) != 1 or not isinstance(cell[0], Num):
                self.problems.append(f"{where}: a cell of {name} is not a number")
                continue
            self.number(cell[0].text, s, exact, where)

    # -- forms
    @staticmethod
    def numeric(tokens) -> bool:
        def walk(t):
            if isinstance(t, Sym):
                return False
            if isinstance(t, Mat):
                return all(walk(x) for c in t.cells for x in c)
            return True
        return bool(tokens) and all(walk(t) for t in tokens) and any(isinstance(t, (Num, Mat)) for t in tokens)

    def scalar(self, t) -> bool:
        """A symbol that stands for one number (an element, or a quantity of shape ())."""
        return isinstance(t, Sym) and (not t.quantity or not self.quantities[t.name].shape)

    def align(self, a, b, where: str) -> bool:
        if len(a) != len(b):
            return False
        for ta, tb in zip(a, b):
            if self.scalar(ta) and isinstance(tb, Num):
                self.number(tb.text, ta.name, where=where)
            elif isinstance(ta, Sym) and ta.quantity and isinstance(tb, Mat):
                self.quantity(tb.cells, ta.name, False, where)
            elif isinstance(ta, Num) and isinstance(tb, Num):
                if Fraction(ta.text) != Fraction(tb.text):
                    return False
            elif isinstance(ta, Mat) and isinstance(tb, Mat) and len(ta.cells) == len(tb.cells):
                if not all(self.align(x, y, where) for x, y in zip(ta.cells, tb.cells)):
                    return False
            else:
                return False
        return True

    def _unnamed(self, lhs: str) -> list:
        """The tokens of a left side read as a formula: a quantity named like ``\\tanh(C_{1,1})`` (the
        printer does not repeat it as ``= \\tanh(C_{1,1})``) reads as its argument ``C_{1,1}``."""
        return self.tok(lhs.replace("(", r"\left(").replace(")", r"\right)"))

    def chain(self, chain, where: str) -> None:
        lhs = self.tok(chain.lhs)
        forms = [(rel, self.tok(text), text) for rel, text in chain.forms]
        for k, (rel, toks, text) in enumerate(forms):
            if not self.numeric(toks):
                continue
            here = f"{where}: {chain.lhs} ... {text[:60]}"
            if k == len(forms) - 1 and len(lhs) == 1 and isinstance(lhs[0], Sym):
                target, exact = lhs[0], rel == "="
                if not self.scalar(target) and len(toks) == 1 and isinstance(toks[0], Mat):
                    self.quantity(toks[0].cells, target.name, exact, here)
                elif self.scalar(target) and len(toks) == 1 and isinstance(toks[0], Num):
                    self.number(toks[0].text, target.name, exact, here)
                else:
                    self.problems.append(f"{here}: final form does not match its left-hand side")
            elif not self.align(self._unnamed(chain.lhs) if k == 0 else forms[k - 1][1], toks, here):
                self.problems.append(f"{here}: a numeric form that is not the substitution of the form before it")

    # -- documents
    def document(self, text: str, where: str) -> None:
        for body in displays(text):
            for c in chains(body):
                self.chain(c, where)
        rows = longtable_rows(text) or markdown_table_rows(text)
        for row in rows:
            self.stated_row(row, where)
        for node, label in tikz_labels(text):
            self.drawing(node, label, where)

    def stated_row(self, row, where: str) -> None:
        """A row of the stated-numbers table: key, symbol, stated, engine, carried, verdict."""
        if len(row) != 6:
            return
        key = row[0].replace(r"\texttt{", "").replace("}", "").replace(r"\_", "_").strip("`")
        name, _, idx = key.partition("[")
        q = self.quantities[name]
        index = tuple(int(i) for i in idx.rstrip("]").split(",")) if idx else ((0,) if q.shape == (1,) else ())
        sym = q.symbol(index).name
        v = self.values[sym]
        true = Fraction(int(v.exact.p), int(v.exact.q)) if v.exact is not None else Fraction(float(v))
        shown = Fraction(row[3])
        self.checked += 1
        if abs(shown - true) > Fraction(1, 2 * 10 ** decimals(row[3])) + Fraction(1, 10 ** 12):
            self.problems.append(f"{where}: table row {key}: engine column {row[3]}, engine value {float(true)}")
        if self.report is not None:   # the stated column is the source's text, the carried one verify's value
            record = self.report.records[self.row]
            self.row += 1
            if record.stated.text != row[2] or record.quantity != name:
                self.problems.append(f"{where}: table row {key}: stated {row[2]}, the source printed "
                                     f"{record.quantity} = {record.stated.text}")
            if (record.carried is None) != (row[4] == "") or (row[4] and abs(
                    Fraction(row[4]) - Fraction(float(record.carried))) > Fraction(1, 2 * 10 ** decimals(row[4])) + 1e-12):
                self.problems.append(f"{where}: table row {key}: carried {row[4]!r}, verify's {record.carried}")

    def drawing(self, node: str, label: str, where: str) -> None:
        if not Fraction_ok(label):
            return
        if "->" in node:                       # an edge: weight W{l}[i, j] from (a-j) to (h{l}-i)
            a, b = node.split("->")
            layer, i = b.rsplit("-", 1)
            j = a.rsplit("-", 1)[1]
            name = f"W{layer[1:]}[{i},{j}]"
        elif node.startswith("v-") and node.count("-") == 2:   # a neuron of a network
            _, q, i = node.split("-")
            name = f"{q}[{i}]"
        elif node.startswith("v-"):            # a node of a scalar graph
            name = node[2:]
        else:                                  # its gradient
            name = "grad_" + node[2:]
        self.number(label, name, where=f"{where}: drawing {node}")


def Fraction_ok(text: str) -> bool:
    try:
        Fraction(text)
        return True
    except (ValueError, ZeroDivisionError):
        return False
