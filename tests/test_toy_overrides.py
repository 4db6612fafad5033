"""toy.gan.apply_overrides: a command-line override reaches the config or is refused, never dropped."""
import pathlib

import pytest

from refimpl.harness import RunOptions
from refimpl.swgan import SWGANConfig
from refimpl.train import GANConfig
from toy.gan import apply_overrides


def _opts(**extra):
    return RunOptions(out=pathlib.Path("unused"), extra=extra)


def test_an_override_reaches_the_config():
    cfg = apply_overrides(GANConfig(), _opts(lam=3.0, n_critic=2, latent_dim=None))
    assert (cfg.lam, cfg.n_critic, cfg.latent_dim) == (3.0, 2, GANConfig().latent_dim)
    assert GANConfig().lam != 3.0 and GANConfig().n_critic != 2                   # the override moved them


def test_an_override_of_a_field_the_config_lacks_is_refused_by_name():
    assert not hasattr(SWGANConfig(), "objective")
    with pytest.raises(ValueError, match="--objective does not apply to SWGANConfig"):
        apply_overrides(SWGANConfig(), _opts(objective="wgan"))


def test_unset_flags_and_flags_outside_fields_leave_the_config_alone():
    base = GANConfig()
    assert apply_overrides(base, _opts(objective=None)) is base
    assert apply_overrides(base, _opts(lam=3.0), fields=("n_critic",)) is base
