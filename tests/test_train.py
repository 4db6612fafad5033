"""Training loop: determinism, atomic checkpoints, bit-identical resume, Ctrl-C, non-finite stops."""
import io
import time

import numpy as np
import pytest

from refimpl.backend import to_numpy
from refimpl.checkpoint import load
from refimpl.train import GANConfig, GANMethod, NonFiniteLoss, ToyData, train

SMALL = GANConfig(gen_hidden=(16, 16), critic_hidden=(16, 16), batch_size=32, n_critic=2)


def _run(xp, tmp_path, iters, method=None, **kw):
    method = method or GANMethod(SMALL)
    kw = {"eval_fn": lambda st, it: {"it_seen": it}, "eval_every": 2, "progress": False, **kw}
    return train(method, ToyData("grid25", xp, "float64"), xp=xp, dtype="float64", seed=3, iters=iters, **kw)


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
    # check_every=1, the CPU default, on every backend: on CuPy (default 50) the losses of iteration
    # 5 are read only if it is a check, evaluation or checkpoint (the first GPU run failed here)
    ck = tmp_path / "d.pkl"
    with pytest.raises(NonFiniteLoss, match="non-finite gen_loss at iteration 5"):
        _run(xp, tmp_path, 10, method=_Exploding(SMALL), checkpoint_path=ck, checkpoint_every=2, check_every=1)
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
    payload = load(ck)
    del payload["fingerprint"]["config"]["data_scale"]          # as written by an older version
    ck.write_bytes(pickle.dumps(payload))                        # in the older (pickle) format
    resumed = _run(xp, tmp_path, 6, checkpoint_path=ck, resume=True)
    _assert_same_params(full.state["gen"], resumed.state["gen"])
    import dataclasses
    other = GANMethod(dataclasses.replace(SMALL, data_scale=2.0))
    ck.write_bytes(pickle.dumps(payload))
    with pytest.raises(ValueError, match="different run"):
        _run(xp, tmp_path, 6, method=other, checkpoint_path=ck, resume=True)


# ----------------------------------------------------------------------------- lifecycle faults (issue 16)
class _InterruptingEval:
    """An eval_fn that raises KeyboardInterrupt the first time it sees iteration ``at``."""

    def __init__(self, at):
        self.at, self.fired = at, False

    def __call__(self, st, it):
        if it == self.at and not self.fired:
            self.fired = True
            raise KeyboardInterrupt
        return {"it_seen": it}


def _eval_run(xp, iters, eval_fn, ck, **kw):
    return train(GANMethod(SMALL), ToyData("grid25", xp, "float64"), xp=xp, dtype="float64", seed=3, iters=iters,
                 eval_fn=eval_fn, eval_every=2, progress=False, checkpoint_path=ck, **kw)


def test_interrupted_final_evaluation_is_redone_and_nothing_retrained(tmp_path):
    ck = tmp_path / "c.npz"
    full = _run(np, tmp_path, 6)
    part = _eval_run(np, 6, _InterruptingEval(6), ck)
    assert part.interrupted and load(ck)["iteration"] == 6 and 6 not in load(ck)["evaluated"]

    class NoTraining(GANMethod):
        def outer_step(self, *a):
            raise AssertionError("a completed run was trained again")
    resumed = train(NoTraining(SMALL), ToyData("grid25", np, "float64"), xp=np, dtype="float64", seed=3, iters=6,
                    eval_fn=lambda st, it: {"it_seen": it}, eval_every=2, progress=False, checkpoint_path=ck,
                    resume=True)
    assert [r["iteration"] for r in resumed.curve] == [2, 4, 6]
    assert resumed.final_metrics["it_seen"] == 6
    assert load(ck)["evaluated"] == [2, 4, 6]
    _assert_same_params(full.state["gen"], resumed.state["gen"])
    again = train(NoTraining(SMALL), ToyData("grid25", np, "float64"), xp=np, dtype="float64", seed=3, iters=6,
                  eval_fn=lambda st, it: {"it_seen": it}, eval_every=2, progress=False, checkpoint_path=ck, resume=True)
    assert [r["iteration"] for r in again.curve] == [2, 4, 6]


