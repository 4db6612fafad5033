"""W1-FE (paper w1-forward-euler-ode, Algorithm 1, eq. 4.3, Prop. 4.1; conventions.md, "W1 forward Euler").

Independent checks:
- Prop. 4.1: SGD(gamma), K = 1 equals the WGAN generator step with rate 2 eps gamma (1e-12, float64);
- persistence: one latent draw per Euler step (the rng is not advanced by the K steps), the
  K steps equal a hand-written loop with fixed (z, zeta), and a linear generator that can
  interpolate the batch converges to the fixed targets (least squares, closed form);
- the persistent objective against finite differences and a host NumPy evaluation;
- the Euler step's sign with a linear critic (closed form).
The exact particle flow is tested in tests/test_w1flow.py.
"""
import math

import numpy as np

from refimpl.flat import copy_state
import pytest

from refimpl.backend import from_host, to_numpy
from refimpl.nn import MLP
from refimpl.train import GANConfig, GANMethod, ToyData, train
from refimpl.w1fe import W1FE, euler_targets, persistent_loss_grads
from tests.conftest import assert_xp


def _cfg(**kw):
    base = dict(objective="wgan-lp", gen_hidden=(7, 5), critic_hidden=(6, 4), gen_activation="tanh",
                critic_activation="tanh", batch_size=9, n_critic=1, optimiser="sgd", lr_gen=0.05)
    base.update(kw)
    return GANConfig(**base)


def _random_state(method, xp, seed):
    """Initial state with the biases perturbed too (init sets them to zero)."""
    rng = np.random.default_rng(seed)
    st = method.init_state(rng, xp, "float64")
    for key in ("gen", "critic"):
        st[key] = [(W, b + from_host(0.3 * rng.standard_normal(tuple(b.shape)), xp, "float64")) for W, b in st[key]]
    # parameter lists take the optimisers' list path (new arrays each step); flat ones would be updated in place
    st["opt_gen"], st["opt_critic"] = method.opt_gen.init.unchecked(st["gen"]), method.opt_critic.init.unchecked(st["critic"])
    return st


def _maxdiff(p, q):
    return max(float(np.max(np.abs(to_numpy(a) - to_numpy(b)))) for P, Q in zip(p, q) for a, b in zip(P, Q))


# ----------------------------------------------------------------------------- Prop. 4.1
@pytest.mark.parametrize("objective,act,eps,gamma", [
    ("wgan-lp", "tanh", 1.0, 0.05),
    ("wgan-gp", "relu", 0.3, 0.2),
    ("wgan", "softplus", 2.7, 50.0),      # clipped critic (|w| <= 0.01): tiny grad f, large rate
    ("wgan-lp", "leaky_relu", 0.05, 1.0),
])
def test_prop_4_1_sgd_K1_is_the_wgan_step(xp, objective, act, eps, gamma):
    """Prop. 4.1: theta - gamma grad L = theta - (2 eps gamma) grad(-mean f(G(z))) on the same z."""
    for seed in range(3):
        cfg = _cfg(objective=objective, gen_activation=act, critic_activation=act, lr_gen=gamma)
        fe = W1FE(cfg, eps=eps, K=1)
        wg = GANMethod(_cfg(objective=objective, gen_activation=act, critic_activation=act, lr_gen=2 * eps * gamma))
        st = _random_state(fe, xp, seed)
        s_fe, _ = fe.generator_step(st, np.random.default_rng(100 + seed), None)
        s_wg, _ = wg.generator_step(st, np.random.default_rng(100 + seed), None)
        assert_xp(s_fe["gen"], xp, "float64")
        assert _maxdiff(s_fe["gen"], s_wg["gen"]) <= 1e-12
        assert _maxdiff(s_fe["gen"], st["gen"]) > 1e-6              # the step is not trivially zero
        assert _maxdiff(s_fe["critic"], st["critic"]) == 0.0        # the generator phase leaves the critic alone


def test_first_loss_is_eps_squared_grad_norm(xp):
    fe = W1FE(_cfg(), eps=0.7, K=2)
    st = _random_state(fe, xp, 4)
    z = fe.latent(np.random.default_rng(1), 9, st["gen"][0][0])
    y, zeta, g = fe.targets(st, z)
    loss, _ = persistent_loss_grads(fe.gen, st["gen"], z, zeta)
    gn = to_numpy(g)
    assert float(loss) == pytest.approx(0.49 * np.mean(np.sum(gn ** 2, axis=1)), rel=1e-12)


