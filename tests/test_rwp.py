"""Relaxed Wasserstein Proximal (refimpl/rwp.py): formulas against finite differences and
closed forms, the copy of theta_prev, the h -> infinity limit and the fresh-z inner loop."""
import dataclasses
import math

import numpy as np

from refimpl.flat import copy_state
import pytest

from refimpl import validation as checks
from refimpl.backend import from_host, to_numpy
from refimpl.nn import copy_params
from refimpl.objectives import Objective
from refimpl.rwp import RWP_DEFAULTS, RWPMethod, proximal_term, rwp_generator_grads
from refimpl.train import GANConfig, GANMethod, ToyData, train
from tests.conftest import assert_xp
from tests.fd import assert_grads_close, fd_host_params

H = 1e-6
OBJS = ("standard", "wgan-gp", "wgan-lp", "dragan")
# tiny smooth nets (float64 FD); 3-D samples so the per-sample norm sums over coordinates
TINY = dict(data_dim=3, latent_dim=2, gen_hidden=(5,), critic_hidden=(6,), gen_activation="tanh",
            critic_activation="softplus", batch_size=4, n_critic=1)


def host(params):
    return [(to_numpy(W).copy(), to_numpy(b).copy()) for W, b in params]


def dev(hparams, xp):
    return [(from_host(W, xp, "float64"), from_host(b, xp, "float64")) for W, b in hparams]


def fd_params(fun, params, xp):
    """Central differences of scalar ``fun(params on xp)`` w.r.t. every parameter entry."""
    return fd_host_params(lambda hp: fun(dev(hp, xp)), host(params))


def same(p, q):
    return all(np.array_equal(to_numpy(a), to_numpy(b)) for Wb, Vc in zip(p, q) for a, b in zip(Wb, Vc))


def setup(xp, objective="wgan-gp", seed=0, **kw):
    cfg = GANConfig(objective=objective, **{**TINY, **kw})
    rng = np.random.default_rng(seed)
    m = GANMethod(cfg)
    st = m.init_state(rng, xp, "float64")
    return cfg, m, st, rng


# ----------------------------------------------------------------------------- the proximal term
@pytest.mark.parametrize("h", [0.1, 0.7, 3.0])
def test_proximal_term_value_and_gradient(xp, h):
    rng = np.random.default_rng(1)
    xh, yh = rng.standard_normal((5, 3)), rng.standard_normal((5, 3))
    x, y = from_host(xh, xp, "float64"), from_host(yh, xp, "float64")
    value, dx = proximal_term(x, y, h)
    assert_xp((value, dx), xp, "float64")
    # closed form: squared Euclidean norm per sample, summed over coordinates, mean over samples
    want = sum(float(np.sum((xh[i] - yh[i]) ** 2)) for i in range(5)) / 5 / (2 * h)
    assert float(to_numpy(value)) == pytest.approx(want, rel=1e-13)
    fd = np.zeros_like(xh)
    for idx in np.ndindex(*xh.shape):
        e = np.zeros_like(xh)
        e[idx] = H
        fp = float(to_numpy(proximal_term(from_host(xh + e, xp, "float64"), y, h)[0]))
        fm = float(to_numpy(proximal_term(from_host(xh - e, xp, "float64"), y, h)[0]))
        fd[idx] = (fp - fm) / (2 * H)
    np.testing.assert_allclose(to_numpy(dx), fd, rtol=1e-7, atol=1e-9)


def test_proximal_term_is_zero_on_equal_samples_and_rejects_bad_input(xp):
    x = from_host(np.ones((4, 2)), xp, "float64")
    v, d = proximal_term(x, x, 0.3)
    assert float(to_numpy(v)) == 0.0 and np.all(to_numpy(d) == 0.0)
    with pytest.raises(ValueError, match="shape"):
        proximal_term(x, from_host(np.ones((3, 2)), xp, "float64"), 0.3)
    for h in (0, -1.0, math.nan, math.inf, True, "0.1", None):
        with pytest.raises(ValueError, match="h must be"):
            proximal_term(x, x, h)


