"""The BLAS code shape: matrix products from the index form, element-wise parts from the engine.

For a network with wide layers, printing every element is out of the question (784·15 weights).
Instead each layer is printed as

* its affine map and its two gradient products from the index form (``indexform.affine_forms``):
  ``Z = np.dot(H, W.T)``, ``np.dot(D.T, H, gW)``, ``G = np.dot(D, W)``, and a column sum for ``gb``;
* its element-wise parts — activation, local derivative, δ — as one loop over (row, unit) whose
  body is the engine's derivation of that layer, made stable by ``program.build``;
* the output layer (loss, ∇_y L, δ^L: they couple the outputs) unrolled over its units, per row.

The element-wise parts come from deriving a *representative* network with the same layers,
activations, loss and biases, hidden widths 1 and the real output width; before printing, the
engine's affine, weight-gradient and back-error steps of that network are checked equal to the
index form instantiated at its sizes, so the two halves are one derivation.
"""
from __future__ import annotations

import re

import sympy as sp

from derive.core.steps import LR
from derive.kinds.network.derivation import derive_network
from derive.kinds.network.spec import Layer, Network
from derive.core.steps import Derivation, Update, symbol

import kernels.indexform as indexform
import kernels.program as prog
from .source import Function, KernelSource, derivation_hash, lines, structure
from .layout import Layout
from .printer import KernelPrinter
from .gemmffi import GEMM


def representative(net: Network, out_width: int | None = None) -> Network:
    """Same layers, activations, loss and biases; input and hidden widths 1, the real output width
    (or ``out_width``)."""
    L = len(net.layers)
    layers = tuple(Layer((out_width or l.size) if i == L - 1 else 1, l.activation, None, () if l.bias == () else None)
                   for i, l in enumerate(net.layers))
    return Network(1, None, None, layers, net.loss, sp.Symbol(LR, positive=True))


LOOPED_HEAD = 64     # output units beyond which a loss of one term per output is printed as a loop


def head_ratio(net: Network) -> sp.Rational | None:
    """When the output layer can be printed as one loop over its units: the loss is c_n·Σ_k ℓ(y_k, t_k)
    with the same term ℓ at every width and the last activation is element-wise, the factor
    c_n / c_1 that turns the one-unit derivation's loss and δ into each unit's share (1 for half_sse,
    1/n for mse); else None.  Only for more than ``LOOPED_HEAD`` outputs (smaller heads stay unrolled)."""
    from derive.core import primitives
    from derive.kinds.network.wide import _loss_terms
    n = net.sizes[-1]
    if n <= LOOPED_HEAD or primitives.ACTIVATIONS[net.layers[-1].activation.name].vector:
        return None
    wide, one = _loss_terms(net.loss, n), _loss_terms(net.loss, 1)
    if wide is None or one is None:
        return None
    ratio = sp.cancel(wide[0] * wide[1] / (one[0] * one[1]))     # output 0's share at width n / at width 1
    return ratio if ratio.is_Rational and ratio != 0 else None


CHECKED = 16   # elements of each quantity compared with the index form


def check_affine(derivation: Derivation, net: Network) -> None:
    """The engine's z, ∂L/∂W and ∂L/∂h of every layer equal the index form at these sizes (one row)."""
    forms = indexform.affine_forms()
    idx = {str(a): a for f in (forms.z, forms.grad_W, forms.grad_h) for a in f.atoms(sp.Idx)}
    for l in range(1, len(net.layers) + 1):
        prev = "x" if l == 1 else f"h{l - 1}"
        elements = {"W": lambda i, l=l: symbol(f"W{l}", i), "b": lambda i, l=l: symbol(f"b{l}", i),
                    "H": lambda i, p=prev: symbol(p, i[1:]), "D": lambda i, l=l: symbol(f"delta{l}", i[1:])}
        dims = {indexform.B: 1, indexform.N: net.sizes[l], indexform.M: net.sizes[l - 1]}
        z = forms.z if net.layers[l - 1].bias != () else forms.z - indexform.b[idx["i"]]
        checks = [(f"z{l}", z, lambda r: {"n": 0, "i": r[0]}),
                  (f"grad_W{l}", forms.grad_W, lambda r: {"k": r[0], "l": r[1]})]
        if l > 1:
            checks.append((f"grad_h{l - 1}", forms.grad_h, lambda r: {"m": 0, "l": r[0]}))
        for name, form, where in checks:
            step = derivation.step(name)
            pairs = list(zip(step.target.indices(), step.exprs))
            # every element has the same form: the first, the last and evenly spaced ones between
            # keep this check bounded for a 1 000-wide output layer (it was most of the time)
            pairs = [pairs[k] for k in sorted({round(k * (len(pairs) - 1) / (CHECKED - 1)) for k in range(CHECKED)})] \
                if len(pairs) > CHECKED else pairs
            for index, expr in pairs:
                at = {idx[k]: v for k, v in where(index).items()}
                got = indexform.instantiate(form, dims, at, elements)
                if sp.expand(got - expr) != 0:
                    raise AssertionError(f"index form of {name}{list(index)} differs from the engine: {got} vs {expr}")


