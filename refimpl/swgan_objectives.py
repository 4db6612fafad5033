"""SWGAN's objectives on one batch, checked: the parametric dual (Lemma 4.1, eq. 12), the
generator objective and gradient of Algorithm 1 (Theorem 5.1), and the eq. 15 stop.

Paper: Sanjabi et al., "Solving Approximate Wasserstein GANs to Stationarity", Secs. 4-5;
project reading in ``conventions.md``, "Smoothed OT (SWGAN)". The training step
(:class:`refimpl.swgan.SWGANMethod`, whose module docstring gives the algorithm) calls the
unchecked cores of :mod:`refimpl.swgan_steps`; every function here validates its inputs once
and then calls the same core.

One outer iteration of Algorithm 1:

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
   calls the cores of :mod:`refimpl.swgan_steps`), back-propagated
   into both networks (chain rule ``dF/dw = sum_i dF/dphi_i dphi_i/dw``); Adam minimises
   ``-F``. At most ``n_critic`` steps; before each update the termination statistic of
   eq. 15 is computed on the step's batch and the phase stops when it is close to 1
   (:mod:`refimpl.swgan`, *Termination*).
2. **Generator step** (Algorithm 1, Theorem 5.1). On a fresh batch, with the density
   ratios ``m_ij = M(phi_i - psi_j - C_ij)`` (``V_+/lam`` for L2, eq. 11) held constant,

   .. math:: g = \\frac{1}{MN} \\sum_{ij} m_{ij} \\nabla_\\theta c(G_\\theta(z_i), y_j)
             = \\sum_i J_i^\\top \\frac{1}{MN} \\sum_j m_{ij} \\partial_x c(x_i, y_j),

   ``J_i = dG_theta(z_i)/dtheta``: one generator backward seeded with
   :func:`cost_input_gradient` ``/ (MN)``. ``g`` is the gradient of the generator
   objective ``(1/(MN)) sum_ij m_ij c(G_theta(z_i), y_j)`` at fixed ``m``; at the exact
   dual optimum it is the gradient of ``d_{c,lam}`` (envelope theorem; tested).
"""
from __future__ import annotations

from . import validation as checks, swgan_steps as core
from .backend import namespace
from .nn import MLP
from .ot import COSTS, cost_matrix
from .regularizers import get_regularizer

__all__ = ["pairwise_cost", "cost_input_gradient", "generator_objective", "dual_loss_grads", "generator_grads",
           "should_stop"]

# ----------------------------------------------------------------------------- checks (public boundary only)
_RULES = """SWGAN inputs: ``cost`` one of :data:`refimpl.ot.COSTS`, ``reg`` one of :data:`refimpl.ot.REGS`,
    ``lam`` finite > 0."""


def _check_points(x, y, xp=None):
    """``x`` (M, d), ``y`` (N, d) by the input rules, same d >= 1, promoted to one dtype."""
    x = checks.array(x, "x", ndim=2, xp=xp)
    y = checks.array(y, "y", ndim=2, xp=namespace(x))
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y have different dimensions: {x.shape[1]} != {y.shape[1]}")
    return checks.common_float(x, y)


def _check_cost(cost):
    return checks.choice(cost, "cost", COSTS)


_check_reg = get_regularizer


def _check_m(m, M, N, xp):
    return checks.array(m, "m", shape=(M, N), xp=xp)


_NET_RULES = """SWGAN inputs: every network a :class:`refimpl.nn.MLP` (potentials with a scalar output);
    parameter lists ``[(W, b), ...]`` of the networks' layouts, all in one dtype and namespace (a
    ``TypeError`` names the offending ``*_params[l][k]``); the point arrays non-empty, 2-D, of the
    networks' input widths and of the parameters' dtype; one finiteness reduction over all of them;
    ``cost`` one of :data:`refimpl.ot.COSTS`, ``reg`` one of :data:`refimpl.ot.REGS`, ``lam`` finite > 0."""


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
        params = checks.params(params, pname, xp=xp, dtype=dt, shapes=net.param_shapes(), finite=False)
        xp, dt = namespace(params[0][0]), params[0][0].dtype
        out.append(params)
        leaves += [a for Wb in params for a in Wb]
        names += [f"{pname}[{i // 2}][{i % 2}]" for i in range(2 * len(params))]
    for name, x, width in arrays:
        x = checks.array(x, name, shape=(None, width), xp=xp, finite=False)
        if x.dtype != dt:
            raise TypeError(f"{name} has dtype {checks.dtype_name(x.dtype)} but the networks' parameters are "
                            f"{checks.dtype_name(dt)}; cast {name} with xp.astype")
        out.append(x)
        leaves.append(x)
        names.append(name)
    checks.finite_all(leaves, names)
    return out


