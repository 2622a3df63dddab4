"""The unrolled code shape, one emitter for every kind: each element of the derivation one line.

Used for the slides' small networks, every scalar graph and the other kinds' derivations.  The
statements come from ``program.build`` (the derivation with stable forms).  They are printed once,
as *passes*: ``forward_pass`` (a network's output; the loss of another kind), ``backward_pass``
(the loss and the gradients), ``update_pass`` (the new parameters) and ``rest_pass`` (what only
``trace`` reads).  A pass takes one tuple of the scalars it reads (a tuple: Numba inlines no call
of more than 30 arguments) and returns every element it defines, under the engine's names; the entry points (``sgd_step``, ``loss_grad``, ``forward``, the many-problems
step, ``trace``) load their arrays into the passes' arguments and store what they return.

In a pass constants are folded and copies (``h3_0 = z3_0``) are substituted, never printed; the
rest goes through ``sympy.cse``.  The vectorised many-problems kernel calls the passes' inlined
twins (``forward_pass_inline``: the same function, inlined by Numba) inside its loop over lanes.
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from derive.core.steps import LR
from derive.kinds.graph.derivation import derive_graph
from derive.kinds.network.derivation import derive_network
from derive.kinds.graph.spec import Graph
from derive.kinds.network.spec import Network
from derive.core.steps import Derivation, Given

import kernels.program as prog
from .layout import Layout
from .printer import Float32VectorPrinter, KernelPrinter, VectorPrinter
from .source import Function, KernelSource, derivation_hash, identifier, identifiers, lines, structure
from .vecmath import VECMATH

NONFINITE = ('    """{what}\n\n'
             '    NaN, with {arrays} untouched, when an input or a result is not finite."""')
ENTRY_NAMES = frozenset({"forward_pass", "backward_pass", "update_pass", "rest_pass", "forward_pass_inline",
                         "backward_pass_inline", "update_pass_inline", "rest_pass_inline", "sgd_step", "loss_grad",
                         "forward", "trace", "many_sgd_step", "many_block", "many_rows_blocks",
                         "many_blocked_blocks", "many_sgd_step_blocked", "sgd_step_checked"})
ENTRY_NAMES |= {name + "_f32" for name in ENTRY_NAMES} | {"forward_pass_f32_inline", "backward_pass_f32_inline",
                                                         "update_pass_f32_inline"}

MANY_BLOCK = 32        # problems per block of the vectorised kernel (a compile-time constant in its code)
MANY_CHUNK = 32        # blocks per parallel task (one scratch buffer each)


@dataclass(frozen=True)
class Pass:
    """One printed pass: ``results = name((args,))``."""

    name: str
    args: tuple[sp.Symbol, ...]
    results: tuple[sp.Symbol, ...]
    text: str


