"""Training loop: determinism, atomic checkpoints, bit-identical resume, Ctrl-C, non-finite stops."""
import numpy as np
import pytest

from refimpl.backend import to_numpy
from refimpl.checkpoint import load
from refimpl.train import GANConfig, GANMethod, NonFiniteLoss, ToyData, train

SMALL = GANConfig(gen_hidden=(16, 16), critic_hidden=(16, 16), batch_size=32, n_critic=2)


def _run(xp, tmp_path, iters, method=None, **kw):
    method = method or GANMethod(SMALL)
    return train(method, ToyData("grid25", xp, "float64"), xp=xp, dtype="float64", seed=3, iters=iters,
                 eval_fn=lambda st, it: {"it_seen": it}, eval_every=2, progress=False, **kw)


def _assert_same_params(a, b):
    for (W1, b1), (W2, b2) in zip(a, b):
        assert np.array_equal(to_numpy(W1), to_numpy(W2)) and np.array_equal(to_numpy(b1), to_numpy(b2))


def test_one_seed_is_deterministic(xp, tmp_path):
    r1 = _run(xp, tmp_path, 4)
    r2 = _run(xp, tmp_path, 4)
    _assert_same_params(r1.state["gen"], r2.state["gen"])
    _assert_same_params(r1.state["critic"], r2.state["critic"])


def test_resume_is_bit_identical(xp, tmp_path):
    full = _run(xp, tmp_path, 8, checkpoint_path=tmp_path / "a.pkl", checkpoint_every=2)
    _run(xp, tmp_path, 5, checkpoint_path=tmp_path / "b.pkl", checkpoint_every=2)
    assert load(tmp_path / "b.pkl")["iteration"] == 5
    resumed = _run(xp, tmp_path, 8, checkpoint_path=tmp_path / "b.pkl", checkpoint_every=2, resume=True)
    _assert_same_params(full.state["gen"], resumed.state["gen"])
    _assert_same_params(full.state["critic"], resumed.state["critic"])
    for k in ("m", "v"):
        for x, y in zip(full.state["opt_critic"][k], resumed.state["opt_critic"][k]):
            assert np.array_equal(to_numpy(x), to_numpy(y))
    # the shorter run's final evaluation (iteration 5) stays in the curve; every other row matches
    assert [r["iteration"] for r in resumed.curve] == [2, 4, 5, 6, 8]
    untimed = lambda rows: [{k: v for k, v in r.items() if k not in ("seconds", "train_seconds", "train_cpu_seconds")} for r in rows]
    assert untimed(r for r in resumed.curve if r["iteration"] != 5) == untimed(full.curve)


class _Interrupting(GANMethod):
    def __init__(self, cfg, at):
        super().__init__(cfg)
        self.at, self.calls = at, 0

    def outer_step(self, state, rng, data):
        self.calls += 1
        if self.calls == self.at:
            rng.standard_normal(7)            # the interrupt lands mid-iteration, after some draws
            raise KeyboardInterrupt
        return super().outer_step(state, rng, data)


def test_ctrl_c_writes_checkpoint_and_resume_is_bit_identical(xp, tmp_path):
    full = _run(xp, tmp_path, 7)
    ck = tmp_path / "c.pkl"
    part = _run(xp, tmp_path, 7, method=_Interrupting(SMALL, at=5), checkpoint_path=ck)
    assert part.interrupted and part.iterations == 4
    assert load(ck)["iteration"] == 4
    resumed = _run(xp, tmp_path, 7, checkpoint_path=ck, resume=True)
    assert [r["iteration"] for r in resumed.curve] == [r["iteration"] for r in full.curve]
    _assert_same_params(full.state["gen"], resumed.state["gen"])
    _assert_same_params(full.state["critic"], resumed.state["critic"])