# ----------------------------------------------------------------------------- the whole generator objective
@pytest.mark.parametrize("objective", OBJS)
def test_rwp_generator_objective_matches_finite_differences(xp, objective):
    cfg, m, st, rng = setup(xp, objective, seed=2)
    # the anchor differs from the live generator, so the proximal term is not at its minimum
    gprev = [(W + from_host(0.3 * rng.standard_normal(W.shape), xp, "float64"), b + 0.1) for W, b in st["gen"]]
    z = from_host(rng.standard_normal((4, 2)), xp, "float64")
    obj, h = Objective(objective), 0.37

    def total(p):
        return float(to_numpy(rwp_generator_grads(obj, m.gen, p, gprev, m.critic, st["critic"], z, h)[0]))

    value, grads, logs = rwp_generator_grads(obj, m.gen, st["gen"], gprev, m.critic, st["critic"], z, h)
    assert_xp((value, grads, logs), xp, "float64")
    assert float(to_numpy(logs["prox"])) > 1e-3
    # value = F + P, with P recomputed from the two generators' samples
    fx, fy = to_numpy(m.gen.forward(st["gen"], z)[0]), to_numpy(m.gen.forward(gprev, z)[0])
    assert float(to_numpy(logs["prox"])) == pytest.approx(np.mean(np.sum((fx - fy) ** 2, axis=1)) / (2 * h), rel=1e-12)
    assert float(to_numpy(value)) == pytest.approx(float(to_numpy(logs["gen_loss"] + logs["prox"])), rel=1e-14)
    assert_grads_close(grads, fd_params(total, st["gen"], xp))


# ----------------------------------------------------------------------------- the method
class InPlaceSGD:
    """SGD that overwrites the parameter arrays in place (returns the same arrays), so an
    alias of the live parameters would change with them."""

    def __init__(self, lr):
        self.lr = lr

    def init(self, params):
        return {"t": 0}

    def _step(self, params, grads, state):          # the unchecked core the training loop calls (step.unchecked)
        for (W, b), (dW, db) in zip(params, grads):
            W -= self.lr * dW
            b -= self.lr * db
        return params, {"t": state["t"] + 1}

    @checks.checked(_step)
    def step(self, params, grads, state):
        """One in-place update."""
        return self._step(checks.params(params, "params"), checks.params(grads, "grads"), state)


