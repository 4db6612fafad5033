"""The training loop's checkpoint hook (refimpl.checkpointer): cadence, resume and refusals, on its own
and as train() uses it."""
import numpy as np
import pytest

from refimpl.checkpoint import CheckpointError, load, save
from refimpl.checkpointer import Checkpointer, NonFiniteLoss, Resumed, fingerprint_diff, run_fingerprint
from refimpl.gan import GANConfig, GANMethod, ToyData
from refimpl.train import train

FP = {"method": "wgan-gp", "config": {"lam": 10.0}, "seed": 0, "dtype": "float64"}


def _write(ck, it=3, state=None):
    state = {"gen": [np.arange(3.0)]} if state is None else state
    rng = np.random.default_rng(5)
    ck.write(state, it, rng.bit_generator.state, [{"iteration": it, "w1": 0.5}], seconds=1.5, eval_seconds=0.25,
             train_cpu_seconds=1.0)
    return rng.bit_generator.state


def test_write_then_resume_returns_what_was_written(tmp_path):
    ck = Checkpointer(tmp_path / "c.npz", FP)
    assert ck.saved is None and ck.kept() == "no checkpoint was written"
    rng_state = _write(ck)
    assert ck.saved == (tmp_path / "c.npz", 3) and "iteration 3" in ck.kept()
    point = Checkpointer(tmp_path / "c.npz", FP).resume(tmp_path / "c.npz", iters=10)
    assert isinstance(point, Resumed)
    assert (point.iteration, point.seconds, point.eval_seconds, point.train_cpu_seconds) == (3, 1.5, 0.25, 1.0)
    assert point.rng == rng_state and point.curve == [{"iteration": 3, "w1": 0.5}]
    np.testing.assert_array_equal(point.state["gen"][0], np.arange(3.0))
    assert load(tmp_path / "c.npz")["evaluated"] == [3]


def test_resume_of_no_file_is_none_and_no_path_writes_nothing(tmp_path):
    assert Checkpointer(tmp_path / "c.npz", FP).resume(tmp_path / "c.npz", 5) is None
    ck = Checkpointer(None, FP, every=1)
    assert not ck.due(1)
    _write(ck)
    assert ck.saved is None and list(tmp_path.iterdir()) == []


def test_due_by_iterations_and_by_clock(tmp_path):
    ck = Checkpointer(tmp_path / "c.npz", FP, every=4)
    assert [it for it in range(1, 13) if ck.due(it)] == [4, 8, 12]
    clock = Checkpointer(tmp_path / "c.npz", FP, seconds=1e-9)
    assert clock.due(1)                       # the clock has passed since construction
    assert not Checkpointer(tmp_path / "c.npz", FP, seconds=3600).due(1)


def test_resume_refuses_another_run_a_later_iteration_a_nan_state_and_a_bad_rng(tmp_path):
    path = tmp_path / "c.npz"
    _write(Checkpointer(path, FP))
    other = {**FP, "config": {"lam": 1.0}}
    with pytest.raises(ValueError, match=r"different run.*config\.lam: 10\.0 -> 1\.0"):
        Checkpointer(path, other).resume(path, 10)
    with pytest.raises(ValueError, match="beyond the requested 2 iterations"):
        Checkpointer(path, FP).resume(path, 2)
    payload = load(path)
    payload["state"]["gen"][0][1] = np.nan
    save(path, payload)
    with pytest.raises(ValueError, match=r"non-finite values in its state \(gen\)"):
        Checkpointer(path, FP).resume(path, 10)
    payload["state"]["gen"][0][1] = 0.0
    payload["rng"] = {"bit_generator": "nonsense"}
    save(path, payload)
    with pytest.raises(ValueError, match="bad RNG state"):
        Checkpointer(path, FP).resume(path, 10)
    del payload["curve"]
    save(path, payload)
    with pytest.raises(CheckpointError, match="no 'curve' entry"):
        Checkpointer(path, FP).resume(path, 10)


def test_a_non_finite_state_is_never_written(tmp_path):
    ck = Checkpointer(tmp_path / "c.npz", FP)
    with pytest.raises(NonFiniteLoss, match=r"state \(gen\) at iteration 3; no checkpoint was written"):
        _write(ck, state={"gen": [np.array([1.0, np.inf])]})
    assert not (tmp_path / "c.npz").exists()


def test_fingerprint_diff_accepts_a_new_field_at_its_default_only():
    old = run_fingerprint(GANMethod(GANConfig()), seed=0, dtype="float64")
    new = dict(old, config={**old["config"]})
    del old["config"]["lam"]
    assert fingerprint_diff(old, new, GANConfig) == []
    new["config"]["lam"] = 3.0
    assert fingerprint_diff(old, new, GANConfig) == ["config.lam: (absent, default) -> 3.0"]


def test_train_resumes_through_the_checkpointer_bit_identical(tmp_path):
    import numpy
    cfg = GANConfig(gen_hidden=(16,), critic_hidden=(16,), batch_size=32, n_critic=2)
    data = ToyData("ring8", numpy, "float64")
    run = dict(xp=numpy, dtype="float64", progress=False)
    whole = train(GANMethod(cfg), data, iters=6, **run)
    first = train(GANMethod(cfg), data, iters=1, **run)
    assert not np.array_equal(first.state["gen"][0][0], whole.state["gen"][0][0])   # training moves it
    path = tmp_path / "c.npz"
    train(GANMethod(cfg), data, iters=3, checkpoint_path=path, **run)
    assert load(path)["iteration"] == 3
    rest = train(GANMethod(cfg), data, iters=6, checkpoint_path=path, resume=True, **run)
    assert rest.iterations == 6 and load(path)["iteration"] == 6
    for (w, b), (w2, b2), (w3, b3) in zip(whole.state["gen"], rest.state["gen"], load(path)["state"]["gen"]):
        for x, y, z in ((w, w2, w3), (b, b2, b3)):
            np.testing.assert_array_equal(x, y)
            np.testing.assert_array_equal(x, z)
