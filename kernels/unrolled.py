"""The unrolled code shape: every element of the derivation one line, straight-line code.

Used for the slides' small networks and for every scalar graph.  The statements come from
``program.build`` (the derivation with stable forms); each kernel function prints those its
outputs need, through ``sympy.cse``.  Parameters are read into locals once, samples row by row.
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from derive.core.steps import LR
from derive.kinds.graph.derivation import derive_graph
from derive.kinds.network.derivation import derive_network
from derive.kinds.graph.spec import Graph
from derive.kinds.network.spec import Network
from derive.core.steps import Derivation, Update

from . import program as prog
from .codegen import Function, KernelSource, derivation_hash, identifiers, lines, structure
from .layout import Layout
from .printer import KernelPrinter, VectorPrinter
from .vecmath import VECMATH

NONFINITE = ('    """{what}\n\n'
             '    NaN, with {arrays} untouched, when an input or a result is not finite."""')


@dataclass
class _Net:
    """The pieces of a network's program the kernel functions print."""

    program: prog.Program
    names: dict
    params: list          # (offset in theta, symbol)
    x: list
    t: list
    lr: sp.Symbol
    loss: sp.Symbol
    y: list
    grads: list           # ∂L/∂θ symbols, in the order of params
    news: list            # θ_new symbols, in the order of params
    updates: dict         # θ_new symbol -> θ − η ∂L/∂θ

    def emit(self, targets, available, indent, prefix="c", printer=KernelPrinter):
        return prog.emit(self.program, targets, self.names, available, indent, prefix, printer)

    def load_params(self, source: str, indent: str):
        return [f"{indent}{self.names[s]} = {source.format(k)}" for k, s in self.params]

    def load(self, source: str, syms, indent: str):
        return [f"{indent}{self.names[s]} = {source.format(i)}" for i, s in enumerate(syms)]

    @property
    def inputs(self):
        return [s for _, s in self.params] + list(self.x) + list(self.t) + [self.lr]


def _net(net: Network) -> tuple[_Net, Derivation, Layout]:
    derivation = derive_network(net)
    program = prog.build(derivation)
    names = identifiers([g.target for g in program.given] + program.quantities, opaque=False)
    given = [s for s in derivation.steps if getattr(s, "role", None) == "param"]
    layout = Layout.of((s.name, s.target.shape) for s in given)
    params = [(layout.slot(p.name).offset + k, sym) for p in given for k, sym in enumerate(p.target.symbols())]
    q = derivation.quantity
    parts = _Net(program, names, params, list(q("x").symbols()), list(q("t").symbols()), q(LR).symbol(),
                 q("loss").symbol(), list(q(f"h{len(net.layers)}").symbols()),
                 [g for p in given for g in q("grad_" + p.name).symbols()],
                 [n for p in given for n in q(p.name + "_new").symbols()],
                 {sym: e for s in derivation.steps if isinstance(s, Update) for sym, e in s.items()})
    return parts, derivation, layout


def _accumulated(n: _Net, body_out: list[str]) -> list[str]:
    """Parameters loaded, the loss and gradient summed over the rows of X, T."""
    return lines(
        n.load_params("theta[{}]", "    "),
        [f"    gsum_{n.names[g]} = 0.0" for g in n.grads],
        "    total = 0.0",
        "    for row in range(X.shape[0]):",
        n.load("X[row, {}]", n.x, "        "),
        n.load("T[row, {}]", n.t, "        "),
        n.emit([n.loss] + n.grads, n.inputs, "        "),
        f"        total += {n.names[n.loss]}",
        [f"        gsum_{n.names[g]} += {n.names[g]}" for g in n.grads],
        "    scale = 1.0 / X.shape[0]",
        body_out,
    ).split("\n")


def _sgd_step(n: _Net) -> str:
    gsum = {g: sp.Symbol("gsum_" + n.names[g]) for g in n.grads}
    scale = sp.Symbol("scale")
    printer = KernelPrinter({**n.names, **{s: s.name for s in gsum.values()}, scale: "scale"},
                            frozenset(n.program.helpers))
    mean = {g: gsum[g] * scale for g in n.grads}          # the update reads the mean gradient
    update = [f"    {n.names[new]} = {printer.doprint(n.updates[new].xreplace(mean))}" for new in n.news]
    return lines(
        "def sgd_step(theta, X, T, lr):",
        NONFINITE.format(what="One SGD step on the mean loss over the rows of X, T (in place); that loss, "
                              "before the step.", arrays="theta"),
        _accumulated(n, update + ["    ok = math.isfinite(total)"] +
                     [f"    ok &= math.isfinite({n.names[new]})" for new in n.news]),
        "    if not ok:",
        "        return math.nan",
        [f"    theta[{k}] = {n.names[new]}" for (k, _), new in zip(n.params, n.news)],
        "    return total * scale",
    )


