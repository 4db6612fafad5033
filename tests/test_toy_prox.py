"""Smoke test of toy/prox_two_delta.py (Figure 1 of Wasserstein proximal of GANs)."""
import json

from toy.common import RunOptions
from toy.prox_two_delta import run


def test_prox_two_delta_quick(tmp_path):
    m = run(RunOptions(out=tmp_path, quick=True))
    assert (tmp_path / "prox_paths.png").stat().st_size > 0
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["table"] == m["table"]
    assert set(saved["table"]) == {"0.1", "0.3", "0.5"}
    for row in saved["table"].values():
        assert len(row["F_W"]) == len(row["F_E"]) == saved["steps"] + 1
        assert row["F_W"][0] == row["F_E"][0]
        assert all(w <= e for w, e in zip(row["F_W"], row["F_E"]))   # Prop. 5 along the paths
    assert saved["w_prox_F_le_e_prox_F_every_k"] is True


def test_prox_two_delta_table_matches_closed_form_paths(tmp_path):
    """From theta0 = (-4, 4) to theta* = (-1, 1) (distance 3 per coordinate): along the paths
    F_W(k) = max(3 - k h, 0) and F_E(k) = alpha max(3 - k alpha h, 0) + (1 - alpha) max(3 - k (1 - alpha) h, 0).
    Unset CLI flags arrive as None in ``extra`` and mean the defaults."""
    m = run(RunOptions(out=tmp_path / "new", quick=True, iters=8, extra={"h": None, "alphas": [0.2, 0.7]}))
    h = m["h"]
    assert h == 0.5 and m["steps"] == 8 and m["w_prox_steps_to_target_predicted"] == 6
    for a_str, row in m["table"].items():
        al = float(a_str)
        for k, fw, fe in zip(row["k"], row["F_W"], row["F_E"]):
            assert abs(fw - max(3 - k * h, 0)) <= 1e-12
            want_e = al * max(3 - k * al * h, 0) + (1 - al) * max(3 - k * (1 - al) * h, 0)
            assert abs(fe - want_e) <= 1e-12
