"""refimpl.regularizers: each regulariser's formulas against the paper's table (refimpl.ot's
docstring), the Fenchel-Young equality that ties them, and finite differences."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from refimpl.backend import from_host, to_numpy
from refimpl.ot import REGS
from refimpl.regularizers import KL, L2, REGULARIZERS, Regularizer, get_regularizer
from tests.conftest import assert_xp

REG_OBJECTS = (KL, L2)


def _problem(xp, device, rng, M, N, scale=1.0):
    a = rng.random(M) + 0.1
    b = rng.random(N) + 0.1
    put = lambda v: from_host(np.asarray(v, float), xp, "float64", device)    # noqa: E731
    return put(rng.standard_normal((M, N)) * scale), put(a / a.sum()), put(b / b.sum())


def test_names_and_lookup():
    assert tuple(REGULARIZERS) == REGS == ("kl", "l2")
    assert get_regularizer("KL") is KL and get_regularizer("l2") is L2 and get_regularizer(L2) is L2
    assert isinstance(KL, Regularizer) and repr(KL) == "refimpl.regularizers.KL"
    with pytest.raises(ValueError, match="reg"):
        get_regularizer("entropy")
    with pytest.raises(TypeError, match="reg"):
        get_regularizer(2)


@pytest.mark.parametrize("reg", REG_OBJECTS, ids=lambda r: r.name)
@given(M=st.integers(1, 6), N=st.integers(1, 6), lam=st.floats(0.05, 5.0), seed=st.integers(0, 2 ** 16))
@settings(max_examples=30, deadline=None)
def test_the_penalty_is_the_papers_dual_term_and_fenchel_young_holds(xp, device, reg, M, N, lam, seed):
    """``F = <a, phi> - <b, psi> - penalty``: the penalty is the table's term (KL
    ``(lam/e) sum a b exp(V/lam)``, L2 ``sum a b V_+^2 / (2 lam)``), and at the pseudo-plan
    ``P = a b^T M(V)`` it equals ``<P, V> - lam I(P)`` (the conjugacy of ``lam I`` and the penalty)."""
    V, a, b = _problem(xp, device, np.random.default_rng(seed), M, N)
    ab = a[:, None] * b[None, :]
    P = ab * reg.density(V, lam)
    pen, div = reg.penalty(P, V, lam), reg.divergence(P, a, b)
    assert_xp((P, pen, div), xp, "float64")
    Vh, abh = to_numpy(V), to_numpy(ab)
    table = (lam / np.e) * np.sum(abh * np.exp(Vh / lam)) if reg is KL else np.sum(abh * np.maximum(Vh, 0) ** 2) / (2 * lam)
    assert float(pen) == pytest.approx(table, rel=1e-12, abs=1e-300)
    assert float(pen) == pytest.approx(float(xp.sum(P * V)) - lam * float(div), rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("reg", REG_OBJECTS, ids=lambda r: r.name)
def test_the_plan_is_the_gradient_of_the_penalty(xp, device, reg):
    """``d penalty / dV_ij = P_ij`` (central differences, float64): the density is the
    conjugate's gradient. The check moves: a perturbed density fails it."""
    rng = np.random.default_rng(4)
    V, a, b = _problem(xp, device, rng, 4, 3)
    lam, h = 0.7, 1e-6
    ab = a[:, None] * b[None, :]

    def pen(Vh):
        Vx = from_host(Vh, xp, "float64", device)
        return float(reg.penalty(ab * reg.density(Vx, lam), Vx, lam))
    Vh = to_numpy(V)
    fd = np.zeros_like(Vh)
    for i in range(4):
        for j in range(3):
            e = np.zeros_like(Vh)
            e[i, j] = h
            fd[i, j] = (pen(Vh + e) - pen(Vh - e)) / (2 * h)
    P = to_numpy(ab * reg.density(V, lam))
    np.testing.assert_allclose(P, fd, rtol=1e-6, atol=1e-9)
    assert np.max(np.abs(P * 1.001 - fd)) > 1e-7                 # the comparison sees a 0.1% change


@pytest.mark.parametrize("reg", REG_OBJECTS, ids=lambda r: r.name)
def test_uniform_plan_and_solver_plan(xp, device, reg):
    rng = np.random.default_rng(5)
    V, a, b = _problem(xp, device, rng, 5, 4)
    lam = 0.3
    U = reg.uniform_plan(V, lam)
    assert_xp(U, xp, "float64")
    np.testing.assert_allclose(to_numpy(U), to_numpy(reg.density(V, lam)) / 20, rtol=1e-14)
    X = reg.density(V, lam) * (a[:, None] * b[None, :]) if reg is KL else xp.clip(V, min=0.0)
    np.testing.assert_allclose(to_numpy(reg.plan(X, a, b, lam)),
                               to_numpy(a[:, None] * b[None, :] * reg.density(V, lam)), rtol=1e-14)


@pytest.mark.filterwarnings("ignore:overflow encountered")
def test_only_kl_overflows(xp, device):
    V = from_host(np.array([[0.0, 1000.0]]), xp, "float32", device)
    with pytest.raises(ValueError, match="lam=0.5 is too small"):
        KL.check_finite(KL.density(V, 0.5), 0.5)
    out = L2.density(V, 0.5)
    assert L2.check_finite(out, 0.5) is out