def test_interrupted_intermediate_evaluation_is_redone(tmp_path):
    ck = tmp_path / "c.npz"
    _eval_run(np, 6, _InterruptingEval(4), ck)
    assert load(ck)["iteration"] == 4
    resumed = _eval_run(np, 6, lambda st, it: {"it_seen": it}, ck, resume=True)
    assert [r["iteration"] for r in resumed.curve] == [2, 4, 6]


def test_resume_refuses_fewer_iterations_than_the_checkpoint(tmp_path):
    ck = tmp_path / "c.npz"
    _run(np, tmp_path, 3, checkpoint_path=ck)
    with pytest.raises(ValueError, match="at iteration 3, beyond the requested 2"):
        _run(np, tmp_path, 2, checkpoint_path=ck, resume=True)
    assert load(ck)["iteration"] == 3


def test_checkpoint_cadence_is_independent_of_check_cadence(tmp_path, monkeypatch):
    from refimpl import checkpointer as train_mod
    written = []
    real = train_mod.save_checkpoint
    monkeypatch.setattr(train_mod, "save_checkpoint", lambda p, payload: (written.append(payload["iteration"]),
                                                                          real(p, payload)))
    _run(np, tmp_path, 10, checkpoint_path=tmp_path / "c.npz", checkpoint_every=3, check_every=4)
    assert written == [3, 6, 9, 10]


def test_wall_clock_checkpoint_cadence(tmp_path, monkeypatch):
    from refimpl import checkpointer as train_mod
    written = []
    real = train_mod.save_checkpoint
    monkeypatch.setattr(train_mod, "save_checkpoint", lambda p, payload: (written.append(payload["iteration"]),
                                                                          real(p, payload)))
    _run(np, tmp_path, 4, checkpoint_path=tmp_path / "c.npz", checkpoint_seconds=1e-9, check_every=0)
    assert written == [1, 2, 3, 4]
    written.clear()
    _run(np, tmp_path, 4, checkpoint_path=tmp_path / "d.npz", checkpoint_seconds=3600.0)
    assert written == [4]


class _Diverging(GANMethod):
    """From outer step ``at`` on, the first weight matrix of ``net`` is NaN (a divergence that
    persists). Step ``at``'s own losses were computed before its update, so they are finite."""
    def __init__(self, config, at, net="critic"):
        super().__init__(config)
        self.at, self.net = at, net

    def outer_step(self, state, rng, data):
        state, logs = super().outer_step(state, rng, data)
        self.n = getattr(self, "n", 0) + 1
        if self.n >= self.at:
            W = state[self.net][0][0]               # a view into the network's flat buffer
            W *= float("nan")
        return state, logs


class _InterruptedAfterDivergence(_Diverging):
    """Diverges at step ``at`` (finite losses) and is interrupted during the next step."""
    def outer_step(self, state, rng, data):
        if getattr(self, "n", 0) == self.at:
            raise KeyboardInterrupt
        return super().outer_step(state, rng, data)


def test_sparse_check_cadence_stops_a_divergence_at_the_next_evaluation(xp, tmp_path):
    """With CuPy's default cadence (check_every=50) the losses are read at checks, evaluations
    (every 2 iterations in ``_run``) and checkpoints: the NaN losses of iteration 6 stop the run."""
    ck = tmp_path / "g.pkl"
    with pytest.raises(NonFiniteLoss, match=r"non-finite [a-z_, ]+ at iteration 6 \(.*; the last good checkpoint .* iteration 4\)"):
        _run(xp, tmp_path, 100, method=_Diverging(SMALL, at=5), checkpoint_path=ck, checkpoint_every=4, check_every=50)
    assert load(ck)["iteration"] == 4


