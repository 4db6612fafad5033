"""``python -m toy NAME --help`` shows each default from its one home (issue 25).

Per experiment: the help's default equals the value the experiment uses (read from the
experiment's configuration, constants or settings function, not from the help's text), and
moving that home (monkeypatching it) moves the help.
"""
import dataclasses
import json
import pathlib

import pytest

from toy import registry
from toy.cli import build_parser
from toy.common import RunOptions


@pytest.fixture(autouse=True)
def _wide(monkeypatch):
    monkeypatch.setenv("COLUMNS", "500")                                         # no wrapped lines
    registry._rwp_defaults.cache_clear()
    yield
    registry._rwp_defaults.cache_clear()


def default(name, dest):
    """The ``(default ...)`` of flag ``dest`` in experiment ``name``'s --help."""
    action = next(a for a in build_parser(name)._actions if a.dest == dest)
    assert action.help.endswith(")"), action.help
    return action.help[action.help.index("(default ") + len("(default "):-1]


def help_text(name):
    return " ".join(build_parser(name).format_help().split())


def opts(quick=False, experiment="", **extra):
    return RunOptions(out=pathlib.Path("unused"), quick=quick, experiment=experiment, extra=extra)


def moved(monkeypatch, name, dest, patch, before, after):
    """``patch()`` (a monkeypatch of the home) moves --help's default of ``dest`` from ``before`` to ``after``."""
    assert default(name, dest) == before
    patch()
    registry._rwp_defaults.cache_clear()
    assert default(name, dest) == after
    assert f"(default {after})" in help_text(name)


# ----------------------------------------------------------------------------- single runs
def test_wgan_gp_iters(monkeypatch):
    from toy import protocols, wgan_gp
    for name in ("wgan-gp-grid", "wgan-gp-ring"):
        assert default(name, "iters") == (f"{wgan_gp.DEFAULT_ITERS} (quick: {wgan_gp.QUICK_ITERS}; "
                                          f"protocol gdpp: {protocols.PROTOCOLS['gdpp'].iters})")
    was = default("wgan-gp-grid", "iters")
    monkeypatch.setattr(wgan_gp, "DEFAULT_ITERS", 1234)
    assert default("wgan-gp-ring", "iters").startswith("1234 (quick: ") and default("wgan-gp-grid", "iters") != was


def test_gan_iters_method_dataset(monkeypatch):
    from toy import method_run as m
    assert default("gan", "iters") == f"{m.DEFAULT_ITERS} (quick: {m.QUICK_ITERS})"
    assert (default("gan", "method"), default("gan", "dataset")) == (m.DEFAULT_METHOD, m.DEFAULT_DATASET)
    moved(monkeypatch, "gan", "iters", lambda: monkeypatch.setattr(m, "QUICK_ITERS", 7),
          f"{m.DEFAULT_ITERS} (quick: {m.QUICK_ITERS})", f"{m.DEFAULT_ITERS} (quick: 7)")
    moved(monkeypatch, "gan", "dataset", lambda: monkeypatch.setattr(m, "DEFAULT_DATASET", "ring8"), "grid25", "ring8")


def test_grid_tour_budget(monkeypatch):
    from toy import tour
    assert default("grid-tour", "budget") == (f"{tour.BUDGET_CPU_SECONDS:g} CPU seconds per method "
                                              f"(quick: {tour.QUICK_BUDGET:g})")
    moved(monkeypatch, "grid-tour", "budget", lambda: monkeypatch.setattr(tour, "BUDGET_CPU_SECONDS", 12.5),
          default("grid-tour", "budget"), f"12.5 CPU seconds per method (quick: {tour.QUICK_BUDGET:g})")


