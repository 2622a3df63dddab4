"""Handouts of ``[cnn]`` problems: the LaTeX name of every quantity, a printer for every step of
:mod:`derive.kinds.cnn.derivation`, and the handout's sections.

Maps are upper-case bold (input X, conv output Z, activation A, pooled S; a padded map wears a tilde,
X̃), vectors lower-case bold (f flattened, u = W f + b), kernels K, the kernel rotated by 180° K̂;
⋆ is the cross-correlation and ∗ the convolution.  Every display is a chain ``lhs = formula =
(matrices written out) = value`` whose numeric forms are the formula with each quantity replaced by
its values, so the handout tests read every number back (tests/numbers_check.py).  The backward
pass shows the rotated kernel: ``∂L/∂X̃ = Δ̃ ⋆ K̂``, Δ̃ being ∂L/∂Z spread to stride spacing and
zero-padded by the kernel size − 1; each of its elements is the chain-rule sum the engine derived,
and the caption says that the two were proved equal.
"""
from __future__ import annotations

import re
from collections import Counter
from itertools import product
from typing import Sequence

import sympy as sp

from derive.core import primitives
from derive.core.steps import LR
from derive.core.evaluate import rational, value_of
from derive.kinds.cnn.derivation import FORWARD, TIE_RULE, CnnGradient, Conv2D, FlipKernel, SpreadGradient
from derive.kinds.cnn.spec import Conv2d, Dense, Flatten, Pool
from derive.printing.latex import Block, Chain, HandoutPrinter, Math, Table, Terms, bmatrix, caption
from derive.printing.names import Names, _apply, _overrides
from derive.printing.notation import GRAD, fill, scalar_name
from derive.printing.notation import profile as find_profile
from derive.core.steps import Given, LossValue, Seed, Update

_NAME = re.compile(r"(?P<grad>grad_)?(?P<base>[A-Za-z]+?)(?P<k>\d*)(?P<suffix>_flip|_dil|_full)?(?P<new>_new)?")
_LETTERS = {  # base -> (map, vector, element letter)
    "x": (r"\mathbf{X}", r"\mathbf{x}", "x"), "t": (r"\mathbf{T}", r"\mathbf{t}", "t"),
    "upstream": (r"\mathbf{G}", r"\mathbf{g}", "g"), "K": (r"\mathbf{K}", "", "k"),
    "conv": (r"\mathbf{Z}", "", "z"), "act": (r"\mathbf{A}", r"\mathbf{a}", "a"), "pool": (r"\mathbf{S}", "", "s"),
    "flat": ("", r"\mathbf{f}", "f"), "W": (r"\mathbf{W}", "", "w"), "b": ("", r"\mathbf{b}", "b"),
    "fc": ("", r"\mathbf{u}", "u"),
}
MAX_TERMS = 12     # element lines are written out for sums of at most this many products
_KIND_OF = {"K": "conv2d", "c": "conv2d", "pad": "conv2d", "conv": "conv2d", "act": "activation",
            "dact": "activation", "pool": "pool", "flat": "flatten", "W": "dense", "b": "dense", "fc": "dense"}


# ----------------------------------------------------------------------------- names

def _rc(index: tuple[int, ...]) -> str:
    one = [str(i + 1) for i in index]
    return ("," if any(len(s) > 1 for s in one) else "").join(one)



def _loss_words(name: str) -> str:
    """A loss in prose: the registry's words, or the cnn kind's own 'objective'."""
    return primitives.LOSSES[name].words if name in primitives.LOSSES else "a given output gradient"


