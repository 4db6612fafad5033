"""The harness (refimpl.harness) serves the command lines; the library's maths never imports it."""
import ast
import pathlib
import subprocess
import sys

import refimpl

ROOT = pathlib.Path(__file__).resolve().parents[1]
PKG = ROOT / "refimpl"


def _imports_harness(path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level and (mod == "harness" or mod.startswith("harness.")
                               or (mod == "" and any(a.name == "harness" for a in node.names))):
                return True
            if mod.startswith("refimpl.harness") or (mod == "refimpl" and any(a.name == "harness" for a in node.names)):
                return True
        if isinstance(node, ast.Import) and any(a.name.startswith("refimpl.harness") for a in node.names):
            return True
    return False


def test_no_library_module_imports_the_harness():
    modules = [p for p in PKG.rglob("*.py") if "harness" not in p.relative_to(PKG).parts]
    assert len(modules) > 30
    offenders = [str(p.relative_to(ROOT)) for p in modules if _imports_harness(p)]
    assert not offenders, offenders
    # the scan finds such an import where there is one
    assert any(_imports_harness(p) for p in (ROOT / "toy").glob("*.py"))


def test_importing_every_library_module_leaves_the_harness_unloaded():
    names = sorted(refimpl._public_modules())
    code = ("import importlib, sys\n"
            f"for n in {names!r}:\n"
            "    if n != 'harness':\n"
            "        try:\n"
            "            importlib.import_module('refimpl.' + n)\n"
            "        except ImportError:\n"
            "            pass\n"
            "print(sorted(m for m in sys.modules if m.startswith('refimpl.')))\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    loaded = eval(r.stdout.strip())
    assert "refimpl.swgan" in loaded and "refimpl.train" in loaded      # the import loop ran
    assert not [m for m in loaded if m.startswith("refimpl.harness")], loaded


def test_the_harness_reexports_its_modules():
    from refimpl import harness
    from refimpl.harness import experiments, flags, folders, process
    for mod in (flags, folders, process, experiments):
        public = [k for k, v in vars(mod).items() if not k.startswith("_") and getattr(v, "__module__", None) == mod.__name__]
        assert public and all(getattr(harness, k) is getattr(mod, k) for k in public), mod.__name__
    assert sorted(harness.__all__) == sorted(set(harness.__all__))


def test_finished_run_matches_the_recorded_fingerprint(tmp_path):
    import json

    from refimpl.harness import finished_run
    from refimpl.train import GANConfig
    new = {"method": "w1fe-lp", "seed": 0, "config": {"lam": 10.0, "K": 3, "data_scale": 1.0, "betas": (0.5, 0.9)}}
    old = {"method": "w1fe-lp", "seed": 0, "config": {"lam": 10.0, "K": 3, "betas": [0.5, 0.9]}}
    assert finished_run(tmp_path, new, GANConfig) is None                      # no metrics.json: not finished
    (tmp_path / "metrics.json").write_text(json.dumps({"w1": 0.5, "fingerprint": old}))
    assert finished_run(tmp_path, new, GANConfig) == {"w1": 0.5, "fingerprint": old}   # data_scale added at its default
    assert finished_run(tmp_path, {**new, "config": {**new["config"], "data_scale": 2.0}}, GANConfig) is None
    assert finished_run(tmp_path, {**new, "config": {**new["config"], "K": 5}}, GANConfig) is None
    assert finished_run(tmp_path, {**new, "seed": 1}, GANConfig) is None
    (tmp_path / "metrics.json").write_text(json.dumps({"w1": 0.5, **old}))     # older files: top-level fields
    assert finished_run(tmp_path, old)["w1"] == 0.5
    assert finished_run(tmp_path, {**old, "seed": 2}) is None
    (tmp_path / "metrics.json").write_text('{"w1": 0.5')                        # a torn file is no finished run
    assert finished_run(tmp_path, old) is None

