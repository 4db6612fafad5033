"""The code's shape (issue 25): no module reaches into another's ``_`` names (nor calls another
class's unchecked twins), no library module is longer than 450 lines, and the checked layer
(:func:`refimpl.validation.checked`, on functions and methods) is what it says."""
import ast
import copy
import inspect
import pathlib
import pickle
import sys

import numpy as np
import pytest

from refimpl import validation
from refimpl.metrics import w1
from refimpl.nn import MLP, add_params
from refimpl.optim import SGD, RMSprop, Adam

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("refimpl", "toy", "gpu")


def _private_uses(path):
    """``(module, name)`` for each ``from M import _x`` and each ``M._x`` on an imported project module."""
    tree = ast.parse(path.read_text())
    modules, uses = {}, []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            for a in node.names:
                if a.name.startswith("_") and not a.name.startswith("__"):
                    uses.append((node.module, a.name))
                elif (a.asname or "").startswith("_") and (node.level or (node.module or "").split(".")[0] in PACKAGES):
                    uses.append((node.module, f"{a.name} as {a.asname}"))     # a project name made private here
                else:
                    modules[a.asname or a.name] = f"{node.module or ''}.{a.name}"
        elif isinstance(node, ast.Import):
            for a in node.names:
                modules[(a.asname or a.name).split(".")[0]] = a.name
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules
                and node.attr.startswith("_") and not node.attr.startswith("__")
                and modules[node.value.id].split(".")[0] not in sys.stdlib_module_names):
            uses.append((modules[node.value.id], node.attr))
    return uses


def test_no_module_imports_another_modules_private_names():
    found = {str(p.relative_to(ROOT)): u for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))
             if (u := _private_uses(p))}
    assert not found, f"cross-module uses of _ names (make the name public or use f.unchecked): {found}"


def test_the_counter_sees_a_private_import(tmp_path):
    """The check above has teeth: both forms are found, a stdlib one is not."""
    f = tmp_path / "m.py"
    f.write_text("from .metrics import _w1\nfrom . import nn\nimport sys\nnn._add_params\nsys._getframe\n"
                 "from . import conv as _conv\nimport numpy as _np\n")
    assert _private_uses(f) == [("metrics", "_w1"), (None, "conv as _conv"), (".nn", "_add_params")]


def test_no_library_module_is_longer_than_450_lines():
    long = {str(p.relative_to(ROOT)): n for p in sorted((ROOT / "refimpl").rglob("*.py"))
            if (n := len(p.read_text().splitlines())) > 450}
    assert not long, long


def test_checked_declares_the_core_and_writes_the_rules_once():
    def core(x):
        return x + 1

    @validation.checked(core)
    def public(x):
        """Add one.

        Parameters
        ----------
        x : array
        """
        return core(validation.array(x, "x"))

    assert public.unchecked is core
    assert " ".join(public.__doc__.split()).count(" ".join(validation.RULES_NOTE.split())) == 1
    assert "\n        " + validation.RULES_NOTE[:40] in public.__doc__     # indented as the docstring is
    assert "``public.unchecked``" in public.__doc__
    with pytest.raises(ValueError, match="x"):
        public(np.array([np.nan]))
    assert public.unchecked(np.array([np.nan])).shape == (1,)              # the core does not validate
    with pytest.raises(TypeError, match="core"):
        validation.checked(3)


def test_checked_without_a_core_writes_the_rules_and_the_functions_own():
    @validation.checked(rules="Only ``x >= 0``.")
    def public(x):
        """Square root.

        Parameters
        ----------
        x : array
        """
        return validation.array(x, "x") ** 0.5

    flat = " ".join(public.__doc__.split())
    assert flat.count(" ".join(validation.RULES_NOTE.split())) == 1 and flat.endswith("Only ``x >= 0``.")
    assert not hasattr(public, "unchecked") and "unchecked" not in public.__doc__
    assert public.input_rules == validation.RULES_NOTE + "\nOnly ``x >= 0``."
    assert all(len(ln) <= 92 for ln in public.__doc__.splitlines())         # wrapped at the docstring's indent
    with pytest.raises(TypeError, match="rules"):
        validation.checked(rules=3)


def test_a_docstring_that_restates_the_rules_is_refused():
    def public():
        """Zero (input rules of :mod:`refimpl.validation`)."""
        return 0

    with pytest.raises(ValueError, match="restates"):
        validation.checked()(public)

    def step(state):
        """A step. A training step: ``state`` comes from ``init_state`` and is not validated; it calls the
        unchecked twins (policy of :mod:`refimpl.validation`)."""
        return state

    with pytest.raises(ValueError, match="restates"):
        validation.training_step(step)