class _Namer:
    def __init__(self, steps, prof):
        self.p = prof
        self.shapes = {s.name: s.target.shape for s in steps}
        self.steps = {s.name: s for s in steps}
        kinds = Counter()
        for s in steps:
            m = _NAME.fullmatch(s.name)
            if m and not m.group("grad") and not m.group("new") and m.group("base") in ("conv", "act", "pool", "flat",
                                                                                         "fc"):
                kinds[_KIND_OF[m.group("base")]] += 1
        self.multi = {k for k, n in kinds.items() if n > 1}
        self.q: dict[str, str] = {}
        self.e: dict[str, str] = {}

    def sup(self, base: str, k: str) -> str:
        return f"^{{({k})}}" if k and _KIND_OF.get(base) in self.multi else ""

    def put(self, name: str, quantity: str, element) -> None:
        self.q[name] = quantity
        for idx in (product(*(range(d) for d in self.shapes[name])) if self.shapes[name] else []):
            self.e[f"{name}[{','.join(map(str, idx))}]"] = element(idx)

    def forward(self, name: str) -> None:
        """Name an input, a parameter or a forward quantity (shapes come later, see :meth:`shape`)."""
        if name == "loss":
            self.q[name] = fill(self.p.template("loss") or "L", 0)
            return
        if name == LR:
            self.q[name] = fill(self.p.template("eta") or r"\eta", 0)
            return
        m = _NAME.fullmatch(name)
        base, k, suffix = (m.group("base"), m.group("k"), m.group("suffix")) if m else ("", "", None)
        shape = self.shapes[name]
        sup = self.sup(base, k)
        if base == "K" and suffix == "_flip":
            self.put(name, rf"\hat{{\mathbf{{K}}}}{sup}", lambda i: rf"\hat{{k}}{sup}_{{{_rc(i)}}}")
        elif base == "c":
            self.q[name] = rf"b_{{\mathbf{{K}}{sup}}}"
        elif base == "pad":
            src = self.steps[name].inputs[0]
            if src not in self.q:
                self.forward(src)
            mat, letter, src_sup = self.letters(src)
            self.put(name, rf"\tilde{{{mat}}}{src_sup}", lambda i: rf"\tilde{{{letter}}}{src_sup}_{{{_rc(i)}}}")
        elif base == "dact":
            act = primitives.ACTIVATIONS[self.steps[name].activation]
            a = f"act{k}"
            z = self.steps[a].inputs[0]
            if len(shape) == 2 and act.vector:
                self.put(name, rf"\frac{{\partial {self.q[a]}}}{{\partial {self.q[z]}}}",
                         lambda i: rf"\frac{{\partial {self.e[f'{a}[{i[0]}]']}}}{{\partial {self.e[f'{z}[{i[1]}]']}}}")
            else:
                self.put(name, rf"{act.latex}'\left({self.q[z]}\right)",
                         lambda i: rf"{act.latex}'\left({self.e[z + '[' + ','.join(map(str, i)) + ']']}\right)")
        elif base in _LETTERS:
            mat, letter, sup = self.letters(name)
            self.put(name, mat, lambda i: rf"{letter}{sup}_{{{_rc(i)}}}")
        else:
            self.put(name, scalar_name(name), lambda i: rf"{{{scalar_name(name)}}}_{{{_rc(i)}}}")

    def shape(self, name: str) -> None:
        of = name[len("shape_"):]
        self.q[name] = rf"\operatorname{{size}}\left({self.q[of]}\right)"
        words = ("rows", "cols")
        self.e.update({f"{name}[{d}]": rf"\operatorname{{{words[d]}}}\left({self.q[of]}\right)" for d in range(2)})

    def letters(self, name: str) -> tuple[str, str, str]:
        """(quantity LaTeX, element letter, superscript) of a named map or vector."""
        m = _NAME.fullmatch(name)
        base, k = m.group("base"), m.group("k")
        if base == "pad":
            return self.q[name], re.sub(r"_\{[^{}]*\}$", "", self.e[f"{name}[0,0]"]), ""
        sup = self.sup(base, k)
        mat, vec, letter = _LETTERS[base]
        big = mat if (len(self.shapes[name]) == 2 or not vec) and mat else vec
        return big + sup, letter, sup

    def derived(self, name: str) -> None:
        m = _NAME.fullmatch(name)
        of = name[len("grad_"):]
        loss = self.q["loss"]
        if m.group("suffix") in ("_dil", "_full"):
            sup = self.sup("conv", m.group("k"))
            tilde = m.group("suffix") == "_full"
            mat = r"\tilde{\boldsymbol{\Delta}}" if tilde else r"\boldsymbol{\Delta}"
            letter = r"\tilde{\delta}" if tilde else r"\delta"
            self.put(name, mat + sup, lambda i: rf"{letter}{sup}_{{{_rc(i)}}}")
            return
        self.put(name, fill(GRAD, L=loss, v=self.q[of]),
                 lambda i: fill(GRAD, L=loss, v=self.e[f"{of}[{','.join(map(str, i))}]"]))
        if not self.shapes[name]:
            self.q[name] = fill(GRAD, L=loss, v=self.q[of])

    def new(self, name: str) -> None:
        of = name[: -len("_new")]
        mark = (lambda t: f"{{{t}}}'") if self.p.new == "'" else (lambda t: f"{{{t}}}^{{{self.p.new}}}")
        self.q[name] = mark(self.q[of])
        for key, tex in list(self.e.items()):
            if key.startswith(of + "["):
                self.e[name + key[len(of):]] = mark(tex)