def test_prox_two_delta_runs_what_its_help_says(tmp_path, monkeypatch):
    from toy import prox_two_delta as p
    assert default("prox-two-delta", "h") == str(p.DEFAULT_H)
    assert default("prox-two-delta", "iters") == f"{p.DEFAULT_STEPS} proximal steps (quick: {p.QUICK_STEPS})"
    moved(monkeypatch, "prox-two-delta", "h", lambda: monkeypatch.setattr(p, "DEFAULT_H", 0.25), "0.5", "0.25")
    monkeypatch.setattr(p, "QUICK_STEPS", 3)
    assert default("prox-two-delta", "iters") == f"{p.DEFAULT_STEPS} proximal steps (quick: 3)"
    m = p.run(RunOptions(out=tmp_path, quick=True))                     # the run uses the moved home
    assert (m["h"], m["steps"]) == (0.25, 3)


def test_wwgan_digits_runs_what_its_help_says(tmp_path, monkeypatch):
    from refimpl.train import GANConfig
    from toy import wwgan_digits as w
    cfg = GANConfig(**w.CONFIG)
    for f in ("lam", "n_critic", "n_gen", "latent_dim", "lr_gen", "lr_critic", "objective"):
        assert default("wwgan-digits", f) == str(getattr(cfg, f)), f
    assert default("wwgan-digits", "batch_size") == f"{w.CONFIG['batch_size']} (quick: {w.QUICK_BATCH})"
    assert default("wwgan-digits", "iters") == f"{w.DEFAULT_ITERS} (quick: {w.QUICK_ITERS})"
    assert default("wwgan-digits", "dataset") == w.DEFAULT_DATASET
    monkeypatch.setitem(w.CONFIG, "lam", 7.5)
    monkeypatch.setattr(w, "QUICK_BATCH", 8)
    assert default("wwgan-digits", "lam") == "7.5"
    assert default("wwgan-digits", "batch_size") == f"{w.CONFIG['batch_size']} (quick: 8)"
    pytest.importorskip("sklearn", reason="the offline digits data needs scikit-learn")
    w.run(RunOptions(out=tmp_path, quick=True, iters=1, threads=1))       # the run uses the moved home
    config = json.loads((tmp_path / "metrics.json").read_text())["config"]
    for method in ("wgan-gp", "wwgan"):
        assert (config[method]["lam"], config[method]["batch_size"]) == (7.5, 8), method


# ----------------------------------------------------------------------------- multi-run experiments
def test_dcgan_digits(monkeypatch):
    from toy import dcgan_digits as d
    for f in ("lam", "n_critic", "latent_dim", "lr_gen", "lr_critic"):
        values = {str(getattr(d.config(a, opts(q), (1, 8, 8)), f)) for a in ("mlp", "dcgan") for q in (False, True)}
        assert [default("dcgan-digits", f)] == list(values), f
    full, quick = (d.config("dcgan", opts(q), (1, 8, 8)).batch_size for q in (False, True))
    assert default("dcgan-digits", "batch_size") == f"{full} (quick: {quick})"
    assert default("dcgan-digits", "budget") == (f"{d._budget(opts()):g} CPU seconds per run "
                                                 f"(quick: {d._budget(opts(True)):g})")
    assert default("dcgan-digits", "seeds").startswith(",".join(map(str, d.run.default_seeds)) + " (")
    moved(monkeypatch, "dcgan-digits", "budget", lambda: monkeypatch.setattr(d, "BUDGET_CPU_SECONDS", 30.0),
          default("dcgan-digits", "budget"), f"30 CPU seconds per run (quick: {d.QUICK_BUDGET:g})")
    monkeypatch.setattr(d, "run", dataclasses.replace(d.run, default_seeds=(4, 5)))
    assert default("dcgan-digits", "seeds").startswith("4,5 (")
    base = d.GANConfig
    monkeypatch.setattr(d, "GANConfig", lambda **kw: base(**{**kw, "n_critic": 3}))    # config()'s value moves
    assert default("dcgan-digits", "n_critic") == "3" == str(d.config("mlp", opts(), (1, 8, 8)).n_critic)