class Emitter:
    """The passes of one program and the lines of the entry points that call them.

    ``stages`` are (pass name, target symbols) in order; each pass computes what its targets need
    that no earlier pass (nor ``inputs``) has.  ``vector``: exp and log printed as ``vexp``/``vlog``
    (kernels/vecmath.py) so that the many-problems loop vectorises.
    """

    def __init__(self, program: prog.Program, inputs: list[sp.Symbol], stages, vector: bool,
                 printer: type[KernelPrinter] | None = None):
        self.program, self.vector = program, vector
        self.printer = printer or (VectorPrinter if vector else KernelPrinter)
        self.suffix = getattr(self.printer, "suffix", "")
        self.taken = frozenset(program.helpers) | ENTRY_NAMES
        self.names = identifiers([g.target for g in program.given] + program.quantities, self.taken)
        self.passes: list[Pass] = []
        available = list(inputs)
        for name, targets in stages:
            p = self._pass(name + self.suffix, targets, available)
            if p is not None:
                self.passes.append(p)
                available += list(p.results)

    def _pass(self, name: str, targets, available: list) -> Pass | None:
        chosen = prog.needed(self.program, targets, available)
        if not chosen:
            return None
        printer = self.printer
        folded: dict = {}
        body = prog.emit(self.program, targets, self.names, available, "    ", printer=printer, folded=folded)
        reads = set().union(*[e.free_symbols for _, e in chosen]) | set().union(
            *[v.free_symbols for v in folded.values()])
        args = tuple(s for s in available if s in reads)
        results = tuple(s for s, _ in chosen)
        show = printer(self.names, frozenset(self.program.helpers))
        # a folded constant is returned as a float, so that the tuple is uniform (cheaper for Numba)
        returned = [(show.number(folded[s]) if folded[s].is_Number else show.doprint(folded[s])) if s in folded
                    else self.names[s] for s in results]
        ret = f"    return {returned[0]}" if len(returned) == 1 else f"    return ({', '.join(returned)})"
        text = lines(f"def {name}({'given' if args else ''}):",
                     f'    """{self._doc(name, results)}"""',
                     [f"    ({', '.join(self.names[a] for a in args)},) = given"] if args else [],
                     body, ret)
        return Pass(name, args, results, text)

    def _doc(self, name: str, results) -> str:
        seen = []
        for s in results:
            q = identifier(s.name.split("[")[0], self.taken)
            if q not in seen:
                seen.append(q)
        shown = ", ".join(seen[:8]) + (", ..." if len(seen) > 8 else "")
        return f"{name.replace('_', ' ').capitalize()}: {shown}."

    def functions(self, inline: bool) -> list[Function]:
        return [Function(p.name, p.text, inline_twin=inline) for p in self.passes]

    def call(self, p: Pass, source: dict, indent: str, suffix: str = "") -> str:
        """``results = pass(args)``: arguments from ``source`` (symbol → expression text), else by
        name (results of earlier calls), the results unpacked by name."""
        args = ", ".join(source.get(a, self.names[a]) for a in p.args)
        res = [self.names[r] for r in p.results]
        target = res[0] if len(res) == 1 else f"({', '.join(res)})"
        return f"{indent}{target} = {p.name}{suffix}(({args},))" if args else f"{indent}{target} = {p.name}{suffix}()"

    def calls(self, source: dict, indent: str, suffix: str = "", upto: str | None = None) -> list[str]:
        """Lines calling the passes in order, up to the pass ``upto`` (all without)."""
        out = []
        for p in self.passes:
            out.append(self.call(p, source, indent, suffix))
            if p.name == (upto and upto + self.suffix):
                break
        return out

    def the(self, name: str) -> Pass:
        return next(p for p in self.passes if p.name == name + self.suffix)

    def helpers(self) -> tuple[str, ...]:
        printer = self.printer
        return tuple(prog.helper_source(self.program.helpers[h], self.program.helpers, printer)
                     for h in prog.helper_order(self.program.helpers))

    def trace(self, head: str, source: dict, lr: list) -> tuple[str, Layout]:
        """``trace``: every quantity of the derivation into ``out`` (see the trace layout)."""
        layout = Layout.of((q.name, q.shape) for q in self.program.quantities)
        text = lines(
            head,
            '    """Every quantity of the derivation, into out (see the trace layout)."""',
            self.calls(source, "    "),
            [f"    out[{layout.slot(q.name).offset + k}] = {self.names[s]}"
             for q in self.program.quantities for k, s in enumerate(q.symbols())],
        )
        return text, layout


def finite_sum(names: list[str], zero: str = "0.0") -> str:
    """``0.0 * a + 0.0 * b + ...``: 0 when every value is finite, NaN otherwise (no overflow)."""
    return " + ".join(f"{zero} * {n}" for n in names)


def _stages(forward, loss, grads, news, everything) -> list:
    return [("forward_pass", forward), ("backward_pass", ([loss] if loss is not None else []) + grads),
            ("update_pass", news), ("rest_pass", everything)]


# ----------------------------------------------------------------------------- layered networks