# ----------------------------------------------------------------------------- persistence
def test_K_steps_draw_one_latent_batch(xp):
    """The rng advances by exactly one latent draw, whatever K (z is not redrawn)."""
    states = []
    for K in (1, 4, 10):
        fe = W1FE(_cfg(optimiser="adam", lr_gen=1e-2), eps=1.0, K=K)
        st = _random_state(fe, xp, 0)
        rng = np.random.default_rng(5)
        fe.generator_step(st, rng, None)
        states.append(rng.bit_generator.state)
    ref = np.random.default_rng(5)
    ref.standard_normal((9, 2))
    assert all(s == ref.bit_generator.state for s in states)


@pytest.mark.parametrize("optimiser", ["sgd", "adam"])
def test_K_steps_equal_a_manual_loop_with_fixed_targets(xp, optimiser):
    K, eps = 6, 0.8
    fe = W1FE(_cfg(optimiser=optimiser, lr_gen=0.02), eps=eps, K=K)
    st = _random_state(fe, xp, 1)
    new, logs = fe.generator_step(copy_state(st), np.random.default_rng(11), None)   # the step donates its input

    # hand-written: z drawn once, zeta = y + eps grad f(y) once, K steps of 2 J^T (G - zeta)/B
    z = from_host(np.random.default_rng(11).standard_normal((9, 2)), xp, "float64")
    y, _ = fe.gen.forward(st["gen"], z)
    g, _ = fe.critic.input_gradient(st["critic"], y)
    zeta = y + eps * g
    gp, og = copy_state(st["gen"]), copy_state(st["opt_gen"])
    losses = []
    for _ in range(K):
        out, cache = fe.gen.forward(gp, z)
        losses.append(float(np.sum(to_numpy(out - zeta) ** 2)) / 9)
        _, grads = fe.gen.backward(gp, cache, 2.0 * (out - zeta) / 9, need_dx=False)
        gp, og = fe.opt_gen.step(gp, grads, og)
    assert _maxdiff(new["gen"], gp) <= 1e-13
    assert new["opt_gen"]["t"] == K
    assert float(logs["gen_loss"]) == pytest.approx(losses[0], rel=1e-12)
    assert float(logs["gen_loss_last"]) == pytest.approx(losses[-1], rel=1e-12)
    assert losses[-1] < losses[0]

    # the test can tell: re-drawing z, or re-computing zeta from the moving G, gives another result
    gp2, og2 = copy_state(st["gen"]), copy_state(st["opt_gen"])
    rng = np.random.default_rng(11)
    for _ in range(K):
        zk = from_host(rng.standard_normal((9, 2)), xp, "float64")
        yk, _ = fe.gen.forward(gp2, zk)
        zk_t = yk + eps * fe.critic.input_gradient(st["critic"], yk)[0]
        _, grads = persistent_loss_grads(fe.gen, gp2, zk, zk_t)
        gp2, og2 = fe.opt_gen.step(gp2, grads, og2)
    assert _maxdiff(new["gen"], gp2) > 1e-6


def test_persistent_steps_converge_to_the_fixed_targets(xp):
    """Linear generator G(z) = z W + b, latent 2, B = 3: L is quadratic with Hessian
    H = (2/B) A^T A per output, A = [z 1] (3 x 3, invertible), and the least-squares fit
    interpolates. SGD with rate 1/lambda_max on fixed (z, zeta) contracts the residual by
    (1 - lambda_min/lambda_max) per step, so after K steps G(z_i) = zeta_i to ~1e-12 of the
    start. A redrawn z or a recomputed zeta would move the target and not converge to it."""
    zh = np.random.default_rng(3).standard_normal((3, 2))
    A = np.concatenate([zh, np.ones((3, 1))], axis=1)
    lam = np.linalg.eigvalsh((2.0 / 3.0) * A.T @ A)
    K = int(math.ceil(math.log(1e-12) / math.log(1.0 - lam[0] / lam[-1])))
    assert K < 20000
    cfg = GANConfig(objective="wgan-lp", gen_hidden=(), critic_hidden=(5,), critic_activation="tanh",
                    batch_size=3, optimiser="sgd", lr_gen=float(1.0 / lam[-1]))
    fe = W1FE(cfg, eps=1.0, K=K)
    st = _random_state(fe, xp, 2)
    new, _ = fe.generator_step(st, np.random.default_rng(3), None)
    z = from_host(zh, xp, "float64")
    y, zeta, _ = fe.targets(st, z)
    start = float(np.max(np.abs(to_numpy(y - zeta))))
    assert float(np.max(np.abs(to_numpy(fe.generate(new, z) - zeta)))) <= 1e-10 * max(start, 1.0)


