"""Name -> experiment. Each entry: (module, function, one-line description).

Modules are imported only when their experiment runs, so ``python -m toy list``
works without the optional packages of every experiment.
"""
EXPERIMENTS = {
    "grid-tour": ("toy.tour", "run", "Every 2-D method on the 25-mode grid, same CPU budget, against a chance baseline (~5 min)"),
    "wgan-gp-grid": ("toy.wgan_gp", "run_grid", "WGAN-GP on the 25-mode grid (headline experiment)"),
    "wgan-gp-ring": ("toy.wgan_gp", "run_ring", "WGAN-GP on the 8-mode ring"),
    "prox-two-delta": ("toy.prox_two_delta", "run", "Wasserstein vs Euclidean proximal paths of the two-delta model (Fig. 1)"),
    "wwgan-digits": ("toy.wwgan_digits", "run", "WGAN-GP vs WWGAN on 8x8 digits: critic under translation and noise (WWGAN Table 1, Figs. 4-5)"),
    "rwp-grid": ("toy.rwp_experiments", "run_rwp_grid", "WGAN-GP, Standard, DRAGAN with/without RWP, W1 vs iterations and wall-clock (RWP Fig. 2)"),
    "rwp-gen-iters": ("toy.rwp_experiments", "run_rwp_gen_iters", "WGAN-GP, 10 generator steps per outer iteration with/without RWP (RWP Fig. 4)"),
    "sbe-grid": ("toy.rwp_experiments", "run_sbe_grid", "Semi-Backward Euler against WGAN-GP by generator iterations (RWP Fig. 5)"),
    "w1fe-ring": ("toy.w1fe_ring", "run", "W1-FE-LP/GP persistency K on the 8-mode ring (W1-FE Figs. 1, 2, 4)"),
    "swgan-grid": ("toy.swgan_grid", "run", "Parametric SWGAN vs WGAN-GP (same wall-clock) on the 25-mode grid, --latent-dim 4|2 (SWGAN Figs. 1, 2)"),
}


def resolve(name):
    import importlib
    try:
        module, func, _ = EXPERIMENTS[name]
    except KeyError:
        raise KeyError(name) from None
    return getattr(importlib.import_module(module), func)
