"""Optimisers against their textbook update rules (and PyTorch where installed), every backend."""
import numpy as np
import pytest

from refimpl.backend import from_host, to_numpy
from refimpl.optim import SGD, Adam, RMSprop, make_optimiser
from tests.conftest import assert_xp


def _problem(xp, dtype, seed=0):
    rng = np.random.default_rng(seed)
    p = [(rng.standard_normal((3, 4)), rng.standard_normal(4)), (rng.standard_normal((4, 1)), rng.standard_normal(1))]
    gs = [[(rng.standard_normal((3, 4)), rng.standard_normal(4)), (rng.standard_normal((4, 1)), rng.standard_normal(1))]
          for _ in range(5)]
    mv = lambda t: [(from_host(W, xp, dtype), from_host(b, xp, dtype)) for W, b in t]
    return p, gs, mv


def _flat(t):
    return [np.array(a, dtype=np.float64) for Wb in t for a in Wb]   # copies


def _reference(kind, p, gs, **kw):
    """Plain-NumPy float64 textbook updates, leaf by leaf."""
    ps = _flat(p)
    state = [dict(m=np.zeros_like(x), v=np.zeros_like(x)) for x in ps]
    for t, g in enumerate(gs, 1):
        for x, gi, s in zip(ps, _flat(g), state):
            if kind == "sgd":
                s["m"] = kw.get("momentum", 0.0) * s["m"] + gi
                x -= kw["lr"] * s["m"]
            elif kind == "adam":
                b1, b2, lr, eps = kw["beta1"], kw["beta2"], kw["lr"], kw.get("eps", 1e-8)
                s["m"] = b1 * s["m"] + (1 - b1) * gi
                s["v"] = b2 * s["v"] + (1 - b2) * gi * gi
                x -= lr * (s["m"] / (1 - b1 ** t)) / (np.sqrt(s["v"] / (1 - b2 ** t)) + eps)
            else:
                s["v"] = kw["rho"] * s["v"] + (1 - kw["rho"]) * gi * gi
                x -= kw["lr"] * gi / (np.sqrt(s["v"]) + kw.get("eps", 1e-8))
    return ps


CASES = [("sgd", SGD, dict(lr=0.1)), ("sgd", SGD, dict(lr=0.05, momentum=0.9)),
         ("adam", Adam, dict(lr=1e-2, beta1=0.5, beta2=0.9)), ("adam", Adam, dict(lr=1e-3, beta1=0.9, beta2=0.999)),
         ("rmsprop", RMSprop, dict(lr=1e-2, rho=0.9))]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kind,cls,kw", CASES)
def test_matches_textbook_update(xp, dtype, kind, cls, kw):
    p, gs, mv = _problem(xp, dtype)
    opt = cls(**kw)
    params = mv(p)
    before = [np.array(to_numpy(a)) for Wb in params for a in Wb]
    state = opt.init(params)
    for g in gs:
        params, state = opt.step(params, mv(g), state)
    assert_xp((params, [a for a in state.get("m", []) + state.get("v", [])]), xp, dtype)
    tol = 1e-5 if dtype == "float32" else 1e-12
    for got, want in zip(_flat([tuple(to_numpy(a) for a in Wb) for Wb in params]), _reference(kind, p, gs, **kw)):
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
    # step returns new arrays: the caller's old parameters are untouched
    first = mv(p)
    opt.step(first, mv(gs[0]), opt.init(first))
    for got, want in zip(_flat([tuple(to_numpy(a) for a in Wb) for Wb in first]), before):
        np.testing.assert_array_equal(got, want.astype(np.float64))
    assert state["t"] == len(gs)


def test_adam_matches_torch():
    torch = pytest.importorskip("torch")
    p, gs, mv = _problem(np, "float64", seed=4)
    opt = Adam(lr=3e-3, beta1=0.5, beta2=0.9)
    params = mv(p)
    state = opt.init(params)
    tp = [torch.tensor(a, requires_grad=True) for a in _flat(p)]
    topt = torch.optim.Adam(tp, lr=3e-3, betas=(0.5, 0.9), eps=1e-8)
    for g in gs:
        params, state = opt.step(params, mv(g), state)
        for t, gi in zip(tp, _flat(g)):
            t.grad = torch.tensor(gi)
        topt.step()
    for got, t in zip(_flat(params), tp):
        np.testing.assert_allclose(got, t.detach().numpy(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("make,msg", [(lambda: Adam(lr=0), "learning rate"), (lambda: Adam(beta1=1.0), "beta1"),
                                      (lambda: SGD(lr=float("nan")), "learning rate"), (lambda: SGD(momentum=-0.1), "momentum"),
                                      (lambda: RMSprop(rho=1.5), "rho"), (lambda: make_optimiser("lbfgs"), "unknown optimiser")])
def test_bad_hyperparameters(make, msg):
    with pytest.raises(ValueError, match=msg):
        make()
