"""A run's final metrics, recomputed from its folder alone: what a reviewer does with the results CSVs."""
import json

import numpy as np

from refimpl.metrics import evaluate

KEYS = ("modes", "high_quality", "w1", "w2", "sliced_w1")


def assert_recomputable(run_dir):
    """Each of :data:`KEYS` that ``metrics.json`` holds equals (exactly) the metric of ``samples.npy``
    against the targets of the recorded ``eval_seeds``; returns the keys compared."""
    m = json.loads((run_dir / "metrics.json").read_text())
    samples = np.load(run_dir / "samples.npy")
    rng = np.random.default_rng(m["eval_seeds"]["targets"])
    got = evaluate(samples, m.get("dataset", "ring8"), rng, n_target=len(samples), threads=1)
    keys = [k for k in KEYS if k in m]
    assert {"modes", "w1"} <= set(keys), keys
    for k in keys:
        assert got[k] == m[k], f"{run_dir.name}: {k} {m[k]} in metrics.json, {got[k]} from samples.npy"
    return keys
