"""One command on a fresh GPU machine: install the carried wheels, run the CuPy tests, train briefly, benchmark.

    python -m gpu.verify --out DIR [--wheels wheels] [--budget 480]
    python -m gpu.verify --out DIR --dry-run          # NumPy backend, tiny sizes (CI runs this)

Steps, each a subprocess with its log in ``DIR/<step>.log`` and its own time limit,
all within ``--budget`` seconds (default 8 minutes):

1. ``install``: ``pip install --no-index --find-links WHEELS WHEELS/*.whl`` (no network);
2. ``environment``: ``nvidia-smi`` and the versions of the libraries (``DIR/environment.json``);
3. ``tests``: the CuPy subset (``REFIMPL_BACKENDS=cupy``: every backend-parametrised
   test, the NumPy/CuPy parity test and the device tests of ``tests/test_gpu.py``),
   per-test limit ``--test-timeout`` (plugin :mod:`gpu.timeouts`), JUnit XML in
   ``DIR/junit.xml``;
4. ``train``: ``python -m gpu wgan-gp --dataset digits`` for 200 iterations
   (``DIR/train/``: metrics.json, curve.csv, samples);
5. ``bench``: ``python -m gpu.bench --quick`` (``DIR/bench/bench.json`` and ``bench.csv``).

A step that runs out of time gets SIGINT (pytest then still writes its JUnit XML),
then SIGKILL 15 s later; the next steps run in the time left. ``DIR/summary.json``
records every step's command, exit status, seconds and outcome; the exit status is 0
only when every step passed. The dry run uses the NumPy backend and tiny sizes
(tests: two CPU tests of ``tests/test_gpu.py``; train: ``--quick``; bench:
``--dry-run``) and, with ``--wheels``, only ``pip install --dry-run``. See docs/gpu.md.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

PY = sys.executable
ROOT = pathlib.Path(__file__).resolve().parent.parent
# step -> share of the budget it may use at most (the rest of the budget always caps it too)
LIMITS = {"install": 60, "environment": 30, "tests": 210, "train": 60, "bench": 150}
GPU_TESTS = ["-m", "not slow", "-k", "(cupy or gpu) and not verify"]
DRY_TESTS = ["tests/test_gpu.py", "-k", "synchronize or imports_without_cupy"]
LIBRARIES = ("refimpl", "numpy", "scipy", "cupy-cuda13x", "cupy-cuda12x", "torch", "array-api-compat",
             "array-api-strict", "POT", "hypothesis", "pytest", "scikit-learn", "matplotlib", "pillow")


def run_step(name, argv, out, limit, env=None):
    """Run ``argv`` with output to ``out/<name>.log``; returns the step's summary dict."""
    log = out / f"{name}.log"
    t0 = time.perf_counter()
    rec = {"step": name, "command": " ".join(map(str, argv)), "limit_s": round(limit, 1), "log": log.name}
    if limit <= 1:
        rec.update(status="skipped", reason="no time left in the budget", seconds=0.0, rc=None)
        return rec
    with open(log, "w") as f:
        f.write(f"$ {rec['command']}\n")
        f.flush()
        p = subprocess.Popen(list(map(str, argv)), stdout=f, stderr=subprocess.STDOUT, cwd=ROOT,
                             env={**os.environ, **(env or {})}, start_new_session=True)
        timed_out = False
        try:
            rc = p.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(p.pid, signal.SIGINT)            # pytest writes its report on Ctrl-C
            try:
                rc = p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                rc = p.wait()
    rec.update(rc=rc, seconds=round(time.perf_counter() - t0, 1),
               status="timeout" if timed_out else ("passed" if rc == 0 else "failed"))
    return rec