def cnn_names(derivations, prof="standard", overrides=()) -> Names:
    """The LaTeX of every quantity and element of a ``[cnn]`` derivation, with ``[notation]`` overrides."""
    derivations = list(derivations)
    prof = find_profile(prof) if isinstance(prof, str) else prof
    steps = [s for d in derivations for s in d.steps]
    n = _Namer(steps, prof)
    for s in steps:       # inputs, parameters, forward quantities, in order (a pad names after its source)
        if not s.name.startswith(("grad_", "shape_")) and not s.name.endswith("_new") and s.name not in n.q:
            n.forward(s.name)
    for s in steps:
        if s.name.startswith("shape_"):
            n.shape(s.name)
    known = {s.name for s in steps} | {a for d in derivations for a, _ in d.aliases}
    known |= {f"{s.name}[{','.join(map(str, i))}]" for s in steps if s.target.shape for i in s.target.indices()}
    resolved = dict(a for d in derivations for a in d.aliases)
    over = {resolved.get(k, k): v for k, v in _overrides(overrides, known).items()}
    _apply(over, n.q, n.e, steps)
    for s in steps:
        if s.name.startswith("grad_"):
            n.derived(s.name)
    for s in steps:
        if s.name.endswith("_new"):
            n.new(s.name)
    _apply(over, n.q, n.e, steps)
    return Names(prof, n.e, n.q, frozenset(), n.q["loss"])


# ----------------------------------------------------------------------------- the printer

def _dims(shape) -> str:
    """A shape in prose: 4×4."""
    return "×".join(map(str, shape))


def _pair(p: tuple[int, int]) -> str:
    return str(p[0]) if p[0] == p[1] else f"{p[0]},{p[1]}"