def test_training_step_writes_the_step_policy_once():
    def step(state, rng, data):
        """One step."""
        return state

    out = validation.training_step(step)
    assert out is step and step.training_step is True
    assert " ".join(step.__doc__.split()).count(" ".join(validation.STEP_NOTE.split())) == 1


def test_no_library_docstring_restates_the_input_rules():
    """The rules and the step policy are written by refimpl.validation's decorators only."""
    found = {str(p.relative_to(ROOT)): phrase for p in sorted((ROOT / "refimpl").rglob("*.py")) if p.name != "validation.py"
             for phrase in (validation.RESTATED, "policy of :mod:`refimpl.validation`", "float16 refused")
             if phrase in p.read_text().lower()}
    assert not found, found
    assert validation.RESTATED in validation.RULES_NOTE.lower()          # the phrase searched for is the one written


def test_library_cores_skip_the_checks_and_give_the_same_values(rng):
    x, y = rng.standard_normal((6, 2)), rng.standard_normal((5, 2))
    assert w1.unchecked(x, y) == w1(x, y)
    p = [(rng.standard_normal((2, 3)), rng.standard_normal(3))]
    for (a, b), (c, d) in zip(add_params.unchecked(p, p, 0.5), add_params(p, p, 0.5)):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)
    bad = [(np.full((2, 3), np.nan), np.zeros(3))]
    with pytest.raises(ValueError, match="p"):
        add_params(bad, p)
    assert np.isnan(add_params.unchecked(bad, p)[0][0]).all()


# ----------------------------------------------------------------------------- checked methods (issue 25 item 4)
#: the ``_``-prefixed unchecked twins the networks and optimisers had: other modules reach a core
#: through the public method only, as ``net.forward.unchecked``
TWINS = ("_forward", "_backward", "_input_gradient", "_input_gradient_vjp", "_validate", "_step", "_init")


def _twin_uses(source):
    """``(line, name)`` for each ``.X`` (or ``getattr(o, "X")``), ``X`` in :data:`TWINS`, that reaches
    past its module: ``.X`` is allowed only on ``self``/``cls``/``super()`` in a module whose class
    bodies define ``X`` (a class calling its own core)."""
    tree = ast.parse(source)
    defined = {n.name for c in ast.walk(tree) if isinstance(c, ast.ClassDef) for n in c.body
               if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}

    def own(v):
        return (isinstance(v, ast.Name) and v.id in ("self", "cls")) or (
            isinstance(v, ast.Call) and isinstance(v.func, ast.Name) and v.func.id == "super")
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in TWINS and not (node.attr in defined and own(node.value)):
            found.append((node.lineno, node.attr))
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id in ("getattr", "hasattr", "setattr") and len(node.args) >= 2
              and isinstance(node.args[1], ast.Constant) and node.args[1].value in TWINS):
            found.append((node.lineno, node.args[1].value))
    return sorted(found)


def test_no_module_calls_another_classs_unchecked_twin():
    found = {str(p.relative_to(ROOT)): u for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))
             if (u := _twin_uses(p.read_text()))}
    assert not found, f"reach a core as obj.method.unchecked, not through its _ name: {found}"


def test_the_twin_scan_sees_a_reach_into_another_class():
    """The scan above has teeth: a class's own ``self._forward`` passes; another object's, a
    ``getattr`` by name and a name no class of the module defines are found."""
    src = ("class A:\n"
           "    def _forward(self, p, x):\n"
           "        return self._forward(p, x) + super()._forward(p, x)\n"
           "    def g(self):\n"
           "        return self.net._forward(1, 2)\n"                  # 5: another object's core
           "def f(net, opt):\n"
           "    net._forward(1, 2)\n"                                  # 7
           "    y = opt._step\n"                                       # 8
           "    return getattr(net, '_validate')\n"                    # 9
           "class B:\n"
           "    def h(self):\n"
           "        return self._init() + self._input_gradient_vjp\n")  # 12: not defined in this module
    assert _twin_uses(src) == [(5, "_forward"), (7, "_forward"), (8, "_step"), (9, "_validate"),
                               (12, "_init"), (12, "_input_gradient_vjp")]
    assert _twin_uses("net.forward.unchecked(p, x)\nopt.step.unchecked(p, g, s)\n") == []


