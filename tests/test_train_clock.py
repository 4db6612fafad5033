"""The training loop's clock (refimpl.train.TrainClock): evaluations left out of the training clocks,
its readings over an interrupt and a resume (and from a checkpoint that predates a field), and the
device synchronisation option."""
import time
import types

import numpy as np
import pytest

from refimpl import train as train_mod
from refimpl.backend import to_numpy
from refimpl.checkpoint import load, save
from refimpl.train import GANConfig, GANMethod, ToyData, TrainClock, train

SMALL = GANConfig(gen_hidden=(16, 16), critic_hidden=(16, 16), batch_size=32, n_critic=2)


def _train(method, iters, **kw):
    return train(method, ToyData("grid25", np, "float64"), xp=np, dtype="float64", seed=3, iters=iters,
                 progress=False, **kw)


def test_the_training_clocks_leave_the_evaluations_out():
    """Each evaluation burns 0.2 CPU s and sleeps 0.2 s: the wall clock counts them, the training
    clocks (read live by the eval_fn, in the curve rows and at the end) do not, and still move."""
    clock, seen = TrainClock(), []

    def eval_fn(st, it):
        before = clock.read()
        t = time.process_time()
        while time.process_time() - t < 0.2:
            pass
        time.sleep(0.2)
        assert clock.read() == before            # frozen at the evaluation's start
        seen.append(before)
        return {"it_seen": it}
    w, c = time.perf_counter(), time.process_time()
    res = _train(GANMethod(SMALL), 4, eval_fn=eval_fn, eval_every=2, clock=clock)
    wall, cpu = time.perf_counter() - w, time.process_time() - c
    r = clock.read()
    assert res.clock is clock and [row["iteration"] for row in res.curve] == [2, 4]
    assert r["eval_cpu_seconds"] >= 0.4 and r["eval_seconds"] >= 0.4
    assert 0 < r["train_cpu_seconds"] <= cpu - 0.4 and r["cpu_seconds"] <= cpu
    assert 0 < r["train_seconds"] <= wall - 0.4 and 0.4 <= r["seconds"] <= wall
    assert (res.seconds, res.train_seconds) == (pytest.approx(r["seconds"], abs=0.05),
                                                pytest.approx(r["train_seconds"], abs=0.05))
    assert 0 < seen[0]["train_cpu_seconds"] < seen[1]["train_cpu_seconds"] < 0.2     # the clock moved, without 0.2
    assert 0 < seen[0]["train_seconds"] < seen[1]["train_seconds"] < 0.2
    assert seen[1]["eval_seconds"] >= 0.2 and seen[0]["eval_seconds"] == 0.0
    last = res.curve[-1]
    assert last["seconds"] - last["train_seconds"] >= 0.4 - 2e-3
    assert last["train_cpu_seconds"] <= cpu - 0.4
    assert last["train_cpu_seconds"] == pytest.approx(seen[1]["train_cpu_seconds"], abs=0.05)


def _fake_time(monkeypatch, wall, cpu):
    monkeypatch.setattr(train_mod, "time", types.SimpleNamespace(perf_counter=lambda: wall[0],
                                                                 process_time=lambda: cpu[0], time=time.time))


class _Ticking(GANMethod):
    """1 s of wall clock and of CPU per outer step (fake clocks); KeyboardInterrupt at call ``at``."""

    def __init__(self, cfg, wall, cpu, at=None):
        super().__init__(cfg)
        self.wall, self.cpu, self.at, self.calls = wall, cpu, at, 0

    def outer_step(self, state, rng, data):
        self.calls += 1
        if self.calls == self.at:
            raise KeyboardInterrupt
        out = super().outer_step(state, rng, data)
        self.wall[0] += 1.0
        self.cpu[0] += 1.0
        return out


def _ticking_eval(clock, wall, cpu, seen):
    def eval_fn(st, it):                         # 10 s of wall clock and of CPU per evaluation
        seen.append((it, clock.train_cpu_seconds, clock.train_seconds))
        wall[0] += 10.0
        cpu[0] += 10.0
        return {"it_seen": it}
    return eval_fn


WANT_ROWS = [(2, 12.0, 2.0, 2.0), (4, 24.0, 4.0, 4.0), (6, 36.0, 6.0, 6.0)]   # iteration, seconds, train, train CPU


def _rows(res):
    return [(r["iteration"], r["seconds"], r["train_seconds"], r["train_cpu_seconds"]) for r in res.curve]


