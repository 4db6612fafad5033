"""refimpl: reference implementation of optimal-transport methods for training GANs.

NumPy-first, hand-written backpropagation, one Array API code path for every backend.

The public modules (every ``refimpl/NAME.py`` whose name has no leading underscore) are
imported lazily on first attribute access (PEP 562): ``import refimpl; refimpl.ot`` works,
and ``import refimpl`` itself imports nothing else, so optional dependencies load only
with the module that needs them.
"""
import importlib as _importlib
import pkgutil as _pkgutil

__version__ = "0.1.0"


def _public_modules():
    return sorted(m.name for m in _pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def __getattr__(name):
    if not name.startswith("_") and name in _public_modules():
        module = _importlib.import_module(f".{name}", __name__)
        globals()[name] = module
        return module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *_public_modules()})