@checks.checked(rules=_RULES)
def pairwise_cost(x, y, cost="l1"):
    """``C[i, j] = c(x_i, y_j)`` (M, N): :func:`refimpl.ot.cost_matrix` with SWGAN's default cost (L1).

    Errors and the overflow check as :func:`refimpl.ot.cost_matrix`.
    """
    return cost_matrix(x, y, cost)


# ----------------------------------------------------------------------------- generator side
@checks.checked(rules=_RULES)
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
        By the input rules below.
    """
    x, y = _check_points(x, y)
    xp = namespace(x)
    m = _check_m(m, x.shape[0], y.shape[0], xp)
    x, y, m = checks.common_float(x, y, m)
    return core.cost_input_gradient(x, y, m, _check_cost(cost), xp)



@checks.checked(rules=_RULES)
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
        By the input rules below; ``C`` (M, N) when given.
    """
    x, y = _check_points(x, y)
    xp = namespace(x)
    m = _check_m(m, x.shape[0], y.shape[0], xp)
    cost = _check_cost(cost)
    if C is not None:
        C = checks.array(C, "C", shape=(x.shape[0], y.shape[0]), xp=xp)
        x, y, m, C = checks.common_float(x, y, m, C)
    else:
        x, y, m = checks.common_float(x, y, m)
    return core.generator_objective(x, y, m, cost, C, xp)



@checks.checked(rules=_NET_RULES)
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
        By the input rules below. Here ``z`` (M, gen.sizes[0]) and ``y`` (N, d), with ``d`` the output width of
        ``gen`` and the input width of both potentials.
    """
    _mlp(gen, "gen", scalar_output=False), _mlp(phi_net, "phi_net"), _mlp(psi_net, "psi_net")
    if not gen.sizes[-1] == phi_net.sizes[0] == psi_net.sizes[0]:
        raise ValueError(f"gen outputs {gen.sizes[-1]} coordinates but phi_net takes {phi_net.sizes[0]} "
                         f"and psi_net {psi_net.sizes[0]}")
    gparams, phi_params, psi_params, z, y = _check_nets(
        [(gen, gparams, "gparams"), (phi_net, phi_params, "phi_params"), (psi_net, psi_params, "psi_params")],
        [("z", z, gen.sizes[0]), ("y", y, gen.sizes[-1])])
    lam, reg, cost = checks.real(lam, "lam", gt=0.0), _check_reg(reg), _check_cost(cost)
    return core.generator_grads(gen, gparams, z, y, phi_net, phi_params, psi_net, psi_params, lam, reg, cost)



# ----------------------------------------------------------------------------- dual side
@checks.checked(rules=_NET_RULES)
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
        By the input rules below. Here ``x`` (M, d) and ``y`` (N, d), ``d`` the input width of both potentials.
    """
    _mlp(phi_net, "phi_net"), _mlp(psi_net, "psi_net")
    if phi_net.sizes[0] != psi_net.sizes[0]:
        raise ValueError(f"phi_net takes {phi_net.sizes[0]} coordinates but psi_net {psi_net.sizes[0]}")
    phi_params, psi_params, x, y = _check_nets(
        [(phi_net, phi_params, "phi_params"), (psi_net, psi_params, "psi_params")],
        [("x", x, phi_net.sizes[0]), ("y", y, psi_net.sizes[0])])
    lam, reg, cost = checks.real(lam, "lam", gt=0.0), _check_reg(reg), _check_cost(cost)
    return core.dual_loss_grads(phi_net, phi_params, psi_net, psi_params, x, y, lam, reg, cost)



@checks.checked()
def should_stop(stat, tol):
    """Termination rule of the dual phase (eq. 15) on the host: ``|stat - 1| <= tol`` (never when ``tol == 0``).

    ``stat`` a real number or 0-d array (one host round trip; NaN refused, inf allowed), ``tol``
    finite >= 0. Returns a Python bool.
    The training step uses the device form (module docstring).
    """
    tol = checks.real(tol, "tol", ge=0.0)
    stat = checks.real(stat, "stat", allow_inf=True)
    return tol > 0 and abs(stat - 1.0) <= tol

