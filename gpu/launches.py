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
from refimpl.train import ArrayData, GANConfig, GANMethod

from .counters import HostRoundTrips, LaunchCounts


def make_method(name, width):
    """The method ``name`` at its toy defaults with hidden widths ``width``; returns ``(method, data_dim)``."""
    hidden = (width,) * 3
    cfg = GANConfig(gen_hidden=hidden, critic_hidden=hidden)
    if name == "wgan-gp":
        return GANMethod(cfg)
    if name == "rwp":
        from refimpl.rwp import RWPMethod
        return RWPMethod(cfg)
    if name == "sbe":
        from refimpl.sbe import SBEMethod
        return SBEMethod(cfg)
    if name == "w1fe":
        from refimpl.w1fe import W1FE
        import dataclasses
        return W1FE(dataclasses.replace(cfg, objective="wgan-lp"))
    if name == "wwgan":
        from refimpl.wwgan import WWGANMethod
        import dataclasses
        return WWGANMethod(dataclasses.replace(cfg, data_dim=64), (1, 8, 8))
    if name == "swgan":
        from refimpl.swgan import SWGANConfig, SWGANMethod
        return SWGANMethod(SWGANConfig(gen_hidden=(width,) * 2, potential_hidden=(width,) * 2, stop_tol=0.0))
    raise ValueError(f"unknown method {name!r}")


METHODS = ("wgan-gp", "rwp", "swgan", "sbe", "w1fe", "wwgan")


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
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--top", type=int, default=8, help="namespace() call sites shown per method")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    names = [m.strip() for m in args.methods.split(",") if m.strip()]
    bad = [m for m in names if m not in METHODS]
    if bad or args.width < 1:
        ap.error(f"unknown method {bad[0]!r}; choose from {', '.join(METHODS)}" if bad else "--width must be >= 1")
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
