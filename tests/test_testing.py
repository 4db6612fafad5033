"""Tests of refimpl.testing: the gradient checks catch wrong gradients, the strategies draw
what they promise, the predicates' bounds are the statements, and hypothesis stays lazy."""
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given

from refimpl.backend import from_host, to_numpy
from refimpl.nn import MLP
from refimpl.testing import (Bound, check_grad, check_mlp, check_vjp, images, mlp_specs, numeric_grad, ot_problems,
                             point_clouds, two_delta_models)


def _f(xp):
    return lambda x: xp.sum(xp.sin(x) * x * x)


def _g(x, xp):
    return xp.cos(x) * x * x + 2 * xp.sin(x) * x


def test_check_grad_passes_and_names_the_worst_entry(xp):
    x = from_host(np.random.default_rng(0).standard_normal((3, 4)), xp)
    err = check_grad(_f(xp), _g(x, xp), x)
    assert err < 1e-8
    bad = to_numpy(_g(x, xp)).copy()
    bad[1, 2] += 1e-3
    with pytest.raises(AssertionError, match=r"index \(1, 2\): analytic .*numeric") as e:
        check_grad(_f(xp), from_host(bad, xp), x)
    assert repr(float(bad[1, 2])) in str(e.value)


def test_check_grad_pytrees_callables_and_subsets(xp):
    rng = np.random.default_rng(1)
    tree = [(from_host(rng.standard_normal((2, 3)), xp), from_host(rng.standard_normal(3), xp))]
    f = lambda p: xp.sum(p[0][0] ** 2) + xp.sum(xp.exp(p[0][1]))
    grad = lambda p: [(2 * p[0][0], xp.exp(p[0][1]))]
    assert check_grad(f, grad, tree, max_entries=4) < 1e-7
    fd = numeric_grad(f, tree)
    np.testing.assert_allclose(fd[0][0], 2 * to_numpy(tree[0][0]), rtol=1e-8)
    with pytest.raises(AssertionError, match="leaf 1"):
        check_grad(f, [(2 * tree[0][0], 2 * xp.exp(tree[0][1]))], tree)


def test_check_vjp_catches_a_transposed_jacobian(xp):
    A = np.random.default_rng(2).standard_normal((3, 5))
    Ad = from_host(A, xp)
    x = from_host(np.random.default_rng(3).standard_normal(5), xp)
    f = lambda z: Ad @ z
    assert check_vjp(f, lambda u: u @ Ad, x) < 1e-8
    with pytest.raises(AssertionError, match="vjp"):
        check_vjp(f, lambda u: xp.flip(u @ Ad), x)


@given(spec=mlp_specs(out_dim=1, width=(1, 8), batch=(1, 4)))
def test_check_mlp_all_four_passes(xp, spec):
    params = [(from_host(W, xp), from_host(b, xp)) for W, b in spec.params]
    try:
        out = check_mlp(spec.mlp, params, from_host(spec.x, xp), max_entries=12)
    except ValueError as e:     # a pre-activation on a ReLU kink: finite differences undefined
        assert "kink" in str(e)
        return
    assert set(out) == {"forward", "backward_params", "backward_x", "input_gradient", "double_backward_params",
                        "double_backward_x"}


def test_check_mlp_catches_a_wrong_double_backward(xp):
    class Broken(MLP):
        def input_gradient_vjp(self, params, tape, u, need_dx=True, need_params=True):
            dx, grads = super().input_gradient_vjp(params, tape, u, need_dx, need_params)
            return dx, [(1.01 * W, b) for W, b in grads]

    net = Broken((2, 5, 1), "tanh")
    rng = np.random.default_rng(4)
    params = [(from_host(W, xp), from_host(b + 0.3, xp)) for W, b in net.init(rng, xp=np, dtype="float64")]
    x = from_host(rng.standard_normal((3, 2)), xp)
    with pytest.raises(AssertionError, match="double backward"):
        check_mlp(net, params, x)
    ok = MLP((2, 5, 1), "tanh")
    assert check_mlp(ok, params, x)["double_backward_params"] < 1e-6


@given(cl=point_clouds(), pb=ot_problems(), td=two_delta_models(), im=images())
def test_strategies_draw_valid_objects(cl, pb, td, im):
    for w, n in ((cl.a, cl.x.shape[0]), (cl.b, cl.y.shape[0]), (pb.a, pb.C.shape[0]), (pb.b, pb.C.shape[1])):
        assert w.shape == (n,) and np.all(w > 0) and abs(w.sum() - 1) < 1e-12
    assert np.all(pb.C >= 0) and pb.lam > 0 and pb.reg in ("kl", "l2")
    assert td.theta[0] < 0 < td.theta[1] and 0 <= td.alpha <= 1 and td.h > 0
    assert np.all(im.X >= 0) and im.X.ndim == 3 and im.X.shape[1] * im.X.shape[2] >= 2
    assert im.mass == pytest.approx(im.X.sum())


def test_bound_check():
    assert Bound(1.0, 1.0).holds()
    assert Bound(1.0 + 1e-3, 1.0, slack=2e-3).holds()
    with pytest.raises(AssertionError, match="my claim"):
        Bound(2.0, 1.0).check("my claim")


def test_import_does_not_need_hypothesis():
    code = "import sys, refimpl.testing; assert 'hypothesis' not in sys.modules and 'ot' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_docs_examples_run():
    """Every python block of docs/testing.md runs as written (the user guide cannot rot)."""
    import pathlib
    import re
    text = (pathlib.Path(__file__).resolve().parents[1] / "docs" / "testing.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 4
    for code in blocks:
        exec(compile(code, "docs/testing.md", "exec"), {})
