"""The code's shape (issue 25): no module reaches into another's ``_`` names, no library module is
longer than 450 lines, and the checked layer (:func:`refimpl.validation.checked`) is what it says."""
import ast
import pathlib
import sys

import numpy as np
import pytest

from refimpl import validation
from refimpl.metrics import w1
from refimpl.nn import add_params

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
