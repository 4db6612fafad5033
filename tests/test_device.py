"""Issue 14, sections 1-2, for every module but ot.py/swgan.py/train.py/checkpoint.py.

1. Device correctness without a GPU: every input on array_api_strict's non-default
   ``Device("device1")``; every array output must stay there (array_api_strict refuses
   to combine arrays of two devices, so a constant created without ``device=`` fails).
2. No host round trip inside an outer step: ``__bool__``/``__float__``/``__int__``/
   ``__index__``/``__complex__``/``__dlpack__``/``__array__`` of array_api_strict arrays
   are counted during ``outer_step`` of every method of these modules; and WWGAN's
   graph constant is uploaded once, not every step.
"""
import numpy as np
import pytest

from refimpl import pixel_graph
from refimpl.backend import _leaves, from_host
from refimpl.datasets import sample
from refimpl.image_metrics import (ClassifierFrechet, classifier_accuracy, classifier_features,
                                   softmax_cross_entropy, train_classifier)
from refimpl.metrics import evaluate, mode_stats, sliced_w1, w1, w2
from refimpl.nn import MLP, add_params, copy_params, zeros_like_params
from refimpl.objectives import (OBJECTIVES, Objective, clip_params, critic_grads, critic_scores_loss,
                                generator_dfake, generator_grads, generator_scores_loss, gradient_penalty,
                                penalty_points)
from refimpl.optim import SGD, Adam, RMSprop
from refimpl.prox import F_W1, d_E, d_W, shrink, two_delta_prox
from refimpl.rwp import RWPMethod, proximal_term, rwp_generator_grads
from refimpl.sbe import SBEMethod, potential_objective, sbe_generator_dfake, sbe_generator_grads
from refimpl.train import ArrayData, GANConfig, GANMethod
from refimpl.w1fe import W1FE, euler_targets, persistent_loss_grads
from refimpl.w1flow import w1_flow, w1_flow_step
from refimpl.wgrad import PixelGraph, image_to_mass, laplacian_dense, wasserstein_norm_sq_and_gradient
from refimpl.wwgan import WWGANMethod, wasserstein_penalty, wwgan_critic_grads

sxp = pytest.importorskip("array_api_strict")
DEV = sxp.Device("device1")


def put(a, dtype="float64"):
    return from_host(np.asarray(a), sxp, dtype, DEV)


def assert_on_device(out):
    leaves = [x for x in _leaves(out) if hasattr(x, "device")]
    assert leaves, "no array output to check"
    for x in leaves:
        assert x.device == DEV, f"an output is on {x.device}, not {DEV}"
    return out


@pytest.fixture
def r():
    return np.random.default_rng(0)


def _net(r, sizes=(3, 5, 1), act="softplus"):
    net = MLP(sizes, act)
    return net, assert_on_device(net.init(r, xp=sxp, device=DEV))


# ----------------------------------------------------------------------------- 1. device
def test_nn_on_device(r):
    net, p = _net(r)
    x = put(r.standard_normal((4, 3)))
    y, cache = assert_on_device(net.forward(p, x))
    assert_on_device(net.backward(p, cache, put(np.ones((4, 1)))))
    g, tape = assert_on_device(net.input_gradient(p, x))
    assert_on_device(net.input_gradient_vjp(p, tape, put(r.standard_normal((4, 3)))))
    assert_on_device((copy_params(p), zeros_like_params(p), add_params(p, p, 0.5)))


@pytest.mark.parametrize("name", OBJECTIVES)
def test_objectives_on_device(r, name):
    obj = Objective(name)
    critic, cp = _net(r)
    gen, gp = _net(r, (2, 4, 3), "tanh")
    real, fake = put(r.standard_normal((4, 3))), put(r.standard_normal((4, 3)))
    assert_on_device(critic_grads(obj, critic, cp, real, fake, r))
    assert_on_device(gradient_penalty(critic, cp, real, 2.0))
    assert_on_device(penalty_points(obj, real, fake, r))
    assert_on_device(critic_scores_loss(obj, put(np.ones((4, 1))), put(np.zeros((3, 1)))))
    assert_on_device(generator_scores_loss(obj, put(np.ones((4, 1)))))
    assert_on_device(clip_params(cp, 0.1))
    assert_on_device(generator_dfake(obj, critic, cp, fake))
    assert_on_device(generator_grads(obj, gen, gp, critic, cp, put(r.standard_normal((4, 2)))))


