"""Smoke test of toy/wwgan_digits.py (WWGAN Table 1, Figs. 4-5) and its curve statistics."""
import json

import numpy as np
import pytest

from toy.common import RunOptions
from toy.wwgan_digits import curve_stats, salt_and_pepper, separation, shift_down


def test_wwgan_digits_quick(tmp_path):
    pytest.importorskip("sklearn")
    out = tmp_path / "run"
    m = run_quick(out)
    for f in ("metrics.json", "curve.csv", "translation.csv", "samples.png", "critic_translation.png",
              "noise_hist.png", "learning_curves.png", "checkpoint.npz"):
        assert (out / f).stat().st_size > 0, f
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["table1_ours"] == m["table1_ours"]
    assert set(saved["methods"]) == {"wgan-gp", "wwgan"}
    for r in saved["methods"].values():
        assert r["translation"]["n_points"] == 9 and r["translation"]["fill"] == -1.0
        assert 0 <= r["translation"]["zero_crossings"] <= 8
        assert np.isfinite(r["w1"]) and np.isfinite(r["fd"]) and np.isfinite(r["noise"]["separation"])
    assert saved["config"]["wwgan"]["penalty"] == "wasserstein"
    # the sample metrics are those of the saved samples against the first n test images
    from refimpl.image_metrics import image_w1
    from refimpl.images import load_images
    test_x = load_images("digits", None, "test")[0]
    samples = np.load(out / "samples.npz")
    n = saved["samples"]["n"]
    for k, r in saved["methods"].items():
        assert samples[k].shape == (n, 1, 8, 8)
        assert image_w1(samples[k], test_x[:40][:n]) == r["w1"]
    assert any(p.name.startswith("classifier-digits-") for p in (tmp_path / ".cache").iterdir())
    # the classifier is cached: a second run loads it
    m2 = run_quick(tmp_path / "run2")
    assert m2["baselines"]["classifier_cached"] is True
    assert m2["methods"]["wwgan"]["w1"] == pytest.approx(m["methods"]["wwgan"]["w1"])


def run_quick(out):
    from toy.wwgan_digits import run
    return run(RunOptions(out=out, quick=True, extra={"dataset": None, "data_dir": None, "lam": None}))


def test_curve_statistics_by_hand():
    c = np.array([[3.0, 1.0, 2.0, 0.0],       # min-max: 1, 1/3, 2/3, 0 -> TV 2/3+1/3+2/3 = 5/3
                  [0.0, 1.0, 2.0, 3.0]])      # monotone: TV 1
    stats, mm = curve_stats(c, threshold=1.5)
    assert stats["tv_minmax"] == pytest.approx((5 / 3 + 1) / 2)
    # centred: [1.5,-.5,.5,-1.5] -> 3 crossings; [-1.5,-.5,.5,1.5] -> 1 crossing
    assert stats["zero_crossings"] == pytest.approx(2.0)
    # max-abs normalised: [1,-1/3,1/3,-1] TV 4/3+2/3+4/3 = 10/3; [-1,-1/3,1/3,1] TV 2
    assert stats["tv_maxabs"] == pytest.approx((10 / 3 + 2) / 2)
    assert stats["zero_crossings_raw"] == 0 and stats["monotone_fraction"] == 0.5


def test_shift_noise_and_separation():
    x = np.arange(2 * 1 * 3 * 2, dtype=np.float32).reshape(2, 1, 3, 2)
    s1 = shift_down(x, 1, -1.0)
    np.testing.assert_array_equal(s1[:, :, 0, :], -1.0)
    np.testing.assert_array_equal(s1[:, :, 1:, :], x[:, :, :2, :])
    np.testing.assert_array_equal(shift_down(x, 3, -1.0), -np.ones_like(x))
    img = np.zeros((200, 1, 8, 8), np.float32)
    noisy = salt_and_pepper(img, 0.15, np.random.default_rng(0))
    changed = noisy != 0
    assert abs(changed.mean() - 0.15) < 0.01 and set(np.unique(noisy[changed])) == {-1.0, 1.0}
    r = separation(np.array([0.0, 2.0]), np.array([4.0, 6.0]))
    assert r["separation"] == pytest.approx(4 / np.sqrt(2)) and r["auc_clean_above_noisy"] == 0.0


def test_grid_image_places_tiles():
    from toy.wwgan_digits import grid_image
    x = np.random.default_rng(0).uniform(-1, 1, (3, 3, 2, 2))
    g = grid_image(x, ncol=2)                      # tiles of 2x2 plus a 1-pixel gap
    assert g.shape == (6, 6, 3)
    np.testing.assert_allclose(g[0:2, 3:5, 1], (x[1, 1] + 1) / 2)
    np.testing.assert_allclose(g[3:5, 0:2, 2], (x[2, 2] + 1) / 2)
    np.testing.assert_allclose(g[3:5, 3:5, :], 0.5)  # padding tile