def _loss_grad(n: _Net) -> str:
    return lines(
        "def loss_grad(theta, X, T, grad):",
        '    """The mean loss over the rows of X, T; its gradient into grad (laid out like theta)."""',
        _accumulated(n, [f"    grad[{k}] = gsum_{n.names[g]} * scale" for (k, _), g in zip(n.params, n.grads)]),
        "    return total * scale",
    )


def _forward(n: _Net) -> str:
    return lines(
        "def forward(theta, X, Y):",
        '    """The network output for each row of X, into the rows of Y."""',
        n.load_params("theta[{}]", "    "),
        "    for row in range(X.shape[0]):",
        n.load("X[row, {}]", n.x, "        "),
        n.emit(n.y, [s for _, s in n.params] + n.x, "        "),
        [f"        Y[row, {i}] = {n.names[s]}" for i, s in enumerate(n.y)],
    )


MANY_BLOCK = 32        # problems per block of the vectorised kernel (a compile-time constant in its code)
MANY_CHUNK = 32        # blocks per parallel task (one scratch buffer each)


def _many(n: _Net, blocked: bool = False, block: int = MANY_BLOCK, chunk: int = MANY_CHUNK) -> tuple[str, str]:
    """The many-problems step, vectorised across problems.

    Inside the kernel the problems of a block are laid out struct-of-arrays in one scratch vector
    ``buf``: row r of the block (a parameter, an input, a result) is ``buf[r*block:(r+1)*block]``,
    one element per problem.  The derived expressions are the body of a loop over the problems of
    the block, every access ``buf[constant + lane]``: one base, constant strides, so LLVM
    vectorises it (exp and log by ``vexp``/``vlog``, helpers by their ``_v`` twins).  Theta keeps
    its rows = problems; the transposes into and out of ``buf`` are part of the kernel.  The new
    values are checked once per block: 0·v is 0 for a finite v and NaN otherwise, summed over a
    problem's results and reduced over the block pairwise (loops of independent adds, which
    vectorise); only a block that is not all finite is looked at problem by problem.
    """
    P, nx, nt = len(n.params), len(n.x), len(n.t)
    IN, OUT = 0, P + nx + nt
    LOSS, CHK, RED = OUT + P, OUT + P + 1, OUT + P + 2
    rows = RED + 1

    def at(row, lane="lane"):
        return f"buf[{row * block} + {lane}]" if row else f"buf[{lane}]"

    loads = ([f"                {n.names[s]} = {at(IN + k)}" for k, (_, s) in enumerate(n.params)] +
             [f"                {n.names[s]} = {at(P + i)}" for i, s in enumerate(n.x)] +
             [f"                {n.names[s]} = {at(P + nx + i)}" for i, s in enumerate(n.t)])
    zero_terms = " + ".join(f"0.0 * {at(r)}" for r in [LOSS] + [OUT + k for k in range(P)])
    reduce = []
    width = block // 2
    while width:
        reduce += [f"            for lane in range({width}):",
                   f"                {at(RED)} += {at(RED, 'lane + ' + str(width))}"]
        width //= 2
    if blocked:
        name, args = "many_blocked_blocks", "ThetaB, XB, TB, lr, losses"
        head = [f"def {name}({args}, start, stop):",
                f'    """Blocks start..stop of the blocked layout: problem p = blk*{block} + lane is ThetaB[blk, :, lane],',
                '    XB[blk, :, lane], TB[blk, :, lane]; its loss into losses[p] (NaN, problem untouched, when not finite)."""',
                "    Theta = ThetaB"]
        gather = [f"            size = {block}",
                  f"            for k in range({P}):                # a contiguous copy per row",
                  f"                for lane in range({block}):",
                  f"                    buf[k * {block} + lane] = ThetaB[blk, k, lane]",
                  f"            for k in range({nx}):",
                  f"                for lane in range({block}):",
                  f"                    buf[({P} + k) * {block} + lane] = XB[blk, k, lane]",
                  f"            for k in range({nt}):",
                  f"                for lane in range({block}):",
                  f"                    buf[({P + nx} + k) * {block} + lane] = TB[blk, k, lane]"]
        put = f"ThetaB[blk, k, lane]"
    else:
        name, args = "many_rows_blocks", "Theta, X, T, lr, losses"
        head = [f"def {name}({args}, start, stop):",
                f'    """Blocks start..stop of {block} problems (rows of Theta, X, T): one SGD step each, in place.',
                "",
                '    losses[p] is the loss before the step, or NaN (row p untouched) when something is not finite.',
                '    Vectorised across the problems of a block, struct-of-arrays in buf (see the generator)."""']
        gather = [f"            size = min({block}, Theta.shape[0] - first)",
                  "            for lane in range(size):             # transposed into the blocked layout",
                  f"                for k in range({P}):",
                  f"                    buf[k * {block} + lane] = Theta[first + lane, k]",
                  f"                for k in range({nx}):",
                  f"                    buf[({P} + k) * {block} + lane] = X[first + lane, k]",
                  f"                for k in range({nt}):",
                  f"                    buf[({P + nx} + k) * {block} + lane] = T[first + lane, k]",
                  f"            for lane in range(size, {block}):     # the last block's empty lanes compute on zeros",
                  f"                for k in range({OUT}):",
                  f"                    buf[k * {block} + lane] = 0.0"]
        put = "Theta[first + lane, k]"
    store = [f"                    for k in range({P}):",
             f"                        {put} = buf[({OUT} + k) * {block} + lane]",
             f"                    losses[first + lane] = {at(LOSS)}"]
    worker = lines(
        head,
        f"    buf = np.empty({rows * block}, dtype=Theta.dtype)",
        "    for blk in range(start, stop):            # (the body is indented as deep as a driver's would be)",
        f"            first = blk * {block}",
        gather,
        f"            for lane in range({block}):           # the derivation, one problem per lane",
        loads,
        n.emit([n.loss] + n.news, n.inputs, "                ", printer=VectorPrinter),
        [f"                {at(OUT + k)} = {n.names[new]}" for k, new in enumerate(n.news)],
        f"                {at(LOSS)} = {n.names[n.loss]}",
        f"            for lane in range({block}):           # 0 when every result of the problem is finite, else NaN",
        f"                {at(CHK)} = {zero_terms}",
        f"                {at(RED)} = {at(CHK)}",
        reduce,
        f"            if {at(RED, '0')} == 0.0:           # the whole block is finite",
        "                for lane in range(size):",
        store,
        "            else:",
        "                for lane in range(size):",
        f"                    if {at(CHK)} == 0.0:",
        ["    " + line for line in store],
        "                    else:",
        "                        losses[first + lane] = math.nan",
    )
    if blocked:
        driver = lines(
            "def many_sgd_step_blocked(ThetaB, XB, TB, lr, losses):",
            f'    """The many-problems step on the blocked layout (blocks, columns, {block}), in parallel tasks of',
            f'    {chunk} blocks; problem p = blk*{block} + lane, its loss into losses[p] (NaN: untouched)."""',
            "    nblocks = ThetaB.shape[0]",
            f"    for task in prange((nblocks + {chunk - 1}) // {chunk}):",
            f"        {name}({args}, task * {chunk}, min(nblocks, (task + 1) * {chunk}))")
    else:
        driver = lines(
            "def many_sgd_step(Theta, X, T, lr, losses):",
            '    """Row p of Theta is one problem with sample X[p], T[p]: one SGD step each, in place.',
            "",
            '    losses[p] is the loss before the step, or NaN (row p untouched) when something is not finite.',
            f'    Parallel tasks of {chunk} blocks of {block} problems, each vectorised (many_rows_blocks)."""',
            f"    nblocks = (Theta.shape[0] + {block - 1}) // {block}",
            f"    for task in prange((nblocks + {chunk - 1}) // {chunk}):",
            f"        {name}({args}, task * {chunk}, min(nblocks, (task + 1) * {chunk}))")
    return worker, driver


