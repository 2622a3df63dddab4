"""The Python API: ``kernels.compile(spec)`` → a kernel object with checked entry points.

Conventions (docs/kernels.md): rows are samples; ``W{l}`` has shape (out, in) like
``torch.nn.Linear.weight``; all parameters live in one flat vector ``theta`` (``unpack`` gives
named views); the batch loss is the **mean over samples** of the spec's per-sample loss, and
gradients are gradients of that mean.  Every entry point here reports non-finite numbers with
:class:`NonFiniteError`; ``kernel.raw`` holds the Numba functions themselves (no checks, no
conversions) for hot loops, which signal the same condition by returning NaN.
"""
from __future__ import annotations

import math
import os
import threading
from pathlib import Path

import numpy as np

from .cache import index_key, load, load_module, read_index, write_index
from .layout import Layout


class NonFiniteError(ArithmeticError):
    """An input or a result of a kernel was NaN or infinite; nothing was updated with it."""

    def __init__(self, message: str, rows: list[int] | None = None):
        super().__init__(message)
        self.rows = rows or []


def _first_bad(**arrays) -> str | None:
    for name, a in arrays.items():
        a = np.asarray(a)
        bad = np.argwhere(~np.isfinite(a))
        if len(bad):
            idx = tuple(int(i) for i in bad[0])
            where = f"[{', '.join(map(str, idx))}]" if idx else ""
            return f"{name}{where} is {float(a[tuple(bad[0])])}"
    return None


class _Kernel:
    def __init__(self, module, meta: dict, source: str, dtype, path: Path):
        self.raw = module
        self.meta = meta
        self.source = source
        self.path = path
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype}")
        self.shape = meta["shape"]
        self.trace_layout = Layout.from_json(meta["trace"]) if "trace" in meta else None

    def _array(self, a, name: str, columns: int) -> np.ndarray:
        if not (type(a) is np.ndarray and a.dtype == self.dtype and a.flags.c_contiguous):
            a = np.ascontiguousarray(a, dtype=self.dtype)
        if a.ndim == 1:
            a = a.reshape(1, -1)
        if a.ndim != 2 or a.shape[1] != columns or a.shape[0] == 0:
            raise ValueError(f"{name}: expected shape (rows, {columns}) with rows ≥ 1, got {a.shape}")
        return a

    def _inplace(self, a, name: str, shape: tuple) -> np.ndarray:
        """``a`` itself, checked: it is updated in place, so it cannot be converted (None: any length)."""
        fits = (type(a) is np.ndarray and a.dtype == self.dtype and len(a.shape) == len(shape) and
                (a.shape == shape or (shape[0] is None and a.shape[1:] == shape[1:])) and a.flags.c_contiguous)
        if not fits:
            got = f"{a.dtype} {a.shape}" if isinstance(a, np.ndarray) else type(a).__name__
            want = "(" + ", ".join("rows" if s is None else str(s) for s in shape) + (",)" if len(shape) == 1 else ")")
            raise TypeError(f"{name}: updated in place, so it must be a C-contiguous {self.dtype} array of "
                            f"shape {want}, got {got}")
        return a

    def _report(self, what: str, **arrays):
        bad = _first_bad(**arrays)
        raise NonFiniteError(f"{what}: {bad}" if bad else f"{what}: a result overflowed (not finite)")