def network_source(net: Network) -> KernelSource:
    """Kernel source of a small layered network (``net`` already symbolic)."""
    derivation = derive_network(net)
    program = prog.build(derivation)
    given = [s for s in derivation.steps if getattr(s, "role", None) == "param"]
    layout = Layout.of((s.name, s.target.shape) for s in given)
    q = derivation.quantity
    params = [(layout.slot(p.name).offset + k, sym) for p in given for k, sym in enumerate(p.target.symbols())]
    thetas = [s for _, s in params]
    x, t, lr, loss = list(q("x").symbols()), list(q("t").symbols()), q(LR).symbol(), q("loss").symbol()
    y = list(q(f"h{len(net.layers)}").symbols())
    grads = [g for p in given for g in q("grad_" + p.name).symbols()]
    news = [n for p in given for n in q(p.name + "_new").symbols()]
    every = [s for quantity in program.quantities for s in quantity.symbols()]
    em = Emitter(program, thetas + x + t + [lr], _stages(y, loss, grads, news, every), vector=True)
    # the float32 twins of the passes the many-problems loop calls, every constant a float32
    em32 = Emitter(program, thetas + x + t + [lr], _stages(y, loss, grads, news, every)[:3], vector=True,
                   printer=Float32VectorPrinter)
    names = em.names
    P = len(params)

    def source(theta: str, xs: str, ts: str, grad: str | None = None) -> dict:
        out = {s: theta.format(k) for k, s in params}
        out.update({s: xs.format(i) for i, s in enumerate(x)})
        out.update({s: ts.format(i) for i, s in enumerate(t)})
        if grad is not None:
            out.update({g: grad.format(k) for (k, _), g in zip(params, grads)})
        return out

    rows = source("theta[{}]", "X[row, {}]", "T[row, {}]")
    forward = lines(
        "def forward(theta, X, Y):",
        '    """The network output for each row of X, into the rows of Y."""',
        "    for row in range(X.shape[0]):",
        em.calls(rows, "        ", suffix="_inline", upto="forward_pass"),
        [f"        Y[row, {i}] = {names[s]}" for i, s in enumerate(y)],
    )
    loss_grad = lines(
        "def loss_grad(theta, X, T, grad):",
        '    """The mean loss over the rows of X, T; its gradient into grad (laid out like theta)."""',
        "    for k in range(grad.shape[0]):",
        "        grad[k] = 0.0",
        "    total = 0.0",
        "    for row in range(X.shape[0]):",
        em.calls(rows, "        ", suffix="_inline", upto="backward_pass"),
        f"        total += {names[loss]}",
        [f"        grad[{k}] += {names[g]}" for (k, _), g in zip(params, grads)],
        "    scale = 1.0 / X.shape[0]",
        "    for k in range(grad.shape[0]):",
        "        grad[k] *= scale",
        "    return total * scale",
    )
    update = em.the("update_pass")
    # the gradient summed over the rows in scalars (registers), not in an array: sum_0, sum_1, ...
    sums = [identifier(f"sum_{k}", em.taken) for k, _ in params]
    if set(sums) & set(names.values()):
        raise AssertionError("the gradient's sums collide with a quantity's name")
    sgd = lines(
        "def sgd_step(theta, X, T, lr):",
        NONFINITE.format(what="One SGD step on the mean loss over the rows of X, T (in place); that loss, "
                              "before the step.", arrays="theta"),
        "    total = 0.0",
        f"    # {sums[0]}, {sums[1] if len(sums) > 1 else ''}...: the gradient of theta[0], theta[1], ... summed over the rows",
        [f"    {' = '.join(sums[i:i + 8])} = 0.0" for i in range(0, len(sums), 8)],
        "    for row in range(X.shape[0]):",
        em.calls(rows, "        ", suffix="_inline", upto="backward_pass"),
        f"        total += {names[loss]}",
        [f"        {s} += {names[g]}" for s, g in zip(sums, grads)],
        "    scale = 1.0 / X.shape[0]                    # the mean over the rows",
        em.call(update, {**source("theta[{}]", "", ""), **{g: f"{s} * scale" for s, g in zip(sums, grads)}},
                "    ", "_inline"),
        "    G = np.empty_like(theta)                    # the new values in theta's dtype, checked, then stored",
        [f"    G[{k}] = {names[new]}" for (k, _), new in zip(params, news)],
        "    check = total                              # 0·v is 0 for a finite v, else NaN",
        "    for k in range(theta.shape[0]):",
        "        check += 0.0 * G[k]",
        "    if not math.isfinite(check):",
        "        return math.nan",
        "    for k in range(theta.shape[0]):",
        "        theta[k] = G[k]",
        "    return total * scale",
    )
    checked = lines(
        "def sgd_step_checked(theta, X, T, lr):",
        '    """sgd_step with the checks of the checked API (kernels/api.py) inside the kernel: ValueError when the',
        '    shapes do not fit; NaN, theta untouched, when something is not finite (the API then names it)."""',
        f"    if (theta.shape[0] != {P} or X.shape[1] != {len(x)} or T.shape[1] != {len(t)}",
        "            or X.shape[0] != T.shape[0] or X.shape[0] == 0):",
        '        raise ValueError("shapes")',
        "    return sgd_step(theta, X, T, lr)",
    )
    functions = [*em.functions(inline=True), Function("loss_grad", loss_grad), Function("sgd_step", sgd),
                 Function("sgd_step_checked", checked, jit=False),
                 Function("forward", forward), *_many_functions(em, params, x, t, loss, news),
                 *em32.functions(inline=True), *_many_functions(em32, params, x, t, loss, news)]
    trace, trace_layout = em.trace("def trace(theta, x, t, lr, out):",
                                   source("theta[{}]", "x[{}]", "t[{}]"), [lr])
    functions.append(Function("trace", trace))
    meta = {"kind": "network", "shape": "unrolled", **structure(net), "params": layout.to_json(),
            "trace": trace_layout.to_json(), "derivation": derivation_hash(derivation),
            "functions": [f.name for f in functions], "many_block": MANY_BLOCK}
    title = f"{'-'.join(map(str, net.sizes))} network ({', '.join(l.activation.name for l in net.layers)}; " \
            f"{net.loss}), unrolled"
    return KernelSource("network", "unrolled", title, em.helpers() + em32.helpers(), tuple(functions), meta,
                        preamble=VECMATH, inline_helpers=True)