def _many_functions(n: _Net) -> list[Function]:
    """The vectorised block workers (no ``parallel``: its passes would take the large loop body
    apart and cost several times the compile time) and their parallel drivers, a call per task."""
    out = []
    for blocked, driver_name, worker_name in [(False, "many_sgd_step", "many_rows_blocks"),
                                              (True, "many_sgd_step_blocked", "many_blocked_blocks")]:
        worker, driver = _many(n, blocked)
        out += [Function(worker_name, worker, fastmath='{"contract"}'), Function(driver_name, driver, parallel=True)]
    return out


def _trace(program: prog.Program, names: dict, head: str, loads: list[str], available) -> tuple[str, Layout]:
    layout = Layout.of((q.name, q.shape) for q in program.quantities)
    text = lines(
        head,
        '    """Every quantity of the derivation, into out (see the trace layout)."""',
        loads,
        prog.emit(program, [s for s, _ in program.statements], names, available, "    "),
        [f"    out[{layout.slot(q.name).offset + k}] = {names[s]}"
         for q in program.quantities for k, s in enumerate(q.symbols())],
    )
    return text, layout


def _helpers(program: prog.Program, vector: bool = False) -> tuple[str, ...]:
    """The helpers' source; with ``vector`` also their ``_v`` twins (vexp/vlog, for the many kernel)."""
    order = prog.helper_order(program.helpers)
    return tuple(prog.helper_source(program.helpers[h], program.helpers) for h in order)


