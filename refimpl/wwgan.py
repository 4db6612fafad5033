"""WWGAN: the Wasserstein-of-Wasserstein gradient penalty and its critic loss.

Dukler, Li, Lin, Montufar (2019), "Wasserstein of Wasserstein loss for learning
generative models", Sec. 3.4 and Algorithm 1; the metric tensor is Prop. 5 with
Remark 7's ``L~ = alpha 11^T + L`` (eq. 9), implemented in :mod:`refimpl.wgrad`.
Conventions: ``shared/conventions.md``, "Wasserstein-of-Wasserstein (WWGAN)".

The critic ``f`` (an MLP on flat images, C-H-W row-major) maximises
``E_data f - E_gen f`` (project sign), so the loss minimised by the critic is

    mean f(fake) - mean f(real) + lam * mean_b (s_b - 1)^2,
    s_b = sqrt(g_b^T L~(X_b) g_b),   g_b = grad_x f(x_hat_b),   X_b = (x_hat_b + 1)/2,

at the interpolates ``x_hat = eps x + (1 - eps) G(z)``, ``eps ~ U[0, 1]`` per sample
(the same points as WGAN-GP). ``x_hat`` does not depend on the critic parameters,
so ``dP/dparams`` flows through ``g`` only: it is the double backward
:meth:`refimpl.nn.MLP.input_gradient_vjp` seeded with

    u_b = dP/dg_b = lam * 2 (s_b - 1)/s_b * L~(X_b) g_b / B

(because ``d s_b^2 / d g_b = 2 L~ g_b``). Where ``s_b = 0`` the direction is
undefined and 0 is used (as :func:`refimpl.objectives.gradient_penalty` does).

Public functions validate at entry (:mod:`refimpl.validation`). Training runs the fused critic phase of
:class:`refimpl.train.GANMethod` with :meth:`WWGANMethod.penalty_seed` (one forward and one
backward over the real, fake and penalty rows, :func:`refimpl.steps.critic_loss_grads`);
:meth:`WWGANMethod.critic_step` is its per-step reference. Both call the unchecked cores (``f.unchecked``, :func:`refimpl.validation.checked`),
which do not validate, and the graph constant is cached on the device
(:meth:`refimpl.wgrad.PixelGraph.image_edge_scale`, uploaded by ``init_state``), so a step makes
no host round trip and uploads nothing.
"""
from __future__ import annotations


from . import validation as checks
from .backend import device_of, namespace
from .nn import add_params
from .objectives import Objective, critic_scores_loss, penalty_points
from .train import GANConfig, GANMethod, config_dict
from .wgrad import PixelGraph, image_norm_sq_and_gradient

__all__ = ["wasserstein_penalty", "wwgan_critic_grads", "WWGANMethod"]


def _check_image_dim(graph, d):
    if graph.n != d:
        raise ValueError(f"the critic input has {d} coordinates but the pixel graph {graph!r} "
                         f"has C*H*W = {graph.n} vertices")


@checks.checked()
def wasserstein_penalty(critic, cparams, x_hat, lam, graph, alpha=0.0, gamma=0.0):
    """WWGAN gradient penalty and its parameter gradients (double backward).

    Dukler et al. 2019, Sec. 3.4 (penalty) with eq. (9) (``L~ = alpha 11^T + L``):

    .. math:: P = \\lambda \\frac1B \\sum_b (s_b - 1)^2, \\qquad
              s_b = \\sqrt{g_b^T \\tilde L(X_b)\\, g_b},\\quad g_b = \\nabla_x f(\\hat x_b),
              \\quad X_b = (\\hat x_b + 1)/2,

    and ``dP/dparams`` is ``input_gradient_vjp`` with seed
    ``lam * 2 (s_b - 1)/s_b * L~(X_b) g_b / B`` (0 where ``s_b = 0``, so the result
    is always finite).

    Parameters
    ----------
    critic : refimpl.nn.MLP
        Scalar-output network on flat images, input size ``graph.n = C*H*W``.
    cparams : list of (W, b)
    x_hat : array, shape (B, C*H*W)
        Penalty points, flattened C-H-W row-major, values in [-1, 1] (mapped to mass
        with :func:`refimpl.wgrad.image_to_mass`, ``clip=True``: values below -1 count
        as mass 0).
    lam : float
        Penalty weight.
    graph : refimpl.wgrad.PixelGraph
        Pixel graph of ``(C, H, W)`` images; ``graph.variant`` selects the paper's
        tensor (default) or the authors' code's.
    alpha, gamma : float
        Weights of ``11^T`` (Remark 7) and ``I`` (authors' code), >= 0.

    Returns
    -------
    penalty : 0-d array
    grads : list of (dW, db) like ``cparams``
    norms : array, shape (B,)
        The Wasserstein gradient norms ``s_b``.

    Raises
    ------
    TypeError, ValueError
        By the input rules below: ``x_hat`` non-empty, finite, in the
        critic parameters' dtype; ``lam`` > 0, ``alpha``, ``gamma`` >= 0, all finite.
    """
    lam, alpha, gamma = _scalars(lam, alpha, gamma)
    checks.network(critic, "critic")
    _graph(graph, critic.sizes[0])
    cparams, x_hat = critic.validate(cparams, ("x_hat", x_hat, (None, critic.sizes[0])), pname="cparams")
    if x_hat.shape[0] == 0:
        raise ValueError(f"x_hat must be non-empty, got shape {tuple(x_hat.shape)}")
    return _wasserstein_penalty(critic, cparams, x_hat, lam, graph, alpha, gamma)


