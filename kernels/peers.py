"""The benchmark's peers, written the way their users write them (independent of nnderive).

Each ``*_mlp`` returns ``(step, params)`` for an MLP given as layer sizes, activations
('relu' | 'sigmoid' | 'identity') and a loss ('half_sse' = ½‖y − t‖² per sample, or
'softmax_cross_entropy' on logits), with the batch loss the mean over samples.  ``step()`` runs
one SGD step in place (NumPy, PyTorch) or replaces the held parameters (JAX); ``params()`` returns
the current parameters as float64 NumPy arrays [W1, b1, W2, b2, ...] so the benchmark can check
that every peer computes what the generated kernels compute.  Import of torch and jax happens in
the functions that need them.
"""
from __future__ import annotations

import numpy as np


# ----------------------------------------------------------------------------- NumPy

def _np_act(name, z):
    if name == "relu":
        return np.maximum(z, 0)
    if name == "sigmoid":
        return 1 / (1 + np.exp(-z))
    return z


def _np_dact(name, z, h):
    if name == "relu":
        return (z > 0).astype(z.dtype)
    if name == "sigmoid":
        return h * (1 - h)
    return np.ones_like(z)


def _np_output_delta(loss, y, t):
    if loss == "half_sse":
        return y - t
    e = np.exp(y - y.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True) - t


def numpy_mlp(params, acts, loss, X, T, lr):
    """Vectorised NumPy over the minibatch: rows are samples, W has shape (out, in)."""
    params = [p.copy() for p in params]

    def step():
        hs, zs = [X], []
        for l, act in enumerate(acts):
            z = hs[-1] @ params[2 * l].T + params[2 * l + 1]
            zs.append(z)
            hs.append(_np_act(act, z))
        d = _np_output_delta(loss, hs[-1], T) / len(X)
        if loss == "half_sse":
            d = d * _np_dact(acts[-1], zs[-1], hs[-1])
        for l in range(len(acts) - 1, -1, -1):
            gW, gb = d.T @ hs[l], d.sum(axis=0)
            if l:
                d = (d @ params[2 * l]) * _np_dact(acts[l - 1], zs[l - 1], hs[l])
            params[2 * l] -= lr * gW
            params[2 * l + 1] -= lr * gb
    return step, lambda: [np.asarray(p, dtype=np.float64) for p in params]


def numpy_many(params, acts, X, T, lr):
    """Many independent half-SSE problems at once: stacked parameters (P, out, in), batched einsum."""
    params = [p.copy() for p in params]

    def step():
        hs, zs = [X], []
        for l, act in enumerate(acts):
            z = np.einsum("pij,pj->pi", params[2 * l], hs[-1]) + params[2 * l + 1]
            zs.append(z)
            hs.append(_np_act(act, z))
        d = (hs[-1] - T) * _np_dact(acts[-1], zs[-1], hs[-1])
        for l in range(len(acts) - 1, -1, -1):
            gW = d[:, :, None] * hs[l][:, None, :]
            gb = d
            if l:
                d = np.einsum("pij,pi->pj", params[2 * l], d) * _np_dact(acts[l - 1], zs[l - 1], hs[l])
            params[2 * l] -= lr * gW
            params[2 * l + 1] -= lr * gb
    return step, lambda: [np.asarray(p, dtype=np.float64) for p in params]


# ----------------------------------------------------------------------------- PyTorch

def torch_mlp(params, acts, loss, X, T, lr):
    """``torch.nn.Sequential`` of ``nn.Linear`` and activations, ``torch.optim.SGD``."""
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
    model = nn.Sequential(*layers)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    Xt, Tt = torch.from_numpy(X), torch.from_numpy(T)
    ce = nn.CrossEntropyLoss()

    def step():
        opt.zero_grad()
        y = model(Xt)
        value = 0.5 * ((y - Tt) ** 2).sum(dim=1).mean() if loss == "half_sse" else ce(y, Tt)
        value.backward()
        opt.step()

    def current():
        return [p.detach().numpy().astype(np.float64) for p in model.parameters()]
    return step, current


def torch_many(params, acts, X, T, lr):
    """Stacked parameters as leaf tensors, ``torch.bmm``, one backward of the summed losses, SGD."""
    import torch
    ps = [torch.tensor(p, requires_grad=True) for p in params]
    opt = torch.optim.SGD(ps, lr=lr)
    Xt, Tt = torch.from_numpy(X), torch.from_numpy(T)
    fns = {"relu": torch.relu, "sigmoid": torch.sigmoid, "identity": lambda z: z}

    def step():
        opt.zero_grad()
        h = Xt
        for l, act in enumerate(acts):
            h = fns[act](torch.bmm(ps[2 * l], h.unsqueeze(2)).squeeze(2) + ps[2 * l + 1])
        (0.5 * ((h - Tt) ** 2).sum()).backward()      # problems are independent: the sum's gradient is each one's
        opt.step()
    return step, lambda: [p.detach().numpy().astype(np.float64) for p in ps]


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
    """``jax.jit`` of a step built on ``jax.grad``; parameters held as a tuple and replaced."""
    import jax
    value = _jax_loss(acts, loss)

    @jax.jit
    def update(params, X, T):
        grads = jax.grad(value)(params, X, T)
        return tuple(p - lr * g for p, g in zip(params, grads))

    state = {"p": tuple(jax.numpy.asarray(p) for p in params)}
    Xj, Tj = jax.numpy.asarray(X), jax.numpy.asarray(T)

    def step():
        state["p"] = update(state["p"], Xj, Tj)
        jax.block_until_ready(state["p"])
    return step, lambda: [np.asarray(p, dtype=np.float64) for p in state["p"]]


def jax_many(params, acts, X, T, lr):
    """``jax.jit(jax.vmap(step))`` over the stacked problems."""
    import jax
    value = _jax_loss(acts, "half_sse")

    def one(params, x, t):
        grads = jax.grad(value)(params, x[None, :], t[None, :])
        return tuple(p - lr * g for p, g in zip(params, grads))
    update = jax.jit(jax.vmap(one))
    state = {"p": tuple(jax.numpy.asarray(p) for p in params)}
    Xj, Tj = jax.numpy.asarray(X), jax.numpy.asarray(T)

    def step():
        state["p"] = update(state["p"], Xj, Tj)
        jax.block_until_ready(state["p"])
    return step, lambda: [np.asarray(p, dtype=np.float64) for p in state["p"]]
