"""toy.figures: every figure the docs show is redrawn from the committed CSVs in docs/results."""
import csv
import pathlib
import re

import numpy as np
import pytest

from toy import figures, results_export
from toy.aggregate import curve_bands

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"
FIGURE_LINK = re.compile(r"!\[[^\]]*\]\(figures/([^)]+)\.png\)")


def referenced():
    """Figure stems of every ``![...](figures/X.png)`` in docs/*.md and README.md."""
    names = set()
    for md in [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]:
        names |= set(FIGURE_LINK.findall(md.read_text()))
    return names


def test_every_referenced_figure_is_declared_and_nothing_else():
    refs = referenced()
    assert refs, "no figure links found: the pattern or the docs changed"
    assert refs == set(figures.FIGURES), (refs ^ set(figures.FIGURES))


@pytest.mark.parametrize("name", sorted(figures.FIGURES))
def test_each_figures_csv_inputs_exist(name):
    _, inputs = figures.FIGURES[name]
    assert inputs
    for f in inputs:
        assert (RESULTS / f).is_file(), f"{name} needs docs/results/{f}"
        assert (RESULTS / f).stat().st_size > 0


def test_redraw_all_from_the_committed_csvs(tmp_path):
    out = tmp_path / "figs"
    assert figures.main(["--results", str(RESULTS), "--out", str(out)]) == 0
    written = sorted(p.name for p in out.iterdir())
    assert written == sorted(f"{n}.png" for n in figures.FIGURES)       # nothing else written
    for p in out.iterdir():
        data = p.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, p.name


def test_bad_flag_unknown_name_and_missing_csv_exit_2_with_one_line(tmp_path, capsys):
    assert figures.main(["--no-such-flag"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--no-such-flag" in err
    assert figures.main(["--out", str(tmp_path), "no-such-figure"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no-such-figure" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert figures.main(["--results", str(empty), "--out", str(tmp_path / "o"), "sbe-grid"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "sbe-grid-mean-curves.csv" in err
    assert not (tmp_path / "o" / "sbe-grid.png").exists()
    assert results_export.main(["--no-such-flag"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_draw_rejects_unknown_names():
    with pytest.raises(ValueError, match="unknown figure"):
        figures.draw("nope", RESULTS, RESULTS)


def _rows(name):
    with open(RESULTS / name, newline="") as fh:
        return list(csv.DictReader(fh))


def _curves(rows, key, x, metric):
    out = {}
    for r in rows:
        c = out.setdefault(r[key] + "/" + r.get("seed", ""), {x: [], metric: []})
        c[x].append(float(r[x]) if r[x] else np.nan)
        c[metric].append(float(r[metric]) if r[metric] else np.nan)
    return {k: {c: np.asarray(v) for c, v in d.items()} for k, d in out.items()}


def test_the_drawn_bands_are_those_of_the_per_run_curves():
    """The mean curves the envelope figures draw equal those recomputed from the per-run CSV (5 digits)."""
    runs, means = _rows("sbe-grid-curves.csv"), _rows("sbe-grid-mean-curves.csv")
    for variant in ("wgan-gp", "sbe"):
        cs = [c for k, c in _curves([r for r in runs if r["variant"] == variant], "variant", "iteration", "w1").items()]
        assert len(cs) == 5
        bands = curve_bands(cs, "w1", "iteration")
        got = [r for r in means if r["variant"] == variant]
        assert [b["x"] for b in bands] == [float(r["iteration"]) for r in got]
        np.testing.assert_allclose([b["mean"] for b in bands], [float(r["w1_mean"]) for r in got], rtol=1e-3)
        np.testing.assert_allclose([b["ci_high"] for b in bands], [float(r["w1_ci_high"]) for r in got], rtol=1e-3)
    # the grid tour's bands: W1 interpolated on the CPU-time axis
    runs, bands = _rows("grid-tour-curves.csv"), _rows("grid-tour-bands.csv")
    cs = [c for c in _curves([r for r in runs if r["method"] == "swgan"], "method", "train_cpu_seconds",
                             "w1").values()]
    want = curve_bands(cs, "w1", "train_cpu_seconds")
    got = [r for r in bands if r["method"] == "swgan"]
    np.testing.assert_allclose([b["mean"] for b in want], [float(r["mean"]) for r in got], rtol=2e-3)


def test_fmt_rounds_to_significant_digits_and_keeps_blanks():
    assert results_export.fmt(0.123456789) == "0.12346"
    assert results_export.fmt(0.123456789, 4) == "0.1235"
    assert results_export.fmt("") == "" and results_export.fmt(None) == "" and results_export.fmt(float("nan")) == ""
    assert results_export.fmt(3) == "3" and results_export.fmt("12") == "12" and results_export.fmt(2.0) == "2"
    assert results_export.fmt("variant=sbe") == "variant=sbe"


def test_export_finals_writes_each_runs_final_metrics_and_the_sweeps_summary(tmp_path):
    import json
    sweep, res = tmp_path / "sweeps" / "demo", tmp_path / "res"
    res.mkdir(parents=True)
    runs = {"seed=1": {"variant": "default", "seed": 1, "setting": {}},
            "seed=0": {"variant": "default", "seed": 0, "setting": {"K": "3"}}}
    for i, rid in enumerate(runs):
        (sweep / rid).mkdir(parents=True)
        (sweep / rid / "metrics.json").write_text(json.dumps({"w1": 0.5 + i, "modes": 7 + i, "extra": 1}))
    (sweep / "sweep.json").write_text(json.dumps({"runs": runs, "order": list(runs)}))
    (sweep / "summary.csv").write_text("variant,metric,n,mean\ndefault,w1,2,1.0\n")
    results_export.export_finals(tmp_path / "sweeps", res, "demo")
    import csv
    rows = list(csv.DictReader(open(res / "demo-per-run.csv")))
    assert [r["run"] for r in rows] == ["seed=0", "seed=1"]                 # sorted by run id
    assert rows[0]["w1"] == "1.5" and rows[0]["modes"] == "8" and rows[0]["setting"] == '{"K": "3"}'
    assert rows[1]["w1"] == "0.5" and rows[1]["w2"] == "" and "extra" not in rows[1]
    assert (res / "demo-summary.csv").read_text().splitlines()[1] == "default,w1,2,1.0"