def test_sparse_check_cadence_reads_the_losses_before_every_checkpoint(xp, tmp_path):
    """Iterations 6 and 7 are no check and no evaluation; 7 is a checkpoint: its NaN losses stop
    the run there, and nothing is written."""
    ck = tmp_path / "h.pkl"
    with pytest.raises(NonFiniteLoss, match=r"non-finite [a-z_, ]+ at iteration 7 \(.*no checkpoint was written"):
        _run(xp, tmp_path, 100, method=_Diverging(SMALL, at=6), checkpoint_path=ck, checkpoint_every=7,
             check_every=50, eval_every=0)
    assert not ck.exists()


def test_a_state_that_diverged_after_its_losses_is_never_checkpointed(xp, tmp_path):
    """Step 10's losses are finite but its update made the critic NaN: the checkpoint due at 10
    is refused and the one of iteration 5 is kept, finite."""
    ck = tmp_path / "i.pkl"
    with pytest.raises(NonFiniteLoss, match=r"non-finite values in the state \(critic\) at iteration 10; "
                                            r"the last good checkpoint .* iteration 5\)"):
        _run(xp, tmp_path, 100, method=_Diverging(SMALL, at=10), checkpoint_path=ck, checkpoint_every=5,
             check_every=1, eval_every=0)
    saved = load(ck)
    assert saved["iteration"] == 5
    assert all(np.all(np.isfinite(a)) for Wb in saved["state"]["critic"] for a in Wb)


def test_an_evaluation_never_sees_a_non_finite_state(xp, tmp_path):
    """The generator's update at step 10 is NaN (finite losses): the evaluation due at 10 is not
    run, and the error names the iteration (not an evaluation's complaint about its samples)."""
    seen = []
    with pytest.raises(NonFiniteLoss, match=r"non-finite values in the state \(gen\) at iteration 10; no checkpoint"):
        _run(xp, tmp_path, 100, method=_Diverging(SMALL, at=10, net="gen"), eval_every=5, check_every=1,
             eval_fn=lambda st, it: seen.append(it) or {"it_seen": it})
    assert seen == [5]


def test_an_interrupt_does_not_checkpoint_a_non_finite_state(xp, tmp_path):
    ck = tmp_path / "j.pkl"
    """Step 8 diverges with finite losses; Ctrl-C during step 9 would checkpoint step 8's state."""
    with pytest.raises(NonFiniteLoss, match=r"^interrupted, and non-finite values in the state \(critic\) at "
                                            r"iteration 8; the last good checkpoint .* iteration 5\)"):
        _run(xp, tmp_path, 100, method=_InterruptedAfterDivergence(SMALL, at=8), checkpoint_path=ck,
             checkpoint_every=5, check_every=1, eval_every=0)
    assert load(ck)["iteration"] == 5


def test_resume_refuses_a_checkpoint_whose_state_is_not_finite(xp, tmp_path):
    """A checkpoint written before states were checked may hold NaN: it is not resumed."""
    from refimpl.checkpoint import save
    ck = tmp_path / "k.pkl"
    _run(xp, tmp_path, 4, checkpoint_path=ck)
    payload = load(ck)
    (W, b), *rest = payload["state"]["gen"]
    W = W.copy()
    W[0, 0] = np.inf
    save(ck, {**payload, "state": {**payload["state"], "gen": [(W, b), *rest]}})
    with pytest.raises(ValueError, match=r"k.pkl holds non-finite values in its state \(gen\); refusing"):
        _run(xp, tmp_path, 8, checkpoint_path=ck, resume=True)


def test_non_finite_parts_names_every_part_with_a_nan_or_an_infinity():
    from refimpl.checkpointer import non_finite_parts as _non_finite_parts
    ok = np.ones((2, 2))
    state = {"gen": [(ok, ok), (ok, np.array([1.0, np.inf]))],        # in a later leaf
             "critic": [(ok, ok)],
             "opt": {"t": np.array([3, 4]), "lr": float("nan")},       # a Python float
             "step": 7, "name": "x", "none": None, "scalar": np.array(np.nan, dtype=np.float32)}
    assert _non_finite_parts(state) == ["gen", "opt", "scalar"]
    assert _non_finite_parts({"gen": [(ok, ok)], "count": np.array([2**62])}) == []


