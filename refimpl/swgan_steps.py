"""SWGAN's training-step internals: the unchecked cores of :mod:`refimpl.swgan_objectives` and
the fused dual and generator steps of :class:`refimpl.swgan.SWGANMethod`.

Not validated, by design (the checked layer is :mod:`refimpl.swgan_objectives`): inputs are
arrays of one namespace, dtype and device, as the training step makes them, and nothing leaves
the device. The fused steps are built from the fused MLP passes of :mod:`refimpl.steps`: one
forward per network over the rows it needs, the backward seeded once, the uniform weights
``1/M``, ``1/N`` and ``1/(MN)`` folded into the density, the pair differences of a batch formed
once (the cost and its input gradient), and (except on NumPy, see
``SWGANMethod._dual_phase_on``) the generator forward and the costs of every dual batch of a
phase formed together (the generator does not move during the dual phase). They equal the
references (:func:`dual_loss_grads`, :func:`generator_grads`) up to the order of floating-point
operations (tests: 1e-12 in float64).
"""
from __future__ import annotations

from . import validation as checks, steps
from .backend import namespace
from .flat import FlatParams
from .ot import cost_matrix
from .ot_objectives import dual_objective

PER_COORD_MAX_DIM = 16     # pairwise costs and their gradients loop over coordinates up to this dimension


def cost_input_gradient(x, y, m, cost, xp):
    """:func:`cost_input_gradient` without validation (training steps)."""
    M, N, d = x.shape[0], y.shape[0], x.shape[1]
    if cost == "euclidean":
        C = cost_matrix.unchecked(x, y, "euclidean", xp)
        pos = C > 0
        m = xp.where(pos, m / xp.where(pos, C, xp.ones_like(C)), xp.zeros_like(C))
    elif cost == "sqeuclidean":
        m = 2.0 * m
    if d <= PER_COORD_MAX_DIM:
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


def generator_objective(x, y, m, cost, C, xp):
    dx = cost_input_gradient(x, y, m, cost, xp)
    if C is None:
        C = cost_matrix.unchecked(x, y, cost, xp)
    scale = 1.0 / (x.shape[0] * y.shape[0])
    return xp.sum(m * C) * scale, dx * scale


def generator_grads(gen, gparams, z, y, phi_net, phi_params, psi_net, psi_params, lam, reg, cost):
    """:func:`generator_grads` without validation (training steps: no host round trip)."""
    xp = namespace(y)
    x, cache = gen.forward.unchecked(gparams, z)
    C = cost_matrix.unchecked(x, y, cost, xp)
    phi = phi_net.forward.unchecked(phi_params, x)[0][:, 0]
    psi = psi_net.forward.unchecked(psi_params, y)[0][:, 0]
    m = reg.density(phi[:, None] - psi[None, :] - C, lam)
    loss, dx = generator_objective(x, y, m, cost, C, xp)
    _, grads = gen.backward.unchecked(gparams, cache, dx, need_dx=False)
    return loss, grads, m


def dual_loss_grads(phi_net, phi_params, psi_net, psi_params, x, y, lam, reg, cost):
    """:func:`dual_loss_grads` without validation (training steps: no host round trip)."""
    xp = namespace(x)
    C = cost_matrix.unchecked(x, y, cost, xp)
    phi_out, cphi = phi_net.forward.unchecked(phi_params, x)
    psi_out, cpsi = psi_net.forward.unchecked(psi_params, y)
    F, dphi, dpsi = dual_objective.unchecked(phi_out[:, 0], psi_out[:, 0], C, lam, reg, None, None, xp)
    _, gphi = phi_net.backward.unchecked(phi_params, cphi, -dphi[:, None], need_dx=False)
    _, gpsi = psi_net.backward.unchecked(psi_params, cpsi, -dpsi[:, None], need_dx=False)
    return F, gphi, gpsi, 1.0 - xp.sum(dphi)


