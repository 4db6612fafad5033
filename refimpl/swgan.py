"""Parametric smoothed WGAN (SWGAN): Algorithm 1 with neural dual potentials.

Paper: Sanjabi et al., "Solving Approximate Wasserstein GANs to Stationarity"
(``/work/shared/papers/smoothed-wgan-stationarity.md``), Sec. 4 (Lemma 4.1), Sec. 4.1
(eq. 12), Sec. 4.2 (eqs. 14-15), Sec. 5 (Theorem 5.1, Algorithm 1), Sec. 6.1,
Appendix I.1 and Table 1; project reading in ``conventions.md``, "Smoothed OT (SWGAN)".

One outer iteration (one generator step of Algorithm 1):

1. **Dual oracle** (Sec. 4.1, parametric). Two networks give the potentials,
   ``phi(x)`` on generated points and ``psi(y)`` on data. Each dual step draws a
   fresh batch, ``x_i = G_theta(z_i)`` (``i = 1..M``) and data ``y_j`` (``j = 1..N``),
   forms all ``M x N`` costs ``C_ij = c(x_i, y_j)`` (:func:`pairwise_cost`, the values of
   :func:`refimpl.ot.cost_matrix`, faster in low dimension) and ascends the dual of Lemma 4.1
   (eq. 12, uniform weights):

   .. math:: F = \\frac1M \\sum_i \\phi_i - \\frac1N \\sum_j \\psi_j
             - \\frac{1}{MN} \\sum_{ij} f_\\lambda(\\phi_i - \\psi_j - C_{ij}),

   ``f_lam(v) = v_+^2/(2 lam)`` (L2) or ``(lam/e) exp(v/lam)`` (KL) (values and
   ``dF/dphi_i``, ``dF/dpsi_j`` of :func:`refimpl.ot.dual_objective`; the training step
   calls the non-validating cores ``_cost_matrix``/``_dual_objective``), back-propagated
   into both networks (chain rule ``dF/dw = sum_i dF/dphi_i dphi_i/dw``); Adam minimises
   ``-F``. At most ``n_critic`` steps; before each update the termination statistic of
   eq. 15 is computed on the step's batch and the phase stops when it is close to 1
   (see *Termination* below).
2. **Generator step** (Algorithm 1, Theorem 5.1). On a fresh batch, with the density
   ratios ``m_ij = M(phi_i - psi_j - C_ij)`` (``V_+/lam`` for L2, eq. 11) held constant,

   .. math:: g = \\frac{1}{MN} \\sum_{ij} m_{ij} \\nabla_\\theta c(G_\\theta(z_i), y_j)
             = \\sum_i J_i^\\top \\frac{1}{MN} \\sum_j m_{ij} \\partial_x c(x_i, y_j),

   ``J_i = dG_theta(z_i)/dtheta``: one generator backward seeded with
   :func:`cost_input_gradient` ``/ (MN)``. ``g`` is the gradient of the generator
   objective ``(1/(MN)) sum_ij m_ij c(G_theta(z_i), y_j)`` at fixed ``m``; at the exact
   dual optimum it is the gradient of ``d_{c,lam}`` (envelope theorem; tested).

Termination (eq. 15). With ``V`` and ``m`` of the step's batch the statistic is the mean
density ratio over all ``M x N`` pairs of the batch, ``s = (1/(MN)) sum_ij m_ij`` (equal
to :func:`refimpl.ot.termination_statistic`; the paper's form uses ``S`` i.i.d. diagonal
pairs, the all-pairs mean estimates the same ``E m`` with less variance). The phase stops
*before* the update when ``|s - 1| <= stop_tol`` (default 0.05; the paper gives no
value). ``stop_tol = 0`` disables the test (always ``n_critic`` steps). The check is a
necessary condition only (Sec. 4.2): ``s = 1`` holds at the optimum but also elsewhere.

Where the test is decided (``SWGANConfig.stop_every``), a documented choice, since reading
``s`` on the host synchronises a GPU:

* ``stop_every = None`` (default): ``1`` when the arrays are NumPy's (a host read is free
  there, and it skips the work of the masked steps: the paper's rule, and the project's
  recorded CPU runs), ``0`` on every other namespace (CuPy, array_api_strict).
* ``stop_every = 0``: on the device. Every one of the ``n_critic`` dual steps is
  computed; once the test has held, the remaining updates are masked out
  (``where(done, old, new)`` on the potentials and the optimiser's moment estimates), so
  the potentials equal those of the host rule on the same batches, with **no host round
  trip** in the outer step. Costs: the masked steps' work is spent anyway, the data and
  latent draws of all ``n_critic`` batches advance the RNG, and the optimiser's Python
  step counter ``t`` (Adam's bias correction) counts the masked steps too. The logs
  ``dual``, ``stat`` are those of the step that ended the phase; ``dual_steps`` is a 0-d
  device integer.
* ``stop_every = k >= 1``: on the host before the update of dual steps ``0, k, 2k, ...``
  (one round trip each); ``k = 1`` is the paper's rule exactly and stops at once.

Critic sign. The project's critic ``f`` is large on data (conventions.md, "One critic
sign"). As ``lam -> 0`` the dual forces ``phi(x) - psi(y) <= c(x, y)`` and for a metric
cost ``phi = psi = -f`` gives ``F = E_data f - E_gen f``, the Kantorovich dual; so the
project's critic is ``f = -psi`` (on data) and ``-phi`` (on generated points).
:meth:`SWGANMethod.critic_values` returns ``-psi(x)``; the module itself keeps the
paper's ``phi``/``psi``.

Defaults (Table 1, Appendix I.1): ``lam = 0.01``, L2 regulariser, ``c = ||x - y||_1``,
batch 128 x 128, Adam(``beta = (0.5, 0.9)``), generator lr ``3e-3``, dual lr ``1e-3``,
at most 20 dual steps per generator step, 10,000 generator steps; generator 2 hidden
layers of 128 tanh, potentials 2 hidden layers of 128 ReLU; 4-D Gaussian latent.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

from . import _checks, steps
from .backend import backend_name, namespace
from .flat import FlatParams, flatten
from .nn import MLP
from .ot import COSTS, REGS, _cost_matrix, _dual_objective, cost_matrix
from .optim import make_optimiser
from .regularizers import get_regularizer
from .train import GANMethod

__all__ = ["SWGANConfig", "SWGANMethod", "pairwise_cost", "cost_input_gradient", "generator_objective",
           "dual_loss_grads", "generator_grads", "should_stop"]


# ----------------------------------------------------------------------------- checks (public boundary only)
_RULES = """Inputs follow the rules of :mod:`refimpl._checks`: arrays only (lists raise ``TypeError``);
    float16 refused; integer and bool promoted to float64; float32 with float64 computes in
    float64; NaN/inf refused (``ValueError`` naming the argument); ``cost`` one of
    :data:`refimpl.ot.COSTS`, ``reg`` one of :data:`refimpl.ot.REGS`, ``lam`` finite > 0."""


def _check_points(x, y, xp=None):
    """``x`` (M, d), ``y`` (N, d) by the input rules, same d >= 1, promoted to one dtype."""
    x = _checks.array(x, "x", ndim=2, xp=xp)
    y = _checks.array(y, "y", ndim=2, xp=namespace(x))
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y have different dimensions: {x.shape[1]} != {y.shape[1]}")
    return _checks.common_float(x, y)


def _check_cost(cost):
    return _checks.choice(cost, "cost", COSTS)


_check_reg = get_regularizer


def _check_m(m, M, N, xp):
    return _checks.array(m, "m", shape=(M, N), xp=xp)


_NET_RULES = """Inputs follow the rules of :mod:`refimpl._checks`: every network a
    :class:`refimpl.nn.MLP` (potentials with a scalar output); parameter lists ``[(W, b), ...]``
    of the networks' layouts, float32 or float64, all in one dtype and namespace (a
    ``TypeError`` names the offending ``*_params[l][k]``); the point arrays non-empty, 2-D, of the
    networks' input widths, promoted by the dtype rule (integers and bool to float64) and then
    of the parameters' dtype (an MLP's inputs must match its parameters; ``TypeError`` naming
    the array otherwise); one finiteness reduction over all of them (NaN/inf: ``ValueError``
    naming the argument); ``cost`` one of :data:`refimpl.ot.COSTS`, ``reg`` one of
    :data:`refimpl.ot.REGS`, ``lam`` finite > 0."""


def _mlp(net, name, scalar_output=True):
    if not isinstance(net, MLP):
        raise TypeError(f"{name} must be a refimpl.nn.MLP, got {type(net).__name__}")
    if scalar_output and net.sizes[-1] != 1:
        raise ValueError(f"{name} must have a scalar output, it has {net.sizes[-1]}")
    return net


def _check_nets(nets, arrays):
    """Validate parameter lists and the point arrays fed to the networks (public boundary).

    ``nets``: ``[(net, params, pname)]`` (``net`` already checked by :func:`_mlp`);
    ``arrays``: ``[(name, x, width)]``, each ``x`` (B, width) with B >= 1. Returns
    ``[params..., arrays...]`` validated, with one finiteness reduction (one host round
    trip) for all leaves and arrays.
    """
    xp = dt = None
    out, leaves, names = [], [], []
    for net, params, pname in nets:
        params = _checks.params(params, pname, xp=xp, dtype=dt, shapes=net._param_shapes(), finite=False)
        xp, dt = namespace(params[0][0]), params[0][0].dtype
        out.append(params)
        leaves += [a for Wb in params for a in Wb]
        names += [f"{pname}[{i // 2}][{i % 2}]" for i in range(2 * len(params))]
    for name, x, width in arrays:
        x = _checks.array(x, name, shape=(None, width), xp=xp, finite=False)
        if x.dtype != dt:
            raise TypeError(f"{name} has dtype {_checks._dtype_name(x.dtype)} but the networks' parameters are "
                            f"{_checks._dtype_name(dt)}; cast {name} with xp.astype")
        out.append(x)
        leaves.append(x)
        names.append(name)
    _checks.finite_all(leaves, names)
    return out


_PER_COORD_MAX_DIM = 16     # pairwise costs and their gradients loop over coordinates up to this dimension


def pairwise_cost(x, y, cost="l1"):
    """``C[i, j] = c(x_i, y_j)`` (M, N): :func:`refimpl.ot.cost_matrix` with SWGAN's default cost (L1).

    Inputs validated by the input rules of :mod:`refimpl._checks`; errors and the overflow
    check as :func:`refimpl.ot.cost_matrix`.
    """
    return cost_matrix(x, y, cost)


# ----------------------------------------------------------------------------- generator side
def cost_input_gradient(x, y, m, cost="l1"):
    """Weighted input gradient of the ground cost, ``G_i = sum_j m_ij d c(x_i, y_j) / d x_i``.

    * ``l1``, ``c = sum_k |x_k - y_k|``: ``d c / d x = sign(x - y)`` (subgradient 0 where
      a coordinate difference is exactly 0);
    * ``euclidean``, ``c = ||x - y||_2``: ``(x - y) / ||x - y||`` (0 at coincident points);
    * ``sqeuclidean``, ``c = ||x - y||_2^2``: ``2 (x - y)``.

    Used for the generator gradient of Algorithm 1 (Sec. 5):
    ``g = sum_i J_i^T G_i / (M N)`` with ``m`` the density ratios of eq. 11.

    Parameters
    ----------
    x : array (M, d)
        Generated points ``x_i = G_theta(z_i)``.
    y : array (N, d)
        Data points.
    m : array (M, N)
        Weights (the density ratios ``m_ij``, treated as constants).
    cost : {"l1", "euclidean", "sqeuclidean"}

    Returns
    -------
    G : array (M, d)
        Differences ``x_i - y_j`` are formed explicitly (no cancellation), in chunks of
        the feature axis.

    Raises
    ------
    TypeError, ValueError
        {rules}
    """
    x, y = _check_points(x, y)
    xp = namespace(x)
    m = _check_m(m, x.shape[0], y.shape[0], xp)
    x, y, m = _checks.common_float(x, y, m)
    return _cost_input_gradient(x, y, m, _check_cost(cost), xp)


cost_input_gradient.__doc__ = cost_input_gradient.__doc__.replace("{rules}", _RULES)


def _cost_input_gradient(x, y, m, cost, xp):
    """:func:`cost_input_gradient` without validation (training steps)."""
    M, N, d = x.shape[0], y.shape[0], x.shape[1]
    if cost == "euclidean":
        C = _cost_matrix(x, y, "euclidean", xp)
        pos = C > 0
        m = xp.where(pos, m / xp.where(pos, C, xp.ones_like(C)), xp.zeros_like(C))
    elif cost == "sqeuclidean":
        m = 2.0 * m
    if d <= _PER_COORD_MAX_DIM:
        # one (M, N) pass per coordinate: NumPy reductions over a short last axis are slow
        cols = []
        for k in range(d):
            diff = x[:, k:k + 1] - y[:, k][None, :]                       # (M, N)
            cols.append(xp.sum(m * (xp.sign(diff) if cost == "l1" else diff), axis=1))
        return xp.stack(cols, axis=1)
    chunk = max(1, (1 << 22) // max(1, M * N))
    parts = []
    for s in range(0, d, chunk):
        e = min(s + chunk, d)                  # array_api_strict rejects out-of-range slice stops
        diff = x[:, None, s:e] - y[None, :, s:e]                          # (M, N, k)
        dc = xp.sign(diff) if cost == "l1" else diff
        parts.append(xp.sum(m[:, :, None] * dc, axis=1))                  # (M, k)
    return parts[0] if len(parts) == 1 else xp.concat(parts, axis=1)


def generator_objective(x, y, m, cost="l1", C=None):
    """Generator objective of Algorithm 1 at fixed density ratios, and its input gradient.

    .. math:: L(x) = \\frac{1}{MN} \\sum_{ij} m_{ij}\\, c(x_i, y_j), \\qquad
              \\frac{\\partial L}{\\partial x_i} = \\frac{1}{MN} \\sum_j m_{ij}\\,
              \\partial_x c(x_i, y_j)

    (Sec. 5, Algorithm 1 and Theorem 5.1, ``S = M = N`` in the paper.)

    Parameters
    ----------
    x : array (M, d), y : array (N, d), m : array (M, N)
    cost : {"l1", "euclidean", "sqeuclidean"}
    C : array (M, N), optional
        ``pairwise_cost(x, y, cost)`` if already computed.

    Returns
    -------
    value : 0-d array
    dx : array (M, d)

    Raises
    ------
    TypeError, ValueError
        {rules} ``C`` (M, N) when given.
    """
    x, y = _check_points(x, y)
    xp = namespace(x)
    m = _check_m(m, x.shape[0], y.shape[0], xp)
    cost = _check_cost(cost)
    if C is not None:
        C = _checks.array(C, "C", shape=(x.shape[0], y.shape[0]), xp=xp)
        x, y, m, C = _checks.common_float(x, y, m, C)
    else:
        x, y, m = _checks.common_float(x, y, m)
    return _generator_objective(x, y, m, cost, C, xp)


generator_objective.__doc__ = generator_objective.__doc__.replace("{rules}", _RULES)


def _generator_objective(x, y, m, cost, C, xp):
    dx = _cost_input_gradient(x, y, m, cost, xp)
    if C is None:
        C = _cost_matrix(x, y, cost, xp)
    scale = 1.0 / (x.shape[0] * y.shape[0])
    return xp.sum(m * C) * scale, dx * scale


def generator_grads(gen, gparams, z, y, phi_net, phi_params, psi_net, psi_params, lam, reg, cost):
    """Algorithm 1's generator gradient ``g`` on one batch (Sec. 5, Theorem 5.1).

    ``x = G_theta(z)``; ``m_ij = M(phi(x_i) - psi(y_j) - c(x_i, y_j))`` (eq. 11) is computed
    once and held constant; ``g = (1/(MN)) sum_ij m_ij grad_theta c(G_theta(z_i), y_j)``.

    Parameters
    ----------
    gen, phi_net, psi_net : MLP
    gparams, phi_params, psi_params : parameter lists
    z : array (M, latent_dim)
    y : array (N, d)
    lam : float > 0, reg : {"kl", "l2"} or a refimpl.regularizers.Regularizer, cost : str

    Returns
    -------
    loss : 0-d array, ``(1/(MN)) sum_ij m_ij C_ij``
    grads : list of (dW, db) like ``gparams``
    m : array (M, N), the density ratios used

    Raises
    ------
    TypeError, ValueError
        {rules} Here ``z`` (M, gen.sizes[0]) and ``y`` (N, d), with ``d`` the output width of
        ``gen`` and the input width of both potentials.
    """
    _mlp(gen, "gen", scalar_output=False), _mlp(phi_net, "phi_net"), _mlp(psi_net, "psi_net")
    if not gen.sizes[-1] == phi_net.sizes[0] == psi_net.sizes[0]:
        raise ValueError(f"gen outputs {gen.sizes[-1]} coordinates but phi_net takes {phi_net.sizes[0]} "
                         f"and psi_net {psi_net.sizes[0]}")
    gparams, phi_params, psi_params, z, y = _check_nets(
        [(gen, gparams, "gparams"), (phi_net, phi_params, "phi_params"), (psi_net, psi_params, "psi_params")],
        [("z", z, gen.sizes[0]), ("y", y, gen.sizes[-1])])
    lam, reg, cost = _checks.real(lam, "lam", gt=0.0), _check_reg(reg), _check_cost(cost)
    return _generator_grads(gen, gparams, z, y, phi_net, phi_params, psi_net, psi_params, lam, reg, cost)


generator_grads.__doc__ = generator_grads.__doc__.replace("{rules}", _NET_RULES)


def _generator_grads(gen, gparams, z, y, phi_net, phi_params, psi_net, psi_params, lam, reg, cost):
    """:func:`generator_grads` without validation (training steps: no host round trip)."""
    xp = namespace(y)
    x, cache = gen._forward(gparams, z)
    C = _cost_matrix(x, y, cost, xp)
    phi = phi_net._forward(phi_params, x)[0][:, 0]
    psi = psi_net._forward(psi_params, y)[0][:, 0]
    m = reg.density(phi[:, None] - psi[None, :] - C, lam)
    loss, dx = _generator_objective(x, y, m, cost, C, xp)
    _, grads = gen._backward(gparams, cache, dx, need_dx=False)
    return loss, grads, m


# ----------------------------------------------------------------------------- dual side
def dual_loss_grads(phi_net, phi_params, psi_net, psi_params, x, y, lam, reg="l2", cost="l1"):
    """Parametric dual objective (Lemma 4.1, eq. 12) on one batch and its parameter gradients.

    ``F(w) = F(phi_w(x), psi_w(y))`` of :func:`refimpl.ot.dual_objective` with
    ``C = pairwise_cost(x, y, cost)`` (= ``refimpl.ot.cost_matrix``); the gradients are those of the *loss* ``-F``
    (to be minimised): ``-sum_i (dF/dphi_i) dphi_i/dw`` by one backward of each net
    seeded with ``-dF/dphi`` and ``-dF/dpsi``. ``x`` and ``y`` are constants here.

    Parameters
    ----------
    phi_net, psi_net : MLP with scalar output
    phi_params, psi_params : parameter lists
    x : array (M, d)
        Generated points (the potential ``phi``'s inputs).
    y : array (N, d)
        Data (``psi``'s inputs).
    lam : float > 0
    reg : {"l2", "kl"} or a refimpl.regularizers.Regularizer
    cost : {"l1", "euclidean", "sqeuclidean"}

    Returns
    -------
    F : 0-d array
        The dual value (a lower bound of the batch's ``d_{c,lam}``).
    grads_phi, grads_psi : lists of (dW, db), gradients of ``-F``.
    stat : 0-d array
        Termination statistic (eq. 15), ``(1/(MN)) sum_ij m_ij = 1 - sum_i dF/dphi_i``.

    Raises
    ------
    TypeError, ValueError
        {rules} Here ``x`` (M, d) and ``y`` (N, d), ``d`` the input width of both potentials.
    """
    _mlp(phi_net, "phi_net"), _mlp(psi_net, "psi_net")
    if phi_net.sizes[0] != psi_net.sizes[0]:
        raise ValueError(f"phi_net takes {phi_net.sizes[0]} coordinates but psi_net {psi_net.sizes[0]}")
    phi_params, psi_params, x, y = _check_nets(
        [(phi_net, phi_params, "phi_params"), (psi_net, psi_params, "psi_params")],
        [("x", x, phi_net.sizes[0]), ("y", y, psi_net.sizes[0])])
    lam, reg, cost = _checks.real(lam, "lam", gt=0.0), _check_reg(reg), _check_cost(cost)
    return _dual_loss_grads(phi_net, phi_params, psi_net, psi_params, x, y, lam, reg, cost)


dual_loss_grads.__doc__ = dual_loss_grads.__doc__.replace("{rules}", _NET_RULES)


def _dual_loss_grads(phi_net, phi_params, psi_net, psi_params, x, y, lam, reg, cost):
    """:func:`dual_loss_grads` without validation (training steps: no host round trip)."""
    xp = namespace(x)
    C = _cost_matrix(x, y, cost, xp)
    phi_out, cphi = phi_net._forward(phi_params, x)
    psi_out, cpsi = psi_net._forward(psi_params, y)
    F, dphi, dpsi = _dual_objective(phi_out[:, 0], psi_out[:, 0], C, lam, reg, None, None, xp)
    _, gphi = phi_net._backward(phi_params, cphi, -dphi[:, None], need_dx=False)
    _, gpsi = psi_net._backward(psi_params, cpsi, -dpsi[:, None], need_dx=False)
    return F, gphi, gpsi, 1.0 - xp.sum(dphi)


def should_stop(stat, tol):
    """Termination rule of the dual phase (eq. 15) on the host: ``|stat - 1| <= tol`` (never when ``tol == 0``).

    ``stat`` a real number or 0-d array (one host round trip; NaN refused, inf allowed), ``tol``
    finite >= 0, checked by the input rules of :mod:`refimpl._checks`. Returns a Python bool.
    The training step uses the device form (module docstring).
    """
    tol = _checks.real(tol, "tol", ge=0.0)
    stat = _checks.real(stat, "stat", allow_inf=True)
    return tol > 0 and abs(stat - 1.0) <= tol


def _snapshot(tree, xp):
    """A copy of the arrays of ``tree`` (params, optimiser state) for :func:`_select`: a
    :class:`refimpl.flat.FlatParams` becomes a copy of its buffer, other arrays copies, the rest
    as it is (the optimisers update flat buffers in place, so the old values must be copied)."""
    if isinstance(tree, FlatParams):
        return xp.asarray(tree.buffer, copy=True)
    if isinstance(tree, dict):
        return {k: _snapshot(v, xp) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(_snapshot(v, xp) for v in tree)
    if _checks.is_array(tree):
        return xp.asarray(tree, copy=True)
    return tree


def _device_stop(xp, done, F, stat, F_i, stat_i, tol):
    """The eq. 15 stop on the device: ``(F, stat, done)`` after a dual step with value ``F_i`` and
    statistic ``stat_i`` (0-d); once ``done``, the logs keep the values of the step that ended it."""
    hit = xp.abs(stat_i - 1.0) <= tol
    if done is None:
        return F_i, stat_i, hit
    return xp.where(done, F, F_i), xp.where(done, stat, stat_i), xp.logical_or(done, hit)


def _select(keep, old, new, xp):
    """``old`` (a :func:`_snapshot`) where the 0-d bool ``keep`` holds, else ``new``, leaf by leaf
    (params, optimiser state); a :class:`refimpl.flat.FlatParams` is overwritten in place."""
    if isinstance(new, FlatParams):
        new.buffer[...] = xp.where(keep, old, new.buffer)
        return new
    if isinstance(old, dict):
        return {k: _select(keep, old[k], new[k], xp) for k in new}
    if isinstance(old, (list, tuple)):
        return type(new)(_select(keep, o, n, xp) for o, n in zip(old, new))
    if _checks.is_array(new):
        return xp.where(keep, old, new)
    return new          # Python counters (the optimiser's step count t) advance regardless


# ----------------------------------------------------------------------------- fused steps
# The training steps' twins of _dual_loss_grads and _generator_grads, built from the fused MLP
# passes of refimpl.steps: one forward per network over the rows it needs, the backward seeded
# once, the uniform weights 1/M, 1/N and 1/(MN) folded into the density, the pair differences of a
# batch formed once (the cost and its input gradient), and (except on NumPy, see
# SWGANMethod._dual_phase_on) the generator forward and the costs of every dual batch of a phase
# formed together (the generator does not move during the dual phase). They equal the
# references up to the order of floating-point operations (tests: 1e-12 in float64). Not
# validated (training-step internals), and nothing leaves the device.
_COST_BLOCK = 1 << 22       # elements of one block of dual-phase costs (K, M, N)


def _pair_diffs(x, y):
    """``[x[:, k] - y[:, k]^T]`` (M, N) per coordinate ``k`` (``d <= _PER_COORD_MAX_DIM``)."""
    yt = y.T
    return [x[:, k:k + 1] - yt[k:k + 1, :] for k in range(x.shape[1])]


def _cost_from_diffs(diffs, cost, xp):
    """``C`` (M, N) from :func:`_pair_diffs`: the values of ``_cost_matrix`` (same sums, same order)."""
    acc = None
    for diff in diffs:
        term = xp.abs(diff) if cost == "l1" else diff * diff
        acc = term if acc is None else acc + term
    return xp.sqrt(acc) if cost == "euclidean" else acc


def _phase_costs(x, y, K, M, N, cost, xp):
    """The cost matrices ``C_k`` (M, N) of ``K`` batches stacked by rows: ``x`` (K M, d), ``y`` (K N, d).

    Formed in blocks of ``(k, M, N)`` arrays (at most ``_COST_BLOCK`` elements), one pass per
    coordinate over every batch of the block; the values of ``_cost_matrix`` on each batch.
    """
    d = x.shape[1]
    if d > _PER_COORD_MAX_DIM:
        return [_cost_matrix(x[k * M:(k + 1) * M, :], y[k * N:(k + 1) * N, :], cost, xp) for k in range(K)]
    x3, y3 = xp.reshape(x, (K, M, d)), xp.reshape(y, (K, N, d))
    g = max(1, _COST_BLOCK // max(1, M * N))
    out = []
    for s in range(0, K, g):
        e = min(s + g, K)
        whole = s == 0 and e == K
        acc = None
        for j in range(d):
            xj = x3[:, :, j:j + 1] if whole else x3[s:e, :, j:j + 1]              # (k, M, 1)
            yj = (y3[:, :, j] if whole else y3[s:e, :, j])[:, None, :]            # (k, 1, N)
            diff = xj - yj
            term = xp.abs(diff) if cost == "l1" else diff * diff
            acc = term if acc is None else acc + term
        C = xp.sqrt(acc) if cost == "euclidean" else acc
        out += [C[i, ...] for i in range(e - s)]
    return out


def _dual_step_grads(phi_net, phi_params, psi_net, psi_params, x, y, C, lam, reg, logs=True):
    """Fused :func:`_dual_loss_grads` on one batch with its cost matrix ``C`` (M, N).

    With ``V = phi - psi^T - C`` and ``P = M(V)/(MN)`` the seeds of the two backwards are
    ``d(-F)/dphi_i = sum_j P_ij - 1/M`` and ``d(-F)/dpsi_j = 1/N - sum_i P_ij`` (Sec. 4.2).

    Parameters
    ----------
    phi_net, psi_net : MLP with scalar output; phi_params, psi_params : their parameters
    x : array (M, d), y : array (N, d), C : array (M, N)
    lam : float > 0; reg : refimpl.regularizers.Regularizer (KL or L2)
    logs : bool
        Whether to form the dual value and the eq. 15 statistic (``None`` otherwise: no dead
        products on the steps that do not need them).

    Returns
    -------
    F : 0-d array or None; grads_phi, grads_psi : lists of (dW, db) of ``-F``; stat : 0-d array or None
    """
    xp = namespace(C)
    M, N = C.shape
    hphi, aphi = steps.forward(phi_net, phi_params, x)
    hpsi, apsi = steps.forward(psi_net, psi_params, y)
    phi, psi = hphi[-1], hpsi[-1]                                          # (M, 1), (N, 1)
    V = phi - psi.T - C                                                    # (M, N)
    P = reg.uniform_plan(V, lam)
    rows = xp.sum(P, axis=1, keepdims=True)                                # (M, 1)
    gphi = steps.backward_params(phi_net, phi_params, hphi, aphi, rows - 1.0 / M)
    gpsi = steps.backward_params(psi_net, psi_params, hpsi, apsi, 1.0 / N - xp.sum(P, axis=0, keepdims=True).T)
    if not logs:
        return None, gphi, gpsi, None
    lin = xp.mean(phi) - xp.mean(psi)
    F = lin - reg.penalty(P, V, lam)
    return F, gphi, gpsi, xp.sum(rows)


def _fused_generator_grads(gen, gparams, z, y, phi_net, phi_params, psi_net, psi_params, lam, reg, cost):
    """Fused :func:`_generator_grads`: Algorithm 1's generator gradient on one batch.

    Parameters
    ----------
    gen, phi_net, psi_net : MLP; gparams, phi_params, psi_params : their parameters
    z : array (M, latent_dim); y : array (N, d)
    lam : float > 0; reg : refimpl.regularizers.Regularizer (KL or L2); cost : str

    Returns
    -------
    loss : 0-d array, ``(1/(MN)) sum_ij m_ij C_ij``
    grads : list of (dW, db) like ``gparams``
    P : array (M, N), ``m / (MN)`` (the density ratios of eq. 11 times the uniform weights)
    """
    xp = namespace(y)
    hs, as_ = steps.forward(gen, gparams, z)
    x = hs[-1]                                                             # (M, d)
    small = x.shape[1] <= _PER_COORD_MAX_DIM
    diffs = _pair_diffs(x, y) if small else None
    C = _cost_from_diffs(diffs, cost, xp) if small else _cost_matrix(x, y, cost, xp)
    phi = steps.forward(phi_net, phi_params, x)[0][-1]
    psi = steps.forward(psi_net, psi_params, y)[0][-1]
    P = reg.uniform_plan(phi - psi.T - C, lam)
    loss = xp.sum(P * C)
    if not small:
        dx = _cost_input_gradient(x, y, P, cost, xp)
    else:
        if cost == "euclidean":
            pos = C > 0
            W = xp.where(pos, P / xp.where(pos, C, 1.0), 0.0)
        else:
            W = 2.0 * P if cost == "sqeuclidean" else P
        dx = xp.stack([xp.sum(W * (xp.sign(dk) if cost == "l1" else dk), axis=1) for dk in diffs], axis=1)
    return loss, steps.backward_params(gen, gparams, hs, as_, dx), P


# ----------------------------------------------------------------------------- the method
def _pos_int(name, v):
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {v!r}")


def _pos_real(name, v, allow_zero=False):
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) or v < 0 \
            or (v == 0 and not allow_zero):
        raise ValueError(f"{name} must be a finite number {'>= 0' if allow_zero else '> 0'}, got {v!r}")


@dataclass(frozen=True)
class SWGANConfig:
    """Hyperparameters of parametric SWGAN (defaults: Table 1 and Appendix I.1).

    ``batch_size`` is ``M`` (generated points per batch) and ``data_batch_size`` is
    ``N`` (data points; ``None``: equal to ``batch_size``); the dual loss uses all
    ``M x N`` pairs. ``n_critic`` is the maximum number of dual steps per generator
    step, ``stop_tol`` the tolerance of the eq. 15 test (0 disables it), ``stop_every``
    where the test is decided (module docstring, *Termination*: ``None``, the default, is 1 on
    NumPy and 0 elsewhere; 0 on the device with no host round trip; ``k >= 1`` on the host every
    ``k`` dual steps). ``data_scale``
    has the meaning of :class:`refimpl.train.GANConfig`'s (the data source divides the data
    by it and :meth:`GANMethod.samples` multiplies generated points back); the costs, and so
    ``lam``, are then in the scaled units.
    """
    lam: float = 0.01
    reg: str = "l2"
    cost: str = "l1"
    data_dim: int = 2
    latent_dim: int = 4
    gen_hidden: tuple = (128, 128)
    potential_hidden: tuple = (128, 128)
    gen_activation: str = "tanh"
    potential_activation: str = "relu"
    gen_output: str = "linear"
    batch_size: int = 128
    data_batch_size: int | None = None
    n_critic: int = 20
    stop_tol: float = 0.05
    stop_every: int | None = None
    n_gen: int = 1
    optimiser: str = "adam"
    lr_gen: float = 3e-3
    lr_critic: float = 1e-3
    betas: tuple = (0.5, 0.9)
    data_scale: float = 1.0     # train on data / data_scale (as GANConfig); samples() maps back

    def __post_init__(self):
        for k in ("data_dim", "latent_dim", "batch_size", "n_critic", "n_gen"):
            _pos_int(k, getattr(self, k))
        if self.data_batch_size is not None:
            _pos_int("data_batch_size", self.data_batch_size)
        if self.stop_every is not None and (isinstance(self.stop_every, bool)
                                            or not isinstance(self.stop_every, numbers.Integral) or self.stop_every < 0):
            raise ValueError(f"stop_every must be None or an integer >= 0, got {self.stop_every!r}")
        _pos_real("lam", self.lam)
        _pos_real("stop_tol", self.stop_tol, allow_zero=True)
        _pos_real("data_scale", self.data_scale)
        if not isinstance(self.reg, str) or self.reg not in REGS:
            raise ValueError(f"unknown regulariser reg={self.reg!r}; choose one of {', '.join(REGS)}")
        _check_cost(self.cost)
        self.make_optimiser(self.lr_gen), self.make_optimiser(self.lr_critic)
        MLP((self.latent_dim, *self.gen_hidden, self.data_dim), self.gen_activation, self.gen_output)
        MLP((self.data_dim, *self.potential_hidden, 1), self.potential_activation, "linear")

    @property
    def n_data(self):
        return self.batch_size if self.data_batch_size is None else self.data_batch_size

    def make_optimiser(self, lr):
        """A fresh optimiser of this config (``optimiser``, ``betas``) with learning rate ``lr``.

        ``lr`` finite > 0, checked by :func:`refimpl.optim.make_optimiser` (input rules of
        :mod:`refimpl._checks`; ``ValueError``/``TypeError`` naming it).
        """
        if self.optimiser == "adam":
            return make_optimiser("adam", lr=lr, beta1=self.betas[0], beta2=self.betas[1])
        return make_optimiser(self.optimiser, lr=lr)


class SWGANMethod(GANMethod):
    """Parametric SWGAN (Algorithm 1 with the parametric dual oracle of Sec. 4.1).

    State: ``gen``, ``opt_gen`` as in :class:`refimpl.train.GANMethod`, plus ``phi``,
    ``psi`` (potential-network parameters), ``opt_phi``, ``opt_psi``, and two counters
    ``dual_steps`` (dual updates so far) and ``outer`` (generator phases so far). The networks'
    parameters are :class:`refimpl.flat.FlatParams`, updated in place: every step donates its
    input state (:func:`refimpl.flat.copy_state` keeps one). ``fused`` (default True) runs the
    fused steps (:func:`_dual_step_grads`, :func:`_fused_generator_grads`); False, the per-step
    reference (:func:`_dual_loss_grads`, :meth:`generator_step`).
    Logs per outer iteration: ``dual`` (``F`` on the last dual batch), ``stat`` (the
    eq. 15 statistic that ended the phase, or the one before the last update),
    ``dual_steps`` (updates in this phase) and ``gen_loss``.
    """
    name = "swgan"

    def __init__(self, cfg: SWGANConfig = SWGANConfig(), *, name=None):
        if not isinstance(cfg, SWGANConfig):
            raise TypeError(f"cfg must be an SWGANConfig (SWGANMethod's configuration), got {type(cfg).__name__}")
        self._setup_generator(cfg, name)
        self.phi_net = MLP((cfg.data_dim, *cfg.potential_hidden, 1), cfg.potential_activation, "linear")
        self.psi_net = MLP((cfg.data_dim, *cfg.potential_hidden, 1), cfg.potential_activation, "linear")
        self.reg = get_regularizer(cfg.reg)          # refimpl.regularizers.KL or L2

    def init_state(self, rng, xp, dtype, device=None):
        """Fresh parameters of the generator and both potentials, and their optimiser states.

        ``rng`` a ``numpy.random.Generator``, ``dtype`` float32 or float64 of ``xp``, checked by
        :meth:`refimpl.nn.MLP.init` (input rules of :mod:`refimpl._checks`); arrays on ``device``.
        Each network's parameters are a :class:`refimpl.flat.FlatParams` (one buffer, updated in
        place by the optimisers: a step donates its input state).
        """
        gp = flatten(self.gen.init(rng, xp=xp, dtype=dtype, device=device))
        php = flatten(self.phi_net.init(rng, xp=xp, dtype=dtype, device=device))
        psp = flatten(self.psi_net.init(rng, xp=xp, dtype=dtype, device=device))
        return {"gen": gp, "phi": php, "psi": psp, "opt_gen": self.opt_gen._init(gp),
                "opt_phi": self.opt_critic._init(php), "opt_psi": self.opt_critic._init(psp),
                "dual_steps": 0, "outer": 0}

    def critic_values(self, state, x):
        """The project's critic ``f(x) = -psi(x)`` (large on data; module docstring), shape (B,).

        Not a training step: ``state["psi"]`` and ``x`` (B, data_dim), in the parameters' dtype,
        are validated by the input rules of :mod:`refimpl._checks` (errors name ``state["psi"]``
        or ``x``).
        """
        if not isinstance(state, dict) or "psi" not in state:
            raise TypeError(f"state must be a dict from init_state with a 'psi' entry, got {type(state).__name__}")
        psi, x = self.psi_net._validate(state["psi"], ("x", x, (None, self.cfg.data_dim)), pname='state["psi"]')
        return -self.psi_net._forward(psi, x)[0][:, 0]

    # -- dual oracle
    def dual_batch(self, state, rng, data):
        """A fresh batch: data ``y`` (N, d) then generated ``x = G(z)`` (M, d).

        A training step (policy of :mod:`refimpl._checks`): ``state`` comes from :meth:`init_state`,
        ``rng`` is a ``numpy.random.Generator``, ``data`` a data source; none is validated and the
        unchecked twins are called, so the step makes no host round trip.
        """
        y = data.sample(rng, self.cfg.n_data)
        x = self.generate(state, self.latent(rng, self.cfg.batch_size, y))
        return x, y

    # -- phases. ``fused`` (default True): the fused steps above (one forward per network per step,
    # the costs of the whole dual phase together); False: the per-step reference
    # (_dual_loss_grads, generator_step), kept as the test reference.
    def _own(self, *names):
        """True when none of the methods ``names`` is overridden by a subclass."""
        return all(getattr(type(self), n) is getattr(SWGANMethod, n) for n in names)

    def _stop_rule(self, xp):
        """``(stop_every, on_device, on_host)`` of the eq. 15 test for arrays of ``xp``."""
        cfg = self.cfg
        stop_every = cfg.stop_every
        if stop_every is None:
            stop_every = 1 if backend_name(xp) == "numpy" else 0
        return stop_every, cfg.stop_tol > 0 and stop_every == 0, cfg.stop_tol > 0 and stop_every >= 1

    def _drawn(self, state, phase):
        """Whether ``phase`` ("dual", "gen" or "outer") runs on draws made before it: fused, the
        eq. 15 test not read on the host (the reference draws a batch only when its step runs),
        and the batches and steps this class's own."""
        if not self.fused:
            return False
        names = {"dual": ("dual_batch", "latent", "generate"), "gen": ("generator_step", "latent"),
                 "outer": ("dual_batch", "latent", "generate", "generator_step", "critic_phase",
                           "generator_phase")}[phase]
        return self._own(*names) and (phase == "gen" or not self._stop_rule(namespace(state["gen"][0][0]))[2])

    def draw(self, rng, data, critic=True, generator=True):
        """Host draws of one outer iteration (or of one phase), in the reference's order: per dual
        step the data (``data.draw``, ``N`` rows) then ``z`` (``M`` rows); then the same per
        generator step. ``{"real": (K N, ...) stacked, "z": (K M, latent_dim)}``; a data source
        without ``draw`` is sampled on the device here instead (``"real"`` a list of device batches)."""
        cfg = self.cfg
        host = hasattr(data, "draw")
        reals, zs = [], []
        for _ in range((cfg.n_critic if critic else 0) + (cfg.n_gen if generator else 0)):
            reals.append(data.draw(rng, cfg.n_data) if host else data.sample(rng, cfg.n_data))
            zs.append(rng.standard_normal((cfg.batch_size, cfg.latent_dim)))
        return {"real": np.concatenate(reals) if host else reals, "z": np.concatenate(zs)}

    @staticmethod
    def _gathered(dev, data):
        return dev["real"] if not hasattr(data, "gather") else data.gather(dev["real"])

    def critic_phase(self, state, rng, data):
        """Up to ``n_critic`` Adam steps on ``-F``, stopped early by eq. 15 (module docstring).

        ``stop_every = 0``: the decision stays on the device (masked updates, no host round
        trip); ``k >= 1``: tested on the host before the update of every ``k``-th step;
        ``None``: 1 on NumPy, 0 elsewhere. Fused (``fused``), without a host test, all the
        phase's draws are made first and moved to the device in one transfer per kind.

        A training step (policy of :mod:`refimpl._checks`): ``state`` comes from :meth:`init_state`,
        ``rng`` is a ``numpy.random.Generator``, ``data`` a data source; none is validated and the
        unchecked twins are called, so the step makes no host round trip. The state is donated.
        """
        if not self.fused:
            return self._critic_phase_reference(state, rng, data)
        if self._drawn(state, "dual"):
            dev = self.put_draws(self.draw(rng, data, generator=False), data, state["gen"][0][0])
            return self._dual_phase_on(state, self._gathered(dev, data), dev["z"])

        def batches():          # one batch per step, drawn when its step runs (the reference's order)
            for _ in range(self.cfg.n_critic):
                x, y = self.dual_batch(state, rng, data)
                yield x, y, None
        return self._dual_updates(state, batches())

    def critic_phase_drawn(self, state, dev, data):
        """The fused dual phase on device draws ``dev`` (:meth:`put_draws` of :meth:`draw` with
        ``generator=False``); no host data is moved."""
        return self._dual_phase_on(state, self._gathered(dev, data), dev["z"])

    def _dual_phase_on(self, state, y, z):
        """The dual phase on device batches: the first ``K N`` rows of ``y`` and ``K M`` of ``z``.

        The generator is fixed during the phase: one forward over all ``K M`` latent rows and the
        costs of every batch together (:func:`_phase_costs`), except on NumPy, where every pass
        runs on one core with a fresh temporary and arrays of a whole phase fall out of the cache
        (at 20 x 128 x 128, float64: 7.3 ms for the generator forward and 7.5 ms for the costs,
        against 4.4 ms and 1.0 ms batch by batch): there each batch is formed when its step runs.
        """
        cfg = self.cfg
        K, M, N = cfg.n_critic, cfg.batch_size, cfg.n_data
        xp = namespace(z)
        y = y if y.shape[0] == K * N else y[:K * N, :]
        z = z if z.shape[0] == K * M else z[:K * M, :]
        if backend_name(xp) == "numpy":
            return self._dual_updates(state, ((self.generate(state, z[k * M:(k + 1) * M, :]),
                                               y[k * N:(k + 1) * N, :], None) for k in range(K)))
        x = steps.forward(self.gen, state["gen"], z)[0][-1]             # (K M, d)
        Cs = _phase_costs(x, y, K, M, N, cfg.cost, xp)
        return self._dual_updates(state, ((x[k * M:(k + 1) * M, :], y[k * N:(k + 1) * N, :], Cs[k])
                                          for k in range(K)))

    def _dual_updates(self, state, batches):
        """The fused dual steps on ``batches`` (``(x, y, C or None)`` per step), with the eq. 15 rule."""
        cfg = self.cfg
        xp = namespace(state["gen"][0][0])
        stop_every, on_device, on_host = self._stop_rule(xp)
        php, psp, oph, ops = state["phi"], state["psi"], state["opt_phi"], state["opt_psi"]
        steps_, F, stat, done = 0, None, None, None
        for i, (x, y, C) in enumerate(batches):
            if C is None:
                C = _cost_matrix(x, y, cfg.cost, xp)
            F_i, gphi, gpsi, stat_i = _dual_step_grads(self.phi_net, php, self.psi_net, psp, x, y, C, cfg.lam,
                                                       self.reg, logs=cfg.stop_tol > 0 or i == cfg.n_critic - 1)
            if on_host and i % stop_every == 0 and should_stop(stat_i, cfg.stop_tol):
                F, stat = F_i, stat_i
                break
            old = _snapshot([php, psp, oph, ops], xp) if on_device else None
            php, oph = self.opt_critic._step(php, gphi, oph)
            psp, ops = self.opt_critic._step(psp, gpsi, ops)
            if on_device:
                F, stat, done = _device_stop(xp, done, F, stat, F_i, stat_i, cfg.stop_tol)
                php, psp, oph, ops = _select(done, old, [php, psp, oph, ops], xp)
                steps_ = steps_ + xp.astype(xp.logical_not(done), xp.int64)
            else:
                F, stat = F_i, stat_i
                steps_ += 1
        state = {**state, "phi": php, "psi": psp, "opt_phi": oph, "opt_psi": ops,
                 "dual_steps": state["dual_steps"] + steps_}
        return state, {"dual": F, "stat": stat, "dual_steps": steps_}

    def _critic_phase_reference(self, state, rng, data):
        """:meth:`critic_phase` step by step with :func:`_dual_loss_grads` (the test reference)."""
        cfg = self.cfg
        stop_every = cfg.stop_every
        steps, F, stat, done = 0, None, None, None
        for i in range(cfg.n_critic):
            x, y = self.dual_batch(state, rng, data)
            if stop_every is None:
                stop_every = 1 if backend_name(namespace(x)) == "numpy" else 0
            on_device = cfg.stop_tol > 0 and stop_every == 0
            F_i, gphi, gpsi, stat_i = _dual_loss_grads(self.phi_net, state["phi"], self.psi_net, state["psi"],
                                                       x, y, cfg.lam, self.reg, cfg.cost)
            if not on_device:
                F, stat = F_i, stat_i
                if cfg.stop_tol > 0 and i % stop_every == 0 and should_stop(stat, cfg.stop_tol):
                    break
            keys = ("phi", "psi", "opt_phi", "opt_psi")
            old = _snapshot({k: state[k] for k in keys}, namespace(x)) if on_device else None
            php, oph = self.opt_critic._step(state["phi"], gphi, state["opt_phi"])
            psp, ops = self.opt_critic._step(state["psi"], gpsi, state["opt_psi"])
            new = {"phi": php, "psi": psp, "opt_phi": oph, "opt_psi": ops}
            if on_device:
                xp = namespace(x)
                F, stat, done = _device_stop(xp, done, F, stat, F_i, stat_i, cfg.stop_tol)
                new = _select(done, old, new, xp)
                steps = steps + xp.astype(xp.logical_not(done), xp.int64)
            else:
                steps += 1
            state = {**state, **new}
        state = {**state, "dual_steps": state["dual_steps"] + steps}
        return state, {"dual": F, "stat": stat, "dual_steps": steps}

    # -- generator
    def generator_step(self, state, rng, data):
        """One generator update of Algorithm 1 on a fresh batch (:func:`generator_grads` unchecked).

        The per-step reference of :meth:`generator_phase`. A training step (policy of
        :mod:`refimpl._checks`): ``state`` comes from :meth:`init_state`, ``rng`` is a
        ``numpy.random.Generator``, ``data`` a data source; none is validated and the unchecked
        twins are called, so the step makes no host round trip.
        """
        cfg = self.cfg
        y = data.sample(rng, cfg.n_data)
        z = self.latent(rng, cfg.batch_size, y)
        loss, grads, _ = _generator_grads(self.gen, state["gen"], z, y, self.phi_net, state["phi"],
                                          self.psi_net, state["psi"], cfg.lam, self.reg, cfg.cost)
        gp, og = self.opt_gen._step(state["gen"], grads, state["opt_gen"])
        return {**state, "gen": gp, "opt_gen": og}, {"gen_loss": loss}

    def generator_phase(self, state, rng, data):
        """``n_gen`` generator updates: fused (:func:`_fused_generator_grads`, the phase's draws
        first, one transfer per kind) unless ``fused`` is False or a subclass overrides
        :meth:`generator_step`. A training step (as :meth:`generator_step`); the state is donated."""
        if not self._drawn(state, "gen"):
            return super().generator_phase(state, rng, data)
        dev = self.put_draws(self.draw(rng, data, critic=False), data, state["gen"][0][0])
        return self._generator_phase_on(state, self._gathered(dev, data), dev["z"])

    def generator_phase_drawn(self, state, dev, data):
        """The fused generator phase on device draws ``dev`` (:meth:`put_draws` of :meth:`draw` with
        ``critic=False``)."""
        return self._generator_phase_on(state, self._gathered(dev, data), dev["z"])

    def _generator_phase_on(self, state, y, z):
        """The generator steps on the last ``n_gen N`` rows of ``y`` and ``n_gen M`` rows of ``z``."""
        cfg = self.cfg
        G, M, N = cfg.n_gen, cfg.batch_size, cfg.n_data
        y0, z0 = y.shape[0] - G * N, z.shape[0] - G * M
        gp, og, loss = state["gen"], state["opt_gen"], None
        for k in range(G):
            yk = y if y.shape[0] == N else y[y0 + k * N:y0 + (k + 1) * N, :]
            zk = z if z.shape[0] == M else z[z0 + k * M:z0 + (k + 1) * M, :]
            loss, grads, _ = _fused_generator_grads(self.gen, gp, zk, yk, self.phi_net, state["phi"], self.psi_net,
                                                    state["psi"], cfg.lam, self.reg, cfg.cost)
            gp, og = self.opt_gen._step(gp, grads, og)
        return {**state, "gen": gp, "opt_gen": og}, {"gen_loss": loss}

    def outer_step_drawn(self, state, dev, data):
        """One fused outer iteration on device draws ``dev`` (:meth:`put_draws` of :meth:`draw`):
        the data rows are gathered once; no host data is moved and nothing is read back."""
        y, z = self._gathered(dev, data), dev["z"]
        state, lc = self._dual_phase_on(state, y, z)
        state, lg = self._generator_phase_on(state, y, z)
        return {**state, "outer": state["outer"] + 1}, {**lc, **lg}

    def outer_step(self, state, rng, data):
        """One outer iteration: the dual phase, then ``n_gen`` generator steps; counts ``outer``.

        Fused and without a host test of eq. 15, every draw of the iteration is made first, in the
        reference's order, and moved to the device in one transfer per kind (:meth:`draw`,
        :meth:`put_draws`, :meth:`outer_step_drawn`). Parameters are updated in place (the input
        state is donated; :func:`refimpl.flat.copy_state` keeps one).

        A training step (policy of :mod:`refimpl._checks`): ``state`` comes from :meth:`init_state`,
        ``rng`` is a ``numpy.random.Generator``, ``data`` a data source; none is validated and the
        unchecked twins are called, so the step makes no host round trip.
        """
        if self._drawn(state, "outer"):
            return self.outer_step_drawn(state, self.put_draws(self.draw(rng, data), data, state["gen"][0][0]), data)
        state, logs = super().outer_step(state, rng, data)
        return {**state, "outer": state["outer"] + 1}, logs