def test_non_finite_message_is_true_without_a_checkpoint(tmp_path):
    ck = tmp_path / "none.npz"
    with pytest.raises(NonFiniteLoss, match="no checkpoint was written"):
        _run(np, tmp_path, 10, method=_Exploding(SMALL), checkpoint_path=ck)
    assert not ck.exists()


@pytest.mark.parametrize("payload,reason", [([1, 2], "a list, not a dict"), ({"iteration": 1}, "no 'fingerprint'"),
                                            ({"fingerprint": {}, "state": {}, "iteration": "x", "rng": {},
                                              "curve": [], "seconds": 0.0}, "'iteration' is a str")])
def test_wrong_checkpoint_structure_is_unreadable(tmp_path, payload, reason):
    import pickle
    from refimpl.checkpoint import CheckpointError
    ck = tmp_path / "w.pkl"
    ck.write_bytes(pickle.dumps(payload))
    with pytest.raises(CheckpointError, match=f"checkpoint unreadable: {reason}"):
        _run(np, tmp_path, 3, checkpoint_path=ck, resume=True)
    ck.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="checkpoint unreadable"):
        _run(np, tmp_path, 3, checkpoint_path=ck, resume=True)


def test_fingerprint_mismatch_names_only_the_differing_fields(tmp_path):
    ck = tmp_path / "f.npz"
    _run(np, tmp_path, 2, checkpoint_path=ck, run_info={"experiment": "a", "dataset": "ring8"})
    import dataclasses
    other = GANMethod(dataclasses.replace(SMALL, batch_size=16))
    with pytest.raises(ValueError) as e:
        _run(np, tmp_path, 4, method=other, checkpoint_path=ck, resume=True,
             run_info={"experiment": "b", "dataset": "ring8"})
    msg = str(e.value)
    assert "experiment: 'a' -> 'b'" in msg and "config.batch_size: 32 -> 16" in msg
    assert "dataset" not in msg and "lr_gen" not in msg and len(msg) < 400


def test_malicious_pickle_is_refused_and_never_runs(tmp_path):
    import os
    import pickle
    from refimpl.checkpoint import CheckpointError
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))
    ck = tmp_path / "evil.pkl"
    ck.write_bytes(pickle.dumps({"fingerprint": Evil()}))
    with pytest.raises(CheckpointError, match="refused to load"):
        load(ck)
    with pytest.raises(CheckpointError, match="refused to load"):
        _run(np, tmp_path, 3, checkpoint_path=ck, resume=True)
    assert not marker.exists()


def test_checkpoint_format_round_trips_and_cannot_hold_code(tmp_path):
    import zipfile
    from refimpl import checkpoint
    st = np.random.default_rng(5).bit_generator.state
    payload = {"a": [(np.arange(3, dtype=np.float32), np.ones((2, 2)))], "rng": st, "t": (1, 2.5, "x", None),
               "nan": float("nan"), "b": b"\x00\x01", 3: True}
    ck = tmp_path / "p.npz"
    checkpoint.save(ck, payload)
    back = checkpoint.load(ck)
    assert back["rng"] == st and back["t"] == (1, 2.5, "x", None) and back["b"] == b"\x00\x01" and back[3] is True
    assert back["a"][0][0].dtype == np.float32 and np.array_equal(back["a"][0][1], np.ones((2, 2)))
    assert isinstance(back["a"][0], tuple) and back["nan"] != back["nan"]
    with zipfile.ZipFile(ck) as z:
        assert all(n.endswith(".npy") for n in z.namelist())
    with pytest.raises(TypeError):
        checkpoint.save(tmp_path / "o.npz", {"x": np.array([object()], dtype=object)})