class CnnPrinter(HandoutPrinter):
    """``_print_<Class>`` for the steps of :mod:`derive.kinds.cnn.derivation`; the rest as :class:`HandoutPrinter`."""

    # -- helpers
    def forms(self, step, formula: str, substituted=None, uses: Sequence[str] = ()) -> Chain:
        """``lhs = formula = substituted = values``; the substituted form only when every quantity it
        writes out fits on the page and has values."""
        rhs = [("=", formula)]
        if self.numeric_step(step.target) and self.fits(step.target):
            qs = [self.quantities[u] for u in uses]
            if substituted is not None and all(self.fits(q) and self.numeric_step(q) for q in qs):
                rhs.append(("=", substituted()))
            rhs.append(self.value_form(step.target))
        elif self.fits(step.target) and step.target.shape and all(sp.count_ops(e) <= 2 for e in step.exprs):
            # a symbolic problem: short element expressions (padding, rotation, spreading) written out
            rhs.append(("=", self.matrix_of(step.target, lambda s: str(self.sym(step.expr(_index(step.target, s)))))))
        return Chain(self.q(step.name), tuple(rhs))

    def elements(self, step, heads=None) -> tuple:
        """Element lines, unless an element is a sum of more than ``MAX_TERMS`` products: then the matrix
        form above is the whole story, and a line of that length would not fit the page."""
        if self.long(step):
            sym = step.target.symbol() if not step.target.shape else None
            if sym is not None and self.has_values([sym]):     # a scalar: its value, at least
                return (Chain(self.e(sym), ((self.rel([sym]), self.shown(sym).text),)),)
            return ()
        return super().elements(step, heads)

    def long(self, step) -> bool:
        # a kernel gradient's products hold a gradient fraction each, twice as wide as a forward product
        most = MAX_TERMS // 2 + 2 if step.rule == "conv_kernel_gradient" else MAX_TERMS
        return any(len(sp.Add.make_args(e)) > most for e in step.exprs)

    def note(self, step, cap: tuple) -> tuple:
        """The caption, saying so when the element lines are left out."""
        if not self.long(step):
            return cap
        n = max(len(sp.Add.make_args(e)) for e in step.exprs)
        return cap + (f" Each element is a sum of up to {n} products, given by the matrix form.",)

    def scalar(self, name: str) -> str:
        """A scalar's value as shown in a substituted form (negative values bracketed)."""
        text = self.shown(self.quantities[name].symbol()).text
        return rf"\left({text}\right)" if text.startswith("-") else text

    def vals(self, name: str, transpose: bool = False) -> str:
        return self.values_of(name, transpose)

    def layer_of(self, step) -> str:
        return f"Layer {step.layer}"

    # -- forward pass
    def _print_ZeroPad(self, step) -> Block:
        (src,) = step.inputs
        p = _pair(step.padding)
        rings = "ring" if step.padding == (1, 1) else "rings"
        cap = caption(f"{self.layer_of(step)}, zero padding: {p} {rings} of zeros around ",
                      Math(self.q(src)), f", which becomes {_dims(step.target.shape)}.")
        op = rf"\operatorname{{pad}}_{{{p}}}"
        chain = self.forms(step, rf"{op}\left({self.q(src)}\right)", lambda: rf"{op}\left({self.vals(src)}\right)",
                           (src,))
        return Block(cap, (chain,))

    def _print_OutputShape(self, step) -> Block:
        parts = []
        for (L, P, K, S), what in zip(step.dims, ("rows", "columns")):
            if K == 0:
                parts.append(f"{what} {L} + 2·{P} = {L + 2 * P}")
            else:
                parts.append(f"{what} ⌊({L} + 2·{P} − {K})/{S}⌋ + 1 = {(L + 2 * P - K) // S + 1}")
        if all(K == 0 for _, _, K, _ in step.dims):
            cap = caption("The size of the padded map, L_in + 2P: ", "; ".join(parts), ".")
        else:
            cap = caption("The size of the output by ",
                          Math(r"L_{\mathrm{out}} = \left\lfloor \frac{L_{\mathrm{in}} + 2P - K}{S} \right\rfloor + 1"),
                          ": ", "; ".join(parts), ", as many windows as the layer has. ")
            if not getattr(self, "_proof_shown", False):
                self._proof_shown = True
                cap += (f"The formula is proved for all sizes: {step.proof}.",)
        sizes = bmatrix([[str(int(e))] for e in step.exprs])     # constants: the same with or without values
        return Block(cap, (Chain(self.q(step.name), (("=", sizes),)),))

    def _print_FlipKernel(self, step) -> Block:
        (K,) = step.inputs
        op = r"\operatorname{rot}_{180^{\circ}}"
        cap = caption("The kernel rotated by 180°: its rows and its columns in reverse order, ",
                      Math(r"\hat{k}_{uv} = k_{m+1-u,\,n+1-v}"), f" for the {_dims(step.target.shape)} kernel.")
        return Block(cap, (self.forms(step, rf"{op}\left({self.q(K)}\right)",
                                      lambda: rf"{op}\left({self.vals(K)}\right)", (K,)),))

    def _print_Conv2D(self, step) -> Block:
        src, kernel = step.source, step.kernel
        bias = [n for n in step.inputs if n not in (src, kernel)]
        plus = f" + {self.q(bias[0])}" if bias else ""
        plus_n = (lambda: f" + {self.scalar(bias[0])}") if bias else (lambda: "")
        kh, kw = self.quantities[kernel].shape
        s = _pair(step.stride)
        idx = (r"i + u - 1,\, j + v - 1" if step.stride == (1, 1) else
               rf"{step.stride[0]}(i-1) + u,\, {step.stride[1]}(j-1) + v")
        letter = self.names.elements[f"{src}[0,0]"].rsplit("_", 1)[0]
        kl = self.names.elements[f"{kernel}[0,0]"].rsplit("_", 1)[0]
        sum_ = rf"z_{{ij}} = \sum_{{u,v}} {kl}_{{uv}}\, {letter}_{{{idx}}}"
        sum_ += f" + {self.q(bias[0])}" if bias else ""
        if step.mode == "convolution":
            K = self.derivations[0].step(kernel).inputs[0]
            cap = caption(f"{self.layer_of(step)}, a true convolution with the kernel ", Math(self.q(K)),
                          f", stride {s}: the kernel is rotated by 180° and then slid over the map "
                          f"(∗ is the convolution, ⋆ the cross-correlation). Each output multiplies a window by the "
                          f"{kh}×{kw} kernel and adds: ", Math(sum_), ".")
            head = [("=", rf"{self.q(src)} * {self.q(K)}{plus}")]
        else:
            cap = caption(f"{self.layer_of(step)}, cross-correlation with the kernel ", Math(self.q(kernel)),
                          f", stride {s}: the kernel slides over the map without being flipped, "
                          f"which is what CNN layers compute (⋆ is the cross-correlation). Each output multiplies a "
                          f"window by the {kh}×{kw} kernel and adds: ", Math(sum_), ".")
            head = []
        chain = self.forms(step, rf"{self.q(src)} \star {self.q(kernel)}{plus}",
                           lambda: rf"{self.vals(src)} \star {self.vals(kernel)}{plus_n()}", (src, kernel))
        chain = Chain(chain.lhs, tuple(head) + chain.rhs)
        return Block(self.note(step, cap), (chain,) + self.elements(step))

    def _print_MapActivation(self, step) -> Block:
        act = primitives.ACTIVATIONS[step.activation]
        (z,) = step.inputs
        params = "".join(f", {k} = {v}" for k, v in step.params)
        from derive.printing.latex import definition
        cap = caption(f"{self.layer_of(step)}, activation {act.words}{params}, element by element: ",
                      Math(definition(act, step.params)), ".")
        chain = self.forms(step, rf"{act.latex}\left({self.q(z)}\right)")
        return Block(cap, (chain,) + self.elements(step, self._activation_heads(step, act)))

    def _print_MaxPool(self, step) -> Block:
        (src,) = step.inputs
        op = rf"\operatorname{{maxpool}}_{{{step.size[0]} \times {step.size[1]}}}"
        cap = caption(f"{self.layer_of(step)}, max pooling over {step.size[0]}×{step.size[1]} windows, stride "
                      f"{_pair(step.stride)}: each output is the largest value of its window; "
                      f"among equal values the engine selects {TIE_RULE}.")
        chain = self.forms(step, rf"{op}\left({self.q(src)}\right)", lambda: rf"{op}\left({self.vals(src)}\right)",
                           (src,))
        lines = []
        for (sym, _), window in list(zip(step.items(), step.windows))[: 3 * self.max_matrix]:
            els = [sp.Symbol(w, real=True) for w in window]
            rhs = [("=", rf"\max\left({', '.join(self.e(w) for w in els)}\right)")]
            if self.has_values(els + [sym]):
                rhs.append(("=", rf"\max\left({', '.join(self.shown(w).text for w in els)}\right)"))
                rhs.append((self.rel([sym]), self.shown(sym).text))
            lines.append(Chain(self.e(sym), tuple(rhs)))
        if step.target.size > 3 * self.max_matrix:
            lines.append(Chain(r"\vdots", ()))
        return Block(cap, (chain,) + tuple(lines))

    def _print_AvgPool(self, step) -> Block:
        (src,) = step.inputs
        op = rf"\operatorname{{avgpool}}_{{{step.size[0]} \times {step.size[1]}}}"
        cap = caption(f"{self.layer_of(step)}, average pooling over {step.size[0]}×{step.size[1]} windows, stride "
                      f"{_pair(step.stride)}: each output is the mean of its window.")
        chain = self.forms(step, rf"{op}\left({self.q(src)}\right)", lambda: rf"{op}\left({self.vals(src)}\right)",
                           (src,))
        return Block(self.note(step, cap), (chain,) + self.elements(step))

    def _print_Flat(self, step) -> Block:
        (src,) = step.inputs
        cap = caption(f"{self.layer_of(step)}, flatten: the map's elements row by row, as one vector.")
        op = r"\operatorname{vec}"
        return Block(cap, (self.forms(step, rf"{op}\left({self.q(src)}\right)",
                                      lambda: rf"{op}\left({self.vals(src)}\right)", (src,)),))

    def _print_FullyConnected(self, step) -> Block:
        W, f, *b = step.inputs
        formula = f"{self.q(W)} {self.q(f)}" + (f" + {self.q(b[0])}" if b else "")
        subst = lambda: f"{self.vals(W)} {self.vals(f)}" + (f" + {self.vals(b[0])}" if b else "")
        cap = caption(f"{self.layer_of(step)}, fully connected: the weights times the input, plus the bias.")
        return Block(cap, (self.forms(step, formula, subst, step.inputs),) + self.elements(step))

    def _print_Objective(self, step) -> Block:
        g, y = step.inputs
        cap = caption("No loss is given, so the backward pass starts from the given gradient of the output, ",
                      Math(rf"{self.q(g)} = \partial {self.q('loss')}/\partial {self.q(y)}"),
                      ": ", Math(rf"{self.q('loss')} = \sum {self.q(g)} \odot {self.q(y)}"),
                      ", whose gradient is exactly that. With every entry 1 it is the sum of the outputs.")
        return Block(self.note(step, cap), self.elements(step))

    # -- backward pass
    def _chain_caption(self, step, text: str, *more) -> tuple:
        return caption(f"{self.layer_of(step)}, {text}", *more)

    def _print_CnnGradient(self, step) -> Block:
        cap = caption("The gradient of ", Math(self.q(step.of)), " by the chain rule: ",
                      Math(rf"\frac{{\partial {self.names.loss}}}{{\partial v}} = \sum_{{c}} \frac{{\partial "
                           rf"{self.names.loss}}}{{\partial c}}\,\frac{{\partial c}}{{\partial v}}"),
                      " over the elements c that read v.")
        return self._value_head(step, cap)

    def _print_CnnOutputGradient(self, step) -> Block:
        if step.loss == "objective":
            cap = caption("The gradient of the output: the given ", Math(self.q("upstream")),
                          ".")
            return Block(cap, (self.forms(step, self.q("upstream")),))
        cap = caption(f"The gradient of the loss ({_loss_words(step.loss)}) with respect to the output, "
                      "element by element.")
        return self._value_head(step, cap)

    def _print_ActivationDerivative(self, step) -> Block:
        act = primitives.ACTIVATIONS[step.activation]
        how = "written with the layer's output" if step.form == "output" else "by differentiating its definition"
        cap = caption(f"{self.layer_of(step)}, the local derivative of {act.words}, {how}, "
                      "element by element.")
        return Block(cap, (self.expression_forms(step),))

    def _print_ActivationGradient(self, step) -> Block:
        g, d = step.inputs
        if len(self.quantities[d].shape) == 2 and len(step.target.shape) == 1:
            formula = rf"{self.names.transpose(d)} {self.q(g)}"
            subst = lambda: rf"{self.vals(d)}^{{\top}} {self.vals(g)}"
        else:
            formula = rf"{self.q(g)} \odot {self.q(d)}"
            subst = lambda: rf"{self.vals(g)} \odot {self.vals(d)}"
        cap = self._chain_caption(step, "back through the activation: the gradient of its "
                                        "output times its local derivative.")
        return Block(cap, (self.forms(step, formula, subst, (g, d)),) + self.elements(step))

    def _print_MaxPoolGradient(self, step) -> Block:
        cap = self._chain_caption(step, "back through max pooling: the chain rule's local "
                                        "derivative ∂s/∂a is 1 for the element the window selected and 0 for the "
                                        f"others, so each window's gradient goes to {TIE_RULE}; every other element "
                                        "gets 0.")
        lines = []
        for i, (sym, expr) in enumerate(list(step.items())[: 3 * self.max_matrix]):
            routed = self._routed(step.terms[i])
            if routed is None:
                lines.append(self.element(sym, expr))
            elif not routed:
                lines.append(Chain(self.e(sym), (("=", "0"),)))
            else:
                syms = [sp.Symbol("grad_" + c, real=True) for c in routed]
                rhs = [("=", Terms(tuple(("+", self.e(s)) for s in syms)))]
                if self.has_values(syms + [sym]):
                    if len(syms) > 1:
                        rhs.append(("=", Terms(tuple(("+", self.shown(s).text) for s in syms))))
                    rhs.append((self.rel([sym]), self.shown(sym).text))
                lines.append(Chain(self.e(sym), tuple(rhs)))
        if step.target.size > 3 * self.max_matrix:
            lines.append(Chain(r"\vdots", ()))
        head = self.forms(step, self.q(step.name)) if self.numeric_step(step.target) and self.fits(step.target) \
            else None
        head = Chain(head.lhs, head.rhs[1:]) if head else None
        return Block(cap, ((head,) if head else ()) + tuple(lines))

    def _routed(self, terms) -> list[str] | None:
        """The windows whose gradient reaches this element (their local derivative is 1), or None without values."""
        out = []
        for consumer, local in terms:
            if local.free_symbols and not self.has_values(local.free_symbols):
                return None
            value = value_of(local, self.values) if local.free_symbols else rational(sp.Rational(local))
            if value.exact not in (0, 1):
                return None
            if value.exact == 1:
                out.append(consumer)
        return out

    def _print_AvgPoolGradient(self, step) -> Block:
        n = step.size[0] * step.size[1]
        cap = self._chain_caption(step, f"back through average pooling: each element of a "
                                        f"window receives 1/{n} of the window's gradient (summed over the windows "
                                        "that contain it).")
        return self._value_head(step, cap)

    def _value_head(self, step, cap) -> Block:
        head = (Chain(self.q(step.name), (self.value_form(step.target),)),) \
            if self.numeric_step(step.target) and self.fits(step.target) else ()
        return Block(self.note(step, cap), head + self.elements(step))

    def _print_UnflattenGradient(self, step) -> Block:
        cap = self._chain_caption(step, "back through flatten: the vector's gradient put "
                                        "back in the map's shape, row by row.")
        return self._value_head(step, cap)

    def _print_DenseWeightGradient(self, step) -> Block:
        g, f = self._dense_reads(step)
        cap = self._chain_caption(step, "gradient of the weights: the outer product of "
                                        "the output's gradient and the layer's input.")
        chain = self.forms(step, f"{self.q(g)} {self.names.transpose(f)}",
                           lambda: rf"{self.vals(g)} {self.vals(f)}^{{\top}}", (g, f))
        return Block(cap, (chain,))

    def _dense_reads(self, step):
        dense = next(s for d in self.derivations for s in d.steps if s.name.startswith("fc") and s.rule == "dense"
                     and s.layer == step.layer)
        return "grad_" + dense.name, dense.inputs[1]

    def _print_DenseBiasGradient(self, step) -> Block:
        g, _ = self._dense_reads(step)
        cap = self._chain_caption(step, "gradient of the bias: the output's gradient.")
        return Block(cap, (self.forms(step, self.q(g)),))

    def _print_DenseInputGradient(self, step) -> Block:
        g, _ = self._dense_reads(step)
        dense = next(s for d in self.derivations for s in d.steps if s.name == g[len("grad_"):])
        W = dense.inputs[0]
        cap = self._chain_caption(step, "gradient sent back to the layer's input: the "
                                        "transposed weights times the output's gradient.")
        chain = self.forms(step, f"{self.names.transpose(W)} {self.q(g)}",
                           lambda: rf"{self.vals(W)}^{{\top}} {self.vals(g)}", (W, g))
        return Block(self.note(step, cap), (chain,) + self.elements(step))

    def _print_SpreadGradient(self, step) -> Block:
        (src,) = step.inputs
        if step.pad == (0, 0):
            s = _pair(step.dilation)
            op = rf"\operatorname{{dil}}_{{{s}}}"
            cap = self._chain_caption(step, f"the output's gradient spread to stride spacing: "
                                            f"stride − 1 zeros between neighbours, for the stride {s}.")
        else:
            p = _pair(step.pad)
            op = rf"\operatorname{{pad}}_{{{p}}}"
            cap = self._chain_caption(step, f"the output's gradient with {p} rings of zeros around it (the kernel's "
                                            "size less one), for the full correlation below.")
        return Block(cap, (self.forms(step, rf"{op}\left({self.q(src)}\right)",
                                      lambda: rf"{op}\left({self.vals(src)}\right)", (src,)),))

    def _print_ConvInputGradient(self, step) -> Block:
        spread, kernel = step.spread, step.kernel
        rotated = "the kernel rotated by 180°" if self.derivations[0].step(kernel).rule == "flip" else \
            "the forward pass's rotated kernel rotated back, i.e. the kernel itself"
        cap = self._chain_caption(
            step, "gradient with respect to the layer's input. By the chain rule each "
                  "input element collects, from every output whose window covers it, that output's gradient times the "
                  "kernel weight that multiplied it; the engine derived every element so and proved (by "
                  f"{step.proof}) that the result is the full correlation of the spread gradient ",
            Math(self.q(spread)), f" with {rotated}, ", Math(self.q(kernel)), ".")
        chain = self.forms(step, rf"{self.q(spread)} \star {self.q(kernel)}",
                           lambda: rf"{self.vals(spread)} \star {self.vals(kernel)}", (spread, kernel))
        return Block(self.note(step, cap), (chain,) + self.elements(step))

    def _print_ConvKernelGradient(self, step) -> Block:
        src, g = step.source, step.grad
        cap = self._chain_caption(
            step, "gradient of the kernel: each weight multiplied one input element per "
                  "output, so its gradient is the sum of those elements times the outputs' gradients: the "
                  f"correlation of the layer's input with the output gradient (derived by the chain rule, proved by "
                  f"{step.proof}).")
        chain = self.forms(step, rf"{self.q(src)} \star {self.q(g)}",
                           lambda: rf"{self.vals(src)} \star {self.vals(g)}", (src, g))
        return Block(self.note(step, cap), (chain,) + self.elements(step))

    def _print_FlipGradient(self, step) -> Block:
        (g,) = [n for n in step.inputs if n.startswith("grad_")]
        op = r"\operatorname{rot}_{180^{\circ}}"
        cap = self._chain_caption(step, "gradient of the kernel of the true convolution: the "
                                        "gradient of the rotated kernel, rotated back.")
        return Block(cap, (self.forms(step, rf"{op}\left({self.q(g)}\right)",
                                      lambda: rf"{op}\left({self.vals(g)}\right)", (g,)),))

    def _print_ConvBiasGradient(self, step) -> Block:
        cap = self._chain_caption(step, "gradient of the conv bias: it is added at every "
                                        "position, so it collects the whole output gradient.")
        return Block(self.note(step, cap), self.elements(step))

    def _print_CropGradient(self, step) -> Block:
        cap = self._chain_caption(step, "gradient of the unpadded map: the padded map's gradient "
                                        "without its rings of zeros, which are constants.")
        return self._value_head(step, cap)