def _scalars(lam, alpha, gamma):
    return (checks.real(lam, "lam", gt=0), checks.real(alpha, "alpha", ge=0),
            checks.real(gamma, "gamma", ge=0))


def _graph(graph, d):
    if not isinstance(graph, PixelGraph):
        raise TypeError(f"graph must be a PixelGraph, got {type(graph).__name__}")
    _check_image_dim(graph, d)


def _wasserstein_seed(g, x_hat, lam, graph, alpha, gamma):
    """``(P, u = dP/dg, s)`` of the penalty at ``x_hat`` (B, d) from ``g = grad_x f(x_hat)`` (B, d)."""
    xp = namespace(x_hat)
    B, d = x_hat.shape
    shape4 = (B, graph.channels, graph.height, graph.width)
    s2, Lg = image_norm_sq_and_gradient.unchecked(graph, xp.reshape(x_hat, shape4), xp.reshape(g, shape4), alpha, gamma)
    s = xp.sqrt(s2)                                                        # (B,)
    r = s - 1.0
    pen = (r @ r) * (lam / B)                                              # lam mean_b (s_b - 1)^2
    pos = s > 0
    coef = xp.where(pos, (2.0 * lam / B) * r / xp.where(pos, s, 1.0), 0.0)
    return pen, coef[:, None] * xp.reshape(Lg, (B, d)), s                   # u = dP/dg, (B, d)


def _wasserstein_penalty(critic, cparams, x_hat, lam, graph, alpha=0.0, gamma=0.0):
    g, tape = critic.input_gradient.unchecked(cparams, x_hat)             # (B, d)
    pen, u, s = _wasserstein_seed(g, x_hat, lam, graph, alpha, gamma)
    _, grads = critic.input_gradient_vjp.unchecked(cparams, tape, u, need_dx=False)
    return pen, grads, s


@checks.checked()
def wwgan_critic_grads(critic, cparams, real, fake, rng, lam, graph, alpha=0.0, gamma=0.0):
    """WWGAN critic loss (to minimise) and its parameter gradients on one batch.

    Dukler et al. 2019, Algorithm 1 line 7 in the project's sign:
    ``mean f(fake) - mean f(real) + lam * mean_b (s_b - 1)^2`` at
    ``x_hat = eps real + (1 - eps) fake``, ``eps ~ U[0, 1]`` per sample drawn from ``rng``
    (the same draw as WGAN-GP's :func:`refimpl.objectives.critic_grads`).

    Parameters
    ----------
    real : array (B, C*H*W); fake : array (B, C*H*W) (constants)
    rng : numpy.random.Generator
    lam, graph, alpha, gamma : see :func:`wasserstein_penalty`.

    Returns
    -------
    loss : 0-d array; grads : list of (dW, db); logs : dict of 0-d arrays
        (``critic_loss`` with the penalty, ``penalty``, ``w_norm`` = mean ``s_b``).

    Inputs: ``real`` and ``fake`` (B, C*H*W) of one B >= 1,
    finite, in the critic parameters' dtype; scalars as :func:`wasserstein_penalty`.
    """
    lam, alpha, gamma = _scalars(lam, alpha, gamma)
    checks.network(critic, "critic")
    _graph(graph, critic.sizes[0])
    checks.random_generator(rng, "rng")
    d = critic.sizes[0]
    cparams, real, fake = critic.validate(cparams, ("real", real, (None, d)), ("fake", fake, (None, d)),
                                           pname="cparams")
    if real.shape[0] == 0 or fake.shape[0] != real.shape[0]:
        raise ValueError(f"real and fake must be non-empty batches of one size, got {tuple(real.shape)} "
                         f"and {tuple(fake.shape)}")
    return _wwgan_critic_grads(critic, cparams, real, fake, rng, lam, graph, alpha, gamma)