# ----------------------------------------------------------------------------- the objective
def test_persistent_loss_value_and_finite_differences(xp):
    """L = (1/B) sum_i sum_j (G_ij - zeta_ij)^2 (no division by d = 3); dL/dtheta by central differences."""
    gen = MLP((2, 5, 3), "tanh")
    rng = np.random.default_rng(7)
    gp = [(W, b + from_host(0.2 * rng.standard_normal(tuple(b.shape)), xp, "float64"))
          for W, b in gen.init(rng, xp, "float64")]
    z = from_host(rng.standard_normal((4, 2)), xp, "float64")
    zeta = from_host(rng.standard_normal((4, 3)), xp, "float64")
    loss, grads = persistent_loss_grads(gen, gp, z, zeta)
    assert_xp((loss, grads), xp, "float64")

    host = [(to_numpy(W).copy(), to_numpy(b).copy()) for W, b in gp]
    zn, zt = to_numpy(z), to_numpy(zeta)

    def L(params):
        h = zn
        for l, (W, b) in enumerate(params):
            h = h @ W + b
            if l < len(params) - 1:
                h = np.tanh(h)
        return np.mean(np.sum((h - zt) ** 2, axis=1))

    assert float(loss) == pytest.approx(L(host), rel=1e-13)
    h = 1e-6
    for l in range(len(host)):
        for k in range(2):
            fd = np.zeros_like(host[l][k])
            for idx in np.ndindex(*fd.shape):
                for sgn in (1, -1):
                    p = [(W.copy(), b.copy()) for W, b in host]
                    p[l][k][idx] += sgn * h
                    fd[idx] += sgn * L(p) / (2 * h)
            np.testing.assert_allclose(to_numpy(grads[l][k]), fd, rtol=1e-7, atol=1e-8)


def test_euler_step_sign_with_a_linear_critic(xp):
    """f(x) = x.w + c: grad f = w, so zeta = y + eps w exactly, and f(zeta) = f(y) + eps |w|^2 > f(y)."""
    critic = MLP((3, 1))
    w = np.array([[0.5], [-2.0], [1.5]])
    cp = [(from_host(w, xp, "float64"), from_host(np.array([0.3]), xp, "float64"))]
    y = from_host(np.random.default_rng(0).standard_normal((5, 3)), xp, "float64")
    zeta, g = euler_targets(critic, cp, y, 0.25)
    assert_xp((zeta, g), xp, "float64")
    np.testing.assert_allclose(to_numpy(zeta), to_numpy(y) + 0.25 * w.T, rtol=0, atol=1e-15)
    fz, fy = to_numpy(critic.forward(cp, zeta)[0]), to_numpy(critic.forward(cp, y)[0])
    np.testing.assert_allclose(fz - fy, 0.25 * float(np.sum(w * w)), rtol=1e-12)


# ----------------------------------------------------------------------------- loop, config, errors
def test_trains_in_the_shared_loop(xp, tmp_path):
    fe = W1FE(_cfg(optimiser="adam", lr_gen=1e-3, lr_critic=1e-3, n_critic=2), eps=1.0, K=3)
    res = train(fe, ToyData("ring8", xp, "float64"), xp=xp, dtype="float64", seed=0, iters=3,
                eval_fn=lambda st, it: {"it": it}, eval_every=1, progress=False,
                checkpoint_path=tmp_path / "ck.pkl")
    assert_xp(res.state["gen"], xp, "float64")
    assert res.state["opt_gen"]["t"] == 9            # 3 outer iterations x K = 3
    assert res.state["opt_critic"]["t"] == 6
    from refimpl.checkpoint import load
    fp = load(tmp_path / "ck.pkl")["fingerprint"]
    assert fp["method"] == "w1fe" and fp["config"]["eps"] == 1.0 and fp["config"]["K"] == 3


@pytest.mark.parametrize("eps", [0, -1.0, math.nan, math.inf, "1", True, None])
def test_bad_eps(eps):
    with pytest.raises(ValueError, match="eps"):
        W1FE(_cfg(), eps=eps, K=1)


@pytest.mark.parametrize("K", [0, -3, 1.5, 2.0, True, "2", None])
def test_bad_K(K):
    with pytest.raises(ValueError, match="K"):
        W1FE(_cfg(), eps=1.0, K=K)


@pytest.mark.parametrize("objective", ["standard", "dragan"])
def test_non_wasserstein_critic_is_refused(objective):
    with pytest.raises(ValueError, match="Wasserstein critic"):
        W1FE(_cfg(objective=objective), eps=1.0, K=1)


def test_zeta_shape_mismatch(xp):
    gen = MLP((2, 4, 2), "tanh")
    gp = gen.init(np.random.default_rng(0), xp, "float64")
    z = from_host(np.zeros((3, 2)), xp, "float64")
    with pytest.raises(ValueError, match="zeta"):
        persistent_loss_grads(gen, gp, z, from_host(np.zeros((3, 3)), xp, "float64"))