def _vector_preamble(program: prog.Program) -> str:
    """vexp and vlog, and the helpers' ``_v`` twins that call them, all inlined by Numba into the
    vectorised kernel (a call would keep its loop scalar)."""
    order = prog.helper_order(program.helpers)
    twins = [prog.helper_source(program.helpers[h], program.helpers, VectorPrinter, "_v") for h in order]
    return "\n\n".join([VECMATH] + ['@njit(cache=True, error_model="numpy", inline="always")\n' + t for t in twins])


def network_source(net: Network) -> KernelSource:
    """Kernel source of a small layered network (``net`` already symbolic)."""
    n, derivation, layout = _net(net)
    trace, trace_layout = _trace(n.program, n.names, "def trace(theta, x, t, lr, out):",
                                 n.load_params("theta[{}]", "    ") + n.load("x[{}]", n.x, "    ") +
                                 n.load("t[{}]", n.t, "    "), n.inputs)
    functions = (Function("sgd_step", _sgd_step(n)), Function("loss_grad", _loss_grad(n)),
                 Function("forward", _forward(n)),
                 *_many_functions(n),
                 Function("trace", trace))
    meta = {"kind": "network", "shape": "unrolled", **structure(net), "params": layout.to_json(),
            "trace": trace_layout.to_json(), "derivation": derivation_hash(derivation),
            "functions": [f.name for f in functions], "many_block": MANY_BLOCK}
    title = f"{'-'.join(map(str, net.sizes))} network ({', '.join(l.activation.name for l in net.layers)}; " \
            f"{net.loss}), unrolled"
    return KernelSource("network", "unrolled", title, _helpers(n.program), functions, meta,
                        preamble=_vector_preamble(n.program))


# ----------------------------------------------------------------------------- scalar graphs

def graph_source(graph: Graph) -> KernelSource:
    """Kernel source of a scalar graph (``graph`` already symbolic); names print as q0, q1, ..."""
    derivation = derive_graph(graph)
    program = prog.build(derivation)
    names = identifiers([g.target for g in program.given] + program.quantities, opaque=True)
    leaves = [g for g in program.given if g.name != LR]
    q = derivation.quantity
    lr, loss = q(LR).symbol(), q(graph.loss).symbol()
    values = [g.target.symbol() for g in leaves]
    grads = [q("grad_" + g.name).symbol() for g in leaves]
    news = {k: q(g.name + "_new").symbol() for k, g in enumerate(leaves) if g.role == "param"}

    def step_lines(source: str, indent: str):
        """Load, check the inputs, compute loss and new parameters, check those: sets ``ok``."""
        return lines(
            [f"{indent}{names[s]} = {source.format(k)}" for k, s in enumerate(values)],
            f"{indent}ok = math.isfinite(lr)",          # a value hidden by relu(NaN) = 0 must not pass
            [f"{indent}ok &= math.isfinite({names[s]})" for s in values],
            prog.emit(program, [loss] + list(news.values()), names, values + [lr], indent),
            [f"{indent}ok &= math.isfinite({names[s]})" for s in [loss] + list(news.values())],
        )

    sgd = lines(
        "def sgd_step(v, lr):",
        NONFINITE.format(what="One gradient step on the parameters among the values v (in place); the loss "
                              "before it.", arrays="v"),
        step_lines("v[{}]", "    "),
        "    if not ok:",
        "        return math.nan",
        [f"    v[{k}] = {names[s]}" for k, s in news.items()],
        f"    return {names[loss]}",
    )
    loss_grad = lines(
        "def loss_grad(v, grad):",
        '    """The loss at the values v; its gradient with respect to every value into grad."""',
        [f"    {names[s]} = v[{k}]" for k, s in enumerate(values)],
        prog.emit(program, [loss] + grads, names, values, "    "),
        [f"    grad[{k}] = {names[g]}" for k, g in enumerate(grads)],
        f"    return {names[loss]}",
    )
    many = lines(
        "def many_sgd_step(V, lr, losses):",
        '    """Row p of V holds the values of one problem: one gradient step each, in place.',
        "",
        '    losses[p] is the loss before the step, or NaN (row p untouched) when something is not finite."""',
        "    for prob in prange(V.shape[0]):",
        step_lines("V[prob, {}]", "        "),
        "        if ok:",
        [f"            V[prob, {k}] = {names[s]}" for k, s in news.items()],
        f"            losses[prob] = {names[loss]}",
        "        else:",
        "            losses[prob] = math.nan",
    )
    trace, trace_layout = _trace(program, names, "def trace(v, lr, out):",
                                 [f"    {names[s]} = v[{k}]" for k, s in enumerate(values)], values + [lr])
    functions = (Function("sgd_step", sgd), Function("loss_grad", loss_grad),
                 Function("many_sgd_step", many, parallel=True), Function("trace", trace))
    meta = {"kind": "graph", "shape": "unrolled", "values": [[g.name, g.role] for g in leaves],
            "loss": graph.loss, "trace": trace_layout.to_json(), "derivation": derivation_hash(derivation),
            "functions": [f.name for f in functions]}
    return KernelSource("graph", "unrolled", f"scalar graph of {len(graph.nodes)} nodes, unrolled",
                        _helpers(program), functions, meta)