@pytest.mark.parametrize("opt", [SGD(0.1), SGD(0.1, momentum=0.5), Adam(), RMSprop()])
def test_optimisers_on_device(r, opt):
    _, p = _net(r)
    st = opt.init(p)
    new, st2 = opt.step(p, p, st)
    assert_on_device(new)
    if list(_leaves(st2)):                        # plain SGD keeps no arrays
        assert_on_device(st2)


def test_prox_on_device(r):
    th, ts = put(r.standard_normal((5, 2))), put(r.standard_normal((5, 2)))
    assert_on_device(shrink(th, 0.25, 0.1))                 # a float centre: was created on the default device
    assert_on_device(shrink(th, ts, 0.1))
    assert_on_device((d_W(th, ts, 0.3), d_E(th, ts), F_W1(th, ts, 0.3)))
    for metric in ("wasserstein", "euclidean"):
        for alpha in (0.0, 0.4, 1.0):
            assert_on_device(two_delta_prox(th, ts, alpha, 0.5, metric))


def test_rwp_sbe_w1fe_functions_on_device(r):
    obj = Objective("wgan-gp")
    critic, cp = _net(r)
    pot, pp = _net(r)
    gen, gp = _net(r, (2, 4, 3), "tanh")
    z = put(r.standard_normal((4, 2)))
    x, y = put(r.standard_normal((4, 3))), put(r.standard_normal((4, 3)))
    assert_on_device(proximal_term(x, y, 0.5))
    assert_on_device(rwp_generator_grads(obj, gen, gp, copy_params(gp), critic, cp, z, 0.5))
    assert_on_device(potential_objective(pot, pp, x, y, 0.5))
    assert_on_device(sbe_generator_dfake(obj, critic, cp, pot, pp, x, 0.5))
    assert_on_device(sbe_generator_grads(obj, gen, gp, critic, cp, pot, pp, z, 0.5))
    assert_on_device(euler_targets(critic, cp, x, 0.5))
    assert_on_device(persistent_loss_grads(gen, gp, z, x))


def test_wgrad_wwgan_on_device(r):
    graph = PixelGraph(2, 3, channels=1)
    X = put(r.uniform(0, 1, (3, 1, 2, 3)))
    g = put(r.standard_normal((3, 1, 2, 3)))
    assert_on_device(laplacian_dense(graph, X[0, ...], alpha=0.5, gamma=0.1))
    assert_on_device(wasserstein_norm_sq_and_gradient(graph, X, g, 0.5, 0.1))
    assert_on_device(image_to_mass(put(r.uniform(-1.5, 1, (4,))), clip=True))
    critic, cp = _net(r, (6, 5, 1))
    x = put(r.uniform(-1, 1, (3, 6)))
    assert_on_device(wasserstein_penalty(critic, cp, x, 2.0, graph, 0.5, 0.1))
    assert_on_device(wwgan_critic_grads(critic, cp, x, put(r.uniform(-1, 1, (3, 6))), r, 2.0, graph))


def test_metrics_w1flow_datasets_on_device(r):
    x = assert_on_device(sample("ring8", 12, r, xp=sxp, device=DEV))
    y = assert_on_device(sample("grid25", 12, r, xp=sxp, dtype="float32", device=DEV, return_labels=True))[0]
    assert_on_device(sample("swissroll", 5, r, xp=sxp, device=DEV, return_labels=True))
    assert mode_stats(x, np.zeros((3, 2)), 1.0)["n"] == 12
    assert mode_stats(x, put(np.zeros((3, 2))), 1.0)["n"] == 12
    assert sliced_w1(x, y, 20, rng=0) > 0 and sliced_w1(x, y[:7, :], 20, rng=0) > 0
    assert w1(x, y) > 0 and w2(x, y) > 0
    assert evaluate(x, "ring8", r, 30, n_projections=10)["w1"] > 0
    assert_on_device(w1_flow_step(x, y, 0.1))
    assert_on_device(w1_flow_step(x, y, 0.1, matching=put(np.arange(12)[::-1].copy(), sxp.int64)))
    assert_on_device(w1_flow(x, y, 0.1, 2, return_particles=True)[1])


def test_image_loaders_on_device():
    pytest.importorskip("sklearn")
    from refimpl.images import load_digits
    x, y = assert_on_device(load_digits("test", xp=sxp, device=DEV, limit=5))
    assert x.shape == (5, 1, 8, 8) and y.shape == (5,)


