"""The convolution benchmark's step functions (``toy.bench_conv``) at a tiny size: refimpl's WGAN-GP
critic gradient and Adam update equal PyTorch autograd's for the same weights and inputs (float64), and
the gradients are not trivially zero. Skipped without PyTorch (the benchmark's peer, never a dependency)."""
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is the benchmark peer (pip install torch)")

from toy import bench_conv  # noqa: E402


@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 28, 28)])
def test_bench_conv_gradients_match_torch(shape):
    p = bench_conv.parity(image_shape=shape, width=8, batch=2, seed=1)
    assert p["loss"] <= bench_conv.PARITY_TOL
    assert p["grads"] <= bench_conv.PARITY_TOL
    assert p["update"] <= bench_conv.UPDATE_TOL
    grads = p["refimpl_grads"]
    net = bench_conv.dcgan_critic(shape, 8)
    assert len(grads) == net.n_layers
    for l, (gW, gb) in enumerate(grads):
        assert np.all(np.isfinite(gW)) and np.all(np.isfinite(gb))
        assert np.max(np.abs(gW)) > 1e-6, f"layer {l}: zero weight gradient"
        # the output bias drops out of the loss (a constant shift of D cancels): its gradient is 0
        if gb.shape[0] and l < net.n_layers - 1:
            assert np.max(np.abs(gb)) > 1e-6, f"layer {l}: zero bias gradient"


def test_bench_conv_step_closures_run_and_move_the_weights():
    net, params, real, fake, rs, ts, rf, tf = bench_conv.setup(torch, width=8, batch=2, dtype="float64")
    before = np.concatenate([np.ravel(a) for Wb in params for a in Wb])
    rs()
    ts()
    after = rs.params.buffer
    assert after.shape == before.shape and np.max(np.abs(after - before)) > 0
    y, _ = rf()
    assert y.shape == (4, 1) and tuple(tf().shape) == (4, 1)
