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

from derive.backprop import LR, derive_network
from derive.spec import Layer, Network
from derive.steps import Derivation, Update, symbol

from . import indexform
from . import program as prog
from .codegen import Function, KernelSource, _lines, derivation_hash, structure
from .layout import Layout
from .printer import KernelPrinter


def representative(net: Network) -> Network:
    """Same layers, activations, loss and biases; input and hidden widths 1, the real output width."""
    L = len(net.layers)
    layers = tuple(Layer(l.size if i == L - 1 else 1, l.activation, None, () if l.bias == () else None)
                   for i, l in enumerate(net.layers))
    return Network(1, None, None, layers, net.loss, sp.Symbol(LR, positive=True))


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
            for index, expr in zip(step.target.indices(), step.exprs):
                at = {idx[k]: v for k, v in where(index).items()}
                got = indexform.instantiate(form, dims, at, elements)
                if sp.expand(got - expr) != 0:
                    raise AssertionError(f"index form of {name}{list(index)} differs from the engine: {got} vs {expr}")


def generate_blas(net: Network) -> KernelSource:
    """Kernel source of a network in the BLAS shape (``net`` is already symbolic)."""
    rep_net = representative(net)
    derivation = derive_network(rep_net)
    check_affine(derivation, rep_net)
    program = prog.build(derivation)
    forms = indexform.affine_forms()
    L = len(net.layers)
    sizes = net.sizes
    n_out = sizes[-1]
    layout = Layout.of([(name, shape) for l, layer in enumerate(net.layers, start=1)
                        for name, shape in [(f"W{l}", (sizes[l], sizes[l - 1]))] +
                        ([(f"b{l}", (sizes[l],))] if layer.bias != () else [])])

    # identifiers: a hidden-layer element stands for element (row, i) of a loop, so it has no suffix
    names: dict[sp.Basic, str] = {}
    for q in [g.target for g in program.given] + program.quantities:
        layer = re.fullmatch(r"[A-Za-z_]+?(\d+)(?:_new)?", q.name)
        suffixed = layer is None or int(layer.group(1)) == L
        for index, sym in zip(q.indices(), q.symbols()):
            names[sym] = "lr" if q.name == LR else q.name + ("".join(f"_{i}" for i in index) if suffixed else "")
    z_out = [symbol(f"z{L}", (i,)) for i in range(n_out)]
    t = [symbol("t", (i,)) for i in range(n_out)]
    loss = symbol("loss")
    delta_out = [symbol(f"delta{L}", (i,)) for i in range(n_out)]
    h_out = [symbol(f"h{L}", (i,)) for i in range(n_out)]

    def mat(expr, **rename):
        printer = KernelPrinter({indexform.MATRICES[k]: v for k, v in rename.items()})
        return printer.doprint(expr)

    def dot_into(expr, out, **rename):
        a, b = expr.args
        return f"np.dot({mat(a, **rename)}, {mat(b, **rename)}, {out})"

    def views(src: str, prefix: str):
        lines = []
        for s in layout.slots:
            end = s.offset + s.size
            shape = f".reshape(({s.shape[0]}, {s.shape[1]}))" if len(s.shape) == 2 else ""
            lines.append(f"    {prefix}{s.name} = {src}[{s.offset}:{end}]{shape}")
        return lines

    def h_of(l):
        return "X" if l == 0 else f"H{l}"

    def forward_lines():
        lines = []
        for l in range(1, L):
            n = sizes[l]
            z, h = symbol(f"z{l}"), symbol(f"h{l}")
            zi, hi = symbol(f"z{l}", (0,)), symbol(f"h{l}", (0,))
            bias = f" + b{l}[i]" if net.layers[l - 1].bias != () else ""
            keep_z = _reads(program, symbol(f"delta{l}", (0,)), zi)
            lines += [f"    # layer {l}: z{l} = h{l - 1} W{l}ᵀ{' + b' + str(l) if bias else ''} (index form: "
                      f"z[n,i] = Σ_j W[i,j] h[n,j]{' + b[i]' if bias else ''}), h{l} = g(z{l})",
                      f"    Z{l} = {mat(forms.forward, H=h_of(l - 1), W=f'W{l}')}",
                      f"    H{l} = np.empty_like(Z{l})",
                      "    for row in range(B):",
                      f"        for i in range({n}):",
                      f"            {names[zi]} = Z{l}[row, i]{bias}"]
            if keep_z:
                lines.append(f"            Z{l}[row, i] = {names[zi]}")
            lines += prog.emit(program, [hi], names, [zi], "            ", prefix=f"c{l}_")
            lines.append(f"            H{l}[row, i] = {names[hi]}")
        bias = net.layers[-1].bias != ()
        lines += [f"    # output layer {L}: z{L} = h{L - 1} W{L}ᵀ{' + b' + str(L) if bias else ''}, "
                  "then per row (the loss couples the outputs)",
                  f"    Z{L} = {mat(forms.forward, H=h_of(L - 1), W=f'W{L}')}"]
        return lines

    def head_loop(targets, available, body_out):
        lines = ["    for row in range(B):"]
        bias = net.layers[-1].bias != ()
        lines += [f"        {names[z]} = Z{L}[row, {i}]" + (f" + b{L}[{i}]" if bias else "") for i, z in enumerate(z_out)]
        lines += [f"        {names[s]} = T[row, {i}]" for i, s in enumerate(t) if s in available]
        lines += prog.emit(program, targets, names, available, "        ", prefix="c_")
        return lines + body_out

    def gradient_lines(grad_prefix: str):
        lines = forward_lines()
        lines += [f"    D{L} = np.empty_like(Z{L})", "    total = 0.0"]
        lines += head_loop([loss] + delta_out, z_out + t,
                           [f"        total += {names[loss]}"] +
                           [f"        D{L}[row, {i}] = {names[d]} * scale" for i, d in enumerate(delta_out)])
        for l in range(L, 0, -1):
            prev = h_of(l - 1)
            lines += [f"    # ∂L/∂W{l} = δ{l}ᵀ h{l - 1} (index form: Σ_n δ[n,k] h[n,l])",
                      "    " + dot_into(forms.weight, f"{grad_prefix}W{l}", D=f"D{l}", H=prev)]
            if net.layers[l - 1].bias != ():
                lines += [f"    # ∂L/∂b{l} = Σ_n δ{l}[n,:] (index form: Σ_n δ[n,k])",
                          f"    {grad_prefix}b{l}[:] = 0.0",
                          "    for row in range(B):",
                          f"        for k in range({sizes[l]}):",
                          f"            {grad_prefix}b{l}[k] += D{l}[row, k]"]
            if l == 1:
                break
            hl, dl, gl = symbol(f"h{l - 1}", (0,)), symbol(f"delta{l - 1}", (0,)), symbol(f"grad_h{l - 1}", (0,))
            zl = symbol(f"z{l - 1}", (0,))
            reads = [f"            {names[gl]} = D{l - 1}[row, i]", f"            {names[hl]} = H{l - 1}[row, i]"]
            if _reads(program, dl, zl):
                reads.append(f"            {names[zl]} = Z{l - 1}[row, i]")
            lines += [f"    # ∂L/∂h{l - 1} = δ{l} W{l} (index form: Σ_i δ[n,i] W[i,l]); δ{l - 1} = ∂L/∂h{l - 1} ⊙ g'",
                      f"    D{l - 1} = {mat(forms.back, D=f'D{l}', W=f'W{l}')}",
                      "    for row in range(B):",
                      f"        for i in range({sizes[l - 1]}):"] + reads
            lines += prog.emit(program, [dl], names, [gl, hl, zl], "            ", prefix=f"c{l - 1}_")
            lines.append(f"            D{l - 1}[row, i] = {names[dl]}")
        return lines

    # the update θ_new = θ − η ∂L/∂θ, one form for every parameter (checked)
    update = _update_form(derivation)
    upd_printer = KernelPrinter({update[0]: "theta[k]", update[1]: "G[k]", symbol(LR): "lr"})
    update_line = upd_printer.doprint(update[2])

    loss_grad = _lines(
        "def loss_grad(theta, X, T, grad):",
        '    """The mean loss over the rows of X, T; its gradient into grad (laid out like theta)."""',
        "    B = X.shape[0]",
        "    scale = 1.0 / B",
        views("theta", ""), views("grad", "g"),
        gradient_lines("g"),
        "    return total * scale",
    )
    sgd = _lines(
        "def sgd_step(theta, X, T, lr):",
        '    """One SGD step on the mean loss over the rows of X, T (in place); that loss, before the step.',
        "",
        '    NaN, with theta untouched, when an input or a result is not finite."""',
        "    B = X.shape[0]",
        "    scale = 1.0 / B",
        "    G = np.empty_like(theta)",
        views("theta", ""), views("G", "g"),
        gradient_lines("g"),
        "    ok = math.isfinite(total)",
        "    for k in range(theta.shape[0]):",
        f"        G[k] = {update_line}",
        "        ok &= math.isfinite(G[k])",
        "    if not ok:",
        "        return math.nan",
        "    theta[:] = G",
        "    return total * scale",
    )
    forward = _lines(
        "def forward(theta, X, Y):",
        '    """The network output for each row of X, into the rows of Y."""',
        "    B = X.shape[0]",
        views("theta", ""),
        forward_lines(),
        head_loop(h_out, z_out, [f"        Y[row, {i}] = {names[h]}" for i, h in enumerate(h_out)]),
    )
    helpers = tuple(prog.helper_source(program.helpers[h], program.helpers) for h in prog.helper_order(program.helpers))
    acts = ", ".join(l.activation.name for l in net.layers)
    meta = {"kind": "network", "shape": "blas", **structure(net), "params": layout.to_json(),
            "derivation": derivation_hash(derivation), "functions": ["sgd_step", "loss_grad", "forward"]}
    return KernelSource("network", "blas", f"{'-'.join(map(str, sizes))} network ({acts}; {net.loss}), BLAS",
                        helpers, (Function("sgd_step", sgd), Function("loss_grad", loss_grad),
                                  Function("forward", forward)), meta)


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
