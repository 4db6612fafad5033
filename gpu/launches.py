"""Launch count: arrays created and ``namespace()`` lookups per outer step, counted on array_api_strict.

Every array an operation creates is at most one kernel launch on CuPy, and every
:func:`refimpl.backend.namespace` call is Python overhead paid per launch group; both
are independent of the layer widths and the batch size, so they are counted on the
CPU at the toy defaults (widths reduced to keep it quick: the counts do not depend on
them). Methods: WGAN-GP (``GANConfig()``), RWP (Appendix C defaults for WGAN-GP),
SWGAN (``SWGANConfig()``, with the eq. 15 early stop off so all ``n_critic`` dual
steps run), plus SBE, W1-FE and WWGAN.

    python -m gpu.launches [--methods wgan-gp,rwp,swgan] [--width 32] [--top 8] [--out DIR]

Prints one row per method (and the top namespace call sites); ``--out`` writes
``launches.json``.
"""
from __future__ import annotations

import argparse
import json
import pathlib

import numpy as np

from refimpl.backend import from_host
from refimpl.methods import get_method, method_keys
from refimpl.train import ArrayData

from .counters import HostRoundTrips, LaunchCounts


#: what a count needs beyond a method's defaults: WWGAN an 8x8 image, SWGAN every dual step (no early stop)
EXTRA_FIELDS = {"wwgan": dict(data_dim=64), "swgan": dict(stop_tol=0.0)}
EXTRA_OPTIONS = {"wwgan": dict(image_shape=(1, 8, 8))}


def make_method(name, width):
    """The registered method ``name`` (:mod:`refimpl.methods`) at its defaults with hidden widths ``width``."""
    spec = get_method(name)
    hidden = (width,) * spec.hidden_layers
    cfg = spec.config(gen_hidden=hidden, critic_hidden=hidden, **EXTRA_FIELDS.get(name, {}))
    return spec.build(cfg, **EXTRA_OPTIONS.get(name, {}))


def count(name, width=32, seed=0):
    """One outer step of ``name`` (after a first one) on array_api_strict: a dict of counts and sites."""
    import array_api_strict as xp
    method = make_method(name, width)
    rng = np.random.default_rng(seed)
    data = ArrayData(from_host(rng.uniform(-1, 1, (1024, method.cfg.data_dim)), xp, "float32"))
    state = method.init_state(rng, xp, "float32")
    state, _ = method.outer_step(state, rng, data)
    with LaunchCounts() as lc, HostRoundTrips() as rt:
        state, logs = method.outer_step(state, rng, data)
    return {"method": name, "arrays": lc.arrays, "promotions": lc.by_kind["promotions"],
            "namespace": lc.lookups, "host_round_trips": rt.total, "namespace_sites": dict(lc.by_site),
            "round_trip_sites": dict(rt.by_site)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", default=",".join(method_keys()))
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--top", type=int, default=8, help="namespace() call sites shown per method")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    names = [m.strip() for m in args.methods.split(",") if m.strip()]
    bad = [m for m in names if m not in method_keys()]
    if bad or args.width < 1:
        ap.error(f"unknown method {bad[0]!r}; choose from {', '.join(method_keys())}" if bad else "--width must be >= 1")
    rows = [count(m, args.width) for m in names]
    print(f"{'method':>8} {'arrays':>7} {'promoted':>9} {'namespace()':>12} {'round trips':>12}")
    for r in rows:
        print(f"{r['method']:>8} {r['arrays']:7d} {r['promotions']:9d} {r['namespace']:12d} {r['host_round_trips']:12d}")
    for r in rows:
        if args.top:
            print(f"\n{r['method']}: top namespace() sites")
            for s, n in sorted(r["namespace_sites"].items(), key=lambda kv: -kv[1])[:args.top]:
                print(f"  {n:5d}  {s}")
    if args.out:
        out = pathlib.Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "launches.json").write_text(json.dumps({"width": args.width, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