def test_theta_prev_is_a_real_copy(xp):
    """With an optimiser that updates the live arrays in place, an aliased theta_prev would
    follow the live generator and the proximal term of the second step would be 0."""
    cfg, _, st, _ = setup(xp, "wgan-gp", seed=3)
    m = RWPMethod(cfg, h=0.05, l=2)
    m.opt_gen = InPlaceSGD(0.5)
    st = {**st, "gen": copy_params(st["gen"]), "opt_gen": m.opt_gen.init(st["gen"])}
    start = copy_params(st["gen"])
    live = st["gen"]
    rng = np.random.default_rng(11)
    new, logs = m.generator_phase(st, rng, None)
    assert new["gen"][0][0] is live[0][0] and not same(live, start)        # updated in place
    # reference: the same two steps with theta_prev = the start copy
    ref = copy_params(start)
    rr = np.random.default_rng(11)
    for _ in range(2):
        z = from_host(rr.standard_normal((cfg.batch_size, cfg.latent_dim)), xp, "float64")
        _, g, ref_logs = rwp_generator_grads(m.objective, m.gen, ref, start, m.critic, st["critic"], z, m.h)
        ref = [(W - 0.5 * dW, b - 0.5 * db) for (W, b), (dW, db) in zip(ref, g)]
    prox = float(to_numpy(logs["prox"]))
    assert prox > 1e-4
    assert prox == pytest.approx(float(to_numpy(ref_logs["prox"])), rel=1e-10)
    for (W, b), (V, c) in zip(new["gen"], ref):
        np.testing.assert_allclose(to_numpy(W), to_numpy(V), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(to_numpy(b), to_numpy(c), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("objective", OBJS)
def test_h_to_infinity_equals_the_plain_generator_step(xp, objective):
    cfg, plain, st, rng = setup(xp, objective, seed=4)
    rwp = RWPMethod(cfg, h=1e300, l=1)
    # one step with an anchor far from the live generator: the proximal gradient underflows
    far = [(W + 1.0, b - 1.0) for W, b in st["gen"]]
    a, _ = rwp.rwp_generator_step(st, far, np.random.default_rng(5))
    b, _ = plain.generator_step(st, np.random.default_rng(5), None)
    assert same(a["gen"], b["gen"])
    assert all(np.array_equal(to_numpy(u), to_numpy(v)) for u, v in zip(a["opt_gen"]["m"], b["opt_gen"]["m"]))
    # whole outer iterations: RWP(h = 1e300, l) == the plain loop with n_gen = l, bit for bit
    plain3 = GANMethod(dataclasses.replace(cfg, n_gen=3))
    rwp3 = RWPMethod(cfg, h=1e300, l=3)
    s1, s2 = st, st
    r1, r2 = np.random.default_rng(6), np.random.default_rng(6)
    for _ in range(2):
        s1, _ = rwp3.outer_step(s1, r1, _Data3(xp))
        s2, _ = plain3.outer_step(s2, r2, _Data3(xp))
    assert same(s1["gen"], s2["gen"]) and same(s1["critic"], s2["critic"])


class _Data3:
    """Gaussian 3-D data for the tiny nets."""

    def __init__(self, xp):
        self.xp = xp

    def sample(self, rng, n):
        return from_host(rng.standard_normal((n, 3)) + 1.0, self.xp, "float64")


def test_l_steps_draw_fresh_z_and_use_it_for_both_generators(xp):
    cfg, _, st, _ = setup(xp, "dragan", seed=7)
    m = RWPMethod(cfg, h=0.2, l=4)
    m.fused = False                                       # the per-step reference draws through latent()
    seen = []
    orig = m.latent

    def spy(rng, n, like):
        z = orig(rng, n, like)
        seen.append(to_numpy(z).copy())
        return z

    m.latent = spy
    st0 = copy_state(st)                                  # the phase donates (updates in place) its input state
    new, _ = m.generator_phase(st, np.random.default_rng(8), None)
    st = st0
    assert len(seen) == 4
    assert all(not np.array_equal(seen[i], seen[j]) for i in range(4) for j in range(i))
    # reference: each step on its own z, live and anchor generators on that same z, Adam
    rr = np.random.default_rng(8)
    gp, og, prev = copy_state(st["gen"]), copy_state(st["opt_gen"]), copy_params(st["gen"])
    for i in range(4):
        z = from_host(rr.standard_normal((cfg.batch_size, cfg.latent_dim)), xp, "float64")
        assert np.array_equal(to_numpy(z), seen[i])
        _, g, _ = rwp_generator_grads(m.objective, m.gen, gp, prev, m.critic, st["critic"], z, 0.2)
        gp, og = m.opt_gen.step(gp, g, og)
    assert same(new["gen"], gp)
    assert same(st["gen"], prev)                          # the reference loop left the copy's anchor alone


def test_defaults_config_and_validation():
    for obj, (h, l) in (("wgan-gp", (0.1, 10)), ("standard", (0.2, 5)), ("dragan", (0.2, 5)), ("wgan-lp", (0.1, 10))):
        m = RWPMethod(GANConfig(objective=obj))
        assert (m.h, m.l) == (h, l) == RWP_DEFAULTS[obj]
        assert m.config()["rwp_h"] == h and m.config()["rwp_l"] == l
    assert RWPMethod(GANConfig(), h=0.5, l=2).config()["rwp_l"] == 2
    for h in (0, -0.1, math.nan, math.inf, "1", True):
        with pytest.raises(ValueError, match="h must be a finite number > 0"):
            RWPMethod(GANConfig(), h=h)
    for l in (0, -2, 1.5, True, "3"):
        with pytest.raises(ValueError, match="integer >= 1"):
            RWPMethod(GANConfig(), l=l)
    with pytest.raises(ValueError, match="n_gen"):
        RWPMethod(GANConfig(n_gen=3), l=5)
    assert RWPMethod(GANConfig(n_gen=5), l=5).l == 5


def test_rwp_trains_in_the_shared_loop_and_resumes_bit_identically(xp, tmp_path):
    cfg = GANConfig(objective="wgan-gp", gen_hidden=(8,), critic_hidden=(8,), batch_size=16, n_critic=2)

    def run(iters, resume=False):
        return train(RWPMethod(cfg, h=0.1, l=3), ToyData("ring8", xp, "float64"), xp=xp, dtype="float64", seed=1,
                     iters=iters, checkpoint_path=tmp_path / "ck.pkl", checkpoint_every=1, resume=resume,
                     progress=False)
    full = train(RWPMethod(cfg, h=0.1, l=3), ToyData("ring8", xp, "float64"), xp=xp, dtype="float64", seed=1,
                 iters=4, progress=False)
    run(2)
    resumed = run(4, resume=True)
    assert same(full.state["gen"], resumed.state["gen"]) and same(full.state["critic"], resumed.state["critic"])