# The products of the index form as loops (the ``loops`` shape): out = A·B with either factor
# transposed, over the elements, no call into BLAS.  Numba compiles these in a fraction of a second
# whatever the sizes, and for small matrices they beat a BLAS call's overhead.
PRODUCT_LOOPS = {
    "mm_ab": '''def mm_ab(A, B, out):
    """out = A B: out[n, j] = Σ_k A[n, k] B[k, j] (the inner loop runs along rows of B and out)."""
    for n in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[n, j] = 0.0
        for k in range(A.shape[1]):
            a = A[n, k]
            for j in range(out.shape[1]):
                out[n, j] += a * B[k, j]''',
    "mm_abt": '''def mm_abt(A, B, out):
    """out = A Bᵀ: out[n, i] = Σ_j A[n, j] B[i, j] (a dot product of two rows)."""
    for n in range(out.shape[0]):
        for i in range(out.shape[1]):
            acc = 0.0
            for j in range(A.shape[1]):
                acc += A[n, j] * B[i, j]
            out[n, i] = acc''',
    "mm_atb": '''def mm_atb(A, B, out):
    """out = Aᵀ B: out[k, l] = Σ_n A[n, k] B[n, l] (the inner loop runs along rows of B and out)."""
    for k in range(out.shape[0]):
        for l in range(out.shape[1]):
            out[k, l] = 0.0
    for n in range(A.shape[0]):
        for k in range(out.shape[0]):
            a = A[n, k]
            for l in range(out.shape[1]):
                out[k, l] += a * B[n, l]''',
}


# The SGD step's checks and stores over a range of theta: every new value is checked before any is
# stored, as it will be stored (in theta's dtype: a float64 value that is finite may overflow
# float32); ``{update}`` is the derived update θ[k] − η·G[k].
STEP_RANGES = {
    "new_values_finite": '''def new_values_finite(theta, G, lr, lo, hi):
    """G[lo:hi] takes the new values of theta[lo:hi], in theta's dtype; whether all are finite."""
    ok = True
    for k in range(lo, hi):
        G[k] = {update}
        ok &= math.isfinite(G[k])
    return ok''',
    "store_new_values": '''def store_new_values(theta, G, lo, hi):
    """theta[lo:hi] takes the new values that new_values_finite put into G[lo:hi] (a loop: Numba
    compiles a slice assignment in about 2 s, this in a tenth of that)."""
    for k in range(lo, hi):
        theta[k] = G[k]''',
}

# Weight matrices from this many elements on are updated in place by BLAS in the BLAS shape's
# sgd_step (W ← W − η·δᵀh in one ?gemm call with β = 1), with no gradient buffer and no passes over
# it, when a bound proves the new weights finite (``_Printer.update``; docs/kernels.md has the
# measurements).
FUSED_UPDATE_MIN = 1024

# The rows (runtime: the minibatch) for which such a layer's forward product, Z = h Wᵀ with the norms
# ‖h‖ and ‖W‖, is the blocked loop ``mm_abt_norms`` rather than BLAS and two passes
# (benchmarks/small_gemm.py: from 1.2x at 10 rows of 784-15 to 0.6x at 128 rows of 512-512, and
# 0.87x at one row, where 4 of the loop's 5 rows are repeats).
BLOCKED_ROWS = (5, 100)


