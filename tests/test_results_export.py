"""toy.results_export: the final-metric tables of the grid tour, wwgan-digits and w1fe-ring,
written from small fake sweep folders (manifest + metrics.json) and checked line by line."""
import json

import pytest

from toy import results_export


def _sweep(root, name, runs, order=None):
    """A fake sweep ``root/name``: ``runs`` ``{run_id: (manifest entry, metrics.json dict or None)}``."""
    sw = root / name
    sw.mkdir(parents=True)
    man = {}
    for rid, (entry, metrics) in runs.items():
        (sw / rid).mkdir()
        if metrics is not None:
            (sw / rid / "metrics.json").write_text(json.dumps(metrics))
        man[rid] = {"status": "done", "setting": {}, **entry}
    (sw / "sweep.json").write_text(json.dumps({"runs": man, "order": order or list(runs)}))
    return sw


def _lines(path):
    data = path.read_bytes().decode()
    assert "\n" not in data.replace("\r\n", "")          # csv's \r\n, as the committed files
    return data.split("\r\n")[:-1]


def _tour_metrics(seed):
    def method(w1, it):
        return {"modes": 20 + seed, "high_quality": 0.5, "w1": w1, "w2": 2 * w1, "sliced_w1": 0.25,
                "train_cpu_seconds": 40.0, "train_seconds": 77.5, "iterations": it, "label": "x"}
    # methods given out of order: the table sorts them and puts the baseline last
    return {"methods": {"wgan-gp": method(0.1 + 0.2, 7445 + seed), "sbe": method(1.5, 6001)},
            "baseline": {"modes": 19, "high_quality": 0.0164, "w1": 1.1, "w2": 1.3, "sliced_w1": 0.375, "n": 2500},
            "threads": 1}


def test_tour_finals_per_seed_rows_and_the_summary_without_run_constants(tmp_path, monkeypatch):
    sw = _sweep(tmp_path, "tour", {"seed=1": ({"seed": 1}, _tour_metrics(1)),
                                   "seed=0": ({"seed": 0}, _tour_metrics(0)),
                                   "seed=2": ({"seed": 2, "status": "failed"}, None)},
                order=["seed=0", "seed=1", "seed=2"])
    (sw / "summary.csv").write_text(
        "variant,metric,n,mean\r\n"
        "default,baseline/modes,2,19.0\r\n"
        "default,baseline/n,2,2500.0\r\n"
        "default,blas_threads/openblas,2,1.0\r\n"
        "default,budget_cpu_seconds,2,40.0\r\n"
        "default,methods/sbe/iterations,2,6001.0\r\n"
        "default,methods/sbe/w1,2,1.5\r\n"
        "default,n_eval,2,2500.0\r\n"
        "default,threads,2,1.0\r\n")
    res = tmp_path / "res"
    res.mkdir()
    monkeypatch.setattr(results_export, "export_tour", lambda s, r: None)   # the curves need curve.csv
    results_export.EXPORTS["tour"](tmp_path, res, None)
    assert _lines(res / "grid-tour-per-seed.csv") == [
        "seed,method,modes,high_quality,w1,w2,sliced_w1,train_cpu_seconds,iterations",
        "0,sbe,20,0.5,1.5,3.0,0.25,40.0,6001",
        "0,wgan-gp,20,0.5,0.30000000000000004,0.6000000000000001,0.25,40.0,7445",   # float repr, not rounded
        "0,baseline,19,0.0164,1.1,1.3,0.375,,",                                   # no training: blank
        "1,sbe,21,0.5,1.5,3.0,0.25,40.0,6001",
        "1,wgan-gp,21,0.5,0.30000000000000004,0.6000000000000001,0.25,40.0,7446",
        "1,baseline,19,0.0164,1.1,1.3,0.375,,",
    ]
    assert _lines(res / "grid-tour-summary.csv") == [
        "variant,metric,n,mean",
        "default,baseline/modes,2,19.0",
        "default,methods/sbe/iterations,2,6001.0",
        "default,methods/sbe/w1,2,1.5",
    ]


def _w1fe_metrics(w1, reach):
    levels = {"w1<=0.3": None, "w1<=0.2": None, "w1<=0.15": None, "sliced<=0.1": 3.0, **reach}
    return {"w1": w1, "best_w1": 0.125, "modes": 8, "high_quality": 0.0864, "train_cpu_seconds": 36.852,
            "sliced_w1": 0.07, "reach": {k: {"cpu_s": v, "epoch": None if v is None else 100} for k, v in levels.items()}}