def _wwgan_critic_grads(critic, cparams, real, fake, rng, lam, graph, alpha=0.0, gamma=0.0):
    xp = namespace(real, fake)
    br = real.shape[0]
    obj = Objective("wgan-gp", lam)
    scores, cache = critic.forward.unchecked(cparams, xp.concat([real, fake], axis=0))
    loss, d_real, d_fake = critic_scores_loss.unchecked(obj, scores[:br, :], scores[br:, :])
    _, grads = critic.backward.unchecked(cparams, cache, xp.concat([d_real, d_fake], axis=0), need_dx=False)
    pen, pgrads, s = _wasserstein_penalty(critic, cparams, penalty_points.unchecked(obj, real, fake, rng),
                                          lam, graph, alpha, gamma)
    loss = loss + pen
    return loss, add_params.unchecked(grads, pgrads), {"critic_loss": loss, "penalty": pen, "w_norm": xp.mean(s)}


class WWGANMethod(GANMethod):
    """WWGAN (Dukler et al. 2019, Algorithm 1): WGAN-GP with the Wasserstein penalty.

    Everything but the critic step is :class:`refimpl.train.GANMethod` with the
    Wasserstein loss (``cfg.objective`` must be ``"wgan-gp"``; ``cfg.lam`` is the
    penalty weight). The critic step draws real, ``z`` and ``eps`` from ``rng`` in
    the same order as the WGAN-GP step, so both methods see the same random streams.

    Parameters
    ----------
    cfg : GANConfig
        ``data_dim`` must equal ``channels * height * width``.
    image_shape : (C, H, W)
    neighbours : 4, 8, "two-step" or offsets (see :class:`refimpl.wgrad.PixelGraph`)
    variant : "paper" (default) or "authors"
    alpha, gamma : float >= 0
        Remark 7's ``alpha 11^T`` and the authors' ``gamma I``.
    """
    name = "wwgan"
    #: :meth:`critic_step` is the reference of the fused critic phase with :meth:`penalty_seed`
    fused_overrides = ("critic_step",)

    def __init__(self, cfg: GANConfig, image_shape, neighbours=4, variant="paper", alpha=0.0, gamma=0.0, *,
                 name=None):
        if cfg.objective != "wgan-gp":
            raise ValueError(f"WWGAN uses the Wasserstein critic loss: cfg.objective must be 'wgan-gp', "
                             f"got {cfg.objective!r}")
        alpha, gamma = checks.real(alpha, "alpha", ge=0), checks.real(gamma, "gamma", ge=0)
        super().__init__(cfg, name=name)
        if not isinstance(image_shape, (tuple, list)) or len(image_shape) != 3:
            raise TypeError(f"image_shape must be a (C, H, W) tuple, got {image_shape!r}")
        C, H, W = (checks.integer(v, "image_shape", ge=1) for v in image_shape)
        self.graph = PixelGraph(H, W, channels=C, neighbours=neighbours, variant=variant)
        _check_image_dim(self.graph, cfg.data_dim)
        self.image_shape, self.neighbours, self.variant = (C, H, W), neighbours, variant
        self.alpha, self.gamma = float(alpha), float(gamma)

    def config(self):
        nb = self.neighbours if isinstance(self.neighbours, (int, str)) else [list(o) for o in self.graph.offsets]
        return {**config_dict(self.cfg), "penalty": "wasserstein", "image_shape": list(self.image_shape),
                "neighbours": nb, "variant": self.variant, "alpha": self.alpha, "gamma": self.gamma,
                "mass": "(x + 1) / 2"}

    @checks.checked()
    def init_state(self, rng, xp, dtype, device=None):
        """:meth:`refimpl.train.GANMethod.init_state`, and the pixel graph's constant uploaded to
        ``device`` once (:meth:`refimpl.wgrad.PixelGraph.image_edge_scale`), so that no step,
        the first included, moves host data."""
        state = super().init_state(rng, xp, dtype, device)
        like = state["critic"][0][0]
        self.graph.image_edge_scale(namespace(like), like.dtype, device_of(like))
        return state

    @checks.training_step
    def penalty_seed(self, g, x_hat):
        """The fused critic step's penalty (:func:`refimpl.steps.critic_loss_grads`): ``(P, dP/dg,
        {"w_norm": mean s_b})`` from ``g`` and ``x_hat`` (B, C*H*W). A training-step internal."""
        pen, u, s = _wasserstein_seed(g, x_hat, self.cfg.lam, self.graph, self.alpha, self.gamma)
        return pen, u, {"w_norm": namespace(s).mean(s)}

    @checks.training_step
    def critic_step(self, state, rng, data):
        """One critic step (Algorithm 1 line 7), the reference of the fused critic phase; it uploads no
        constant."""
        real = data.sample(rng, self.cfg.batch_size)
        z = self.latent(rng, self.cfg.batch_size, real)
        fake = self.generate(state, z)
        _, grads, logs = _wwgan_critic_grads(self.critic, state["critic"], real, fake, rng, self.cfg.lam,
                                            self.graph, self.alpha, self.gamma)
        cp, oc = self.opt_critic.step.unchecked(state["critic"], grads, state["opt_critic"])
        return {**state, "critic": cp, "opt_critic": oc}, logs