def junit_counts(path):
    """``{tests, failures, errors, skipped}`` of a JUnit XML file (``None`` when absent or unreadable)."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return None
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    return {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}


def environment(out, dry_run):
    """Versions and ``nvidia-smi`` into ``environment.json``; returns the dict."""
    from importlib.metadata import PackageNotFoundError, version
    env = {"python": platform.python_version(), "platform": platform.platform(), "dry_run": dry_run}
    for lib in LIBRARIES:
        try:
            env[lib] = version(lib)
        except PackageNotFoundError:
            env[lib] = None
    try:
        smi = subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=20)
        env["nvidia_smi"] = smi.stdout.strip() or smi.stderr.strip()
    except (OSError, subprocess.SubprocessError) as e:
        env["nvidia_smi"] = f"unavailable: {type(e).__name__}: {e}"
    (out / "environment.json").write_text(json.dumps(env, indent=1))
    return env


def plan(out, wheels, dry_run, test_timeout):
    """The steps ``(name, argv, env)`` of a verification run (``environment`` runs in-process)."""
    steps = []
    if wheels is not None:
        files = sorted(str(p) for p in pathlib.Path(wheels).glob("*.whl"))
        pip = [PY, "-m", "pip", "install", "--no-index", "--find-links", str(wheels)]
        steps.append(("install", pip + (["--dry-run", "--no-deps"] if dry_run else []) + files, None))
    tenv = {"REFIMPL_TEST_TIMEOUT": str(test_timeout), "REFIMPL_BACKENDS": "numpy" if dry_run else "cupy"}
    pytest = [PY, "-m", "pytest", "-q", "-rfEs", "-p", "gpu.timeouts", "-p", "no:cacheprovider",
              "--durations=15", f"--junitxml={out / 'junit.xml'}"]
    steps.append(("tests", pytest + (DRY_TESTS if dry_run else GPU_TESTS), tenv))
    train = [PY, "-m", "gpu", "wgan-gp", "--dataset", "digits", "--out", str(out / "train")]
    steps.append(("train", train + (["--backend", "numpy", "--quick"] if dry_run else
                                    ["--iters", "200", "--eval-every", "100"]), None))
    steps.append(("bench", [PY, "-m", "gpu.bench", "--dry-run" if dry_run else "--quick",
                            "--out", str(out / "bench")], None))
    return steps


def _report(results, rec):
    results.append(rec)
    extra = f" {rec['junit']}" if rec.get("junit") else ""
    print(f"{rec['step']:>12}: {rec['status']:8} {rec['seconds']:6.1f} s  ({rec['log']}){extra}", flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m gpu.verify", description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=pathlib.Path, help="folder for logs, junit.xml, bench/, summary.json")
    ap.add_argument("--wheels", type=pathlib.Path, default=None,
                    help="folder of wheels to install with pip --no-index (default: ./wheels when it exists)")
    ap.add_argument("--budget", type=float, default=480.0, help="seconds for all steps together (default 480)")
    ap.add_argument("--test-timeout", type=float, default=60.0, help="per-test limit in seconds (default 60)")
    ap.add_argument("--dry-run", action="store_true", help="NumPy backend and tiny sizes; no install")
    a = ap.parse_args(argv)
    if a.budget <= 0 or a.test_timeout <= 0:
        ap.error("--budget and --test-timeout must be > 0")
    wheels = a.wheels if a.wheels is not None else (ROOT / "wheels" if (ROOT / "wheels").is_dir() else None)
    if wheels is not None and not any(pathlib.Path(wheels).glob("*.whl")):
        ap.error(f"--wheels {wheels}: no .whl files there (see docs/gpu.md for how to download them)")
    if a.out.exists() and any(a.out.iterdir()):
        ap.error(f"--out {a.out} is not empty; choose a new folder (nothing is overwritten)")
    a.out.mkdir(parents=True, exist_ok=True)
    out = a.out.resolve()
    deadline = time.perf_counter() + a.budget
    results = []
    for name, argv_, env in plan(out, wheels, a.dry_run, a.test_timeout):
        if name == "tests":                     # after the install, so the versions are the installed ones
            t0 = time.perf_counter()
            environment(out, a.dry_run)
            _report(results, {"step": "environment", "status": "passed", "rc": 0, "log": "environment.json",
                              "seconds": round(time.perf_counter() - t0, 1)})
        rec = run_step(name, argv_, out, min(LIMITS[name], deadline - time.perf_counter()), env)
        if name == "tests":
            rec["junit"] = junit_counts(out / "junit.xml")
        _report(results, rec)
    ok = all(r["status"] == "passed" for r in results)
    summary = {"ok": ok, "dry_run": a.dry_run, "budget_s": a.budget, "wheels": None if wheels is None else str(wheels),
               "steps": results}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(f"{'all steps passed' if ok else 'SOME STEPS DID NOT PASS'}; summary in {out / 'summary.json'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