def test_w1fe_per_run_sorted_by_variant_then_numeric_seed_with_blank_unreached_levels(tmp_path):
    runs = {"variant=lp-K3,seed=10": ({"variant": "variant=lp-K3", "seed": 10},
                                      _w1fe_metrics(0.1 + 0.2, {"w1<=0.3": 22.945})),
            "variant=lp-K10,seed=0": ({"variant": "variant=lp-K10", "seed": 0},
                                      _w1fe_metrics(0.5, {})),
            "variant=lp-K3,seed=2": ({"variant": "variant=lp-K3", "seed": 2},
                                     _w1fe_metrics(0.14, {"w1<=0.3": 14.8, "w1<=0.2": 19.75, "w1<=0.15": 24.0}))}
    sw = _sweep(tmp_path, "w1fe-ring", runs)
    for rid in runs:     # export_w1fe also writes the curves and bands: two evaluations per run
        (sw / rid / "curve.csv").write_text("iteration,train_seconds,train_cpu_seconds,w1,sliced_w1,modes,high_quality\n"
                                            "0,0.5,0.5,2.0,1.0,1,0.0\n100,5.0,4.0,0.5,0.2,8,0.1\n")
    res = tmp_path / "res"
    res.mkdir()
    results_export.EXPORTS["w1fe-ring"](tmp_path, res, None)
    assert _lines(res / "w1fe-ring-per-run.csv") == [
        "variant,seed,final_w1,best_w1,modes,high_quality,train_cpu_seconds,"
        "cpu_s_to_w1<=0.3,cpu_s_to_w1<=0.2,cpu_s_to_w1<=0.15",
        "lp-K10,0,0.5,0.125,8,0.0864,36.852,,,",                 # "lp-K10" < "lp-K3" as text
        "lp-K3,2,0.14,0.125,8,0.0864,36.852,14.8,19.75,24.0",     # seed 2 before seed 10
        "lp-K3,10,0.30000000000000004,0.125,8,0.0864,36.852,22.945,,",
    ]


def test_w1fe_per_run_names_a_run_without_a_reach_level(tmp_path):
    m = _w1fe_metrics(0.5, {})
    del m["reach"]["w1<=0.2"]
    sw = _sweep(tmp_path, "w1fe-ring", {"variant=lp-K1,seed=0": ({"variant": "variant=lp-K1", "seed": 0}, m)})
    with pytest.raises(KeyError, match="w1<=0.2"):
        results_export.w1fe_per_run(sw)


def _wwgan_method(tv, fd):
    return {"translation": {"tv_minmax": tv, "zero_crossings": 0.9666666666666667, "tv_maxabs": 9.0},
            "translation_fill0": {"tv_minmax": tv / 2, "zero_crossings": 7.0},
            "noise": {"separation": 2.25, "auc_clean_above_noisy": 0.9}, "w1": 3.5, "fd": fd,
            "critic_mean_real": 1.0}


def test_wwgan_per_seed_rows_from_each_runs_methods(tmp_path, monkeypatch):
    runs = {f"seed={s}": ({"variant": "default", "seed": s},
                          {"dataset": "digits",
                           "methods": {"wwgan": _wwgan_method(1.5 + s, 11.0), "wgan-gp": _wwgan_method(0.1 + 0.2, 12.5)}})
            for s in (0, 1)}
    sw = _sweep(tmp_path, "wwgan-digits", runs)
    for rid in runs:
        (sw / rid / "translation.csv").write_text("method,shift,minmax_mean\nwwgan,0,0.5\nwgan-gp,0,0.25\n")
    res = tmp_path / "res"
    res.mkdir()
    # seed 0's critic values and images are recomputed from its checkpoint, which a fake run lacks
    monkeypatch.setattr(results_export, "_wwgan_seed", lambda folder, seed: ([], [], []))
    results_export.EXPORTS["wwgan-digits"](tmp_path, res, None)
    assert _lines(res / "wwgan-digits-per-seed.csv") == [
        "seed,method,tv_minmax,tv_minmax_fill0,zero_crossings,noise_separation,w1_to_test,classifier_fd",
        "0,wgan-gp,0.30000000000000004,0.15000000000000002,0.9666666666666667,2.25,3.5,12.5",
        "0,wwgan,1.5,0.75,0.9666666666666667,2.25,3.5,11.0",
        "1,wgan-gp,0.30000000000000004,0.15000000000000002,0.9666666666666667,2.25,3.5,12.5",
        "1,wwgan,2.5,1.25,0.9666666666666667,2.25,3.5,11.0",
    ]


def test_a_missing_sweep_is_one_line_and_exit_2(tmp_path, capsys):
    res = tmp_path / "new" / "res"                                   # created, as --out folders are
    assert results_export.main(["--sweeps", str(tmp_path / "none"), "--results", str(res), "wgan-gp-grid"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "wgan-gp-grid" in err and "finished sweep" in err
    assert res.is_dir() and not any(res.iterdir())