def test_outputs_follow_the_umask_and_stale_temps_are_removed(tmp_path):
    import os
    from refimpl import checkpoint
    old = os.umask(0o027)
    try:
        checkpoint.atomic_write(tmp_path / "m.json", b"{}")
    finally:
        os.umask(old)
    assert (tmp_path / "m.json").stat().st_mode & 0o777 == 0o640
    (tmp_path / "sub").mkdir()
    stale = [tmp_path / ".checkpoint.pkl.abc123_x.tmp", tmp_path / "sub" / ".metrics.json.4711deadbeef.tmp"]
    for p in stale:
        p.write_bytes(b"x" * 10)
    keep = tmp_path / "notes.tmp"
    keep.write_text("mine")
    assert sorted(checkpoint.remove_stale_temps(tmp_path)) == sorted(stale)
    assert keep.exists() and not any(p.exists() for p in stale)


def _trees():
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp
    leaves = (st.none() | st.booleans() | st.integers(-2 ** 130, 2 ** 130) | st.floats(allow_nan=False)
              | st.text(max_size=8) | st.binary(max_size=8)
              | hnp.arrays(st.sampled_from([np.float32, np.float64, np.int64, np.uint8, np.bool_]),
                           hnp.array_shapes(min_dims=0, max_dims=3, max_side=3)))
    keys = st.text(max_size=5) | st.integers(-5, 5)
    return st.recursive(leaves, lambda c: st.lists(c, max_size=4) | st.tuples(c, c)
                        | st.dictionaries(keys, c, max_size=4), max_leaves=12)


