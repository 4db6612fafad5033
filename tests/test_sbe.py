"""Semi-Backward Euler (refimpl/sbe.py): the potential and generator objectives against
finite differences and closed forms (float64, smooth activations), and the anchor bookkeeping."""
import numpy as np
import pytest

from refimpl.backend import from_host, to_numpy
from refimpl.nn import MLP, copy_params
from refimpl.objectives import Objective, generator_dfake
from refimpl.optim import SGD
from refimpl.rwp import proximal_term
from refimpl.sbe import SBEMethod, potential_objective, sbe_generator_dfake, sbe_generator_grads
from refimpl.train import GANConfig, ToyData, train
from tests.conftest import assert_xp
from tests.test_rwp import TINY, _Data3, assert_grads_close, fd_params, same

H = 1e-6


def _phi_closed_form(pp, x):
    """Phi(x) = tanh(x W1 + b1) W2 + b2 and grad Phi(x) = (W2^T * (1 - tanh^2)) W1^T, in numpy."""
    (W1, b1), (W2, b2) = [(to_numpy(W), to_numpy(b)) for W, b in pp]
    t = np.tanh(x @ W1 + b1)
    return (t @ W2 + b2)[:, 0], ((1 - t * t) * W2[:, 0]) @ W1.T


@pytest.mark.parametrize("h", [0.2, 1.3])
def test_potential_objective_value_and_gradient(xp, h):
    rng = np.random.default_rng(0)
    pot = MLP((3, 7, 1), "tanh")
    pp = pot.init(rng, xp=xp)
    xh, yh = rng.standard_normal((6, 3)), rng.standard_normal((5, 3))     # batches may differ in size
    x, y = from_host(xh, xp, "float64"), from_host(yh, xp, "float64")
    J, grads, logs = potential_objective(pot, pp, x, y, h)
    assert_xp((J, grads, logs), xp, "float64")
    px, _ = _phi_closed_form(pp, xh)
    py, gy = _phi_closed_form(pp, yh)
    want = (px.mean() - py.mean() - 0.5 * np.mean(np.sum(gy * gy, axis=1))) / h
    assert float(to_numpy(J)) == pytest.approx(want, rel=1e-12)
    assert float(to_numpy(logs["phi_grad_sq"])) == pytest.approx(np.mean(np.sum(gy * gy, axis=1)), rel=1e-12)

    def f(p):
        return float(to_numpy(potential_objective(pot, p, x, y, h)[0]))
    assert_grads_close(grads, fd_params(f, pp, xp))


def test_potential_objective_supremum_is_the_rwp_term_for_a_translation(xp):
    """For g_theta = g_prev + c and an affine Phi(x) = <a, x> + b the objective is
    (<a, c> - |a|^2/2)/h, maximised at a = c with value |c|^2/(2h): the RWP proximal term.
    Gradient ascent on a linear one-hidden-layer potential reaches it."""
    rng = np.random.default_rng(1)
    h, c = 0.25, np.array([0.3, -0.5])
    yh = rng.standard_normal((64, 2))
    x, y = from_host(yh + c, xp, "float64"), from_host(yh, xp, "float64")
    pot = MLP((2, 4, 1), "linear")
    pp = pot.init(rng, xp=xp)
    opt = SGD(lr=0.05)
    st = opt.init(pp)
    for _ in range(400):
        J, g, _ = potential_objective(pot, pp, x, y, h)
        pp, st = opt.step(pp, [(-dW, -db) for dW, db in g], st)
    a = to_numpy(pp[0][0] @ pp[1][0])[:, 0]
    np.testing.assert_allclose(a, c, atol=1e-6)
    assert float(to_numpy(J)) == pytest.approx(c @ c / (2 * h), rel=1e-9)
    # at that potential the SBE generator term pushes the samples as the RWP term does:
    # grad Phi(x_i)/(hB) = (x_i - y_i)/(hB)
    zero_critic = MLP((2, 1), "linear")
    cp = [(from_host(np.zeros((2, 1)), xp, "float64"), from_host(np.zeros(1), xp, "float64"))]
    _, d_sbe, _ = sbe_generator_dfake(Objective("wgan-gp"), zero_critic, cp, pot, pp, x, h)
    _, d_rwp = proximal_term(x, y, h)
    np.testing.assert_allclose(to_numpy(d_sbe), to_numpy(d_rwp), rtol=1e-5, atol=1e-12)


