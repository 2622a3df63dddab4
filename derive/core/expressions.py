"""A whitelisting parser for the small expression language of spec files.

Text is parsed by Python's ``ast`` (parsing runs no code) and then walked by hand: numbers,
declared names, ``+ − * / ** @``, unary minus, calls of allowed functions, ``.T`` and integer
subscripts where the caller's algebra allows them.  Every other node is refused with its
position.  Sizes are bounded before anything is built: text length, node count, nesting depth,
integer digits and the size of a power's exponent.  No eval, exec, sympify or parse_expr.
"""
from __future__ import annotations

import ast
from typing import Any, Callable, Mapping

import sympy as sp

from derive.core.errors import SpecError
from derive.core.numbers import parse_decimal

MAX_CHARS = 2000
MAX_NODES = 600
MAX_DEPTH = 40
MAX_POWER = 64


class ScalarAlgebra:
    """Plain SymPy arithmetic on scalars (node expressions, given values)."""

    def number(self, value: sp.Rational) -> Any:
        return value

    def add(self, a, b):
        return a + b

    def sub(self, a, b):
        return a - b

    def mul(self, a, b):
        return a * b

    def div(self, a, b):
        if b == 0:
            raise ValueError("division by zero")
        return a / b

    def pow(self, a, b):
        return a**b

    def neg(self, a):
        return -a

    def matmul(self, a, b):
        raise ValueError("'@' is for matrices; write '*' for a product of scalars")

    def attribute(self, a, name):
        raise ValueError(f"attribute '.{name}' is not allowed here")

    def index(self, a, idx):
        raise ValueError("subscripts are not allowed here")

    def list(self, items):
        raise ValueError("lists are not allowed here")

    def exponent_value(self, b) -> sp.Expr | None:
        return b if isinstance(b, sp.Expr) and b.is_number else None


_BINOPS = {ast.Add: "add", ast.Sub: "sub", ast.Mult: "mul", ast.Div: "div", ast.Pow: "pow",
           ast.MatMult: "matmul"}


def _depth_and_size(tree: ast.AST) -> tuple[int, int]:
    """Nesting depth and node count, computed without recursion."""
    deepest, count, stack = 0, 0, [(tree, 1)]
    while stack:
        node, d = stack.pop()
        count += 1
        deepest = max(deepest, d)
        stack.extend((child, d + 1) for child in ast.iter_child_nodes(node))
    return deepest, count


def parse_expression(text: str, *, names: Mapping[str, Any], functions: Mapping[str, Callable],
                     path: str = "", algebra: Any = None, max_chars: int = MAX_CHARS) -> Any:
    """Parse ``text`` into a value of ``algebra`` (SymPy scalars by default).

    ``names`` maps identifiers to values; ``functions`` maps callable names to Python callables
    taking already-built arguments.  Errors are :class:`SpecError` naming ``path`` and the column.
    """
    if not isinstance(text, str):
        raise SpecError(path, f"expected an expression written as a string, got {type(text).__name__}")
    if len(text) > max_chars:
        raise SpecError(path, f"expression longer than {max_chars} characters")
    if "\n" in text or "\r" in text or "\x00" in text:
        raise SpecError(path, "expression must be one line of text")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as err:
        col = getattr(err, "offset", None)
        where = f" at column {col}" if col else ""
        raise SpecError(path, f"cannot parse {text!r}{where}: expected an arithmetic expression") from None
    depth, size = _depth_and_size(tree)
    if depth > MAX_DEPTH:
        raise SpecError(path, f"expression nested deeper than {MAX_DEPTH} levels")
    if size > MAX_NODES:
        raise SpecError(path, f"expression has more than {MAX_NODES} parts")
    walker = _Walker(text.strip(), names, functions, algebra or ScalarAlgebra(), path)
    try:
        return walker.visit(tree.body)
    except SpecError:
        raise
    except (ValueError, TypeError, ZeroDivisionError, ArithmeticError) as err:
        raise SpecError(path, f"in {text!r}: {err}") from None


