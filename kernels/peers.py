"""The benchmark's peers, written the way their users write them (independent of nnderive).

Each ``*_mlp`` returns ``(step, params)`` for an MLP given as layer sizes, activations
('relu' | 'sigmoid' | 'identity') and a loss ('half_sse' = ½‖y − t‖² per sample, or
'softmax_cross_entropy' on logits), with the batch loss the mean over samples.  ``step()`` runs
one SGD step in place (NumPy, PyTorch) or replaces the held parameters (JAX); ``params()`` returns
the current parameters as float64 NumPy arrays [W1, b1, W2, b2, ...] so the benchmark can check
that every peer computes what the generated kernels compute.  Import of torch and jax happens in
the functions that need them.  Each is written as a user who cares about speed writes it (issue
13): NumPy with preallocated buffers and ``out=``, PyTorch eager and through ``torch.compile``,
JAX jitted with its parameters donated.
"""
from __future__ import annotations

import numpy as np


# ----------------------------------------------------------------------------- NumPy
# As a NumPy user who cares about speed writes it: every buffer allocated once, every operation
# into it with ``out=``, matrix products by ``np.dot(..., out=)`` (BLAS), nothing allocated per step
# but small temporaries of reductions.

def _np_act_into(name, z, h):
    if name == "relu":
        np.maximum(z, 0, out=h)
    elif name == "sigmoid":
        np.negative(z, out=h)
        np.exp(h, out=h)
        h += 1
        np.reciprocal(h, out=h)
    else:
        np.copyto(h, z)


def _np_times_dact(name, z, h, d, tmp, mask):
    """d *= g'(z), in place (``tmp`` and ``mask`` are scratch buffers shaped like d)."""
    if name == "relu":
        np.greater(z, 0, out=mask)
        np.multiply(d, mask, out=d)
    elif name == "sigmoid":
        np.subtract(1, h, out=tmp)
        tmp *= h
        d *= tmp


def _np_buffers(params, X):
    lead = X.shape[:-1]
    Z = [np.empty(lead + (W.shape[-2],), dtype=X.dtype) for W in params[::2]]
    return (Z, [X] + [np.empty_like(z) for z in Z], [np.empty_like(z) for z in Z],
            [np.empty_like(z) for z in Z], [np.empty(z.shape, dtype=bool) for z in Z])


def numpy_mlp(params, acts, loss, X, T, lr):
    """Vectorised NumPy over the minibatch: rows are samples, W has shape (out, in); buffers reused."""
    params = [p.copy() for p in params]
    Ws, bs = params[::2], params[1::2]
    Z, H, D, TMP, MASK = _np_buffers(params, X)
    GW, GB = [np.empty_like(W) for W in Ws], [np.empty_like(b) for b in bs]
    L, scale = len(acts), 1.0 / len(X)
    rowmax = np.empty((len(X), 1), dtype=X.dtype)
    rowsum = np.empty((len(X), 1), dtype=X.dtype)

    def step():
        for l, act in enumerate(acts):
            np.dot(H[l], Ws[l].T, out=Z[l])
            Z[l] += bs[l]
            _np_act_into(act, Z[l], H[l + 1])
        d = D[-1]
        if loss == "half_sse":
            np.subtract(H[-1], T, out=d)
            d *= scale
            _np_times_dact(acts[-1], Z[-1], H[-1], d, TMP[-1], MASK[-1])
        else:                                               # softmax cross-entropy on the logits H[-1]
            np.max(H[-1], axis=1, keepdims=True, out=rowmax)
            np.subtract(H[-1], rowmax, out=d)
            np.exp(d, out=d)
            np.sum(d, axis=1, keepdims=True, out=rowsum)
            d /= rowsum
            d -= T
            d *= scale
        for l in range(L - 1, -1, -1):
            np.dot(D[l].T, H[l], out=GW[l])
            np.sum(D[l], axis=0, out=GB[l])
            if l:
                np.dot(D[l], Ws[l], out=D[l - 1])
                _np_times_dact(acts[l - 1], Z[l - 1], H[l], D[l - 1], TMP[l - 1], MASK[l - 1])
            GW[l] *= lr
            Ws[l] -= GW[l]
            GB[l] *= lr
            bs[l] -= GB[l]
    return step, lambda: [np.asarray(p, dtype=np.float64) for p in params]


def numpy_many(params, acts, X, T, lr):
    """Many independent half-SSE problems at once: stacked parameters (P, out, in), batched einsum,
    buffers reused."""
    params = [p.copy() for p in params]
    Ws, bs = params[::2], params[1::2]
    Z, H, D, TMP, MASK = _np_buffers(params, X)
    GW = [np.empty_like(W) for W in Ws]

    def step():
        for l, act in enumerate(acts):
            np.einsum("pij,pj->pi", Ws[l], H[l], out=Z[l])
            Z[l] += bs[l]
            _np_act_into(act, Z[l], H[l + 1])
        np.subtract(H[-1], T, out=D[-1])
        _np_times_dact(acts[-1], Z[-1], H[-1], D[-1], TMP[-1], MASK[-1])
        for l in range(len(acts) - 1, -1, -1):
            np.multiply(D[l][:, :, None], H[l][:, None, :], out=GW[l])
            if l:
                np.einsum("pij,pi->pj", Ws[l], D[l], out=D[l - 1])
                _np_times_dact(acts[l - 1], Z[l - 1], H[l], D[l - 1], TMP[l - 1], MASK[l - 1])
            GW[l] *= lr
            Ws[l] -= GW[l]
            D[l] *= lr
            bs[l] -= D[l]
    return step, lambda: [np.asarray(p, dtype=np.float64) for p in params]