def test_rwp_gen_iters(monkeypatch):
    from refimpl.rwp import RWP_DEFAULTS
    from toy import rwp_experiments as r
    cfg = r.base_config("wgan-gp")
    for f in ("lam", "n_critic", "batch_size", "latent_dim", "lr_gen", "lr_critic"):
        assert default("rwp-gen-iters", f) == str(getattr(cfg, f)) == default("sbe-grid", f), f
    v = {x.key: x for x in r.rwp_gen_iters_variants(opts())}
    rwp = v["wgan-gp-10g-rwp"].data[0]                                   # functools.partial(RWPMethod, ...)
    assert default("rwp-gen-iters", "h") == str(rwp.keywords["h"]) == str(RWP_DEFAULTS["wgan-gp"][0])
    assert default("rwp-gen-iters", "n_gen") == str(rwp.keywords["l"]) == str(v["wgan-gp-10g"].data[1])
    iters = r._schedule(opts())[0]
    assert default("rwp-gen-iters", "iters") == f"{iters} (quick: {r._schedule(opts(True))[0]})"
    assert default("rwp-gen-iters", "seeds").startswith(",".join(map(str, r.run_rwp_gen_iters.default_seeds)) + " (")
    monkeypatch.setitem(RWP_DEFAULTS, "wgan-gp", (0.3, 10))
    monkeypatch.setattr(r, "GEN_ITERS_N_GEN", 4)
    monkeypatch.setattr(r, "DEFAULT_ITERS", 900)
    registry._rwp_defaults.cache_clear()
    assert (default("rwp-gen-iters", "h"), default("rwp-gen-iters", "n_gen")) == ("0.3", "4")
    assert default("rwp-gen-iters", "iters").startswith("900 (")
    assert "(h=0.3, l=4)" in r.rwp_gen_iters_variants(opts())[1].label   # the experiment follows its home
    assert r._schedule(opts())[0] == 900


def test_sbe_grid(monkeypatch):
    from refimpl.sbe import SBEMethod
    from toy import rwp_experiments as r
    sbe = r.sbe_grid_variants(opts())[1].data[0]
    assert default("sbe-grid", "h") == str(sbe.keywords["h"])
    assert default("sbe-grid", "n_gen") == str(r.base_config("wgan-gp").n_gen)
    assert default("sbe-grid", "seeds").startswith(",".join(map(str, r.run_sbe_grid.default_seeds)) + " (")
    defaults = SBEMethod.__init__.__defaults__                           # (h, n_phi, ...): the method's h is the home
    monkeypatch.setattr(SBEMethod.__init__, "__defaults__", (0.35, *defaults[1:]))
    assert default("sbe-grid", "h") == "0.35"
    assert "(h=0.35)" in r.sbe_grid_variants(opts())[1].label
    assert r.sbe_grid_variants(opts(h=0.5))[1].data[0].keywords["h"] == 0.5      # --h still overrides it


def test_rwp_grid_iters_and_seeds(monkeypatch):
    from toy import rwp_experiments as r
    assert default("rwp-grid", "seeds").startswith(",".join(map(str, r.run_rwp_grid.default_seeds)) + " (")
    moved(monkeypatch, "rwp-grid", "iters", lambda: monkeypatch.setattr(r, "QUICK_ITERS", 2),
          f"{r.DEFAULT_ITERS} (quick: {r.QUICK_ITERS})", f"{r.DEFAULT_ITERS} (quick: 2)")
    assert r._schedule(opts(True))[0] == 2