def snapshot(tree, xp):
    """A copy of the arrays of ``tree`` (params, optimiser state) for :func:`select`: a
    :class:`refimpl.flat.FlatParams` becomes a copy of its buffer, other arrays copies, the rest
    as it is (the optimisers update flat buffers in place, so the old values must be copied)."""
    if isinstance(tree, FlatParams):
        return xp.asarray(tree.buffer, copy=True)
    if isinstance(tree, dict):
        return {k: snapshot(v, xp) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(snapshot(v, xp) for v in tree)
    if checks.is_array(tree):
        return xp.asarray(tree, copy=True)
    return tree


def device_stop(xp, done, F, stat, F_i, stat_i, tol):
    """The eq. 15 stop on the device: ``(F, stat, done)`` after a dual step with value ``F_i`` and
    statistic ``stat_i`` (0-d); once ``done``, the logs keep the values of the step that ended it."""
    hit = xp.abs(stat_i - 1.0) <= tol
    if done is None:
        return F_i, stat_i, hit
    return xp.where(done, F, F_i), xp.where(done, stat, stat_i), xp.logical_or(done, hit)


def select(keep, old, new, xp):
    """``old`` (a :func:`snapshot`) where the 0-d bool ``keep`` holds, else ``new``, leaf by leaf
    (params, optimiser state); a :class:`refimpl.flat.FlatParams` is overwritten in place."""
    if isinstance(new, FlatParams):
        new.buffer[...] = xp.where(keep, old, new.buffer)
        return new
    if isinstance(old, dict):
        return {k: select(keep, old[k], new[k], xp) for k in new}
    if isinstance(old, (list, tuple)):
        return type(new)(select(keep, o, n, xp) for o, n in zip(old, new))
    if checks.is_array(new):
        return xp.where(keep, old, new)
    return new          # Python counters (the optimiser's step count t) advance regardless


COST_BLOCK = 1 << 22       # elements of one block of dual-phase costs (K, M, N)


def pair_diffs(x, y):
    """``[x[:, k] - y[:, k]^T]`` (M, N) per coordinate ``k`` (``d <= PER_COORD_MAX_DIM``)."""
    yt = y.T
    return [x[:, k:k + 1] - yt[k:k + 1, :] for k in range(x.shape[1])]


def cost_from_diffs(diffs, cost, xp):
    """``C`` (M, N) from :func:`pair_diffs`: the values of ``cost_matrix.unchecked`` (same sums, same order)."""
    acc = None
    for diff in diffs:
        term = xp.abs(diff) if cost == "l1" else diff * diff
        acc = term if acc is None else acc + term
    return xp.sqrt(acc) if cost == "euclidean" else acc


def phase_costs(x, y, K, M, N, cost, xp):
    """The cost matrices ``C_k`` (M, N) of ``K`` batches stacked by rows: ``x`` (K M, d), ``y`` (K N, d).

    Formed in blocks of ``(k, M, N)`` arrays (at most ``COST_BLOCK`` elements), one pass per
    coordinate over every batch of the block; the values of ``cost_matrix.unchecked`` on each batch.
    """
    d = x.shape[1]
    if d > PER_COORD_MAX_DIM:
        return [cost_matrix.unchecked(x[k * M:(k + 1) * M, :], y[k * N:(k + 1) * N, :], cost, xp) for k in range(K)]
    x3, y3 = xp.reshape(x, (K, M, d)), xp.reshape(y, (K, N, d))
    g = max(1, COST_BLOCK // max(1, M * N))
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


def dual_step_grads(phi_net, phi_params, psi_net, psi_params, x, y, C, lam, reg, logs=True):
    """Fused :func:`dual_loss_grads` on one batch with its cost matrix ``C`` (M, N).

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


def fused_generator_grads(gen, gparams, z, y, phi_net, phi_params, psi_net, psi_params, lam, reg, cost):
    """Fused :func:`generator_grads`: Algorithm 1's generator gradient on one batch.

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
    small = x.shape[1] <= PER_COORD_MAX_DIM
    diffs = pair_diffs(x, y) if small else None
    C = cost_from_diffs(diffs, cost, xp) if small else cost_matrix.unchecked(x, y, cost, xp)
    phi = steps.forward(phi_net, phi_params, x)[0][-1]
    psi = steps.forward(psi_net, psi_params, y)[0][-1]
    P = reg.uniform_plan(phi - psi.T - C, lam)
    loss = xp.sum(P * C)
    if not small:
        dx = cost_input_gradient(x, y, P, cost, xp)
    else:
        if cost == "euclidean":
            pos = C > 0
            W = xp.where(pos, P / xp.where(pos, C, 1.0), 0.0)
        else:
            W = 2.0 * P if cost == "sqeuclidean" else P
        dx = xp.stack([xp.sum(W * (xp.sign(dk) if cost == "l1" else dk), axis=1) for dk in diffs], axis=1)
    return loss, steps.backward_params(gen, gparams, hs, as_, dx), P