def test_the_readings_survive_an_interrupt_and_a_resume(tmp_path, monkeypatch):
    wall, cpu = [100.0], [50.0]
    _fake_time(monkeypatch, wall, cpu)
    clock, seen = TrainClock(), []
    full = _train(_Ticking(SMALL, wall, cpu), 6, eval_fn=_ticking_eval(clock, wall, cpu, seen), eval_every=2,
                  clock=clock)
    assert _rows(full) == WANT_ROWS and seen == [(2, 2.0, 2.0), (4, 4.0, 4.0), (6, 6.0, 6.0)]
    assert clock.read() == {"seconds": 36.0, "train_seconds": 6.0, "eval_seconds": 30.0, "cpu_seconds": 36.0,
                            "train_cpu_seconds": 6.0, "eval_cpu_seconds": 30.0}

    ck, seen = tmp_path / "c.npz", []
    clock = TrainClock()
    part = _train(_Ticking(SMALL, wall, cpu, at=5), 6, eval_fn=_ticking_eval(clock, wall, cpu, seen), eval_every=2,
                  checkpoint_path=ck, clock=clock)
    assert part.interrupted and load(ck)["iteration"] == 4
    assert {k: load(ck)[k] for k in clock.saved()} == {"seconds": 24.0, "eval_seconds": 20.0,
                                                        "train_cpu_seconds": 4.0, "eval_cpu_seconds": 20.0}
    wall[0] += 1000.0                            # another process, later: its own clocks' origins
    cpu[0] = 7.0
    clock, seen = TrainClock(), []
    resumed = _train(_Ticking(SMALL, wall, cpu), 6, eval_fn=_ticking_eval(clock, wall, cpu, seen), eval_every=2,
                     checkpoint_path=ck, resume=True, clock=clock)
    assert clock.at_start == {"seconds": 24.0, "eval_seconds": 20.0, "train_cpu_seconds": 4.0,
                              "eval_cpu_seconds": 20.0}
    assert seen == [(6, 6.0, 6.0)] and _rows(resumed) == WANT_ROWS
    assert clock.read()["cpu_seconds"] == 36.0 and clock.read()["eval_cpu_seconds"] == 30.0
    assert (resumed.seconds, resumed.train_seconds) == (36.0, 6.0)
    for a, b in zip(full.state["gen"], resumed.state["gen"]):       # the clock leaves the maths alone
        assert all(np.array_equal(to_numpy(x), to_numpy(y)) for x, y in zip(a, b))


def test_a_checkpoint_without_the_eval_cpu_reading_still_resumes(tmp_path, monkeypatch):
    wall, cpu = [0.0], [0.0]
    _fake_time(monkeypatch, wall, cpu)
    ck = tmp_path / "c.npz"
    clock = TrainClock()
    _train(_Ticking(SMALL, wall, cpu), 4, eval_fn=_ticking_eval(clock, wall, cpu, []), eval_every=2,
           checkpoint_path=ck, clock=clock)
    payload = load(ck)
    del payload["eval_cpu_seconds"]              # as written before the field existed
    save(ck, payload)
    clock = TrainClock()
    res = _train(_Ticking(SMALL, wall, cpu), 6, eval_fn=_ticking_eval(clock, wall, cpu, []), eval_every=2,
                 checkpoint_path=ck, resume=True, clock=clock)
    assert _rows(res) == WANT_ROWS                    # the training clocks carry on
    assert clock.read()["eval_cpu_seconds"] == 10.0   # only this call's evaluation is known
    assert load(ck)["eval_cpu_seconds"] == 10.0


def test_the_sync_option_synchronises_the_device_around_each_step(monkeypatch):
    calls = []
    monkeypatch.setattr(train_mod, "synchronize", lambda xp: calls.append(xp))
    plain = _train(GANMethod(SMALL), 3, clock=TrainClock())
    n_plain = len(calls)                          # the loop's own: before each evaluation, at the end
    calls.clear()
    synced = _train(GANMethod(SMALL), 3, clock=TrainClock(sync=True))
    assert len(calls) == n_plain + 2 * 3 and all(x is np for x in calls)
    for a, b in zip(plain.state["gen"], synced.state["gen"]):
        assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_bad_clocks_are_refused():
    with pytest.raises(TypeError, match="sync"):
        TrainClock(sync=1)
    with pytest.raises(TypeError, match="TrainClock"):
        _train(GANMethod(SMALL), 1, clock="wall")
    with pytest.raises(RuntimeError, match="started"):
        TrainClock().read()