def _index(q, sym):
    return q.indices()[q.symbols().index(sym)]


# ----------------------------------------------------------------------------- sections

def _describe(layer, shape) -> str:
    if isinstance(layer, Conv2d):
        mode = "convolution" if layer.mode == "convolution" else "cross-correlation"
        pad = f", zero padding {_pair(layer.padding)}" if layer.padding != (0, 0) else ""
        return f"{layer.size[0]}×{layer.size[1]} {mode} (stride {_pair(layer.stride)}{pad})"
    if isinstance(layer, Pool):
        return f"{layer.size[0]}×{layer.size[1]} {layer.op} pooling (stride {_pair(layer.stride)})"
    if isinstance(layer, Dense):
        return f"fully connected to {layer.size}"
    if isinstance(layer, Flatten):
        return "flatten"
    return getattr(getattr(layer, "activation", None), "name", layer.kind)


def placed() -> tuple:
    import derive.kinds.cnn.derivation as conv
    return FORWARD + (Given, LossValue, Seed, Update, conv.CnnGradient, conv.ActivationDerivative, SpreadGradient,
                      FlipKernel)


_MEANING = {"x": "input map", "t": "target", "upstream": "given output gradient ∂L/∂y", "K": "kernel",
            "c": "conv bias", "pad": "zero-padded input", "conv": "conv output", "act": "activation output",
            "dact": "local derivative of the activation", "pool": "pooled map", "flat": "flattened map",
            "W": "dense weights", "b": "dense bias", "fc": "dense output", "loss": "loss",
            "learning_rate": "learning rate"}