def test_a_checked_method_binds_its_core_and_subclasses_override_either():
    class Base:
        def _core(self, x):
            return "base", self

        @validation.checked(_core)
        def run(self, x):
            """Run.

            Parameters
            ----------
            x : array
            """
            return self._core(validation.array(x, "x"))

    class Sub(Base):                       # overrides the core only: the base's checked layer calls it
        def _core(self, x):
            return "sub", self

    class Own(Base):                       # declares its own checked method over its own core
        def _other(self, x):
            return "own", self

        @validation.checked(_other)
        def run(self, x):
            """Run its own."""
            return self._other(validation.array(x, "x"))

    nan = np.array([np.nan])
    for obj, tag in ((Base(), "base"), (Sub(), "sub"), (Own(), "own")):
        with pytest.raises(ValueError, match="x has non-finite"):
            obj.run(nan)
        assert obj.run(np.ones(1)) == (tag, obj)
        assert obj.run.unchecked(nan) == (tag, obj) and obj.run.unchecked.__self__ is obj   # bound, unchecked
        assert type(obj).run.unchecked(obj, nan) == (tag, obj)                           # unbound: the class's core
        assert type(obj).run(obj, np.ones(1)) == (tag, obj)
        assert obj.run is obj.run and obj.run.__self__ is obj and obj.run.input_rules == type(obj).run.input_rules
        assert list(inspect.signature(obj.run).parameters) == ["x"]
        assert list(inspect.signature(type(obj).run).parameters) == ["self", "x"]
        assert "``run.unchecked`` (bound to the instance" in " ".join(obj.run.__doc__.split())
        c = copy.deepcopy(obj)
        assert c.run.unchecked.__self__ is c and c.run.__self__ is c


def _nets():
    from refimpl.cnn import CNN, Conv2d, Dense
    from refimpl.cnn.flat import FlatIO
    cnn = CNN((1, 4, 4), (Conv2d(2, kernel=3, stride=2, padding=1, activation="tanh"), Dense(1)))
    return {"mlp": (MLP((16, 5, 1), "tanh"), (2, 16)), "cnn": (cnn, (2, 1, 4, 4)), "flatio": (FlatIO(cnn), (2, 16))}


@pytest.mark.parametrize("kind", ["mlp", "cnn", "flatio"])
def test_a_networks_unchecked_passes_are_bound_and_let_nan_through(kind, rng):
    net, shape = _nets()[kind]
    params = net.init(rng)
    x = rng.standard_normal(shape)
    x[0, 0] = np.nan
    with pytest.raises(ValueError, match="x has non-finite"):
        net.forward(params, x)
    with pytest.raises(ValueError, match="x has non-finite"):
        net.input_gradient(params, x)
    y, cache = net.forward.unchecked(params, x)
    assert np.isnan(y[0]).any() and np.isfinite(y[1]).all()
    assert net.forward.unchecked.__self__ is net and net.forward.unchecked.__func__ is type(net).forward.unchecked
    np.testing.assert_array_equal(type(net).forward.unchecked(net, params, x)[0], y)
    g, tape = net.input_gradient.unchecked(params, x)
    assert np.isnan(g[0]).any() and np.isfinite(g[1]).all()
    dx, grads = net.input_gradient_vjp.unchecked(params, tape, g)
    assert np.isnan(dx[0]).any() and np.isfinite(dx[1]).all()
    with pytest.raises(ValueError, match="u has non-finite"):
        net.input_gradient_vjp(params, tape, g)
    seed = np.full(y.shape, np.nan)
    assert np.isnan(net.backward.unchecked(params, cache, seed)[0]).any()
    with pytest.raises(ValueError, match="dy has non-finite"):
        net.backward(params, cache, seed)
    ok = np.nan_to_num(x)
    np.testing.assert_array_equal(net.forward(params, ok)[0], net.forward.unchecked(params, ok)[0])
    copied = pickle.loads(pickle.dumps(net))                       # the bound passes follow the copy
    assert copied == net and copied.forward.unchecked.__self__ is copied


@pytest.mark.parametrize("opt", [SGD(0.1, 0.5), Adam(), RMSprop()], ids=["sgd", "adam", "rmsprop"])
def test_an_optimisers_unchecked_step_is_its_own_core_and_lets_nan_through(opt, rng):
    params = MLP((2, 3, 1)).init(rng)
    grads = [(np.full_like(W, np.nan), np.zeros_like(b)) for W, b in params]
    state = opt.init(params)
    with pytest.raises(ValueError, match=r"grads\[0\]\[0\] has non-finite"):
        opt.step(params, grads, state)
    new, st = opt.step.unchecked(params, grads, state)
    assert np.isnan(new[0][0]).all() and st["t"] == 1
    assert opt.step.unchecked.__self__ is opt and opt.step.unchecked.__func__ is type(opt).step.unchecked
    assert len({SGD.step.unchecked, Adam.step.unchecked, RMSprop.step.unchecked}) == 3   # each optimiser's own
    bad = [(np.full_like(W, np.nan), b) for W, b in params]
    with pytest.raises(ValueError, match=r"params\[0\]\[0\] has non-finite"):
        opt.init(bad)
    assert opt.init.unchecked(bad)["t"] == 0
