"""PyTorch autograd as an independent oracle (test-only; skipped when torch is absent).

Same weights, same random numbers: every objective's critic and generator gradients,
and the four MLP passes with smooth activations, agree with autograd in float64.
"""
import numpy as np
import pytest

from refimpl.nn import MLP
from refimpl.objectives import OBJECTIVES, Objective, critic_grads, generator_grads

torch = pytest.importorskip("torch", reason="PyTorch is an optional test oracle (pip install torch)")
torch.set_default_dtype(torch.float64)


def _torch_forward(params, x, hidden, out):
    acts = {"relu": torch.relu, "tanh": torch.tanh, "softplus": torch.nn.functional.softplus, "linear": lambda a: a,
            "elu": torch.nn.functional.elu, "sigmoid": torch.sigmoid,
            "leaky_relu": lambda a: torch.nn.functional.leaky_relu(a, 0.2)}
    h = x
    for l, (W, b) in enumerate(params):
        h = h @ W + b
        h = acts[out if l == len(params) - 1 else hidden](h)
    return h


def _leaf(params):
    return [(torch.tensor(W, requires_grad=True), torch.tensor(b, requires_grad=True)) for W, b in params]


def _assert_grads_close(ours, theirs):
    for (W, b), (tW, tb) in zip(ours, theirs):
        np.testing.assert_allclose(W, tW.grad.numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(b, tb.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", OBJECTIVES)
@pytest.mark.parametrize("act", ["relu", "tanh", "softplus"])
def test_critic_and_generator_gradients_match_autograd(name, act):
    rng = np.random.default_rng(0)
    gen, critic = MLP((3, 16, 16, 2), act), MLP((2, 16, 16, 1), act)
    gp, cp = gen.init(rng), critic.init(rng)
    real, z = rng.standard_normal((8, 2)), rng.standard_normal((8, 3))
    obj = Objective(name, lam=10.0)
    fake = gen.forward(gp, z)[0]
    _, grads, _ = critic_grads(obj, critic, cp, real, fake, np.random.default_rng(9))

    tc = _leaf(cp)
    f = lambda x: _torch_forward(tc, x, act, "linear")
    tr, tf = torch.tensor(real), torch.tensor(fake)
    sr, sf = f(tr), f(tf)
    sp = torch.nn.functional.softplus
    loss = sp(-sr).mean() + sp(sf).mean() if obj.logistic else sf.mean() - sr.mean()
    draws = np.random.default_rng(9)
    if name in ("wgan-gp", "wgan-lp"):
        eps = torch.tensor(draws.uniform(size=(8, 1)))
        x_hat = (eps * tr + (1 - eps) * tf).requires_grad_(True)
    elif name == "dragan":
        u = torch.tensor(draws.uniform(size=(8, 2)))
        x_hat = (tr + 0.5 * tr.std(unbiased=False) * u).requires_grad_(True)
    if obj.penalty:
        (g,) = torch.autograd.grad(f(x_hat).sum(), x_hat, create_graph=True)
        r = g.norm(dim=1) - 1
        if obj.penalty == "one-sided":
            r = torch.clamp(r, min=0)
        loss = loss + 10.0 * (r ** 2).mean()
    loss.backward()
    _assert_grads_close(grads, tc)

    _, ggrads, _ = generator_grads(obj, gen, gp, critic, cp, z)
    tg = _leaf(gp)
    s = f(_torch_forward(tg, torch.tensor(z), act, "linear"))
    (sp(-s).mean() if obj.logistic else -s.mean()).backward()
    _assert_grads_close(ggrads, tg)


@pytest.mark.parametrize("act", ["tanh", "softplus", "elu", "sigmoid", "leaky_relu"])
def test_double_backward_matches_autograd(act):
    rng = np.random.default_rng(1)
    net = MLP((3, 12, 9, 1), act, "softplus")
    p = net.init(rng)
    x, u = rng.standard_normal((6, 3)), rng.standard_normal((6, 3))
    g, tape = net.input_gradient(p, x)
    dx, grads = net.input_gradient_vjp(p, tape, u)
    tp = _leaf(p)
    tx = torch.tensor(x, requires_grad=True)
    (tg,) = torch.autograd.grad(_torch_forward(tp, tx, act, "softplus").sum(), tx, create_graph=True)
    np.testing.assert_allclose(g, tg.detach().numpy(), rtol=1e-12, atol=1e-14)
    (tg * torch.tensor(u)).sum().backward()
    _assert_grads_close(grads, tp)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dataset", ["ring8", "grid25"])
def test_wgan_gp_training_trajectory_matches_a_pytorch_loop(dataset):
    """The whole loop (5 critic steps with GP, 1 generator step, Adam on both, 15 outer
    iterations) against a plain PyTorch loop fed the same initial weights and the same host
    random stream: same parameters at the end (float64)."""
    from refimpl.datasets import sample
    from refimpl.train import GANConfig, GANMethod, ToyData, train
    cfg = GANConfig(gen_hidden=(32, 32), critic_hidden=(32, 32), batch_size=64)
    method = GANMethod(cfg)
    ours = train(method, ToyData(dataset, np, "float64"), xp=np, dtype="float64", seed=5, iters=15,
                 progress=False).state

    rng = np.random.default_rng(5)
    init = method.init_state(rng, np, "float64")
    G, D = _leaf(init["gen"]), _leaf(init["critic"])
    flat = lambda ps: [t for Wb in ps for t in Wb]
    og = torch.optim.Adam(flat(G), lr=1e-4, betas=(0.5, 0.9), eps=1e-8)
    od = torch.optim.Adam(flat(D), lr=1e-4, betas=(0.5, 0.9), eps=1e-8)
    g = lambda z: _torch_forward(G, z, "relu", "linear")
    f = lambda x: _torch_forward(D, x, "relu", "linear")
    for _ in range(15):
        for _ in range(5):
            real = torch.tensor(sample(dataset, 64, rng))
            with torch.no_grad():
                fake = g(torch.tensor(rng.standard_normal((64, 2))))
            eps = torch.tensor(rng.uniform(size=(64, 1)))
            od.zero_grad()
            scores = f(torch.cat([real, fake]))
            x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
            (gr,) = torch.autograd.grad(f(x_hat).sum(), x_hat, create_graph=True)
            loss = scores[64:].mean() - scores[:64].mean() + 10.0 * ((gr.norm(dim=1) - 1) ** 2).mean()
            loss.backward()
            od.step()
        og.zero_grad()
        (-f(g(torch.tensor(rng.standard_normal((64, 2))))).mean()).backward()
        og.step()
    for key, theirs in (("gen", G), ("critic", D)):
        for (W, b), (tW, tb) in zip(ours[key], theirs):
            np.testing.assert_allclose(W, tW.detach().numpy(), rtol=1e-9, atol=1e-11)
            np.testing.assert_allclose(b, tb.detach().numpy(), rtol=1e-9, atol=1e-11)