# ----------------------------------------------------------------------------- any other derivation

def derivation_source(derivation: Derivation, title: str) -> KernelSource:
    """Kernel source of any derivation whose steps are plain expressions (convolutional and
    recurrent networks, perceptrons, ...): its given quantities are one flat vector ``v``, its
    quantities print as q0, q1, ... (kind-specific names never reach the code)."""
    program = prog.build(derivation)
    names = identifiers([g.target for g in program.given] + program.quantities, opaque=True)
    leaves = [g for g in program.given if g.name != LR]
    layout = Layout.of((g.name, g.target.shape) for g in leaves)
    values = [s for g in leaves for s in g.target.symbols()]
    has = {s.name for s in derivation.steps}
    lr = [derivation.quantity(LR).symbol()] if LR in has else []
    loss = derivation.quantity("loss").symbol() if "loss" in has else None
    grads = [(layout.slot(g.name).offset + k, s) for g in leaves if "grad_" + g.name in has
             for k, s in enumerate(derivation.quantity("grad_" + g.name).symbols())]
    news = [(layout.slot(g.name).offset + k, s) for g in leaves if g.role == "param" and g.name + "_new" in has
            for k, s in enumerate(derivation.quantity(g.name + "_new").symbols())]
    load = [f"    {names[s]} = v[{k}]" for k, s in enumerate(values)]
    functions = []
    trace, trace_layout = _trace(program, names, "def trace(v, lr, out):", load, values + lr)
    functions.append(Function("trace", trace))
    if loss is not None:
        functions.append(Function("loss_grad", lines(
            "def loss_grad(v, grad):",
            '    """The loss at the given values v; its gradient with respect to them into grad (0 where none)."""',
            load,
            prog.emit(program, [loss] + [s for _, s in grads], names, values, "    "),
            "    for k in range(grad.shape[0]):",
            "        grad[k] = 0.0",
            [f"    grad[{k}] = {names[s]}" for k, s in grads],
            f"    return {names[loss]}")))
    if loss is not None and news and lr:
        functions.append(Function("sgd_step", lines(
            "def sgd_step(v, lr):",
            NONFINITE.format(what="One gradient step on the parameters among the values v (in place); the loss "
                                  "before it.", arrays="v"),
            load,
            "    ok = math.isfinite(lr)",
            [f"    ok &= math.isfinite({names[s]})" for s in values],
            prog.emit(program, [loss] + [s for _, s in news], names, values + lr, "    "),
            [f"    ok &= math.isfinite({names[s]})" for s in [loss] + [s for _, s in news]],
            "    if not ok:",
            "        return math.nan",
            [f"    v[{k}] = {names[s]}" for k, s in news],
            f"    return {names[loss]}")))
    meta = {"kind": derivation.kind, "shape": "unrolled", "values": layout.to_json(),
            "roles": [[g.name, g.role] for g in leaves], "loss": loss is not None,
            "trace": trace_layout.to_json(), "derivation": derivation_hash(derivation),
            "functions": [f.name for f in functions]}
    return KernelSource(derivation.kind, "unrolled", title, _helpers(program), tuple(functions), meta)