def _many_functions(em: Emitter, params, x, t, loss, news, block: int = MANY_BLOCK,
                    chunk: int = MANY_CHUNK) -> list[Function]:
    """The many-problems step, vectorised across problems.

    Inside the kernel the problems of a block are laid out struct-of-arrays in one scratch vector
    ``buf``: row r of the block (a parameter, an input, a result) is ``buf[r*block:(r+1)*block]``,
    one element per problem.  ``many_block`` calls the inlined passes in a loop over the problems
    of the block, every access ``buf[constant + lane]``: one base, constant strides, so LLVM
    vectorises it (in 512-bit vectors where the CPU has them: ``prefer_wide_vectors``).  It writes
    the new parameters into ``new``, in the same layout.  The workers copy a block into ``buf``:
    from a contiguous slice of the flat blocked arrays (``many_sgd_step_blocked``, whose ``new`` is
    that slice of ThetaB itself: a problem found not finite gets its old values back from ``buf``),
    or transposed from the rows of Theta, X, T (``many_sgd_step``, ``new`` a scratch block
    transposed back).  The new values are checked once per block: 0·v is 0 for a finite v and
    NaN otherwise, summed over a problem's results and reduced over the block pairwise (loops of
    independent adds, which vectorise); only a block that is not all finite is looked at problem
    by problem.  The workers are not ``parallel`` (its passes would take the loop body apart and
    cost several times the compile time); their drivers are, one call per task.

    With the float32 emitter (``Float32VectorPrinter``) the same functions are printed as float32
    twins, ``many_block_f32`` ... ``many_sgd_step_f32``: every constant and the learning rate a
    float32, so that the loop computes in float32 (16 lanes a 512-bit vector); kernels/api.py calls
    them for float32 arrays.
    """
    names = em.names
    tag = em.suffix
    show = em.printer(names)
    P, nx, nt = len(params), len(x), len(t)
    LOSS = P + nx + nt                       # rows of buf: θ, x, t, then the loss, the check, the reduction
    CHK, RED = LOSS + 1, LOSS + 2
    rows = RED + 1

    def at(row, lane="lane"):
        return f"buf[{row * block} + {lane}]" if row else f"buf[{lane}]"

    src = {s: at(k) for k, (_, s) in enumerate(params)}
    src.update({s: at(P + i) for i, s in enumerate(x)})
    src.update({s: at(P + nx + i) for i, s in enumerate(t)})
    kernel = lines(
        f"def many_block{tag}(buf, new, lr{'64' if tag else ''}):",
        f'    """One SGD step for each of the {block} problems of a block in buf (struct of arrays, see',
        '    kernels/unrolled.py): the new parameters into new (the same layout), the loss and 0 (all finite) or',
        '    NaN per problem into buf."""',
        "    prefer_wide_vectors()",
        ["    lr = np.float32(lr64)                   # float32 arithmetic"] if tag else [],
        f"    for lane in range({block}):",
        em.calls(src, "        ", suffix="_inline", upto="update_pass"),
        [f"        new[{k * block} + lane] = {names[n]}" if k else f"        new[lane] = {names[n]}"
         for k, n in enumerate(news)],
        f"        {at(LOSS)} = {names[loss]}",
        f"        {at(CHK)} = {finite_sum([names[loss]] + [names[n] for n in news], show.number(0))}",
    )
    reduce = []
    width = block // 2
    while width:
        reduce += [f"        for lane in range({width}):",
                   f"            {at(RED)} += {at(RED, 'lane + ' + str(width))}"]
        width //= 2
    check = [f"        for lane in range({block}):",
             f"            {at(RED)} = {at(CHK)}",
             *reduce]

    def worker(blocked: bool) -> str:
        if blocked:
            head = [f"def many_blocked_blocks{tag}(ThetaB, XB, TB, lr, losses, start, stop):",
                    f'    """Blocks start..stop of the blocked layout: problem p = blk*{block} + lane is '
                    'ThetaB[blk, :, lane],',
                    '    XB[blk, :, lane], TB[blk, :, lane]; its loss into losses[p] (NaN, problem untouched, '
                    'when not finite)."""']
            arrays, size = ("ThetaB", "XB", "TB"), f"        size = {block}"
            cut = [f"        theta = thetas[blk * {P * block}:(blk + 1) * {P * block}]   # block blk: contiguous",
                   f"        x = xs[blk * {nx * block}:(blk + 1) * {nx * block}]",
                   f"        t = ts[blk * {nt * block}:(blk + 1) * {nt * block}]"]
            gather = [f"        for i in range({P * block}):",
                      "            buf[i] = theta[i]",
                      f"        for i in range({nx * block}):",
                      f"            buf[{P * block} + i] = x[i]",
                      f"        for i in range({nt * block}):",
                      f"            buf[{(P + nx) * block} + i] = t[i]"]
            new, put_all, put_one = "theta", [], []      # the new values straight into the block's slice
            put_bad = [f"                    for k in range({P}):     # not finite: its old values back from buf",
                       f"                        theta[k * {block} + lane] = buf[k * {block} + lane]"]
        else:
            head = [f"def many_rows_blocks{tag}(Theta, X, T, lr, losses, start, stop):",
                    f'    """Blocks start..stop of {block} problems (rows of Theta, X, T): one SGD step each, in place.',
                    "",
                    '    losses[p] is the loss before the step, or NaN (row p untouched) when something is not finite."""']
            arrays = ("Theta", "X", "T")
            size = f"        size = min({block}, Theta.shape[0] - first)"
            cut = [f"        theta = thetas[first * {P}:(first + size) * {P}]     # the block's rows: contiguous",
                   f"        x = xs[first * {nx}:(first + size) * {nx}]",
                   f"        t = ts[first * {nt}:(first + size) * {nt}]"]
            gather = ["        for lane in range(size):             # transposed into the blocked layout",
                      f"            for k in range({P}):",
                      f"                buf[k * {block} + lane] = theta[lane * {P} + k]",
                      f"            for k in range({nx}):",
                      f"                buf[({P} + k) * {block} + lane] = x[lane * {nx} + k]",
                      f"            for k in range({nt}):",
                      f"                buf[({P + nx} + k) * {block} + lane] = t[lane * {nt} + k]",
                      f"        for lane in range(size, {block}):     # the last block's empty lanes compute on zeros",
                      f"            for k in range({LOSS}):",
                      f"                buf[k * {block} + lane] = 0.0"]
            new, put_bad = "new", []
            put_all = [f"            for k in range({P}):                # transposed back",
                       "                for lane in range(size):",
                       f"                    theta[lane * {P} + k] = new[k * {block} + lane]"]
            put_one = [f"                    for k in range({P}):",
                       f"                        theta[lane * {P} + k] = new[k * {block} + lane]"]
        return lines(
            head,
            "    prefer_wide_vectors()",
            f"    buf = np.empty({rows * block}, dtype={arrays[0]}.dtype)",
            [f"    new = np.empty({P * block}, dtype={arrays[0]}.dtype)       # the new parameters, blocked"]
            if new == "new" else [],
            f"    thetas, xs, ts = {arrays[0]}.reshape(-1), {arrays[1]}.reshape(-1), {arrays[2]}.reshape(-1)",
            "    for blk in range(start, stop):",
            f"        first = blk * {block}",
            size, cut, gather,
            f"        many_block{tag}(buf, {new}, lr)" + ("          # the new values into ThetaB itself"
                                                       if new == "theta" else ""),
            check,
            f"        if {at(RED, '0')} == 0.0:           # the whole block is finite",
            put_all,
            "            for lane in range(size):",
            f"                losses[first + lane] = {at(LOSS)}",
            "        else:",
            "            for lane in range(size):",
            f"                if {at(CHK)} == 0.0:",
            put_one,
            f"                    losses[first + lane] = {at(LOSS)}",
            "                else:",
            put_bad,
            "                    losses[first + lane] = math.nan",
        )

    rows_driver = lines(
        f"def many_sgd_step{tag}(Theta, X, T, lr, losses):",
        '    """Row p of Theta is one problem with sample X[p], T[p]: one SGD step each, in place.',
        "",
        '    losses[p] is the loss before the step, or NaN (row p untouched) when something is not finite.',
        f'    Parallel tasks of {chunk} blocks of {block} problems, each vectorised (many_block); the arrays are',
        '    C-contiguous."""',
        f"    nblocks = (Theta.shape[0] + {block - 1}) // {block}",
        f"    for task in prange((nblocks + {chunk - 1}) // {chunk}):",
        f"        many_rows_blocks{tag}(Theta, X, T, lr, losses, task * {chunk}, min(nblocks, (task + 1) * {chunk}))")
    blocked_driver = lines(
        f"def many_sgd_step_blocked{tag}(ThetaB, XB, TB, lr, losses):",
        f'    """The many-problems step on the blocked layout (blocks, columns, {block}), C-contiguous, in parallel',
        f'    tasks of {chunk} blocks; problem p = blk*{block} + lane, its loss into losses[p] (NaN: untouched)."""',
        "    nblocks = ThetaB.shape[0]",
        f"    for task in prange((nblocks + {chunk - 1}) // {chunk}):",
        f"        many_blocked_blocks{tag}(ThetaB, XB, TB, lr, losses, task * {chunk}, "
        f"min(nblocks, (task + 1) * {chunk}))")
    return [Function(f"many_block{tag}", kernel, fastmath='{"contract"}'),
            Function(f"many_rows_blocks{tag}", worker(False)),
            Function(f"many_sgd_step{tag}", rows_driver, parallel=True),
            Function(f"many_blocked_blocks{tag}", worker(True)),
            Function(f"many_sgd_step_blocked{tag}", blocked_driver, parallel=True)]


