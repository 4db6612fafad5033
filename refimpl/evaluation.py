"""The evaluation protocol: how many samples an evaluation draws and from which random streams.

Every experiment evaluates a generator at iteration ``it`` of a run with seed ``seed`` on
latents from ``numpy.random.default_rng([seed, LATENT_STREAM, it])`` and, where the data is a
distribution to sample, on fresh targets from ``default_rng([seed, TARGET_STREAM, it])``:
streams independent of training (whose generator is ``default_rng(seed)``) and of each other,
so two runs of one seed are judged on the same latents and targets whatever they trained.
A chance baseline draws its cloud from the latent stream and its targets from the target
stream at ``it = 0``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import validation as checks
from .metrics import N_EVAL

__all__ = ["EvalProtocol", "EVAL", "LATENT_STREAM", "TARGET_STREAM"]

#: the second word of the latent stream's seed (a prime, as the target stream's)
LATENT_STREAM = 7919
#: the second word of the target stream's seed
TARGET_STREAM = 104729


@dataclass(frozen=True)
class EvalProtocol:
    """Sample count and random streams of an evaluation (module docstring).

    ``n_eval`` generated samples (and as many targets) per evaluation of a 2-D toy run;
    image experiments evaluate on their test split's size instead. Fields are checked when the
    protocol is made: integers, ``n_eval >= 1``,
    streams ``>= 0`` and distinct.
    """
    n_eval: int = N_EVAL
    latent_stream: int = LATENT_STREAM
    target_stream: int = TARGET_STREAM

    def __post_init__(self):
        checks.integer(self.n_eval, "n_eval", ge=1)
        checks.integer(self.latent_stream, "latent_stream", ge=0)
        checks.integer(self.target_stream, "target_stream", ge=0)
        if self.latent_stream == self.target_stream:
            raise ValueError(f"latent_stream and target_stream must differ, both are {self.latent_stream}")

    @checks.checked()
    def latent_seed(self, seed, it):
        """``[seed, latent_stream, it]``: the latent stream's seed at iteration ``it`` of run ``seed``
        (integers >= 0); what ``metrics.json`` records."""
        return [checks.integer(seed, "seed", ge=0), self.latent_stream, checks.integer(it, "it", ge=0)]

    @checks.checked()
    def target_seed(self, seed, it):
        """``[seed, target_stream, it]``, as :meth:`latent_seed`."""
        return [checks.integer(seed, "seed", ge=0), self.target_stream, checks.integer(it, "it", ge=0)]

    @checks.checked()
    def latent_rng(self, seed, it):
        """``numpy.random.default_rng(self.latent_seed(seed, it))``."""
        return np.random.default_rng(self.latent_seed(seed, it))

    @checks.checked()
    def target_rng(self, seed, it):
        """``numpy.random.default_rng(self.target_seed(seed, it))``."""
        return np.random.default_rng(self.target_seed(seed, it))

    @checks.checked()
    def seeds(self, seed, it):
        """``{"latent": latent_seed, "targets": target_seed}`` for ``metrics.json``'s ``eval_seeds``."""
        return {"latent": self.latent_seed(seed, it), "targets": self.target_seed(seed, it)}


#: the protocol every experiment of ``toy`` and ``gpu`` uses
EVAL = EvalProtocol()