class _Printer:
    """Prints the BLAS-shape functions of one network from its representative program
    (``loops``: the products as loops instead of ``np.dot``)."""

    def __init__(self, net: Network, program: prog.Program, loops: bool = False, ratio: sp.Rational | None = None):
        self.net, self.program, self.loops = net, program, loops
        self.ratio = ratio               # not None: the output layer is one loop over its units
        self.forms = indexform.affine_forms()
        self.L, self.sizes = len(net.layers), net.sizes
        n_out = self.sizes[-1]
        self.layout = Layout.of([(name, shape) for l, layer in enumerate(net.layers, start=1)
                                 for name, shape in [(f"W{l}", (self.sizes[l], self.sizes[l - 1]))] +
                                 ([(f"b{l}", (self.sizes[l],))] if layer.bias != () else [])])
        self.names = self._names()
        n_rep = 1 if ratio is not None else n_out
        self.z_out, self.h_out = ([symbol(f"{q}{self.L}", (i,)) for i in range(n_rep)] for q in ("z", "h"))
        self.delta_out = [symbol(f"delta{self.L}", (i,)) for i in range(n_rep)]
        self.t, self.loss = [symbol("t", (i,)) for i in range(n_rep)], symbol("loss")
        self.work_row = None       # while sgd_step is printed: the columns of (B, n) buffers taken from ``work``

    def _names(self) -> dict:
        """Identifiers; a hidden-layer element stands for element (row, i) of a loop: no suffix."""
        names = {}
        for q in [g.target for g in self.program.given] + self.program.quantities:
            layer = re.fullmatch(r"[A-Za-z_]+?(\d+)(?:_new)?", q.name)
            suffixed = layer is None or int(layer.group(1)) == self.L
            for index, sym in zip(q.indices(), q.symbols()):
                names[sym] = "lr" if q.name == LR else q.name + ("".join(f"_{i}" for i in index) if suffixed else "")
        return names

    def bias(self, l: int) -> bool:
        return self.net.layers[l - 1].bias != ()

    def mat(self, expr, **rename) -> str:
        return KernelPrinter({indexform.MATRICES[k]: v for k, v in rename.items()}).doprint(expr)

    def product(self, expr, out: str, rows: str, cols: int, **rename) -> list[str]:
        """Lines that put the index form's product ``expr`` (A·B, either factor transposed) into
        ``out``, a new (rows, cols) array unless ``rows`` is empty: by BLAS, or by loops."""
        if not self.loops:
            if rows and self.work_row is None:
                return [f"    {out} = {self.mat(expr, **rename)}"]
            a, b = expr.args
            return self.buffer(out, cols, rows) + [f"    np.dot({self.mat(a, **rename)}, {self.mat(b, **rename)}, {out})"]
        a, b = expr.args
        kind = {(False, False): "mm_ab", (False, True): "mm_abt", (True, False): "mm_atb"}[
            (isinstance(a, sp.Transpose), isinstance(b, sp.Transpose))]
        plain = [self.mat(x.arg if isinstance(x, sp.Transpose) else x, **rename) for x in (a, b)]
        return self.buffer(out, cols, rows) + [f"    {kind}({plain[0]}, {plain[1]}, {out})"]

    def buffer(self, name: str, cols: int, rows: str = "B") -> list[str]:
        """Lines that make ``name`` a new (B, cols) array (none when ``rows`` is empty): in sgd_step
        the next view of ``work`` (no allocation, so no fresh pages to fault in at every step), else
        ``np.empty``."""
        if not rows:
            return []
        if self.work_row is None:
            return [f"    {name} = np.empty((B, {cols}), dtype=X.dtype)"]
        self.work_row += cols
        return [f"    {name} = work[at:at + B * {cols}].reshape((B, {cols}))", f"    at += B * {cols}"]

    def emit(self, targets, available, indent, prefix):
        return prog.emit(self.program, targets, self.names, available, indent, prefix)

    def views(self, source: str, prefix: str) -> list[str]:
        out = []
        for s in self.layout.slots:
            shape = f".reshape(({s.shape[0]}, {s.shape[1]}))" if len(s.shape) == 2 else ""
            out.append(f"    {prefix}{s.name} = {source}[{s.offset}:{s.offset + s.size}]{shape}")
        return out

    @staticmethod
    def h(l: int) -> str:
        return "X" if l == 0 else f"H{l}"

    def forward(self, norms: frozenset = frozenset()) -> list[str]:
        """Hidden layers: Z = H Wᵀ by BLAS, then bias and activation per element; the output's Z.
        For each layer l in ``norms``, the same loop sums the squares of h^{l−1} per unit (``ssH{l-1}``)."""
        out = []
        for l in range(1, self.L):
            zi, hi = symbol(f"z{l}", (0,)), symbol(f"h{l}", (0,))
            plus = f" + b{l}[i]" if self.bias(l) else ""
            norm = l + 1 in norms       # the squares of the stored values (float32 ones in float32)
            out += [f"    # layer {l}: z{l} = h{l - 1} W{l}ᵀ{' + b' + str(l) if plus else ''} (index form: "
                    f"z[n,i] = Σ_j W[i,j] h[n,j]{' + b[i]' if plus else ''}), h{l} = g(z{l})",
                    *self.forward_product(l, l in norms),
                    *self.buffer(f"H{l}", self.sizes[l]),
                    *([f"    ssH{l} = np.zeros({self.sizes[l]})"] if norm else []),
                    "    for row in range(B):",
                    f"        for i in range({self.sizes[l]}):",
                    f"            {self.names[zi]} = Z{l}[row, i]{plus}"]
            if _reads(self.program, symbol(f"delta{l}", (0,)), zi):
                out.append(f"            Z{l}[row, i] = {self.names[zi]}")        # g' needs z itself
            out += self.emit([hi], [zi], "            ", f"c{l}_")
            out.append(f"            H{l}[row, i] = {self.names[hi]}")
            if norm:
                out.append(f"            ssH{l}[i] += H{l}[row, i] * H{l}[row, i]")
        L = self.L
        return out + [f"    # output layer {L}: z{L} = h{L - 1} W{L}ᵀ{' + b' + str(L) if self.bias(L) else ''}, "
                      "then per row (the loss couples the outputs)",
                      *self.forward_product(L, L in norms)]

    def forward_product(self, l: int, norm: bool) -> list[str]:
        """Z{l} = h{l-1} W{l}ᵀ; with ``norm`` also ‖W{l}‖² (``ssW{l}``) and for l = 1 ‖X‖² (``ssH0``):
        by the blocked loop ``mm_abt_norms`` for few rows, else by BLAS and ``sumsq`` passes."""
        plain = self.product(self.forms.forward, f"Z{l}", "B", self.sizes[l], H=self.h(l - 1), W=f"W{l}")
        if not norm:
            return plain
        h, lo, hi = self.h(l - 1), *BLOCKED_ROWS
        got = f"ssH0, ssW{l}" if l == 1 else f"ssW{l}"
        return [*self.buffer(f"Z{l}", self.sizes[l]),
                f"    if {lo} <= B <= {hi}:            # rows where a blocked loop beats BLAS (benchmarks/small_gemm.py)",
                f"        {got} = mm_abt_norms({h}, W{l}, Z{l})" + ("" if l == 1 else "[1]"),
                "    else:",
                f"        np.dot({h}, W{l}.T, Z{l})",
                f"        {got} = " + (f"sumsq(X), sumsq(W{l})" if l == 1 else f"sumsq(W{l})")]

    def at(self, i: int) -> str:
        """The column of output unit ``i`` in the head: the loop variable when the head is a loop."""
        return "i" if self.ratio is not None else str(i)

    def scaled(self, text: str) -> str:
        return text if self.ratio is None or self.ratio == 1 else f"({sp.pycode(self.ratio)}) * {text}"

    def head(self, targets, available, body_out) -> list[str]:
        """The output layer, unrolled over its units, one row at a time; or, for a loss of one term
        per output (``ratio``), one loop over the units whose body is the one-unit derivation."""
        L = self.L
        if self.ratio is not None:
            z, = self.z_out
            out = ["    for row in range(B):", f"        for i in range({self.sizes[L]}):",
                   f"            {self.names[z]} = Z{L}[row, i]" + (f" + b{L}[i]" if self.bias(L) else "")]
            out += [f"            {self.names[s]} = T[row, i]" for s in self.t if s in available]
            return out + self.emit(targets, available, "            ", "c_") + ["    " + b for b in body_out]
        out = ["    for row in range(B):"]
        out += [f"        {self.names[z]} = Z{L}[row, {i}]" + (f" + b{L}[{i}]" if self.bias(L) else "")
                for i, z in enumerate(self.z_out)]
        out += [f"        {self.names[s]} = T[row, {i}]" for i, s in enumerate(self.t) if s in available]
        return out + self.emit(targets, available, "        ", "c_") + body_out

    def gradient(self, g: str, fused: frozenset = frozenset()) -> list[str]:
        """Loss summed into ``total``; the mean gradient into the views ``{g}W1``, ``{g}b1``, ...
        but ``{g}W{l}`` of the layers in ``fused`` (their weights are updated in place after the
        checks, ``sgd_step``): for those, the Frobenius norms of δ^l and h^{l−1} are kept instead."""
        L, names = self.L, self.names
        out = self.forward(fused) + [*self.buffer(f"D{L}", self.sizes[L]), "    total = 0.0"]
        out += self.head([self.loss] + self.delta_out, self.z_out + self.t,
                         [f"        total += {self.scaled(names[self.loss])}"] +
                         [f"        D{L}[row, {self.at(i)}] = {self.scaled(names[d])} * scale"
                          for i, d in enumerate(self.delta_out)])
        if L in fused:
            out.append(f"    ssD{L} = sumsq(D{L})")
        for l in range(L, 0, -1):
            if l in fused:
                out.append(f"    # ∂L/∂W{l} = δ{l}ᵀ h{l - 1} is not formed here: W{l} is updated in place below")
            else:
                out += [f"    # ∂L/∂W{l} = δ{l}ᵀ h{l - 1} (index form: Σ_n δ[n,k] h[n,l])",
                        *self.product(self.forms.weight, f"{g}W{l}", "", 0, D=f"D{l}", H=self.h(l - 1))]
            if self.bias(l) and l == L:          # a hidden layer's: summed in the loop that makes its δ
                out += [f"    # ∂L/∂b{l} = Σ_n δ{l}[n,:] (index form: Σ_n δ[n,k])",
                        f"    {g}b{l}[:] = 0.0",
                        "    for row in range(B):",
                        f"        for k in range({self.sizes[l]}):",
                        f"            {g}b{l}[k] += D{l}[row, k]"]
            if l > 1:
                out += self.back_error(l, g, l - 1 in fused)
        return out

    def fused_layers(self, plain_sgd: bool) -> frozenset:
        """Layers whose weights sgd_step updates in place by BLAS (the BLAS shape, large matrices;
        ``plain_sgd``: the derived update is θ − η·∂L/∂θ, which is what ``gemm_update`` computes)."""
        if self.loops or not plain_sgd:
            return frozenset()
        return frozenset(l for l in range(1, self.L + 1) if self.sizes[l] * self.sizes[l - 1] >= FUSED_UPDATE_MIN)

    def update(self, fused: frozenset) -> list[str]:
        """The end of sgd_step: every new value checked, then stored; the weights of the ``fused``
        layers by ``gemm_update`` when the bound proves them finite (else checked and stored too)."""
        ranges, fused_ranges = [], {}
        for slot in self.layout.slots:
            l = int(slot.name[1:])
            if slot.name.startswith("W") and l in fused:
                fused_ranges[l] = (slot.name, slot.offset, slot.offset + slot.size)
            elif ranges and ranges[-1][2] == slot.offset:
                ranges[-1] = (ranges[-1][0] + ", " + slot.name, ranges[-1][1], slot.offset + slot.size)
            else:
                ranges.append((slot.name, slot.offset, slot.offset + slot.size))
        out = []
        if fused:
            out += ["    # W ← W − η δᵀh in place by BLAS (gemm_update), with no gradient buffer, when the new weights",
                    "    # are provably finite: |W − η δᵀh| ≤ ‖W‖ + |η|·‖δ‖·‖h‖ elementwise (Frobenius norms, by",
                    "    # Cauchy–Schwarz) and that bound is below 1 % of the largest float (NaN fails the test).",
                    "    limit = 0.01 * np.finfo(theta.dtype).max",
                    "    fused = abs(lr) < limit                  # and -lr is a number in theta's dtype (BLAS's α)"]
            for l in sorted(fused):
                norm_h = "ssH0" if l == 1 else f"ssH{l - 1}.sum()"
                norm_d = f"ssD{l}" if l == self.L else f"ssD{l}.sum()"
                out += [f"    fused = fused and (math.sqrt(ssW{l}) + abs(lr) * math.sqrt({norm_d}) * "
                        f"math.sqrt({norm_h}) < limit)"]
            out.append("    if not fused:                      # then these gradients are formed and checked too")
            for l in sorted(fused):
                out.append("    " + self.product(self.forms.weight, f"gW{l}", "", 0, D=f"D{l}", H=self.h(l - 1))[0])
        out.append("    ok = math.isfinite(total)          # every new value checked before any is stored")
        out += [f"    ok = ok and new_values_finite(theta, G, lr, {a}, {b})      # {names}" for names, a, b in ranges]
        out += [f"    ok = ok and (fused or new_values_finite(theta, G, lr, {a}, {b}))      # {name}"
                for name, a, b in fused_ranges.values()]
        out += ["    if not ok:", "        return math.nan"]
        out += [f"    store_new_values(theta, G, {a}, {b})" for _, a, b in ranges]
        if fused:
            out.append("    if fused:")
            out += [f"        gemm_update(-lr, D{l}, {self.h(l - 1)}, W{l})      # W{l} += −η δ{l}ᵀ h{l - 1}"
                    for l in sorted(fused)]
            out.append("    else:")
            out += [f"        store_new_values(theta, G, {a}, {b})" for _, a, b in fused_ranges.values()]
        return out + ["    return total * scale"]

    def back_error(self, l: int, g: str, norm: bool = False) -> list[str]:
        """δ^{l−1} = (δ^l W^l) ⊙ g'(z^{l−1}): the product by BLAS, then g' per element, in the same loop
        ∂L/∂b^{l−1} = Σ_n δ^{l−1}[n,:] (and with ``norm`` the squares of δ^{l−1} per unit, ``ssD{l-1}``)."""
        names, k = self.names, l - 1
        hl, dl, gl, zl = (symbol(f"{q}{k}", (0,)) for q in ("h", "delta", "grad_h", "z"))
        reads = [f"            {names[gl]} = D{k}[row, i]", f"            {names[hl]} = H{k}[row, i]"]
        if _reads(self.program, dl, zl):
            reads.append(f"            {names[zl]} = Z{k}[row, i]")
        bias = self.bias(k)
        head = (f"    # ∂L/∂h{k} = δ{l} W{l} (index form: Σ_i δ[n,i] W[i,l]); δ{k} = ∂L/∂h{k} ⊙ g'"
                + (f"; ∂L/∂b{k} = Σ_n δ{k}[n,:]" if bias else ""))
        return ([head, *self.product(self.forms.back, f"D{k}", "B", self.sizes[k], D=f"D{l}", W=f"W{l}")] +
                ([f"    {g}b{k}[:] = 0.0"] if bias else []) +
                ([f"    ssD{k} = np.zeros({self.sizes[k]})"] if norm else []) +
                ["    for row in range(B):",
                 f"        for i in range({self.sizes[k]}):"] + reads +
                self.emit([dl], [gl, hl, zl], "            ", f"c{k}_") +
                [f"            D{k}[row, i] = {names[dl]}"] +
                ([f"            {g}b{k}[i] += D{k}[row, i]"] if bias else []) +
                ([f"            ssD{k}[i] += D{k}[row, i] * D{k}[row, i]"] if norm else []))


