"""refimpl.evaluation: the evaluation protocol's streams are the documented seeds, and refuse bad input."""
import numpy as np
import pytest

from refimpl.evaluation import EVAL, EvalProtocol


def test_the_streams_are_the_documented_seeds():
    assert EVAL.n_eval == 2500
    assert EVAL.seeds(3, 17) == {"latent": [3, 7919, 17], "targets": [3, 104729, 17]}
    np.testing.assert_array_equal(EVAL.latent_rng(3, 17).random(5), np.random.default_rng([3, 7919, 17]).random(5))
    np.testing.assert_array_equal(EVAL.target_rng(3, 17).random(5), np.random.default_rng([3, 104729, 17]).random(5))
    # the two streams, and two iterations of one stream, differ
    assert EVAL.latent_rng(3, 17).random() != EVAL.target_rng(3, 17).random()
    assert EVAL.latent_rng(3, 17).random() != EVAL.latent_rng(3, 18).random()


def test_numpy_integers_are_seeds_too():
    assert EVAL.latent_seed(np.int64(2), np.int32(4)) == [2, 7919, 4]
    assert all(type(v) is int for v in EVAL.latent_seed(np.int64(2), np.int32(4)))


@pytest.mark.parametrize("seed,it,exc,name", [(-1, 0, ValueError, "seed"), (0, -2, ValueError, "it"),
                                              (1.5, 0, TypeError, "seed"), (0, True, TypeError, "it")])
def test_bad_seeds_are_refused_by_name(seed, it, exc, name):
    for f in (EVAL.latent_rng, EVAL.target_rng, EVAL.seeds):
        with pytest.raises(exc, match=name):
            f(seed, it)


def test_a_bad_protocol_is_refused_when_made():
    with pytest.raises(ValueError, match="n_eval"):
        EvalProtocol(n_eval=0)
    with pytest.raises(ValueError, match="differ"):
        EvalProtocol(latent_stream=5, target_stream=5)
    with pytest.raises(TypeError, match="latent_stream"):
        EvalProtocol(latent_stream=1.0)