class _Walker:
    def __init__(self, src, names, functions, algebra, path):
        self.src, self.names, self.functions, self.alg, self.path = src, names, functions, algebra, path

    def fail(self, node: ast.AST, message: str):
        raise SpecError(self.path, f"{message} at column {getattr(node, 'col_offset', 0) + 1} of {self.src!r}")

    def visit(self, node: ast.AST):
        method = getattr(self, "visit_" + type(node).__name__, None)
        if method is None:
            self.fail(node, f"'{type(node).__name__}' is not allowed")
        return method(node)

    def visit_Constant(self, node: ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            self.fail(node, "only numbers and names are allowed")
        literal = ast.get_source_segment(self.src, node) or ""
        if len(literal.replace("_", "")) > 30:
            self.fail(node, "number has more than 30 digits")
        if "_" in literal or literal.lower().startswith(("0x", "0o", "0b")):
            self.fail(node, "write numbers as plain decimals")
        return self.alg.number(parse_decimal(literal, self.path).value)

    def visit_Name(self, node: ast.Name):
        if node.id not in self.names:
            self.fail(node, f"unknown name '{node.id}'")
        return self.names[node.id]

    def visit_UnaryOp(self, node: ast.UnaryOp):
        value = self.visit(node.operand)
        if isinstance(node.op, ast.USub):
            return self.alg.neg(value)
        if isinstance(node.op, ast.UAdd):
            return value
        self.fail(node, f"operator '{type(node.op).__name__}' is not allowed")

    def visit_BinOp(self, node: ast.BinOp):
        op = _BINOPS.get(type(node.op))
        if op is None:
            self.fail(node, f"operator '{type(node.op).__name__}' is not allowed")
        left = self.visit(node.left)
        right = self.visit(node.right)
        if op == "pow":
            e = self.alg.exponent_value(right)
            if e is None:
                self.fail(node.right, "an exponent must be a number")
            if not (e.is_Rational and abs(e) <= MAX_POWER and e.q <= MAX_POWER):
                self.fail(node.right, f"exponent must be a rational number of size at most {MAX_POWER}")
        return getattr(self.alg, op)(left, right)

    def visit_Call(self, node: ast.Call):
        allowed = ", ".join(sorted(self.functions))
        if not isinstance(node.func, ast.Name):
            self.fail(node, f"only the allowed functions can be called, by name ({allowed})")
        if node.func.id not in self.functions:
            self.fail(node, f"unknown function '{node.func.id}' (allowed: {allowed})")
        args = [self.visit(a) for a in node.args]
        kwargs = {}
        for kw in node.keywords:
            if kw.arg is None:
                self.fail(node, "'**' arguments are not allowed")
            kwargs[kw.arg] = self.visit(kw.value)
        try:
            return self.functions[node.func.id](*args, **kwargs)
        except TypeError as err:
            self.fail(node, f"{node.func.id}(): {err}")

    def visit_Attribute(self, node: ast.Attribute):
        return self.alg.attribute(self.visit(node.value), node.attr)

    def visit_List(self, node: ast.List):
        items = []
        for elt in node.elts:
            if isinstance(elt, ast.List):
                items.append([self.visit(e) for e in elt.elts])
            else:
                items.append(self.visit(elt))
        return self.alg.list(items)

    def visit_Subscript(self, node: ast.Subscript):
        value = self.visit(node.value)
        idx = node.slice
        parts = idx.elts if isinstance(idx, ast.Tuple) else [idx]
        ints = []
        for p in parts:
            if not (isinstance(p, ast.Constant) and type(p.value) is int and 0 <= p.value < 10_000):
                self.fail(p, "a subscript must be a non-negative integer")
            ints.append(p.value)
        return self.alg.index(value, tuple(ints))