def _same_tree(a, b):
    if isinstance(a, np.ndarray):
        # bit for bit: NaN payloads and -0.0 included (array_equal would call NaN != NaN)
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same_tree(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same_tree(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def test_checkpoint_format_round_trips_any_tree():
    """Property: dumps/loads is the identity on trees of containers, scalars and arrays (types,
    dtypes, shapes, tuple vs list, key order and key types kept)."""
    from hypothesis import given
    from refimpl import checkpoint

    @given(_trees())
    def prop(tree):
        assert _same_tree(tree, checkpoint.loads(checkpoint.dumps(tree)))
    prop()


def test_resume_after_the_cpu_budget_is_spent_trains_nothing(tmp_path, monkeypatch):
    """grid-tour interrupted in the final evaluation of a budgeted run: the resume redoes that
    evaluation only (it used to train one more iteration)."""
    from refimpl import train as train_mod
    ck = tmp_path / "c.npz"
    clock = [0.0]                                     # a fake process clock: 1 CPU s per outer iteration

    class Ticking(GANMethod):
        def outer_step(self, *a):
            clock[0] += 1.0
            return super().outer_step(*a)
    monkeypatch.setattr(train_mod.time, "process_time", lambda: clock[0])
    kw = dict(xp=np, dtype="float64", seed=3, iters=100, eval_every=0, progress=False, checkpoint_path=ck,
              max_train_cpu_seconds=3.0)
    part = train(Ticking(SMALL), ToyData("grid25", np, "float64"), eval_fn=_InterruptingEval(3), **kw)
    assert part.interrupted and load(ck)["iteration"] == 3 and load(ck)["evaluated"] == []
    assert load(ck)["train_cpu_seconds"] == 3.0

    class NoTraining(GANMethod):
        def outer_step(self, *a):
            raise AssertionError("a run whose budget was spent was trained again")
    resumed = train(NoTraining(SMALL), ToyData("grid25", np, "float64"), eval_fn=lambda st, it: {"it_seen": it},
                    resume=True, **kw)
    assert resumed.iterations == 3 and [r["iteration"] for r in resumed.curve] == [3]
    assert load(ck)["iteration"] == 3 and load(ck)["evaluated"] == [3]
    # an interrupted run with budget left still trains on (the rule only applies to a spent budget)
    more = train(Ticking(SMALL), ToyData("grid25", np, "float64"), eval_fn=lambda st, it: {"it_seen": it},
                 resume=True, **{**kw, "max_train_cpu_seconds": 5.0})
    assert more.iterations == 5


def test_time_left_leaves_out_the_first_iterations_warm_up():
    from refimpl.progress import time_left as _time_left
    # 8 iterations in 10 s, the first took 3 s (CuPy compiling): 1 s per iteration after it
    assert _time_left(10.0, 3.0, 8, 192) == pytest.approx(192.0)
    assert _time_left(3.0, 3.0, 1, 199) is None          # no pace after one iteration
    assert _time_left(5.0, 3.0, 8, 0) == 0.0


class _SlowStart(GANMethod):
    def outer_step(self, state, rng, data):
        if not getattr(self, "started", False):
            self.started = True
            time.sleep(0.2)
        return super().outer_step(state, rng, data)


def test_progress_shows_no_time_left_until_the_pace_is_known(tmp_path):
    out = io.StringIO()
    train(_SlowStart(SMALL), ToyData("grid25", np, "float64"), xp=np, dtype="float64", iters=3,
          progress=True, stream=out)
    first, *_, last = out.getvalue().splitlines()
    assert first.startswith("it 1/3 |") and "elapsed" in first and "left" not in first
    assert last.startswith("it 3/3 |") and last.endswith("~0m00s left")


def test_time_left_on_resume_uses_this_calls_pace_after_its_first_iteration(tmp_path, monkeypatch):
    """A fake clock, 3 s per outer step: 5 steps, then a resume to 20. After step 7 the pace is one
    step (3 s) past step 6, so 13 steps are left at 3 s: 39 s (the 18 s before, the first run's 15
    s and step 6, are not in the pace)."""
    import types
    from refimpl import train as train_mod
    clock = [100.0]
    monkeypatch.setattr(train_mod, "time", types.SimpleNamespace(perf_counter=lambda: clock[0],
                                                                 process_time=time.process_time, time=time.time))

    class _Ticking(GANMethod):
        def outer_step(self, state, rng, data):
            clock[0] += 3.0
            return super().outer_step(state, rng, data)
    ck = tmp_path / "t.pkl"
    _run(np, tmp_path, 5, method=_Ticking(SMALL), checkpoint_path=ck)
    out = io.StringIO()
    _run(np, tmp_path, 20, method=_Ticking(SMALL), checkpoint_path=ck, resume=True, progress=True, stream=out)
    lines = [ln for ln in out.getvalue().splitlines() if ln.startswith("it ")]
    assert lines[0].startswith("it 6/20 |") and lines[0].endswith("| 0m18s elapsed")
    assert lines[1].startswith("it 7/20 |") and lines[1].endswith("| 0m21s elapsed, ~0m39s left")


def test_a_diverging_run_raises_once_without_numpy_warnings(tmp_path):
    import warnings
    cfg = GANConfig(gen_hidden=(8,), critic_hidden=(8,), batch_size=8, lr_critic=1e6, lr_gen=1e6, optimiser="sgd")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(NonFiniteLoss):
            train(GANMethod(cfg), ToyData("grid25", np, "float64"), xp=np, dtype="float64", iters=200, progress=False)
    assert [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)] == []


class _SignalledMidStep(GANMethod):
    """Receives SIGINT between its critic and generator phases of outer step ``at``: the in-place
    updates of the critic are done, the generator's are not."""
    def __init__(self, cfg, at):
        super().__init__(cfg)
        self.at, self.calls = at, 0

    def critic_phase(self, state, rng, data):
        self.calls += 1
        state, logs = super().critic_phase(state, rng, data)
        if self.calls == self.at:
            import os
            import signal
            os.kill(os.getpid(), signal.SIGINT)
        return state, logs


def test_a_signal_mid_step_is_deferred_to_the_end_of_the_step(tmp_path):
    full = _run(np, tmp_path, 7, method=_SignalledMidStep(SMALL, at=99))
    ck = tmp_path / "s.pkl"
    part = _run(np, tmp_path, 7, method=_SignalledMidStep(SMALL, at=5), checkpoint_path=ck)
    assert part.interrupted and part.iterations == 5 and load(ck)["iteration"] == 5   # step 5 completed first
    resumed = _run(np, tmp_path, 7, method=_SignalledMidStep(SMALL, at=99), checkpoint_path=ck, resume=True)
    _assert_same_params(full.state["gen"], resumed.state["gen"])
    _assert_same_params(full.state["critic"], resumed.state["critic"])