def test_image_metrics_on_device(r):
    images = put(r.uniform(-1, 1, (20, 1, 2, 2)))
    labels = from_host(np.arange(20) % 3, sxp, sxp.int64, DEV)
    assert_on_device(softmax_cross_entropy(put(r.standard_normal((20, 3))), labels))
    mlp, params, _ = train_classifier(images, labels, hidden=(4,), steps=3, batch_size=5)
    assert_on_device(params)
    assert classifier_features(mlp, params, images, batch=7).shape == (20, 4)
    assert 0 <= classifier_accuracy(mlp, params, images, labels) <= 1
    assert ClassifierFrechet(mlp, params, images).score(images) == pytest.approx(0.0, abs=1e-9)


TINY = dict(data_dim=6, latent_dim=2, gen_hidden=(5,), critic_hidden=(6,), gen_activation="tanh",
            critic_activation="softplus", batch_size=4, n_critic=2)


def _methods():
    return {
        "gan-wgan-gp": GANMethod(GANConfig(objective="wgan-gp", **TINY)),
        "gan-wgan": GANMethod(GANConfig(objective="wgan", **TINY)),
        "gan-dragan": GANMethod(GANConfig(objective="dragan", **TINY)),
        "rwp": RWPMethod(GANConfig(objective="wgan-gp", **TINY), l=2),
        "sbe": SBEMethod(GANConfig(objective="wgan-gp", **TINY), n_phi=2, phi_hidden=4),
        "w1fe": W1FE(GANConfig(objective="wgan-lp", **TINY), eps=0.5, K=2),
        "wwgan": WWGANMethod(GANConfig(objective="wgan-gp", **TINY), (1, 2, 3), alpha=0.3, gamma=0.1),
    }


@pytest.mark.parametrize("name", list(_methods()))
def test_outer_step_on_device(r, name):
    m = _methods()[name]
    state = assert_on_device(m.init_state(r, sxp, "float64", DEV))
    data = ArrayData(put(r.uniform(-1, 1, (16, 6))))
    for _ in range(2):
        state, logs = m.outer_step(state, r, data)
    assert_on_device(state)
    assert_on_device(logs)


# ----------------------------------------------------------------------------- 2. host round trips
_SYNCS = ("__bool__", "__float__", "__int__", "__index__", "__complex__", "__dlpack__", "__array__")


@pytest.fixture
def count_syncs(monkeypatch):
    """Counts host round trips of array_api_strict arrays while ``counting[0]`` is True."""
    Array = type(sxp.asarray(0.0))
    calls, counting = [], [False]
    for meth in _SYNCS:
        orig = getattr(Array, meth)

        def wrapped(self, *a, _orig=orig, _meth=meth, **k):
            if counting[0]:
                calls.append(_meth)
            return _orig(self, *a, **k)
        monkeypatch.setattr(Array, meth, wrapped)
    return calls, counting


@pytest.mark.parametrize("name", list(_methods()))
def test_outer_step_makes_no_host_round_trip(r, name, count_syncs):
    calls, counting = count_syncs
    m = _methods()[name]
    state = m.init_state(r, sxp, "float64", DEV)
    data = ArrayData(put(r.uniform(-1, 1, (16, 6))))
    state, _ = m.outer_step(state, r, data)        # warm-up (caches)
    counting[0] = True
    for _ in range(2):
        state, logs = m.outer_step(state, r, data)
    counting[0] = False
    assert calls == [], f"{name}: {len(calls)} host round trips in 2 outer steps: {sorted(set(calls))}"
    # the counter works: a public entry point does synchronise (its finiteness check)
    counting[0] = True
    m.critic.forward(state["critic"], data.array)
    counting[0] = False
    assert calls, "the round-trip counter counted nothing on a validating call"


def test_wwgan_graph_constant_uploaded_once(r, monkeypatch):
    m = _methods()["wwgan"]
    uploads = []
    real = pixel_graph.from_host

    def counting(*a, **k):
        uploads.append(a[0].shape)
        return real(*a, **k)
    monkeypatch.setattr(pixel_graph, "from_host", counting)          # the graph uploads its constant
    state = m.init_state(r, sxp, "float64", DEV)
    data = ArrayData(put(r.uniform(-1, 1, (16, 6))))
    for _ in range(3):
        state, _ = m.outer_step(state, r, data)
    assert uploads == [(2, 3)], uploads               # once for (array_api_strict, float64, device1)
    assert m.graph.inv_degree(sxp, sxp.float64, DEV).device == DEV
