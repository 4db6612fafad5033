"""Sample-quality metrics for image GANs: exact pixel-space W1 and a classifier Frechet distance.

* :func:`image_w1`: exact 1-Wasserstein distance between two sets of images viewed as
  uniform point clouds in ``R^(C*H*W)`` with the Euclidean cost (POT ``emd2`` on the
  host, through :func:`refimpl.metrics.w1`).
* :func:`frechet_distance` / :func:`frechet_distance_gaussians`: the Frechet (W2)
  distance between Gaussians fitted to two feature sets (Heusel et al. 2017, the
  formula behind FID), with the matrix square root by a symmetric eigendecomposition
  on the host.
* :func:`train_classifier` / :class:`ClassifierFrechet`: the features are the
  penultimate layer of a small MLP classifier trained with this library (softmax
  cross-entropy, :func:`softmax_cross_entropy`) on the same data set. **This is a
  stand-in for FID**, which needs Inception-v3 weights that cannot be downloaded here;
  its numbers are not comparable with published FIDs (the paper's Fig. 6), only between
  runs that use the same cached classifier.

Host-side maths (POT, eigendecompositions) uses NumPy float64; the classifier trains
and runs in the caller's Array API namespace ``xp``.

Every public function validates at entry (:mod:`refimpl.validation`): labels are integer
arrays in ``0..K-1``; counts and sizes are integers >= 1.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import pathlib

import numpy as _np  # host side: POT inputs, eigendecompositions, cache files

from . import validation as checks
from .backend import device_of, from_host, namespace, to_numpy
from .checkpoint import atomic_write
from . import metrics
from .nn import MLP
from .optim import make_optimiser

__all__ = ["image_w1", "sqrtm_psd", "frechet_distance_gaussians", "frechet_distance",
           "softmax_cross_entropy", "train_classifier", "classifier_features", "classifier_accuracy",
           "ClassifierFrechet"]


# ----------------------------------------------------------------------------- exact W1
def _flat_host(x, name):
    x = checks.array(x, name)
    if x.ndim < 2:
        raise ValueError(f"{name} must have shape (N, ...) with N images, got {tuple(x.shape)}")
    a = _np.asarray(to_numpy(x), dtype=_np.float64)
    return a.reshape(a.shape[0], -1)


@checks.checked()
def image_w1(x, y, *, num_itermax=None):
    """Exact W1 between two image sets in pixel space, Euclidean ground cost.

    .. math:: W_1 = \\min_{P \\in \\Pi(1_n/n, 1_m/m)} \\sum_{ij} P_{ij} \\|x_i - y_j\\|_2

    Parameters
    ----------
    x : array, shape (n, C, H, W) or (n, d)
    y : array, shape (m, C, H, W) or (m, d)
        Any backend; flattened row-major and copied to host float64.
    num_itermax : int, optional
        Network-simplex iteration cap (see :func:`refimpl.metrics.w1`).

    Returns
    -------
    float

    Raises
    ------
    TypeError, ValueError
        By the input rules below, or when the two
        sets have different numbers of coordinates.
    RuntimeError
        When POT does not reach the optimum.
    """
    num_itermax = None if num_itermax is None else checks.integer(num_itermax, "num_itermax", ge=1)
    a, b = _flat_host(x, "x"), _flat_host(y, "y")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"y has {b.shape[1]} coordinates per image, x has {a.shape[1]}")
    return metrics.w1.unchecked(a, b, num_itermax)


# ----------------------------------------------------------------------------- Frechet distance
@checks.checked()
def sqrtm_psd(S):
    """Symmetric PSD square root by eigendecomposition (host float64).

    ``S = V diag(e) V^T`` (``numpy.linalg.eigh`` of the symmetrised ``S``), then
    ``S^(1/2) = V diag(sqrt(max(e, 0))) V^T``; eigenvalues below 0 (round-off) are set to 0.

    Parameters
    ----------
    S : array, shape (d, d), d >= 1, finite

    Returns
    -------
    numpy.ndarray, shape (d, d), symmetric PSD.
    """
    S = _host(S, "S", ndim=2)
    if S.shape[0] != S.shape[1]:
        raise ValueError(f"S must be square, got shape {S.shape}")
    return _sqrtm_psd(S)


def _host(a, name, **kw):
    return _np.asarray(to_numpy(checks.array(a, name, **kw)), dtype=_np.float64)


def _sqrtm_psd(S):
    e, V = _np.linalg.eigh(0.5 * (S + S.T))
    return (V * _np.sqrt(_np.maximum(e, 0.0))) @ V.T


@checks.checked()
def frechet_distance_gaussians(mu1, S1, mu2, S2):
    """Frechet (squared W2) distance between ``N(mu1, S1)`` and ``N(mu2, S2)``.

    Dowson & Landau (1982); the FID formula of Heusel et al. (2017):

    .. math:: d^2 = \\|\\mu_1 - \\mu_2\\|^2 + \\operatorname{tr} S_1 + \\operatorname{tr} S_2
              - 2 \\operatorname{tr} (S_1^{1/2} S_2 S_1^{1/2})^{1/2}

    The trace term is computed from the eigenvalues of the symmetric PSD matrix
    ``S_1^{1/2} S_2 S_1^{1/2}`` (negative round-off eigenvalues set to 0); it equals
    ``tr (S_1 S_2)^{1/2}`` of the usual statement.

    Parameters
    ----------
    mu1, mu2 : array, shape (d,)
    S1, S2 : array, shape (d, d), symmetric PSD
        Finite (any backend, computed on the host).

    Returns
    -------
    float, >= 0 (clipped at 0 against round-off).
    """
    mu1 = _host(mu1, "mu1", ndim=1)
    d = mu1.shape[0]
    mu2 = _host(mu2, "mu2", shape=(d,))
    S1, S2 = _host(S1, "S1", shape=(d, d)), _host(S2, "S2", shape=(d, d))
    return _frechet_distance_gaussians(mu1, S1, mu2, S2)


def _frechet_distance_gaussians(mu1, S1, mu2, S2):
    A = _sqrtm_psd(S1)
    M = A @ S2 @ A
    ev = _np.linalg.eigvalsh(0.5 * (M + M.T))
    tr_sqrt = float(_np.sum(_np.sqrt(_np.maximum(ev, 0.0))))
    diff = mu1 - mu2
    return max(float(diff @ diff + _np.trace(S1) + _np.trace(S2) - 2.0 * tr_sqrt), 0.0)


def _moments(f, name="features"):
    f = _host(f, name, ndim=2)
    if f.shape[0] < 2:
        raise ValueError(f"{name} must have shape (N, k) with N >= 2, got {f.shape}")
    return f.mean(axis=0), _np.cov(f, rowvar=False, ddof=1).reshape(f.shape[1], f.shape[1])


@checks.checked()
def frechet_distance(f1, f2):
    """Frechet distance between Gaussians fitted to two feature sets (sample mean, covariance
    with ``ddof=1``); see :func:`frechet_distance_gaussians`.

    Parameters
    ----------
    f1 : array, shape (n, k); f2 : array, shape (m, k), n, m >= 2 (any backend; host
        float64)

    Returns
    -------
    float
    """
    m1, m2 = _moments(f1, "f1"), _moments(f2, "f2")
    if m1[0].shape != m2[0].shape:
        raise ValueError(f"f2 has {m2[0].shape[0]} features per row, f1 has {m1[0].shape[0]}")
    return _frechet_distance_gaussians(m1[0], m1[1], m2[0], m2[1])


# ----------------------------------------------------------------------------- classifier
@checks.checked()
def softmax_cross_entropy(logits, labels):
    """Mean softmax cross-entropy and its gradient w.r.t. the logits.

    .. math:: \\ell = \\frac1B \\sum_b \\Big(\\log \\sum_k e^{z_{bk}} - z_{b y_b}\\Big), \\qquad
              \\frac{\\partial \\ell}{\\partial z_{bk}} = \\frac{\\operatorname{softmax}(z_b)_k - [k = y_b]}{B}

    (log-sum-exp shifted by the row maximum, so it never overflows).

    Parameters
    ----------
    logits : array, shape (B, K), B, K >= 1, finite
    labels : array, shape (B,), integer in ``0..K-1`` (same namespace and device)

    Returns
    -------
    loss : 0-d array; dlogits : array (B, K)
    """
    logits = checks.array(logits, "logits", ndim=2)
    labels = _labels(labels, logits.shape[1], namespace(logits), logits.shape[0])
    return _softmax_cross_entropy(logits, labels)


def _labels(labels, K, xp, n):
    """Integer labels of shape (n,) in ``0..K-1`` (``K=None``: >= 0 only); one reduction."""
    if not checks.is_array(labels):
        raise TypeError(f"labels must be an integer array, got {type(labels).__name__}")
    if namespace(labels) is not xp:
        raise TypeError(f"labels lives in {namespace(labels).__name__}, the other inputs in {xp.__name__}")
    if not xp.isdtype(labels.dtype, "integral"):
        raise TypeError(f"labels must be an integer array, got dtype {labels.dtype}")
    if tuple(labels.shape) != (n,):
        raise ValueError(f"labels must have shape ({n},), got {tuple(labels.shape)}")
    if n:
        lo, hi = (int(v) for v in to_numpy(xp.stack([xp.min(labels), xp.max(labels)])))
        if lo < 0 or (K is not None and hi >= K):
            raise ValueError(f"labels must lie in 0..{'K-1' if K is None else K - 1}, got range {lo}..{hi}")
    return labels


def _softmax_cross_entropy(logits, labels):
    xp = namespace(logits, labels)
    B, K = logits.shape
    z = logits - xp.max(logits, axis=1, keepdims=True)
    logp = z - xp.log(xp.sum(xp.exp(z), axis=1, keepdims=True))
    ks = xp.arange(K, dtype=labels.dtype, device=device_of(labels))
    onehot = xp.astype(xp.reshape(labels, (B, 1)) == xp.reshape(ks, (1, K)), logits.dtype)
    loss = -xp.sum(onehot * logp) / B
    return loss, (xp.exp(logp) - onehot) / B


@checks.checked()
def classifier_features(mlp, params, images, batch=1000):
    """Penultimate-layer activations ``h_{L-1}`` of the classifier (host float64).

    Parameters
    ----------
    images : array, shape (N, C, H, W) or (N, d) in the classifier's namespace and dtype, finite
    batch : int >= 1

    Returns
    -------
    numpy.ndarray, shape (N, mlp.sizes[-2])
    """
    params, x, batch = _classifier_inputs(mlp, params, images, batch)
    return _classifier_features(mlp, params, x, batch)


def _classifier_inputs(mlp, params, images, batch):
    if not isinstance(mlp, MLP):
        raise TypeError(f"mlp must be a refimpl.nn.MLP, got {type(mlp).__name__}")
    batch = checks.integer(batch, "batch", ge=1)
    images = checks.array(images, "images", finite=False, nonempty=False)
    if images.ndim < 2:
        raise ValueError(f"images must have shape (N, ...), got {tuple(images.shape)}")
    xp = namespace(images)
    flat = xp.reshape(images, (images.shape[0], math.prod(images.shape[1:])))
    params, x = mlp.validate(params, ("images", flat, (None, mlp.sizes[0])))
    return params, x, batch


def _classifier_features(mlp, params, x, batch=1000):
    out = [_np.zeros((0, mlp.sizes[-2]))]
    n = x.shape[0]
    for i in range(0, n, batch):
        _, cache = mlp.forward.unchecked(params, x[i:min(i + batch, n), :])
        out.append(_np.asarray(to_numpy(cache.hs[-2]), dtype=_np.float64))
    return _np.concatenate(out, axis=0)


@checks.checked()
def classifier_accuracy(mlp, params, images, labels, batch=1000):
    """Fraction of ``images`` whose arg-max logit equals the label (host float).

    ``images`` (N, ...) finite, ``labels`` (N,) integer, N >= 1, ``batch`` >= 1."""
    params, x, batch = _classifier_inputs(mlp, params, images, batch)
    if x.shape[0] == 0:
        raise ValueError("images must be non-empty")
    _labels(labels, None, namespace(x), x.shape[0])
    pred = []
    n = x.shape[0]
    for i in range(0, n, batch):
        pred.append(_np.argmax(to_numpy(mlp.forward.unchecked(params, x[i:min(i + batch, n), :])[0]), axis=1))
    return float(_np.mean(_np.concatenate(pred) == _np.asarray(to_numpy(labels))))


def _cache_key(images, labels, spec):
    h = hashlib.sha256(json.dumps(spec, sort_keys=True).encode())
    h.update(_np.ascontiguousarray(to_numpy(images), dtype=_np.float32).tobytes())
    h.update(_np.ascontiguousarray(to_numpy(labels), dtype=_np.int64).tobytes())
    return h.hexdigest()[:16]


@checks.checked()
def train_classifier(images, labels, *, hidden=(128, 64), activation="relu", steps=2000, batch_size=128,
                     lr=1e-3, seed=0, cache_dir=None, tag="classifier", progress=None):
    """Train (or load from the cache) a softmax MLP classifier for the Frechet features.

    Network ``MLP((C*H*W, *hidden, K))`` (``K = max(label) + 1``), Adam
    ``(lr, 0.9, 0.999)`` on :func:`softmax_cross_entropy` for ``steps`` mini-batches of
    ``batch_size`` images drawn with replacement (host ``numpy.random.default_rng(seed)``).
    The feature layer is ``hidden[-1]``.

    Parameters
    ----------
    images : array, shape (N, C, H, W) (any backend; training runs in its namespace and dtype)
    labels : array, shape (N,) integer (same namespace)
    cache_dir : path, optional
        Folder for the weights (``{tag}-{key}.npz``; ``key`` hashes the data and every
        setting above). A matching file is loaded instead of training; ``None``: no cache.
    progress : callable(str), optional
        Receives a line per 500 steps.

    Returns
    -------
    mlp : MLP; params : list of (W, b) in the images' namespace; info : dict
        ``cached`` (bool), ``train_loss`` (last mini-batch), ``path`` (or None).
    """
    images = checks.array(images, "images")
    if images.ndim < 2:
        raise ValueError(f"images must have shape (N, ...), got {tuple(images.shape)}")
    xp = namespace(images)
    labels = _labels(labels, None, xp, images.shape[0])
    if not isinstance(hidden, (tuple, list)) or not hidden:
        raise TypeError(f"hidden must be a non-empty tuple of layer widths, got {hidden!r}")
    hidden = tuple(checks.integer(h, "hidden", ge=1) for h in hidden)
    steps = checks.integer(steps, "steps", ge=1)
    batch_size = checks.integer(batch_size, "batch_size", ge=1)
    lr = checks.real(lr, "lr", gt=0)
    seed = checks.integer(seed, "seed", ge=0)
    x = xp.reshape(images, (images.shape[0], -1))
    dtype, dev = x.dtype, device_of(x)
    K = int(_np.max(to_numpy(labels))) + 1
    mlp = MLP((int(x.shape[1]), *(int(h) for h in hidden), K), activation, "linear")
    spec = {"sizes": list(mlp.sizes), "activation": activation, "steps": int(steps), "batch_size": int(batch_size),
            "lr": float(lr), "seed": int(seed), "dtype": "float64" if dtype == xp.float64 else "float32"}
    path = None
    if cache_dir is not None:
        path = pathlib.Path(cache_dir) / f"{tag}-{_cache_key(images, labels, spec)}.npz"
        if path.exists():
            with _np.load(path) as z:
                params = [(from_host(z[f"W{l}"], xp, dtype, dev), from_host(z[f"b{l}"], xp, dtype, dev))
                          for l in range(mlp.n_layers)]
                info = json.loads(str(z["info"]))
            return mlp, params, {**info, "cached": True, "path": str(path)}
    rng = _np.random.default_rng(seed)
    params = mlp.init(rng, xp=xp, dtype=dtype, device=dev)
    opt = make_optimiser("adam", lr=lr, beta1=0.9, beta2=0.999)
    state = opt.init(params)
    loss = None
    for t in range(1, steps + 1):
        idx = from_host(rng.integers(0, x.shape[0], size=batch_size), xp, None, dev)
        xb, yb = xp.take(x, idx, axis=0), xp.take(labels, idx, axis=0)
        logits, cache = mlp.forward.unchecked(params, xb)
        loss, dlogits = _softmax_cross_entropy(logits, yb)
        _, grads = mlp.backward.unchecked(params, cache, dlogits, need_dx=False)
        params, state = opt.step.unchecked(params, grads, state)
        if progress is not None and (t % 500 == 0 or t == steps):
            progress(f"classifier step {t}/{steps}: loss {float(to_numpy(loss)):.4f}")
    info = {"spec": spec, "train_loss": float(to_numpy(loss)) if loss is not None else math.nan}
    if path is not None:
        buf = io.BytesIO()
        arrays = {}
        for l, (W, b) in enumerate(params):
            arrays[f"W{l}"], arrays[f"b{l}"] = to_numpy(W), to_numpy(b)
        _np.savez(buf, info=_np.array(json.dumps(info)), **arrays)
        atomic_write(path, buf.getvalue())
    return mlp, params, {**info, "cached": False, "path": None if path is None else str(path)}


class ClassifierFrechet:
    """Frechet distance on classifier features against fixed reference images.

    A stand-in for FID (see the module docstring): ``score(images)`` is
    :func:`frechet_distance` between the penultimate-layer features of ``images`` and
    of ``reference``; the reference moments are computed once.

    Parameters
    ----------
    mlp, params : from :func:`train_classifier`
    reference : array, shape (N, C, H, W), e.g. held-out real images
    """

    def __init__(self, mlp, params, reference):
        params, x, _ = _classifier_inputs(mlp, params, reference, 1000)
        self.mlp, self.params = mlp, params
        self.mu, self.cov = _moments(_classifier_features(mlp, params, x), "reference features")

    @checks.checked()
    def score(self, images):
        """Frechet distance of ``images`` (N, C, H, W), N >= 2, finite, to the reference (float).
        """
        params, x, _ = _classifier_inputs(self.mlp, self.params, images, 1000)
        return _frechet_distance_gaussians(*_moments(_classifier_features(self.mlp, params, x), "images features"),
                                           self.mu, self.cov)