class NetworkKernel(_Kernel):
    """Kernels of one layered network structure (see the module docstring for conventions)."""

    def __init__(self, module, meta, source, dtype, path, spec_values=None):
        super().__init__(module, meta, source, dtype, path)
        self.layout = Layout.from_json(meta["params"])
        self.sizes = tuple(meta["sizes"])
        self.loss = meta["loss"]
        self.n_params = self.layout.size
        self._spec_values = spec_values
        self._scratch = threading.local()       # sgd_step's workspace, one per thread (workspace())

    # parameters ------------------------------------------------------------------------
    def init_params(self, seed=None) -> np.ndarray:
        """Parameters drawn as torch.nn.Linear draws them: U(−1/√fan_in, 1/√fan_in)."""
        rng = np.random.default_rng(seed)
        theta = np.empty(self.n_params, dtype=self.dtype)
        for s in self.layout.slots:
            fan_in = self.sizes[int(s.name[1:]) - 1]
            bound = 1 / math.sqrt(fan_in)
            theta[s.offset:s.offset + s.size] = rng.uniform(-bound, bound, s.size)
        return theta

    def params_from_spec(self) -> np.ndarray:
        """The spec's own weights and biases (nearest floats), when it gives them."""
        if not self._spec_values or self._spec_values.get("theta") is None:
            raise ValueError("the spec gives no weights (it is symbolic); use init_params()")
        return np.array(self._spec_values["theta"], dtype=self.dtype)

    def spec_sample(self) -> tuple[np.ndarray, np.ndarray, float]:
        """(x, t, learning rate) of the spec, when it gives them; for a mini-batch spec, x and t
        have one row per sample (``loss_and_grad`` and ``sgd_step`` then take the mean over them)."""
        v = self._spec_values or {}
        if v.get("x") is None or v.get("t") is None:
            raise ValueError("the spec gives no input and target")
        return (np.array(v["x"], dtype=self.dtype), np.array(v["t"], dtype=self.dtype), v.get("lr"))

    def unpack(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        """Named views ``W1`` (out, in), ``b1``, ... into ``theta`` (or into each row of stacked thetas)."""
        return self.layout.views(theta)

    def pack(self, **arrays) -> np.ndarray:
        """A new theta from named arrays ``W1=..., b1=...`` (every slot is required)."""
        theta = np.empty(self.n_params, dtype=self.dtype)
        views = self.layout.views(theta)
        missing = set(views) - set(arrays)
        if missing or set(arrays) - set(views):
            raise ValueError(f"pack needs exactly {self.layout.names}")
        for name, view in views.items():
            view[...] = arrays[name]
        return theta

    def workspace(self, rows: int) -> np.ndarray | None:
        """Scratch for ``raw.sgd_step(theta, X, T, lr, work)`` on ``rows`` rows of X, of the kernel's
        dtype: kept by the caller and passed to every step, the step allocates nothing (as NumPy's
        ``out=``).  The BLAS shape takes one; None for the unrolled and loops shapes (small buffers,
        cheaper to allocate).
        One workspace serves one call at a time (give each thread its own)."""
        size = self._work_size(rows)
        return None if size is None else np.empty(size, dtype=self.dtype)

    def _work_size(self, rows: int) -> int | None:
        if "work" not in self.meta:
            return None
        fixed, per_row = self.meta["work"]
        return fixed + per_row * int(rows)

    def _workspace(self, rows: int) -> np.ndarray | None:
        """This thread's workspace for ``sgd_step``, grown when a call has more rows."""
        size = self._work_size(rows)
        if size is None:
            return None
        work = getattr(self._scratch, "work", None)
        if work is None or len(work) < size:
            work = self._scratch.work = np.empty(size, dtype=self.dtype)
        return work

    # computations ---------------------------------------------------------------------
    def forward(self, theta, X) -> np.ndarray:
        """The network's output for each row of X: shape (rows, n_out)."""
        theta = np.ascontiguousarray(theta, dtype=self.dtype)
        X = self._array(X, "X", self.sizes[0])
        Y = np.empty((X.shape[0], self.sizes[-1]), dtype=self.dtype)
        self.raw.forward(theta, X, Y)
        if not (np.isfinite(theta).all() and np.isfinite(X).all() and np.isfinite(Y).all()):
            self._report("forward", theta=theta, X=X)
        return Y

    def loss_and_grad(self, theta, X, T) -> tuple[float, np.ndarray]:
        """The mean loss over the rows and its gradient (laid out like theta)."""
        theta = np.ascontiguousarray(theta, dtype=self.dtype)
        X, T = self._array(X, "X", self.sizes[0]), self._array(T, "T", self.sizes[-1])
        self._rows(X, T)
        grad = np.empty_like(theta)
        loss = self.raw.loss_grad(theta, X, T, grad)
        if not (math.isfinite(loss) and np.isfinite(grad).all() and np.isfinite(theta).all()):
            self._report("loss_and_grad", theta=theta, X=X, T=T)
        return float(loss), grad

    def sgd_step(self, theta, X, T, lr) -> float:
        """θ ← θ − lr·∇(mean loss over the rows), in place; returns the mean loss before the step.

        Fast path: the kernel's ``sgd_step_checked`` compiled for exactly this dtype's C-contiguous
        arrays (no other signature is compiled, so any other argument raises TypeError in Numba's
        dispatch) checks the shapes inside; anything it refuses, and a loss that is not finite, takes
        the Python path below, which converts, explains and reports as before."""
        fast = self._checked_sgd
        if fast is not None:
            try:
                loss = fast(theta, X, T, lr)
            except (TypeError, ValueError):
                pass
            else:
                if loss - loss == 0.0:                 # finite: NaN and ±inf give NaN
                    return loss
        return self._sgd_step_python(theta, X, T, lr)

    @property
    def _checked_sgd(self):
        """The fast path's dispatcher, compiled on first use (None without ``sgd_step_checked``)."""
        fast = self.__dict__.get("_fast_sgd", False)
        if fast is False:
            fast = None
            py = getattr(self.raw, "sgd_step_checked", None)
            if py is not None:
                from numba import njit, types
                from numba.np.numpy_support import from_dtype
                nb = from_dtype(self.dtype)
                sig = (types.Array(nb, 1, "C"), types.Array(nb, 2, "C"), types.Array(nb, 2, "C"), types.float64)
                fast = njit([sig], cache=True, error_model="numpy")(py)
            self.__dict__["_fast_sgd"] = fast
        return fast

    def _sgd_step_python(self, theta, X, T, lr) -> float:
        theta = self._inplace(theta, "theta", (self.n_params,))
        X, T = self._array(X, "X", self.sizes[0]), self._array(T, "T", self.sizes[-1])
        self._rows(X, T)
        work = self._workspace(len(X))
        loss = self.raw.sgd_step(theta, X, T, float(lr)) if work is None else \
            self.raw.sgd_step(theta, X, T, float(lr), work)
        if not math.isfinite(loss):
            self._report("sgd_step (theta unchanged)", theta=theta, X=X, T=T, lr=lr)
        return float(loss)

    def many_sgd_step(self, Theta, X, T, lr) -> np.ndarray:
        """One SGD step for each row p of Theta on its own sample X[p], T[p]; the losses before.

        Rows whose inputs or results are not finite are left untouched; after stepping the others,
        :class:`NonFiniteError` lists them (``.rows``).
        """
        if not hasattr(self.raw, "many_sgd_step"):
            raise NotImplementedError("the many-problems form is generated for small (unrolled) networks")
        Theta = self._inplace(Theta, "Theta", (None, self.n_params))
        X, T = self._array(X, "X", self.sizes[0]), self._array(T, "T", self.sizes[-1])
        if not (len(X) == len(T) == len(Theta)):
            raise ValueError(f"Theta, X and T need the same number of rows, got {len(Theta)}, {len(X)}, {len(T)}")
        losses = np.empty(len(Theta), dtype=self.dtype)
        self._many("many_sgd_step")(Theta, X, T, float(lr), losses)
        bad = np.flatnonzero(~np.isfinite(losses))
        if len(bad):
            rows = [int(r) for r in bad]
            raise NonFiniteError(f"many_sgd_step: {len(rows)} problem(s) not finite, left untouched: "
                                 f"rows {rows[:10]}{' ...' if len(rows) > 10 else ''}", rows)
        return losses

    def _many(self, name: str):
        """The many-problems function for this dtype: its float32 twin (``<name>_f32``, computing in
        float32) for float32 arrays where the module has one."""
        if self.dtype == np.float32 and hasattr(self.raw, name + "_f32"):
            return getattr(self.raw, name + "_f32")
        return getattr(self.raw, name)

    # the blocked layout of the many-problems kernel --------------------------------------
    @property
    def many_block(self) -> int:
        """Problems per block of the vectorised many-problems kernel (unrolled shape)."""
        if "many_block" not in self.meta:
            raise NotImplementedError("the vectorised many-problems form is generated for small (unrolled) networks")
        return int(self.meta["many_block"])

    def to_blocked(self, A) -> np.ndarray:
        """Rows = problems → the blocked layout (blocks, columns, many_block): problem p is
        ``[p // block, :, p % block]``; the last block is padded with zeros."""
        A = np.asarray(A, dtype=self.dtype)
        b = self.many_block
        nb = -(-len(A) // b)
        out = np.zeros((nb * b, A.shape[1]), dtype=self.dtype)
        out[:len(A)] = A
        return np.ascontiguousarray(out.reshape(nb, b, A.shape[1]).transpose(0, 2, 1))

    def from_blocked(self, AB, rows: int | None = None) -> np.ndarray:
        """The blocked layout → rows = problems (the first ``rows`` of them)."""
        AB = np.asarray(AB)
        out = AB.transpose(0, 2, 1).reshape(-1, AB.shape[1])
        return np.ascontiguousarray(out[:rows] if rows is not None else out)

    def many_sgd_step_blocked(self, ThetaB, XB, TB, lr) -> np.ndarray:
        """:meth:`many_sgd_step` on arrays already in the blocked layout (:meth:`to_blocked`): no
        transposes in the kernel.  Returns the losses, problem p at index p; padding problems
        (zeros) are stepped like the others and should be ignored."""
        b = self.many_block
        ThetaB = self._inplace(ThetaB, "ThetaB", (None, self.n_params, b))
        XB, TB = (np.ascontiguousarray(a, dtype=self.dtype) for a in (XB, TB))
        if XB.shape != (len(ThetaB), self.sizes[0], b) or TB.shape != (len(ThetaB), self.sizes[-1], b):
            raise ValueError(f"XB and TB need shapes {(len(ThetaB), self.sizes[0], b)} and "
                             f"{(len(ThetaB), self.sizes[-1], b)}, got {XB.shape} and {TB.shape}")
        losses = np.empty(len(ThetaB) * b, dtype=self.dtype)
        self._many("many_sgd_step_blocked")(ThetaB, XB, TB, float(lr), losses)
        bad = np.flatnonzero(~np.isfinite(losses))
        if len(bad):
            rows = [int(r) for r in bad]
            raise NonFiniteError(f"many_sgd_step_blocked: {len(rows)} problem(s) not finite, left untouched: "
                                 f"{rows[:10]}{' ...' if len(rows) > 10 else ''}", rows)
        return losses

    def trace(self, theta, x, t, lr=0.0) -> dict[str, np.ndarray]:
        """Every quantity of the derivation for one sample (``z1``, ``delta2``, ``W1_new``, ...)."""
        if self.trace_layout is None:
            raise NotImplementedError("trace is generated for the unrolled shape")
        out = np.empty(self.trace_layout.size, dtype=self.dtype)
        self.raw.trace(np.ascontiguousarray(theta, dtype=self.dtype), np.ascontiguousarray(x, dtype=self.dtype),
                       np.ascontiguousarray(t, dtype=self.dtype), float(lr), out)
        return self.trace_layout.views(out)

    def _rows(self, X, T):
        if len(X) != len(T):
            raise ValueError(f"X and T need the same number of rows, got {len(X)} and {len(T)}")


class _ValuesKernel(_Kernel):
    """A kernel whose given quantities (inputs, parameters, ...) are one flat vector ``v``."""

    def __init__(self, module, meta, source, dtype, path, spec_values=None):
        super().__init__(module, meta, source, dtype, path)
        self._spec_values = spec_values

    def values_from_spec(self) -> np.ndarray:
        """The spec's values (nearest floats), laid out like ``v``."""
        if not self._spec_values or self._spec_values.get("v") is None:
            raise ValueError("the spec leaves some values symbolic")
        return np.array(self._spec_values["v"], dtype=self.dtype)

    def spec_learning_rate(self):
        return (self._spec_values or {}).get("lr")

    def loss_and_grad(self, v) -> tuple[float, np.ndarray]:
        """The loss and its gradient with respect to every value of ``v`` (0 where it has none)."""
        if not hasattr(self.raw, "loss_grad"):
            raise NotImplementedError("this derivation has no quantity named 'loss'")
        v = np.ascontiguousarray(v, dtype=self.dtype)
        grad = np.empty_like(v)
        loss = self.raw.loss_grad(v, grad)
        if not (math.isfinite(loss) and np.isfinite(grad).all() and np.isfinite(v).all()):
            self._report("loss_and_grad", v=v)
        return float(loss), grad

    def sgd_step(self, v, lr) -> float:
        """One gradient step on the parameters among ``v`` (in place); the loss before it."""
        if not hasattr(self.raw, "sgd_step"):
            raise NotImplementedError("this derivation has no update step (no learning rate in the spec)")
        v = self._inplace(v, "v", (self._size,))
        loss = self.raw.sgd_step(v, float(lr))
        if not math.isfinite(loss):
            self._report("sgd_step (v unchanged)", v=v, lr=lr)
        return float(loss)


class GraphKernel(_ValuesKernel):
    """Kernels of one scalar graph: the values (inputs and parameters) are a vector ``v``."""

    def __init__(self, module, meta, source, dtype, path, spec_values=None):
        super().__init__(module, meta, source, dtype, path, spec_values)
        self.names = [n for n, _ in meta["values"]]
        self.params = [n for n, role in meta["values"] if role == "param"]
        self.loss = meta["loss"]
        self._size = len(self.names)

    def many_sgd_step(self, V, lr) -> np.ndarray:
        """One gradient step for each row of ``V`` (one problem's values each); the losses before."""
        V = self._inplace(V, "V", (None, len(self.names)))
        losses = np.empty(len(V), dtype=self.dtype)
        self.raw.many_sgd_step(V, float(lr), losses)
        bad = np.flatnonzero(~np.isfinite(losses))
        if len(bad):
            rows = [int(r) for r in bad]
            raise NonFiniteError(f"many_sgd_step: rows {rows[:10]} not finite, left untouched", rows)
        return losses

    def trace(self, v, lr=0.0) -> dict[str, np.ndarray]:
        """Every quantity of the derivation (nodes, ``grad_*``, ``*_new``) under its spec name."""
        out = np.empty(self.trace_layout.size, dtype=self.dtype)
        self.raw.trace(np.ascontiguousarray(v, dtype=self.dtype), float(lr), out)
        return {name: view.reshape(()) for name, view in self.trace_layout.views(out).items()}


class DerivationKernel(_ValuesKernel):
    """Kernels of another kind's derivation (convolutional, recurrent, perceptron, ...): its given
    quantities (inputs, targets, parameters, states) are one flat vector ``v`` (``unpack`` names them)."""

    def __init__(self, module, meta, source, dtype, path, spec_values=None):
        super().__init__(module, meta, source, dtype, path, spec_values)
        self.layout = Layout.from_json(meta["values"])
        self.roles = dict(meta["roles"])
        self.kind = meta["kind"]
        self._size = self.layout.size

    def unpack(self, v: np.ndarray) -> dict[str, np.ndarray]:
        """Named views (``x``, ``K1``, ``W_hh``, ...) into ``v``."""
        return self.layout.views(v)

    def trace(self, v, lr=0.0) -> dict[str, np.ndarray]:
        """Every quantity of the derivation under its name, with its shape."""
        out = np.empty(self.trace_layout.size, dtype=self.dtype)
        self.raw.trace(np.ascontiguousarray(v, dtype=self.dtype), float(lr), out)
        return self.trace_layout.views(out)


# ----------------------------------------------------------------------------- compile

def _spec_of(spec):
    from derive.kinds import kinds
    from derive.core.spec import Spec
    from derive.kinds import load
    if isinstance(spec, tuple(k.problem for k in kinds().values())):
        return spec
    if isinstance(spec, Spec):
        problem = spec.problem
    else:
        import worked_examples
        problem = load(worked_examples.resolve(str(spec))).problem
    if problem is None:
        raise ValueError("the spec has no problem to compile (only formulas)")
    return problem


def _floats(values):
    return None if values is None or any(not v.is_number for v in values) else [float(v) for v in values]


def _network_values(net) -> dict:
    theta = []
    for layer in net.layers:
        if layer.weights is None or layer.bias is None:
            theta = None
            break
        theta += [float(w) for row in layer.weights for w in row] + [float(b) for b in layer.bias]
    lr = net.learning_rate
    if net.samples:   # a mini-batch: one row per sample
        x, t = [_floats(x) for x, _ in net.samples], [_floats(t) for _, t in net.samples]
    else:
        x, t = _floats(net.input), _floats(net.target)
    return {"theta": theta, "x": x, "t": t, "lr": float(lr) if lr is not None and lr.is_number else None}


def _graph_values(graph) -> dict:
    vals = [v for _, v in graph.values]
    lr = graph.learning_rate
    return {"v": None if any(v is None for v in vals) else [float(v) for v in vals],
            "lr": float(lr) if lr is not None and lr.is_number else None}


MAX_SPEC_BYTES = 1_000_000


def _spec_file(spec) -> Path | None:
    """The file of a spec given as a path or a bundled example's name (None for objects)."""
    if not isinstance(spec, (str, os.PathLike)):
        return None
    import worked_examples
    try:
        path = worked_examples.resolve(str(spec))
    except KeyError:
        return None
    return path if path.is_file() and path.stat().st_size <= MAX_SPEC_BYTES else None


def _kernel(kind, loaded, dtype, values):
    module, _, meta, text = loaded
    cls = {"network": NetworkKernel, "graph": GraphKernel}.get(kind, DerivationKernel)
    return cls(module, meta, text, dtype, Path(module.__file__), values)


def _derivation_values(derivation) -> dict:
    from derive.core.steps import LR
    from derive.core.evaluate import is_numeric
    from derive.core.steps import Given
    given = [s for s in derivation.steps if isinstance(s, Given)]
    numeric = is_numeric(derivation)
    lr = [float(s.exprs[0]) for s in given if s.name == LR and numeric]
    return {"v": [float(e) for s in given if s.name != LR for e in s.exprs] if numeric else None,
            "lr": lr[0] if lr else None}


def compile(spec, *, dtype="float64", shape: str = "auto", cache_dir=None):
    """Kernels for a spec: a ``Spec``, a ``Network``/``Graph``, a spec file path or a bundled example name.

    ``shape`` is 'auto' (unrolled for small networks, BLAS for large layers), 'unrolled' or 'blas'.
    Generated modules are cached under ``cache_dir`` (default: ``$NNDERIVE_CACHE`` or
    ~/.cache/nnderive/kernels).  Returns a :class:`NetworkKernel`, a :class:`GraphKernel`, or for
    the other kinds (cnn, recurrent, perceptron, ...) a :class:`DerivationKernel`.
    A spec file seen before (same bytes, same engine) loads without SymPy: its kernel's key and
    its numbers are kept in the cache's index.
    """
    file = _spec_file(spec)
    ikey = index_key(file.read_bytes(), {"shape": shape}) if file is not None else None
    if ikey is not None:
        entry = read_index(ikey, cache_dir)
        loaded = load_module(entry["key"], cache_dir) if entry else None
        if loaded is not None:
            return _kernel(entry["kind"], loaded, dtype, entry.get("values"))
    from derive import kinds
    import kernels.codegen as codegen
    problem = _spec_of(spec)
    hint = kinds.of(problem).kernel           # the kind's kernel hint: "layered", "scalar" or None
    if hint == "layered":
        shape = codegen.choose_shape(problem) if shape == "auto" else shape
        structure = {"network": codegen.structure(problem), "shape": shape}
        kind, values, generate = "network", _network_values(problem), lambda: codegen.generate_network(problem, shape)
    elif hint == "scalar":
        structure = {"graph": codegen.graph_structure(problem)}
        kind, values, generate = "graph", _graph_values(problem), lambda: codegen.generate_graph(problem)
    else:  # another kind: its derivation, whose given numbers are arguments
        derivation = kinds.of(problem).derive(problem)
        structure = {"derivation": codegen.derivation_structure(derivation)}
        kind, values = derivation.kind, _derivation_values(derivation)
        title = f"{derivation.kind} derivation of {len(derivation.steps)} steps, unrolled"
        generate = lambda: codegen.generate_derivation(derivation, title)
    loaded = load(structure, generate, cache_dir)
    if ikey is not None:
        write_index(ikey, {"key": loaded[1], "kind": kind, "values": values}, cache_dir)
    return _kernel(kind, loaded, dtype, values)