class _Exploding(GANMethod):
    def outer_step(self, state, rng, data):
        state, logs = super().outer_step(state, rng, data)
        self.n = getattr(self, "n", 0) + 1
        if self.n == 5:
            xp = data.xp
            logs = {**logs, "gen_loss": xp.asarray(float("nan"))}
        return state, logs


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(xp, tmp_path):
    ck = tmp_path / "d.pkl"
    with pytest.raises(NonFiniteLoss, match="non-finite gen_loss at iteration 5"):
        _run(xp, tmp_path, 10, method=_Exploding(SMALL), checkpoint_path=ck, checkpoint_every=2)
    saved = load(ck)
    assert saved["iteration"] == 4
    assert all(np.all(np.isfinite(a)) for Wb in saved["state"]["gen"] for a in Wb)


def test_resume_refuses_a_different_run(xp, tmp_path):
    ck = tmp_path / "e.pkl"
    _run(xp, tmp_path, 2, checkpoint_path=ck)
    other = GANMethod(GANConfig(gen_hidden=(8,), critic_hidden=(8,), batch_size=32))
    with pytest.raises(ValueError, match="different run"):
        _run(xp, tmp_path, 4, method=other, checkpoint_path=ck, resume=True)


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    """A crash while writing leaves the previous checkpoint intact and no temp file behind."""
    import os
    from refimpl import checkpoint
    ck = tmp_path / "f.pkl"
    checkpoint.save(ck, {"iteration": 1})

    def boom(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        checkpoint.save(ck, {"iteration": 2})
    assert checkpoint.load(ck)["iteration"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["f.pkl"]


@pytest.mark.parametrize("kw,msg", [({"iters": 0}, "iters must be"), ({"iters": 3, "checkpoint_every": 2}, "checkpoint_path")])
def test_bad_loop_arguments(xp, tmp_path, kw, msg):
    with pytest.raises(ValueError, match=msg):
        train(GANMethod(SMALL), ToyData("grid25", xp, "float64"), xp=xp, dtype="float64", progress=False, **kw)


@pytest.mark.parametrize("kw,msg", [({"n_critic": 0}, "n_critic"), ({"lam": -1.0}, "lam"), ({"batch_size": 0}, "batch_size"),
                                    ({"objective": "wgan-xx"}, "unknown objective"), ({"optimiser": "adagrad"}, "unknown optimiser"),
                                    ({"lr_gen": 0.0}, "learning rate")])
def test_bad_configs(kw, msg):
    with pytest.raises(ValueError, match=msg):
        GANConfig(**kw)


def test_wgan_clipping_keeps_weights_in_bounds(xp, tmp_path):
    method = GANMethod(GANConfig(objective="wgan", optimiser="rmsprop", lr_critic=0.1, gen_hidden=(8,),
                                 critic_hidden=(8,), batch_size=16))
    res = _run(xp, tmp_path, 3, method=method)
    for W, b in res.state["critic"]:
        assert np.max(np.abs(to_numpy(W))) <= 0.01 and np.max(np.abs(to_numpy(b))) <= 0.01


def test_resume_accepts_a_checkpoint_from_before_a_new_default_field(xp, tmp_path):
    """A checkpoint written before a config field existed resumes when the field is at its
    default, and is refused when it is not."""
    import pickle
    ck = tmp_path / "g.pkl"
    full = _run(xp, tmp_path, 6)
    _run(xp, tmp_path, 3, checkpoint_path=ck)
    payload = pickle.loads(ck.read_bytes())
    del payload["fingerprint"]["config"]["data_scale"]          # as written by an older version
    ck.write_bytes(pickle.dumps(payload))
    resumed = _run(xp, tmp_path, 6, checkpoint_path=ck, resume=True)
    _assert_same_params(full.state["gen"], resumed.state["gen"])
    import dataclasses
    other = GANMethod(dataclasses.replace(SMALL, data_scale=2.0))
    ck.write_bytes(pickle.dumps(payload))
    with pytest.raises(ValueError, match="different run"):
        _run(xp, tmp_path, 6, method=other, checkpoint_path=ck, resume=True)
