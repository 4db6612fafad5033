"""The runs of a sweep: seeds and ``--set`` settings expanded into :class:`Run` objects, each run's
id, folder and arguments (:mod:`toy.sweep`)."""
from __future__ import annotations

import itertools
import pathlib
import re
from dataclasses import dataclass




RESERVED = ("--seed", "--out", "--resume", "--seeds", "--variant", "--peer")


@dataclass(frozen=True)
class Run:
    """One task of a sweep, writing to ``DIR/run_id`` (its arguments: :func:`run_argv`)."""
    run_id: str
    variant: str                      # "default", or the settings as "key=v,key=v"
    seed: int
    setting: tuple                    # ((key, value), ...), in --set order
    name: str                         # the experiment
    flags: tuple                      # the experiment's flags, then the setting's (then --variant KEY)
    key: str | None = None            # the experiment's own variant (multi-run experiments), else None
    peers: tuple = ()                 # ((variant key, run id), ...): runs of the same seed to finish first


def parse_seeds(text: str) -> list[int]:
    """``"0-4"`` -> [0, 1, 2, 3, 4]; ``"0,1,3"`` -> [0, 1, 3]; ranges and lists mix (``"0-2,7"``).

    Raises ``ValueError`` for anything else, negative seeds, empty or reversed ranges, repeats.
    """
    seeds = []
    for part in str(text).split(","):
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not m:
            raise ValueError(f"--seeds: expected a range like 0-4 or a list like 0,1,3, got {text!r}")
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        if hi < lo:
            raise ValueError(f"--seeds: empty range {part.strip()!r}")
        seeds.extend(range(lo, hi + 1))
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds: a seed is repeated in {text!r}")
    return seeds


def parse_setting(text: str) -> tuple[str, list[str]]:
    """``"lam=1,10"`` -> ("lam", ["1", "10"]); the key is the experiment's flag without ``--``
    (``n_critic`` and ``n-critic`` both mean ``--n-critic``)."""
    key, sep, values = str(text).partition("=")
    key = key.strip().lstrip("-").replace("_", "-")
    vals = [v.strip() for v in values.split(",")]
    if not sep or not re.fullmatch(r"[A-Za-z][A-Za-z0-9-]*", key) or not all(vals):
        raise ValueError(f"--set: expected key=v1,v2,... (e.g. lam=1,10), got {text!r}")
    if f"--{key}" in RESERVED:
        raise ValueError(f"--set {key}: the sweep sets --{key} itself")
    if len(set(vals)) != len(vals):
        raise ValueError(f"--set {key}: a value is repeated in {text!r}")
    return key, vals


def safe_value(value: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]", "-", value)


def expand(name: str, seeds, settings=(), passthrough=(), variants=None, check=None) -> list[Run]:
    """Every (setting, variant, seed) run of the sweep, in that nesting (so a run comes after the
    runs it builds on).

    ``settings``: [(key, [values])] from :func:`parse_setting`; their Cartesian product are the
    settings. ``passthrough``: the experiment's own flags, given to every run unchanged.
    ``variants(name, flags) -> [(Variant, flags)] | None`` lists a multi-run experiment's own
    variants under a setting's flags (:func:`toy.cli.variants`); each becomes
    ``variant=KEY`` in the run id and the variant name. None (or a None result): one run per
    setting and seed. ``check(name, flags)`` (:func:`toy.cli.check_flags`), if given, is
    called once per setting before anything else and raises ``ValueError`` for flags (passthrough
    or ``--set`` values) the experiment refuses, so a bad flag stops the sweep before any run.
    """
    keys = [k for k, _ in settings]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:
        raise ValueError(f"--set: the key {twice[0]} is given twice; give its values once, comma-separated")
    bad = [a for a in passthrough if a.split("=")[0] in RESERVED]
    if bad:
        raise ValueError(f"{bad[0].split('=')[0]} is set by the sweep for every run; drop it from the experiment flags")
    combos = list(itertools.product(*[vals for _, vals in settings]))
    for combo in combos if check else ():
        check(name, [*passthrough, *[x for k, v in zip(keys, combo) for x in (f"--{k}", v)]])
    runs, ids = [], set()
    for combo in combos:
        setting = tuple(zip(keys, combo))
        parts = [f"{k}={safe_value(v)}" for k, v in setting]
        flags = [x for k, v in setting for x in (f"--{k}", v)]
        own = variants(name, [*passthrough, *flags]) if variants else None
        for v, vflags in own or [(None, [])]:
            vparts = parts + ([f"variant={safe_value(v.key)}"] if v else [])
            label = ",".join([f"{k}={val}" for k, val in setting] + ([f"variant={v.key}"] if v else [])) or "default"
            for s in seeds:
                run_id = ",".join(vparts + [f"seed={s}"])
                if run_id in ids:
                    raise ValueError(f"two runs would share the folder {run_id!r}; use distinct setting values")
                ids.add(run_id)
                peers = tuple((a, ",".join(parts + [f"variant={safe_value(a)}", f"seed={s}"])) for a in (v.after if v else ()))
                runs.append(Run(run_id, label, int(s), setting, name, (*passthrough, *flags, *vflags),
                                v.key if v else None, peers))
    return runs


def run_argv(run: Run, out: pathlib.Path) -> list[str]:
    """The runner's arguments: ``[NAME, "--seed", S, "--out", out/RUN_ID, *flags, --peer KEY=out/RUN_ID ...]``."""
    peers = [x for key, rid in run.peers for x in ("--peer", f"{key}={out / rid}")]
    return [run.name, "--seed", str(run.seed), "--out", str(out / run.run_id), *run.flags, *peers]