def generate_blas(net: Network, loops: bool = False) -> KernelSource:
    """Kernel source of a network in the BLAS shape (``net`` is already symbolic); with ``loops``,
    the ``loops`` shape: the same program with its products as loops (``PRODUCT_LOOPS``)."""
    ratio = head_ratio(net)
    rep_net = representative(net, 1 if ratio is not None else None)
    derivation = derive_network(rep_net)
    check_affine(derivation, rep_net)
    program = prog.build(derivation)
    p = _Printer(net, program, loops, ratio)
    theta, grad, new = _update_form(derivation)               # θ_new = θ − η ∂L/∂θ, one form for all
    update = KernelPrinter({theta: "theta[k]", grad: "G[k]", symbol(LR): "lr"}).doprint(new)
    loss_grad = lines(
        "def loss_grad(theta, X, T, grad):",
        '    """The mean loss over the rows of X, T; its gradient into grad (laid out like theta)."""',
        "    B = X.shape[0]",
        "    scale = 1.0 / B",
        p.views("theta", ""), p.views("grad", "g"),
        p.gradient("g"),
        "    return total * scale",
    )
    fused = p.fused_layers(sp.expand(new - (theta - symbol(LR) * grad)) == 0)
    n = p.layout.size
    if loops:             # small matrices: a few allocations cost less than carving views from a workspace
        work = None
        sgd = lines(
            "def sgd_step(theta, X, T, lr):",
            '    """One SGD step on the mean loss over the rows of X, T (in place); that loss, before the step.',
            "",
            '    NaN, with theta untouched, when an input or a result is not finite."""',
            "    B = X.shape[0]",
            "    scale = 1.0 / B",
            "    G = np.empty_like(theta)",
            p.views("theta", ""), p.views("G", "g"), p.gradient("g", fused), p.update(fused),
        )
    else:
        p.work_row = 0                                        # the step's buffers are views of ``work``
        body = lines(p.views("theta", ""), p.views("G", "g"), p.gradient("g", fused), p.update(fused))
        work = (n, p.work_row)
        p.work_row = None
        sgd = lines(
            "def sgd_step(theta, X, T, lr, work=None):",
            '    """One SGD step on the mean loss over the rows of X, T (in place); that loss, before the step.',
            "",
            "    NaN, with theta untouched, when an input or a result is not finite.  ``work``: scratch of",
            f"    at least {n} + {work[1]}·B elements of theta's dtype (``kernel.workspace(B)``), reused across calls;",
            '    without it the step allocates its own."""',
            "    B = X.shape[0]",
            "    scale = 1.0 / B",
            f"    need = {n} + {work[1]} * B",
            "    if work is None:",
            "        work = np.empty(need, dtype=theta.dtype)",
            "    elif work.shape[0] < need:",
            f'        raise ValueError("sgd_step: work has fewer than {n} + {work[1]}·B elements")',
            f"    G = work[0:{n}]                      # the new values, then each (B, n) buffer in turn",
            f"    at = {n}",
            body,
        )
    forward = lines(
        "def forward(theta, X, Y):",
        '    """The network output for each row of X, into the rows of Y."""',
        "    B = X.shape[0]",
        p.views("theta", ""),
        p.forward(),
        p.head(p.h_out, p.z_out, [f"        Y[row, {p.at(i)}] = {p.names[h]}" for i, h in enumerate(p.h_out)]),
    )
    helpers = tuple(prog.helper_source(program.helpers[h], program.helpers) for h in prog.helper_order(program.helpers))
    helpers += tuple(text.replace("{update}", update) for text in STEP_RANGES.values())
    if loops:
        helpers += tuple(PRODUCT_LOOPS.values())
    acts = ", ".join(l.activation.name for l in net.layers)
    shape = "loops" if loops else "blas"
    meta = {"kind": "network", "shape": shape, **structure(net), "params": p.layout.to_json(),
            **({"work": list(work)} if work else {}),
            "derivation": derivation_hash(derivation), "functions": ["sgd_step", "loss_grad", "forward"]}
    return KernelSource("network", shape, f"{'-'.join(map(str, net.sizes))} network ({acts}; {net.loss}), "
                        f"{'products as loops' if loops else 'BLAS'}",
                        helpers, (Function("sgd_step", sgd), Function("loss_grad", loss_grad),
                                  Function("forward", forward)), meta, preamble=GEMM if fused else "")


