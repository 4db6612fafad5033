"""GAN objectives: loss gradients against central finite differences (float64, smooth nets)."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from refimpl.backend import from_host, to_numpy
from refimpl.nn import MLP
from refimpl.objectives import (OBJECTIVES, Objective, critic_grads, generator_grads, gradient_penalty)
from tests.conftest import assert_xp
from tests.test_nn import _fd_params

H = 1e-6


def _nets(xp, seed, d=2, latent=3, act="tanh"):
    rng = np.random.default_rng(seed)
    gen = MLP((latent, 6, 5, d), act)
    critic = MLP((d, 7, 6, 1), "softplus")
    gp, cp = gen.init(rng, xp=xp), critic.init(rng, xp=xp)
    real = from_host(rng.standard_normal((5, d)), xp, "float64")
    z = from_host(rng.standard_normal((5, latent)), xp, "float64")
    return gen, critic, gp, cp, real, z


@pytest.mark.parametrize("name", OBJECTIVES)
@given(seed=st.integers(0, 10_000))
def test_critic_gradients_match_finite_differences(xp, name, seed):
    gen, critic, gp, cp, real, z = _nets(xp, seed)
    obj = Objective(name, lam=3.0)
    fake = gen.forward(gp, z)[0]

    def loss(p):   # same penalty points every call: reseed the draw
        return float(to_numpy(critic_grads(obj, critic, p, real, fake, np.random.default_rng(seed))[0]))

    value, grads, logs = critic_grads(obj, critic, cp, real, fake, np.random.default_rng(seed))
    assert_xp((value, grads, logs), xp, "float64")
    for (l, k, idx), fd in _fd_params(loss, cp, xp, np.random.default_rng(seed + 1), n_checks=10):
        assert to_numpy(grads[l][k])[idx] == pytest.approx(fd, rel=1e-5, abs=1e-7)


@pytest.mark.parametrize("name", OBJECTIVES)
@given(seed=st.integers(0, 10_000))
def test_generator_gradients_match_finite_differences(xp, name, seed):
    gen, critic, gp, cp, real, z = _nets(xp, seed)
    obj = Objective(name)

    def loss(p):
        return float(to_numpy(generator_grads(obj, gen, p, critic, cp, z)[0]))

    value, grads, fake = generator_grads(obj, gen, gp, critic, cp, z)
    assert_xp((value, grads, fake), xp, "float64")
    for (l, k, idx), fd in _fd_params(loss, gp, xp, np.random.default_rng(seed + 2), n_checks=10):
        assert to_numpy(grads[l][k])[idx] == pytest.approx(fd, rel=1e-5, abs=1e-7)


def _linear_critic(xp, w):
    critic = MLP((len(w), 1), "relu", "linear")
    return critic, [(from_host(np.asarray(w, float)[:, None], xp, "float64"), from_host(np.zeros(1), xp, "float64"))]


def test_gp_vanishes_for_unit_norm_linear_critic(xp):
    critic, cp = _linear_critic(xp, [0.6, 0.8])
    x = from_host(np.random.default_rng(0).standard_normal((9, 2)), xp, "float64")
    pen, grads, norms = gradient_penalty(critic, cp, x, 10.0, "two-sided")
    assert float(to_numpy(pen)) == pytest.approx(0.0, abs=1e-15)
    np.testing.assert_allclose(to_numpy(norms), 1.0)
    assert np.max(np.abs(to_numpy(grads[0][0]))) < 1e-14


def test_lp_vanishes_when_gradient_norms_at_most_one(xp):
    critic, cp = _linear_critic(xp, [0.3, -0.4])        # ||grad f|| = 0.5 everywhere
    x = from_host(np.random.default_rng(1).standard_normal((9, 2)), xp, "float64")
    pen, grads, _ = gradient_penalty(critic, cp, x, 10.0, "one-sided")
    assert float(to_numpy(pen)) == 0.0
    assert np.max(np.abs(to_numpy(grads[0][0]))) == 0.0
    pen2, _, _ = gradient_penalty(critic, cp, x, 10.0, "two-sided")   # GP is not zero there
    assert float(to_numpy(pen2)) == pytest.approx(10.0 * 0.25)


def test_penalty_gradient_finite_at_zero_gradient(xp):
    critic, cp = _linear_critic(xp, [0.0, 0.0])
    x = from_host(np.ones((4, 2)), xp, "float64")
    pen, grads, norms = gradient_penalty(critic, cp, x, 10.0, "two-sided")
    assert float(to_numpy(pen)) == pytest.approx(10.0)
    assert np.all(to_numpy(norms) == 0)
    assert all(np.all(np.isfinite(to_numpy(a))) for Wb in grads for a in Wb)


def test_gp_closed_form_for_linear_critic(xp):
    """f(x) = w.x: GP = lam (|w| - 1)^2, dGP/dw = 2 lam (|w| - 1) w/|w|."""
    w = np.array([1.5, -2.0])
    critic, cp = _linear_critic(xp, w)
    x = from_host(np.random.default_rng(2).standard_normal((6, 2)), xp, "float64")
    pen, grads, _ = gradient_penalty(critic, cp, x, 4.0, "two-sided")
    n = np.linalg.norm(w)
    assert float(to_numpy(pen)) == pytest.approx(4.0 * (n - 1) ** 2)
    np.testing.assert_allclose(to_numpy(grads[0][0])[:, 0], 2 * 4.0 * (n - 1) * w / n)


def test_standard_loss_is_stable_for_large_logits(xp):
    obj = Objective("standard")
    critic, cp = _linear_critic(xp, [1e4, 0.0])
    real = from_host(np.array([[1.0, 0.0], [-1.0, 0.0]]), xp, "float64")
    loss, grads, _ = critic_grads(obj, critic, cp, real, real, np.random.default_rng(0))
    assert np.isfinite(float(to_numpy(loss)))
    assert float(to_numpy(loss)) == pytest.approx(1e4)        # softplus(-1e4)+softplus(1e4) averaged
    assert all(np.all(np.isfinite(to_numpy(a))) for Wb in grads for a in Wb)


def test_bad_objectives():
    with pytest.raises(ValueError, match="unknown objective 'wgan-xx'"):
        Objective("wgan-xx")
    with pytest.raises(ValueError, match="lam must be a finite number > 0"):
        Objective("wgan-gp", lam=-1.0)
    with pytest.raises(ValueError, match="clip"):
        Objective("wgan", clip=0.0)
