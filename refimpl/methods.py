"""The method registry: every GAN method, built by name from its configuration.

    spec = get_method("rwp")                     # a MethodSpec
    cfg = spec.config(latent_dim=4)              # its configuration (a GANConfig here)
    method = spec.build(cfg, h=0.1, l=10)        # an RWPMethod named "rwp"

Each method's defaults live in its configuration dataclass and its class's keyword
arguments; the registry adds none of its own except where a method needs another critic
(W1-FE's configuration defaults to the one-sided penalty, ``objective="wgan-lp"``).

A method registered with :func:`register` in a user's module is offered by
``python -m toy gan --method KEY`` (and so by ``python -m toy sweep gan --set method=...``)
and by ``python -m gpu KEY``. The modules named in the environment variable
``REFIMPL_PLUGINS`` (comma-separated, like pytest's ``PYTEST_PLUGINS``) are imported at the
first lookup, so a registration also reaches the processes a sweep starts.
"""
from __future__ import annotations

import dataclasses
import importlib
import inspect
import os
from typing import Callable

#: the environment variable naming the modules that register methods
PLUGINS_ENV = "REFIMPL_PLUGINS"


def _load(path):
    """``"module:attr"`` -> the object; an object is returned as it is."""
    if not isinstance(path, str):
        return path
    module, attr = path.split(":")
    return getattr(importlib.import_module(module), attr)


@dataclasses.dataclass(frozen=True)
class MethodSpec:
    """One registered method.

    Attributes
    ----------
    key : str
        The registry key, also the default ``name`` of a built method.
    label : str
        A display name ("WGAN-GP + RWP").
    factory : callable or str
        ``factory(cfg, *, name=..., **options)`` -> a :class:`refimpl.train.GANMethod`, or its
        ``"module:attr"`` path (imported at the first build).
    config_type : type or str
        The configuration dataclass ``factory`` takes (or its ``"module:attr"`` path).
    config_defaults : dict
        Fields of ``config_type`` whose default this method changes.
    aliases : dict
        Common field names -> this method's field names (SWGAN's potentials play the critic).
    archs : tuple of str
        The network families the method takes (:data:`refimpl.architectures.ARCHS`).
    hidden_layers : int
        MLP hidden layers of an image-scale run (``python -m gpu``).
    reference : str
        Paper and section.
    """
    key: str
    label: str
    factory: Callable | str
    config_type: type | str = "refimpl.train:GANConfig"
    config_defaults: dict = dataclasses.field(default_factory=dict)
    aliases: dict = dataclasses.field(default_factory=dict)
    archs: tuple = ("mlp", "dcgan")
    hidden_layers: int = 3
    reference: str = ""

    @property
    def cls(self):
        return _load(self.factory)

    @property
    def config_cls(self):
        return _load(self.config_type)

    @property
    def config_fields(self) -> tuple:
        """The field names of ``config_type``."""
        return tuple(f.name for f in dataclasses.fields(self.config_cls))

    @property
    def options(self) -> tuple:
        """The keyword options of :meth:`build` besides ``name`` (from the factory's signature)."""
        params = list(inspect.signature(self.cls).parameters.values())[1:]
        return tuple(p.name for p in params if p.name != "name" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))

    @property
    def required_options(self) -> tuple:
        """The options :meth:`build` cannot do without (no default in the factory's signature)."""
        params = list(inspect.signature(self.cls).parameters.values())[1:]
        return tuple(p.name for p in params if p.default is p.empty and p.name != "name"
                     and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))

    def config(self, **fields):
        """This method's configuration with ``fields`` (common names translated by ``aliases``).

        Raises ``ValueError`` naming a field the configuration lacks (never dropped in silence).
        """
        cls, names = self.config_cls, set(self.config_fields)
        kw = dict(self.config_defaults)
        for k, v in fields.items():
            k = self.aliases.get(k, k)
            if k not in names:
                raise ValueError(f"{k!r} does not apply to method {self.key!r} ({cls.__name__}'s fields: "
                                 f"{', '.join(sorted(names))})")
            kw[k] = v
        return cls(**kw)

    def build(self, cfg, *, name=None, **options):
        """The method for ``cfg`` (an instance of ``config_type``), named ``name`` (default: the key).

        Raises ``TypeError`` for a ``cfg`` of another type and ``ValueError`` naming an option
        the method does not take or a required one that is missing.
        """
        cls = self.config_cls
        if not isinstance(cfg, cls):
            raise TypeError(f"method {self.key!r} takes a {cls.__name__}, got {type(cfg).__name__}")
        known = self.options
        bad = [k for k in options if k not in known]
        if bad:
            raise ValueError(f"option {bad[0]!r} does not apply to method {self.key!r} "
                             f"(its options: {', '.join(known) or 'none'})")
        missing = [o for o in self.required_options if o not in options]
        if missing:
            raise ValueError(f"method {self.key!r} needs the option {missing[0]!r}")
        return self.cls(cfg, name=self.key if name is None else name, **options)