@pytest.mark.parametrize("objective", ["wgan-gp", "standard"])
def test_sbe_generator_objective_matches_finite_differences(xp, objective):
    cfg = GANConfig(objective=objective, **TINY)
    rng = np.random.default_rng(2)
    m = SBEMethod(cfg, h=0.3, phi_hidden=5)
    st = m.init_state(rng, xp, "float64")
    z = from_host(rng.standard_normal((4, 2)), xp, "float64")
    obj = Objective(objective)

    def total(p):
        return float(to_numpy(sbe_generator_grads(obj, m.gen, p, m.critic, st["critic"], m.potential, st["phi"],
                                                  z, 0.3)[0]))
    value, grads, logs = sbe_generator_grads(obj, m.gen, st["gen"], m.critic, st["critic"], m.potential,
                                             st["phi"], z, 0.3)
    assert_xp((value, grads, logs), xp, "float64")
    fake = to_numpy(m.gen.forward(st["gen"], z)[0])
    phi, gphi = _phi_closed_form(st["phi"], fake)
    assert float(to_numpy(logs["phi_term"])) == pytest.approx(phi.mean() / 0.3, rel=1e-12)
    assert_grads_close(grads, fd_params(total, st["gen"], xp))
    # the sample gradient: dF/dx + grad Phi(x) / (h B)
    _, dfake, _ = sbe_generator_dfake(obj, m.critic, st["critic"], m.potential, st["phi"],
                                      from_host(fake, xp, "float64"), 0.3)
    _, dF = generator_dfake(obj, m.critic, st["critic"], from_host(fake, xp, "float64"))
    np.testing.assert_allclose(to_numpy(dfake), to_numpy(dF) + gphi / (0.3 * 4), rtol=1e-12, atol=1e-15)


def test_anchor_is_the_generator_before_the_previous_generator_phase(xp):
    cfg = GANConfig(objective="wgan-gp", **TINY)
    m = SBEMethod(cfg, h=0.2, n_phi=2, phi_hidden=5)
    st = m.init_state(np.random.default_rng(3), xp, "float64")
    assert same(st["gen_prev"], st["gen"]) and st["gen_prev"][0][0] is not st["gen"][0][0]
    rng, data = np.random.default_rng(4), _Data3(xp)
    history = []
    for _ in range(3):
        history.append(copy_params(st["gen"]))
        st, logs = m.outer_step(st, rng, data)
        assert same(st["gen_prev"], history[-1])        # theta_prev of the next potential phase
        assert not same(st["gen"], history[-1])
    assert {"critic_loss", "phi_obj", "gen_loss", "phi_term"} <= set(logs)


def test_potential_phase_uses_live_and_anchor_on_the_same_fresh_z(xp):
    cfg = GANConfig(objective="wgan-gp", **TINY)
    m = SBEMethod(cfg, h=0.2, n_phi=3, phi_hidden=5)
    st = m.init_state(np.random.default_rng(5), xp, "float64")
    st = {**st, "gen_prev": [(W + 0.2, b) for W, b in st["gen"]]}
    new, _ = m.potential_phase(st, np.random.default_rng(6), None)
    rr, pp, op = np.random.default_rng(6), st["phi"], st["opt_phi"]
    zs = []
    for _ in range(3):
        z = from_host(rr.standard_normal((cfg.batch_size, cfg.latent_dim)), xp, "float64")
        zs.append(to_numpy(z))
        _, g, _ = potential_objective(m.potential, pp, m.gen.forward(st["gen"], z)[0],
                                      m.gen.forward(st["gen_prev"], z)[0], 0.2)
        pp, op = m.opt_phi.step(pp, [(-a, -b) for a, b in g], op)
    assert not np.array_equal(zs[0], zs[1]) and not np.array_equal(zs[1], zs[2])
    assert same(new["phi"], pp) and same(new["gen"], st["gen"])


def test_validation_and_config():
    m = SBEMethod(GANConfig())
    assert (m.h, m.n_phi) == (0.2, 5)
    assert m.config()["sbe_h"] == 0.2 and m.config()["sbe_n_phi"] == 5
    for kw in ({"h": 0}, {"h": -1.0}, {"h": float("nan")}, {"n_phi": 0}, {"n_phi": 2.5}, {"phi_hidden": 0}):
        with pytest.raises(ValueError):
            SBEMethod(GANConfig(), **kw)
    with pytest.raises(ValueError, match="activation"):
        SBEMethod(GANConfig(), phi_activation="nope")


def test_sbe_trains_in_the_shared_loop_and_resumes_bit_identically(xp, tmp_path):
    cfg = GANConfig(objective="wgan-gp", gen_hidden=(8,), critic_hidden=(8,), batch_size=16, n_critic=2)

    def run(iters, **kw):
        return train(SBEMethod(cfg, n_phi=2, phi_hidden=8), ToyData("ring8", xp, "float64"), xp=xp,
                     dtype="float64", seed=2, iters=iters, progress=False, **kw)
    full = run(4)
    run(2, checkpoint_path=tmp_path / "ck.pkl", checkpoint_every=1)
    resumed = run(4, checkpoint_path=tmp_path / "ck.pkl", checkpoint_every=1, resume=True)
    for k in ("gen", "critic", "phi", "gen_prev"):
        assert same(full.state[k], resumed.state[k])
