"""A method's name (recorded in its checkpoint fingerprint) is given when it is made, never patched."""
import numpy as np
import pytest

from refimpl.rwp import RWPMethod
from refimpl.sbe import SBEMethod
from refimpl.swgan import SWGANConfig, SWGANMethod
from refimpl.train import GANConfig, GANMethod, ToyData, train
from refimpl.w1fe import W1FE
from refimpl.wwgan import WWGANMethod

CFG = GANConfig(gen_hidden=(4,), critic_hidden=(4,), batch_size=4, n_critic=1)
MAKERS = {
    "gan": lambda **kw: GANMethod(CFG, **kw),
    "rwp": lambda **kw: RWPMethod(CFG, **kw),
    "sbe": lambda **kw: SBEMethod(CFG, phi_hidden=4, **kw),
    "w1fe": lambda **kw: W1FE(GANConfig(objective="wgan-lp", gen_hidden=(4,), critic_hidden=(4,)), **kw),
    "wwgan": lambda **kw: WWGANMethod(GANConfig(data_dim=4, gen_hidden=(4,), critic_hidden=(4,)), (1, 2, 2), **kw),
    "swgan": lambda **kw: SWGANMethod(SWGANConfig(gen_hidden=(4,), potential_hidden=(4,)), **kw),
}


@pytest.mark.parametrize("default", list(MAKERS))
def test_the_name_is_given_at_construction(default):
    assert MAKERS[default]().name == default
    m = MAKERS[default](name="my-run")
    assert m.name == "my-run" and type(m).name == default          # the instance's, not the class's
    with pytest.raises(TypeError, match="name"):
        MAKERS[default](name="")
    with pytest.raises(TypeError, match="name"):
        MAKERS[default](name=3)


def test_the_given_name_enters_the_fingerprint(tmp_path):
    m = GANMethod(CFG, name="named")
    res = train(m, ToyData("ring8", np, "float64"), xp=np, dtype="float64", seed=0, iters=1, progress=False,
                checkpoint_path=tmp_path / "c.npz", checkpoint_every=1)
    from refimpl.checkpoint import load
    assert load(tmp_path / "c.npz", np)["fingerprint"]["method"] == "named"
    assert res.iterations == 1