def test_w1fe_ring(monkeypatch):
    from toy import w1fe_ring as w
    for f in ("lam", "latent_dim", "lr_gen", "lr_critic", "n_critic", "batch_size"):
        per = {(str(getattr(w.paper_config(p, opts()), f)), str(getattr(w.paper_config(p, opts(True)), f)))
               for p in w.PENALTIES}
        (full, quick), = per                                             # the same for LP and GP
        assert default("w1fe-ring", f) == (full if full == quick else f"{full} (quick: {quick})"), f
    iters = w._schedule(opts())[0]
    assert default("w1fe-ring", "iters") == f"{iters} epochs (quick: {w._schedule(opts(True))[0]})"
    ks = sorted({v.data[1] for v in w.variants(opts())})
    assert default("w1fe-ring", "K") == ",".join(map(str, ks)) + " (LP and GP)"
    assert default("w1fe-ring", "seeds") == "--seed" and w.run.default_seeds is None
    moved(monkeypatch, "w1fe-ring", "batch_size", lambda: monkeypatch.setitem(w.QUICK, "batch", 32),
          "512 (quick: 64)", "512 (quick: 32)")
    monkeypatch.setattr(w, "DEFAULT_GRID", (("lp", 2), ("gp", 2), ("gp", 4)))
    assert default("w1fe-ring", "K") == "2 (LP), 2,4 (GP)"
    base = w.paper_config
    monkeypatch.setattr(w, "paper_config",
                        lambda p, o: dataclasses.replace(base(p, o), lam=20.0) if p == "gp" else base(p, o))
    assert default("w1fe-ring", "lam") == "10.0 (LP), 20.0 (GP)"


def test_swgan_grid(monkeypatch):
    from refimpl.swgan import SWGANConfig
    from toy import protocols
    from toy import swgan_grid as s
    (cfg, latent, iters, _), (qcfg, _, qiters, _) = (s.settings(opts(q, "swgan-grid")) for q in (False, True))
    assert cfg == SWGANConfig()                                          # the dataclass is the home
    for f in ("lam", "n_gen", "batch_size", "lr_gen", "lr_critic"):
        assert default("swgan-grid", f) == str(getattr(cfg, f)), f
    assert default("swgan-grid", "latent_dim") == str(latent)
    assert default("swgan-grid", "n_critic") == f"{cfg.n_critic} dual steps (quick: {qcfg.n_critic})"
    assert default("swgan-grid", "iters") == f"{iters} (quick: {qiters})"
    lim_ye = protocols.PROTOCOLS["lim-ye"].extra["wgan_gp_iters"]
    assert f"WGAN-GP {lim_ye} iterations" in default("swgan-grid", "protocol")
    moved(monkeypatch, "swgan-grid", "n_critic", lambda: monkeypatch.setattr(s, "QUICK_DUAL_STEPS", 2),
          f"{cfg.n_critic} dual steps (quick: {qcfg.n_critic})", f"{cfg.n_critic} dual steps (quick: 2)")
    monkeypatch.setattr(SWGANConfig, "latent_dim", 3)                   # the field's default, read by settings
    assert default("swgan-grid", "latent_dim") == "3" == str(s.settings(opts(experiment="swgan-grid"))[1])
    moved_cfg = dataclasses.dataclass(frozen=True)(type("Moved", (SWGANConfig,), {"__annotations__": {"lam": float},
                                                                                  "lam": 0.02}))
    monkeypatch.setattr(s, "SWGANConfig", moved_cfg)
    assert default("swgan-grid", "lam") == "0.02" == str(s.settings(opts(experiment="swgan-grid"))[0].lam)


# ----------------------------------------------------------------------------- what --lam means
def test_lam_help_says_what_lam_is_in_each_experiment():
    from toy.cli import OVERRIDE_FLAGS
    texts = {}
    for name in registry.EXPERIMENTS:
        action = next((a for a in build_parser(name)._actions if a.dest == "lam"), None)
        if action is not None:
            texts[name] = action.help
            assert ("SWGAN" in action.help or "swgan" in action.help) == (name in ("swgan-grid", "gan")), name
    assert "regulariser" in texts["swgan-grid"] and "gradient penalty" in texts["wgan-gp-grid"]
    assert "W1-FE-LP" in texts["w1fe-ring"] and "DRAGAN" in texts["rwp-grid"] and "WWGAN" in texts["wwgan-digits"]
    assert set(registry.HELP) == set(texts)                              # every --lam says what it weighs
    assert "SWGAN" not in OVERRIDE_FLAGS["lam"][1]
