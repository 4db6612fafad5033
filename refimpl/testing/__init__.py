"""Tools to check gradients and theorems numerically: the ones the project's own tests use.

Three groups (user guide with copyable examples: ``docs/testing.md``):

* **Gradient checks** (after ``torch.autograd.gradcheck``/``gradgradcheck`` and JAX's
  ``check_grads``): :func:`check_grad` (scalar functions), :func:`check_vjp` (array
  functions, by random vector-Jacobian products), :func:`check_mlp` (the four passes of
  :class:`refimpl.nn.MLP`). Central finite differences in float64 on a host copy of the
  input; inputs from any backend. A failure raises ``AssertionError`` naming the worst
  entry, its analytic and its numeric value.
* **Hypothesis strategies** (:func:`point_clouds`, :func:`ot_problems`,
  :func:`two_delta_models`, :func:`images`, :func:`mlp_specs`). Hypothesis is a test-time
  extra: it is imported when a strategy is built, never by ``import refimpl.testing``.
* **Theorem predicates**: functions that return the measured quantity of a theorem and
  its bound as a :class:`Bound` (``value <= bound`` is the claim), e.g.
  :func:`smoothing_bounds` (SWGAN Lemma 3.2: ``d_c <= d_{c,lam} <= d_c + lam I*``).
  Predicates that need an exact LP use POT (``ot``), also a test-time extra.

Everything here works on host NumPy float64 unless stated; results are Python floats.
"""
from .common import Bound, cost_matrix_host, dual_resolution, ratio_resolution
from .gradcheck import check_grad, check_mlp, check_vjp, numeric_grad
from .models import (LinearGenerator, Smoothness, image_w2, kantorovich_potential, linear_generator,
                     nonconvex_sgd, sgd_rate_bound, smoothness_bound)
from .ot_bounds import (Conjugacy, DualStability, RatioError, SmoothingBounds, composed_plan, conjugacy_residuals,
                        dual_gradient_norm, dual_stability, feasible_rounding, gradient_error, information_inequality,
                        plan_stability, ratio_error, smoothing_bounds, solver_suboptimality)
from .strategies import (Cloud, Image, MLPSpec, OTProblem, TwoDelta, images, mlp_specs, ot_problems, point_clouds,
                         two_delta_models)

__all__ = ["check_grad", "check_vjp", "numeric_grad", "check_mlp", "Bound", "point_clouds", "ot_problems",
           "two_delta_models", "images", "mlp_specs", "cost_matrix_host", "dual_resolution", "ratio_resolution", "feasible_rounding", "solver_suboptimality",
           "smoothing_bounds", "plan_stability", "ratio_error", "gradient_error", "dual_gradient_norm",
           "composed_plan", "information_inequality", "conjugacy_residuals", "kantorovich_potential",
           "linear_generator", "smoothness_bound", "dual_stability", "nonconvex_sgd", "sgd_rate_bound",
           "image_w2"]