# ----------------------------------------------------------------------------- graphs and other kinds

def graph_source(graph: Graph) -> KernelSource:
    """Kernel source of a scalar graph (``graph`` already symbolic): its values are a vector ``v``,
    listed in a legend at the top of the module."""
    derivation = derive_graph(graph)
    source = values_source(derivation, f"scalar graph of {len(graph.nodes)} nodes, unrolled", loss_name=graph.loss,
                           graph=True)
    leaves = [g for g in derivation.steps if isinstance(g, Given) and g.name != LR]
    meta = {**source.meta, "kind": "graph", "values": [[g.name, g.role] for g in leaves], "loss": graph.loss}
    return KernelSource("graph", "unrolled", source.title, source.helpers, source.functions, meta,
                        legend=source.legend)


def derivation_source(derivation: Derivation, title: str) -> KernelSource:
    """Kernel source of any derivation whose steps are plain expressions (convolutional and
    recurrent networks, perceptrons, ...): its given quantities are one flat vector ``v``."""
    return values_source(derivation, title, loss_name="loss", graph=False)


def values_source(derivation: Derivation, title: str, loss_name: str, graph: bool) -> KernelSource:
    """The kernels of a derivation whose given quantities (but the learning rate) are one vector
    ``v``: ``loss_grad`` and ``sgd_step`` when it has a loss (and updates), ``trace``; for a
    ``graph`` also a ``many_sgd_step`` over rows of values, and a legend of the values."""
    program = prog.build(derivation)
    leaves = [g for g in program.given if g.name != LR]
    layout = Layout.of((g.name, g.target.shape) for g in leaves)
    values = [s for g in leaves for s in g.target.symbols()]
    has = {s.name for s in derivation.steps}
    lr = [derivation.quantity(LR).symbol()] if LR in has else []
    loss = derivation.quantity(loss_name).symbol() if loss_name in has else None
    grads = [(layout.slot(g.name).offset + k, s) for g in leaves if "grad_" + g.name in has
             for k, s in enumerate(derivation.quantity("grad_" + g.name).symbols())]
    news = [(layout.slot(g.name).offset + k, s) for g in leaves if g.role == "param" and g.name + "_new" in has
            for k, s in enumerate(derivation.quantity(g.name + "_new").symbols())]
    every = [s for quantity in program.quantities for s in quantity.symbols()]
    em = Emitter(program, values + lr, _stages([loss] if loss is not None else [], None, [s for _, s in grads],
                                               [s for _, s in news], every), vector=False)
    names = em.names
    load = {s: f"v[{k}]" for k, s in enumerate(values)}
    functions = list(em.functions(inline=False))
    if loss is not None:
        functions.append(Function("loss_grad", lines(
            "def loss_grad(v, grad):",
            '    """The loss at the values v; its gradient with respect to every value into grad (0 where none)."""',
            "    for k in range(grad.shape[0]):",
            "        grad[k] = 0.0",
            em.calls(load, "    ", upto="backward_pass"),
            [f"    grad[{k}] = {names[s]}" for k, s in grads],
            f"    return {names[loss]}")))
    if loss is not None and news and lr:
        functions.append(Function("sgd_step", lines(
            "def sgd_step(v, lr):",
            NONFINITE.format(what="One gradient step on the parameters among the values v (in place); the loss "
                                  "before it.", arrays="v"),
            "    ok = math.isfinite(lr)                      # a value hidden by relu(NaN) = 0 must not pass",
            "    for k in range(v.shape[0]):",
            "        ok &= math.isfinite(v[k])",
            em.calls(load, "    ", upto="update_pass"),
            f"    new = np.empty({len(news)}, v.dtype)         # the new values in v's dtype",
            [f"    new[{i}] = {names[s]}" for i, (_, s) in enumerate(news)],
            f"    ok &= math.isfinite({finite_sum([names[loss]] + [f'new[{i}]' for i in range(len(news))])})",
            "    if not ok:",
            "        return math.nan",
            [f"    v[{k}] = new[{i}]" for i, (k, _) in enumerate(news)],
            f"    return {names[loss]}")))
        if graph:
            functions.append(Function("many_sgd_step", lines(
                "def many_sgd_step(V, lr, losses):",
                '    """Row p of V holds the values of one problem: one gradient step each, in place.',
                "",
                '    losses[p] is the loss before the step, or NaN (row p untouched) when something is not finite."""',
                "    for prob in prange(V.shape[0]):",
                "        losses[prob] = sgd_step(V[prob], lr)"), parallel=True))
    trace, trace_layout = em.trace("def trace(v, lr, out):", load, lr)
    functions.append(Function("trace", trace))
    meta = {"kind": derivation.kind, "shape": "unrolled", "values": layout.to_json(),
            "roles": [[g.name, g.role] for g in leaves], "loss": loss is not None,
            "trace": trace_layout.to_json(), "derivation": derivation_hash(derivation),
            "functions": [f.name for f in functions]}
    legend = ""
    if graph:
        legend = lines("# The values v (an argument; trace returns every quantity under its name):",
                       [f"#   v[{k}] = {g.name} ({g.role}" + (f"; {code} in the code)" if code != g.name else ")")
                        for k, g in enumerate(leaves) for code in [names[g.target.symbol()]]],
                       f"# loss = {loss_name}; lr = the learning rate; grad_<name> = ∂loss/∂<name>; "
                       "<name>_new = its value after the step.")
    return KernelSource(derivation.kind, "unrolled", title, em.helpers(), tuple(functions), meta, legend=legend)
