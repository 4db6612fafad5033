"""The method registry (refimpl.methods): builds equal to direct construction, errors name their
argument, and a method registered in a user's module runs through ``python -m toy`` and its sweep."""
import dataclasses
import json
import os
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from refimpl import methods
from refimpl.methods import get_method, method_keys, register
from refimpl.rwp import RWPMethod
from refimpl.sbe import SBEMethod
from refimpl.swgan import SWGANConfig, SWGANMethod
from refimpl.train import GANConfig, GANMethod
from refimpl.w1fe import W1FE
from refimpl.wwgan import WWGANMethod

ROOT = pathlib.Path(__file__).resolve().parents[1]
SMALL = dict(gen_hidden=(8, 8), critic_hidden=(8, 8))

# key -> (config fields, options, the same method built directly)
DIRECT = {
    "wgan-gp": ({}, {}, lambda: GANMethod(GANConfig(**SMALL), name="wgan-gp")),
    "rwp": ({}, dict(h=0.1, l=3), lambda: RWPMethod(GANConfig(**SMALL), h=0.1, l=3)),
    "sbe": ({}, dict(h=0.3, n_phi=2), lambda: SBEMethod(GANConfig(**SMALL), h=0.3, n_phi=2)),
    "w1fe": ({}, dict(K=2), lambda: W1FE(GANConfig(objective="wgan-lp", **SMALL), K=2)),
    "wwgan": (dict(data_dim=16), dict(image_shape=(1, 4, 4), alpha=1.0),
              lambda: WWGANMethod(GANConfig(data_dim=16, **SMALL), (1, 4, 4), alpha=1.0)),
    "swgan": ({}, {}, lambda: SWGANMethod(SWGANConfig(gen_hidden=(8, 8), potential_hidden=(8, 8)))),
}


def test_the_library_methods_are_registered():
    assert set(DIRECT) <= set(method_keys())
    assert method_keys()[:6] == ("wgan-gp", "rwp", "sbe", "w1fe", "wwgan", "swgan")
    assert get_method("swgan").archs == ("mlp",) and "dcgan" in get_method("rwp").archs


@pytest.mark.parametrize("key", list(DIRECT))
def test_build_equals_direct_construction(key):
    fields, options, direct = DIRECT[key]
    spec = get_method(key)
    built, ref = spec.build(spec.config(**SMALL, **fields), **options), direct()
    assert type(built) is type(ref) and built.name == ref.name == key
    assert built.cfg == ref.cfg
    assert built.config() == ref.config()                 # the options reached the method
    s1 = built.init_state(np.random.default_rng(3), np, "float64")
    s2 = ref.init_state(np.random.default_rng(3), np, "float64")
    for (w1, b1), (w2, b2) in zip(s1["gen"], s2["gen"]):
        np.testing.assert_array_equal(w1, w2)
        np.testing.assert_array_equal(b1, b2)
    before = [np.array(w, copy=True) for w, _ in s1["gen"]]          # the step may update in place
    out1, _ = built.outer_step(s1, np.random.default_rng(4), _data(built))
    out2, _ = ref.outer_step(s2, np.random.default_rng(4), _data(ref))
    moved = [not np.array_equal(a[0], b) for a, b in zip(out1["gen"], before)]
    assert any(moved)                                      # the step moved the generator ...
    for (w1, _), (w2, _) in zip(out1["gen"], out2["gen"]):
        np.testing.assert_array_equal(w1, w2)             # ... identically


def _data(method):
    from refimpl.train import ArrayData
    return ArrayData(np.random.default_rng(0).uniform(-1, 1, (64, method.cfg.data_dim)))


def test_config_translates_aliases_and_refuses_unknown_fields():
    cfg = get_method("swgan").config(critic_hidden=(16,), latent_dim=3)
    assert isinstance(cfg, SWGANConfig) and cfg.potential_hidden == (16,) and cfg.latent_dim == 3
    assert get_method("w1fe").config().objective == "wgan-lp"
    assert get_method("w1fe").config(objective="wgan-gp").objective == "wgan-gp"
    with pytest.raises(ValueError, match="'objective' does not apply to method 'swgan'"):
        get_method("swgan").config(objective="wgan-gp")
    with pytest.raises(ValueError, match="'no_such_field'"):
        get_method("rwp").config(no_such_field=1)


def test_build_refuses_bad_options_and_configs():
    spec = get_method("rwp")
    assert spec.options == ("h", "l")
    with pytest.raises(ValueError, match=r"option 'K' does not apply to method 'rwp' \(its options: h, l\)"):
        spec.build(spec.config(), K=3)
    with pytest.raises(ValueError, match="needs the option 'image_shape'"):
        get_method("wwgan").build(GANConfig())
    with pytest.raises(TypeError, match="takes a SWGANConfig, got GANConfig"):
        get_method("swgan").build(GANConfig())
    with pytest.raises(ValueError, match="unknown method 'nope'; registered: wgan-gp"):
        get_method("nope")
    assert spec.build(spec.config(), name="mine").name == "mine"


def test_register_refuses_taken_and_bad_keys():
    with pytest.raises(ValueError, match="already registered"):
        register("rwp", factory=GANMethod)
    for bad in ("", "a b", None):
        with pytest.raises(ValueError, match="key must be"):
            register(bad, factory=GANMethod)