def _symbol_table(printer, main) -> Table:
    rows = []
    for s in main.steps:
        m = _NAME.fullmatch(s.name)
        if s.name.startswith(("grad_", "shape_")) or s.name.endswith("_new") or not (m or s.name == LR):
            continue
        base = "learning_rate" if s.name == LR else ("K_flip" if m.group("suffix") == "_flip" else m.group("base"))
        meaning = _MEANING.get(base, "the kernel rotated by 180°" if base == "K_flip" else s.rule)
        rows.append((Math(printer.q(s.name)), s.name, _dims(s.target.shape) if s.target.shape else "scalar", meaning))
    return Table(("Symbols used below (the key is the name in the spec's [stated] table).",),
                 ("symbol", "key", "shape", "meaning"), tuple(rows), ("l", "l", "l", "l"))


def sections(spec, derivations, printer) -> list:
    from derive.printing.sections import Section, _steps
    from derive.printing.worked import Group
    net = spec.problem
    main = derivations[0]
    stack = ", ".join(_describe(l, s) for l, s in zip(net.stack, net.shapes))
    tail = f"loss: {_loss_words(net.loss)}" if net.loss else "no loss: the backward pass propagates the given output gradient"
    intro = caption(f"A convolutional network on a {_dims(net.input_shape)} map: {stack}; output "
                    f"{_dims(net.output_shape)}; {tail}" +
                    ("; one step of gradient descent." if net.learning_rate is not None else "."))
    givens = _steps(main, Given)
    problem = [intro, _symbol_table(printer, main), printer.doprint(Group(tuple(givens)))]
    forward = [printer.doprint(s) for s in main.steps if isinstance(s, FORWARD + (LossValue,))
               and not (isinstance(s, FlipKernel) and _backward_helper(main, s))]
    backward = [printer.doprint(s) for s in main.steps
                if isinstance(s, (Seed, CnnGradient, SpreadGradient)) or type(s).__name__ == "ActivationDerivative"
                or (isinstance(s, FlipKernel) and _backward_helper(main, s))]
    updates = _steps(main, Update)
    out = [Section("The problem", tuple(problem)), Section("Forward pass", tuple(forward)),
           Section("Backward pass", tuple(backward))]
    if updates:
        out.append(Section("Gradient-descent update", (printer.doprint(Group(tuple(updates))),)))
    return out


def _backward_helper(main, step) -> bool:
    """A rotated kernel that only the backward pass reads (a cross-correlation layer's)."""
    return not any(isinstance(s, Conv2D) and s.kernel == step.name for s in main.steps)


def notation_line(prof) -> str:
    return (f"Notation: maps X (input), Z (convolution), A (activation), S (pooling) with elements x_ij, z_ij, ...; "
            f"K the kernel and K̂ the kernel rotated by 180°; ⋆ cross-correlation, ∗ convolution; vectors f "
            f"(flattened) and u = W f + b; loss and learning rate as in {prof.title}.")


# ----------------------------------------------------------------------------- the printing-module interface
# (derive/kinds.py: a kind printed its own way names a module with these five)

Printer = CnnPrinter
names = cnn_names


def meta(spec, prof) -> str:
    return notation_line(prof)
