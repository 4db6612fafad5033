"""CUDA-graph execution of a fused outer iteration on CuPy: capture once, then replay.

A fused :class:`refimpl.train.GANMethod` iteration is three parts (``method.capturable``): host
draws (:meth:`~refimpl.train.GANMethod.draw`), one host-to-device copy per kind
(:meth:`~refimpl.train.GANMethod.put_draws`), and device work that reads nothing from the host
(:meth:`~refimpl.train.GANMethod.outer_step_drawn`; ``tests/test_steps.py`` counts it on
array_api_strict). :class:`GraphStep` keeps the state in persistent device buffers updated in place
(:class:`refimpl.flat.FlatParams`, flat optimiser moments, Adam's step count as a 0-d device array,
``capturable=True``), copies each iteration's draws into persistent pinned host buffers and from
there into persistent device buffers, runs the first iteration eagerly (warm-up: kernels compile,
the graph's private memory pool fills), captures the second on a non-blocking stream, and replays
that graph from then on, as PyTorch's ``torch.cuda.graphs`` does.

It refuses what it cannot capture, with a ``ValueError``: another backend, a method whose outer
step is not the fused three parts (a subclass's own phases may read the host), a data source
without ``draw``/``put``/``gather``, a batch whose shape changes between iterations, and an
optimiser other than SGD, RMSprop and Adam. A CuPy that cannot capture a library call (cuBLAS, in
older releases) fails at capture with CuPy's error, re-raised naming the step.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from .backend import backend_name, namespace
from .optim import SGD, Adam, RMSprop


class GraphStep:
    """``step(state, rng, data) -> (state, logs)`` with the signature of ``method.outer_step``.

    Parameters
    ----------
    method : GANMethod with ``method.capturable``; its Adam optimisers are replaced by their
        ``capturable=True`` twins (same hyper-parameters) on the first call.
    data : a data source with ``draw``, ``put`` and ``gather`` (ToyData, ArrayData).
    """

    def __init__(self, method, data):
        if not getattr(method, "capturable", False):
            raise ValueError(f"cuda_graph: {type(method).__name__}'s outer step is not the fused draw / put / "
                             f"compute sequence, so it may read the host inside a step; run it without cuda_graph")
        if not all(hasattr(data, k) for k in ("draw", "put", "gather")):
            raise ValueError(f"cuda_graph: the data source {type(data).__name__} has no draw/put/gather split")
        for k in ("opt_gen", "opt_critic"):
            if not isinstance(getattr(method, k), (SGD, RMSprop, Adam)):
                raise ValueError(f"cuda_graph: {k} is a {type(getattr(method, k)).__name__}, not SGD, RMSprop or Adam")
        self.method, self.data = method, data
        self.graph = self.pool = self.stream = None
        self.calls, self.shapes, self.host, self.dev, self.logs, self.dt = 0, None, {}, {}, None, {}

    def _prepare(self, state):
        like = state["gen"][0][0]
        if backend_name(namespace(like)) != "cupy":
            raise ValueError(f"cuda_graph needs CuPy arrays, the state is in {namespace(like).__name__}")
        import cupy as cp
        for key in ("opt_gen", "opt_critic"):
            opt = getattr(self.method, key)
            if isinstance(opt, Adam) and not opt.capturable:
                setattr(self.method, key, dataclasses.replace(opt, capturable=True))
            st = state[key]
            if isinstance(getattr(self.method, key), Adam) and "step" not in st:
                state = {**state, key: {**st, "step": cp.full((), float(st["t"]), dtype=like.dtype)}}
        self.pool = cp.cuda.MemoryPool()             # private: nothing outside the graph reuses its blocks
        self.stream = cp.cuda.Stream(non_blocking=True)
        return state

    def _copy_in(self, draws):
        import cupy as cp
        shapes = {k: (v.shape, v.dtype) for k, v in draws.items()}
        if self.shapes is None:
            self.shapes = shapes
            for k, v in draws.items():
                buf = cp.cuda.alloc_pinned_memory(v.nbytes)
                self.host[k] = np.frombuffer(buf, v.dtype, v.size).reshape(v.shape)
        elif shapes != self.shapes:
            raise ValueError(f"cuda_graph: the draws changed shape ({self.shapes} -> {shapes}); a captured step "
                             f"needs a fixed batch size")
        for k, v in draws.items():
            self.host[k][...] = v

    def step(self, state, rng, data):
        m = self.method
        if self.calls == 0:
            state = self._prepare(state)
        import cupy as cp
        like = state["gen"][0][0]
        self._copy_in(m.draw(rng, data))
        with cp.cuda.using_allocator(self.pool.malloc), self.stream:
            if self.calls == 0:                      # warm-up: persistent device buffers, eager step
                self.dev = m.put_draws({k: v.copy() for k, v in self.host.items()}, data, like)
                state, logs = m.outer_step_drawn(state, self.dev, data)
            else:
                for k, buf in self.dev.items():
                    buf.set(self.host[k], stream=self.stream)
                if self.graph is None:
                    t0 = {k: state[k]["t"] for k in ("opt_gen", "opt_critic")}
                    self.stream.begin_capture()
                    try:
                        new, self.logs = m.outer_step_drawn(state, self.dev, data)
                    except Exception as e:
                        self.stream.end_capture()
                        raise RuntimeError(f"cuda_graph: capture of {type(m).__name__}'s outer step failed: {e}") from e
                    self.graph = self.stream.end_capture()
                    self.dt = {k: new[k]["t"] - t0[k] for k in t0}
                self.graph.launch(self.stream)
                state = {**state, **{k: {**state[k], "t": state[k]["t"] + d} for k, d in self.dt.items()}}
                logs = self.logs
        self.calls += 1
        return state, logs