def _reads(program: prog.Program, delta: sp.Symbol, z: sp.Symbol) -> bool:
    """Whether δ of a hidden element, given ∂L/∂h, h and z, reads z itself (g' in input form)."""
    layer = z.name[1:z.name.index("[")]
    given = [z, symbol(f"h{layer}", (0,)), symbol(f"grad_h{layer}", (0,))]
    given = [g for g in given if any(g == s for s, _ in program.statements) or g == z]
    return any(z in e.free_symbols for _, e in prog.needed(program, [delta], given))


def _update_form(derivation: Derivation):
    """(θ, ∂L/∂θ, θ − η ∂L/∂θ) of one parameter element, after checking every update has that form."""
    first = None
    for step in derivation.steps:
        if isinstance(step, Update):
            for sym, expr in zip(step.target.symbols(), step.exprs):
                p = symbol(step.param, _index(sym))
                g = symbol("grad_" + step.param, _index(sym))
                if first is None:
                    first = (p, g, expr)
                elif sp.expand(expr.xreplace({p: first[0], g: first[1]}) - first[2]) != 0:
                    raise AssertionError(f"update of {sym} has another form than {first[2]}")
    return first


def _index(sym: sp.Symbol) -> tuple[int, ...]:
    name = sym.name
    return tuple(int(i) for i in name[name.index("[") + 1:-1].split(",")) if "[" in name else ()