def test_register_as_decorator(monkeypatch):
    monkeypatch.setattr(methods, "_REGISTRY", dict(methods._REGISTRY))

    @register("lp-gan", label="LP GAN", config_defaults={"objective": "wgan-lp"})
    class LPGAN(GANMethod):
        name = "lp-gan"

    assert "lp-gan" in method_keys() and get_method("lp-gan").label == "LP GAN"
    m = methods.build_method("lp-gan")
    assert type(m) is LPGAN and m.name == "lp-gan" and m.cfg.objective == "wgan-lp"


PLUGIN = textwrap.dedent('''
    from refimpl.methods import register
    from refimpl.train import GANMethod

    @register("plugin-gan", label="Plugin GAN", config_defaults={"objective": "wgan-lp", "n_critic": 2})
    class PluginGAN(GANMethod):
        """A user's method: WGAN-LP with two critic steps."""
''')


def _env(tmp_path, plugins=True):
    (tmp_path / "user_plugin.py").write_text(PLUGIN)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    env.pop(methods.PLUGINS_ENV, None)
    if plugins:
        env[methods.PLUGINS_ENV] = "user_plugin"
    return env


TINY = ["--quick", "--iters", "3", "--batch-size", "16", "--latent-dim", "2"]


def test_a_registered_method_runs_through_toy_and_its_sweep(tmp_path):
    """The plugin module only registers; ``python -m toy gan`` and the sweep (Dask worker processes)
    find it through REFIMPL_PLUGINS, and without it the key is unknown (exit 2, one line)."""
    r = subprocess.run([sys.executable, "-m", "toy", "gan", "--method", "plugin-gan", *TINY,
                        "--out", str(tmp_path / "none")], cwd=tmp_path, env=_env(tmp_path, plugins=False),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "invalid choice: 'plugin-gan'" in r.stderr and not (tmp_path / "none").exists()
    assert len(r.stderr.strip().splitlines()) == 1

    out = tmp_path / "one"
    r = subprocess.run([sys.executable, "-m", "toy", "gan", "--method", "plugin-gan", *TINY, "--out", str(out)],
                       cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    m = json.loads((out / "metrics.json").read_text())
    assert m["method"] == m["method_key"] == "plugin-gan" and m["iterations"] == 3
    assert m["config"]["objective"] == "wgan-lp" and m["config"]["n_critic"] == 2

    pytest.importorskip("distributed")
    sw = tmp_path / "sweep"
    r = subprocess.run([sys.executable, "-m", "toy", "sweep", "gan", "--seeds", "0-1", "--workers", "1",
                        "--set", "method=plugin-gan,wgan-gp", *TINY, "--out", str(sw)],
                       cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    runs = json.loads((sw / "sweep.json").read_text())["runs"]
    assert len(runs) == 4 and {v["status"] for v in runs.values()} == {"done"}
    keys = sorted(json.loads(p.read_text())["method_key"] for p in sw.rglob("metrics.json")
                  if "method_key" in json.loads(p.read_text()))
    assert keys == ["plugin-gan", "plugin-gan", "wgan-gp", "wgan-gp"]


def test_register_refuses_a_factory_without_name():
    with pytest.raises(ValueError, match="must take the keyword name="):
        @register("no-name-gan")
        class NoName(GANMethod):
            def __init__(self, cfg, repeats=2):
                super().__init__(cfg)
    assert "no-name-gan" not in method_keys()


def test_a_plugin_module_that_cannot_be_imported_is_named(monkeypatch):
    monkeypatch.setattr(methods, "_plugins_loaded", False)
    monkeypatch.setenv(methods.PLUGINS_ENV, "no_such_plugin_module")
    with pytest.raises(ValueError, match="REFIMPL_PLUGINS names the module 'no_such_plugin_module'"):
        method_keys()


def test_toy_gan_refuses_a_method_whose_required_option_has_no_flag(tmp_path, capsys):
    from toy.__main__ import main
    assert get_method("wwgan").required_options == ("image_shape",)
    assert main(["gan", "--method", "wwgan", "--quick", "--out", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs the option 'image_shape'" in err[0] and "wwgan-digits" in err[0]
    assert not (tmp_path / "w").exists()


@pytest.mark.parametrize("argv", [["toy", "gan", "--n-c", "2"], ["gpu", "rwp", "--la", "3"]])
def test_flags_are_never_abbreviated(tmp_path, capsys, argv):
    """``--la`` once silently meant ``--lam`` (and ``python -m gpu rwp --l 3`` set lam = 3)."""
    from gpu.__main__ import main as gpu_main
    from toy.__main__ import main as toy_main
    main = toy_main if argv[0] == "toy" else gpu_main
    rest = argv[1:] + ["--quick", "--out", str(tmp_path / "a")] + (["--backend", "numpy"] if argv[0] == "gpu" else [])
    with pytest.raises(SystemExit) as e:
        main(rest)
    assert e.value.code == 2 and "unrecognized arguments" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()


def test_gpu_rwp_l_reaches_the_method(tmp_path):
    from gpu.experiments import ImageRun, build_method
    m = build_method(ImageRun(method="rwp", backend="numpy", width=4, l=3), (1, 8, 8))
    assert m.l == 3 and m.cfg.lam == 10.0
    with pytest.raises(ValueError, match="l must be an integer >= 1"):
        ImageRun(method="rwp", backend="numpy", l=0)
