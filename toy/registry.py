"""Name -> experiment. Each entry: (module, function, one-line description).

Modules are imported only when their experiment runs, so ``python -m toy list``
works without the optional packages of every experiment.
"""
EXPERIMENTS = {
    "wgan-gp-grid": ("toy.wgan_gp", "run_grid", "WGAN-GP on the 25-mode grid (headline experiment)"),
    "wgan-gp-ring": ("toy.wgan_gp", "run_ring", "WGAN-GP on the 8-mode ring"),
    "prox-two-delta": ("toy.prox_two_delta", "run", "Wasserstein vs Euclidean proximal paths of the two-delta model (Fig. 1)"),
}


def resolve(name):
    import importlib
    try:
        module, func, _ = EXPERIMENTS[name]
    except KeyError:
        raise KeyError(name) from None
    return getattr(importlib.import_module(module), func)