# ----------------------------------------------------------------------------- PyTorch

def _torch_model(params, acts):
    import torch
    from torch import nn
    dtype = torch.float64 if params[0].dtype == np.float64 else torch.float32
    layers = []
    for l, act in enumerate(acts):
        lin = nn.Linear(params[2 * l].shape[1], params[2 * l].shape[0]).to(dtype)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(params[2 * l]))
            lin.bias.copy_(torch.from_numpy(params[2 * l + 1]))
        layers.append(lin)
        if act != "identity":
            layers.append({"relu": nn.ReLU, "sigmoid": nn.Sigmoid}[act]())
    return nn.Sequential(*layers)


def torch_mlp(params, acts, loss, X, T, lr, compiled=False):
    """``torch.nn.Sequential`` of ``nn.Linear`` and activations, ``torch.optim.SGD``.

    ``compiled``: the forward pass and loss through ``torch.compile`` (its backward is compiled
    with it by AOTAutograd), and the optimizer step through ``torch.compile`` too, as PyTorch's
    tutorial "Compiling the optimizer" does.  Compiling happens on the first call of ``step``."""
    import torch
    from torch import nn
    model = _torch_model(params, acts)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    Xt, Tt = torch.from_numpy(X), torch.from_numpy(T)
    ce = nn.CrossEntropyLoss()

    def value():
        y = model(Xt)
        return 0.5 * ((y - Tt) ** 2).sum(dim=1).mean() if loss == "half_sse" else ce(y, Tt)

    def update():
        opt.step()

    if compiled:
        value, update = torch.compile(value), torch.compile(update)

    def step():
        opt.zero_grad()
        value().backward()
        update()

    def current():
        return [p.detach().numpy().astype(np.float64) for p in model.parameters()]
    return step, current


def torch_many(params, acts, X, T, lr, compiled=False):
    """Stacked parameters as leaf tensors, ``torch.bmm``, one backward of the summed losses, SGD
    (``compiled``: the loss and the optimizer step through ``torch.compile``)."""
    import torch
    ps = [torch.tensor(p, requires_grad=True) for p in params]
    opt = torch.optim.SGD(ps, lr=lr)
    Xt, Tt = torch.from_numpy(X), torch.from_numpy(T)
    fns = {"relu": torch.relu, "sigmoid": torch.sigmoid, "identity": lambda z: z}

    def value():
        h = Xt
        for l, act in enumerate(acts):
            h = fns[act](torch.bmm(ps[2 * l], h.unsqueeze(2)).squeeze(2) + ps[2 * l + 1])
        return 0.5 * ((h - Tt) ** 2).sum()      # problems are independent: the sum's gradient is each one's

    def update():
        opt.step()

    if compiled:
        value, update = torch.compile(value), torch.compile(update)

    def step():
        opt.zero_grad()
        value().backward()
        update()
    return step, lambda: [p.detach().numpy().astype(np.float64) for p in ps]


def torch_compiled_mlp(params, acts, loss, X, T, lr):
    return torch_mlp(params, acts, loss, X, T, lr, compiled=True)


def torch_compiled_many(params, acts, X, T, lr):
    return torch_many(params, acts, X, T, lr, compiled=True)


# ----------------------------------------------------------------------------- JAX

def _jax_loss(acts, loss):
    import jax
    import jax.numpy as jnp
    fns = {"relu": jax.nn.relu, "sigmoid": jax.nn.sigmoid, "identity": lambda z: z}

    def value(params, X, T):
        h = X
        for l, act in enumerate(acts):
            h = fns[act](h @ params[2 * l].T + params[2 * l + 1])
        if loss == "half_sse":
            return 0.5 * jnp.mean(jnp.sum((h - T) ** 2, axis=-1))
        return -jnp.mean(jnp.sum(T * jax.nn.log_softmax(h, axis=-1), axis=-1))
    return value


def jax_mlp(params, acts, loss, X, T, lr):
    """``jax.jit`` of a step built on ``jax.grad``, the parameters donated (``donate_argnums``: XLA
    writes the new parameters into the old buffers); held as a tuple and replaced."""
    import jax
    value = _jax_loss(acts, loss)

    def update(params, X, T):
        grads = jax.grad(value)(params, X, T)
        return tuple(p - lr * g for p, g in zip(params, grads))
    update = jax.jit(update, donate_argnums=(0,))

    state = {"p": tuple(jax.numpy.array(p) for p in params)}
    Xj, Tj = jax.numpy.asarray(X), jax.numpy.asarray(T)

    def step():
        state["p"] = update(state["p"], Xj, Tj)
        jax.block_until_ready(state["p"])
    return step, lambda: [np.asarray(p, dtype=np.float64) for p in state["p"]]


def jax_many(params, acts, X, T, lr):
    """``jax.jit(jax.vmap(step))`` over the stacked problems, the parameters donated."""
    import jax
    value = _jax_loss(acts, "half_sse")

    def one(params, x, t):
        grads = jax.grad(value)(params, x[None, :], t[None, :])
        return tuple(p - lr * g for p, g in zip(params, grads))
    update = jax.jit(jax.vmap(one), donate_argnums=(0,))
    state = {"p": tuple(jax.numpy.array(p) for p in params)}
    Xj, Tj = jax.numpy.asarray(X), jax.numpy.asarray(T)

    def step():
        state["p"] = update(state["p"], Xj, Tj)
        jax.block_until_ready(state["p"])
    return step, lambda: [np.asarray(p, dtype=np.float64) for p in state["p"]]