_REGISTRY: dict[str, MethodSpec] = {}
_plugins_loaded = False


def register(key, label=None, **spec):
    """Register a method under ``key``; usable as a decorator of its factory or called with ``factory=``.

        @register("my-gan", label="My GAN", config_defaults={"n_critic": 2})
        class MyGAN(GANMethod):
            def __init__(self, cfg, repeats=2, *, name=None):
                super().__init__(cfg, name=name)
                self.repeats = repeats
            def generator_phase(self, state, rng, data): ...

    The factory takes the configuration first, its options as keywords with defaults, and the
    keyword ``name``; it may override any phase of :class:`refimpl.gan.GANMethod`. Options other
    than ``h``, ``l`` and ``K`` have no command-line flag: their defaults are what the command
    lines run. ``spec`` holds the other fields of :class:`MethodSpec`.

    Raises ``ValueError`` when ``key`` is taken or is not a non-empty string without spaces, or
    when the factory does not take ``name``.
    """
    if not isinstance(key, str) or not key or any(c.isspace() for c in key):
        raise ValueError(f"key must be a non-empty string without spaces, got {key!r}")
    if key in _REGISTRY:
        raise ValueError(f"method {key!r} is already registered")

    def add(factory):
        if not isinstance(factory, str):
            params = inspect.signature(factory).parameters
            if "name" not in params and not any(p.kind is p.VAR_KEYWORD for p in params.values()):
                raise ValueError(f"the factory of {key!r} must take the keyword name= (the method's name, "
                                 f"passed on to GANMethod.__init__)")
        _REGISTRY[key] = MethodSpec(key, label or key, factory, **spec)
        return factory

    if "factory" in spec:
        return add(spec.pop("factory"))
    return add


def _load_plugins():
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for module in filter(None, (m.strip() for m in os.environ.get(PLUGINS_ENV, "").split(","))):
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise ValueError(f"{PLUGINS_ENV} names the module {module!r}, which cannot be imported: {e}") from None


def method_keys() -> tuple:
    """The registered keys, in registration order (the library's first)."""
    _load_plugins()
    return tuple(_REGISTRY)


def get_method(key) -> MethodSpec:
    """The :class:`MethodSpec` of ``key``; ``ValueError`` naming the registered keys otherwise."""
    _load_plugins()
    try:
        return _REGISTRY[key]
    except (KeyError, TypeError):
        raise ValueError(f"unknown method {key!r}; registered: {', '.join(_REGISTRY)} (a method of your own: "
                         f"register it in a module and name the module in {PLUGINS_ENV})") from None


def build_method(key, cfg=None, *, name=None, **options):
    """``get_method(key).build(cfg, ...)``; ``cfg=None`` is the method's default configuration."""
    spec = get_method(key)
    return spec.build(spec.config() if cfg is None else cfg, name=name, **options)


register("wgan-gp", "WGAN-GP", factory="refimpl.train:GANMethod",
         reference="Gulrajani et al. 2017 (any objective of refimpl.objectives via cfg.objective)")
register("rwp", "WGAN-GP + RWP", factory="refimpl.rwp:RWPMethod",
         reference="Wasserstein proximal of GANs, Algorithm 1")
register("sbe", "SBE", factory="refimpl.sbe:SBEMethod", reference="Wasserstein proximal of GANs, Sec. 4 (SBE)")
register("w1fe", "W1-FE", factory="refimpl.w1fe:W1FE", config_defaults={"objective": "wgan-lp"},
         reference="W1 forward Euler, Algorithm 1")
register("wwgan", "WWGAN", factory="refimpl.wwgan:WWGANMethod", reference="Wasserstein of Wasserstein, Sec. 4")
register("swgan", "SWGAN", factory="refimpl.swgan:SWGANMethod", config_type="refimpl.swgan:SWGANConfig",
         aliases={"critic_hidden": "potential_hidden"}, archs=("mlp",), hidden_layers=2,
         reference="Smoothed WGAN, Algorithm 1 (parametric)")
