"""Learning curves over training-set sizes (with a log-log plot) and a small random hyper-parameter search."""
import math

import numpy as np

from .._io import atomic_save
from .config import TrainConfig
from .fit import evaluate, fit


def learning_curve(build_model, train_set, val_set, test_set, sizes, config=None, seed=0, metric="energy_mae_kcal_mol"):
    """Train a fresh ``build_model()`` on the first ``size`` frames of a seeded permutation of ``train_set`` for each
    size; evaluate on ``test_set`` (never used for early stopping). Returns a list of dicts (size, test metrics,
    epochs, wall time).

    Parameters
    ----------
    build_model : callable
        Returns a fresh model.
    train_set, val_set, test_set : Dataset
    sizes : sequence of int
    config : TrainConfig or dict, optional
    seed : int
    metric : str

    Examples
    --------
    >>> rows = learning_curve(lambda: build_model(spec), train, val, test, [100, 200, 400])  # doctest: +SKIP
    """
    import time

    config = TrainConfig() if config is None else (TrainConfig.from_dict(config) if isinstance(config, dict)
                                                   else config)
    order = np.random.default_rng(seed).permutation(len(train_set))
    rows = []
    for size in sizes:
        if size > len(train_set) or size < 1:
            raise ValueError(f"training-set size {size} is outside 1..{len(train_set)}")
        subset = train_set.subset(np.sort(order[:size]), name=f"{train_set.name}[:{size}]")
        started = time.time()
        result = fit(build_model(), subset, val_set, config)
        metrics = evaluate(result.model, test_set)
        rows.append({"size": int(size), "epochs": len(result.history), "wall_s": time.time() - started,
                     "metric": metric, **metrics})
    return rows


def plot_learning_curve(rows, path, metric="energy_mae_kcal_mol", label=None):
    """Log-log plot of ``metric`` against training-set size, written atomically (PNG/SVG/PDF by extension).

    Parameters
    ----------
    rows : list of dict
        From :func:`learning_curve`.
    path : str
    metric : str
    label : str, optional

    Returns
    -------
    str
        ``path``.

    Examples
    --------
    >>> plot_learning_curve(rows, "curve.png")  # doctest: +SKIP
    'curve.png'
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [r["size"] for r in rows]
    values = [r[metric] for r in rows]
    figure, axes = plt.subplots(figsize=(4.5, 3.5))
    axes.loglog(sizes, values, "o-", label=label)
    axes.set_xlabel("training molecules")
    axes.set_ylabel(metric.replace("_", " "))
    axes.grid(True, which="both", alpha=0.3)
    if label:
        axes.legend()
    figure.tight_layout()
    atomic_save(path, lambda tmp: figure.savefig(tmp))
    plt.close(figure)


def random_search(build_model, space, train_set, val_set, n_trials=8, config=None, seed=0):
    """Random search over ``space``: name -> list of choices, or (low, high) / (low, high, "log") ranges.

    Names that are :class:`TrainConfig` fields set the training options; the rest go to ``build_model(**params)``.
    Every trial is scored by its best validation loss; returns the trials sorted best first.

    Parameters
    ----------
    build_model : callable
    space : dict
    train_set, val_set : Dataset
    n_trials : int
    config : TrainConfig or dict, optional
    seed : int

    Returns
    -------
    list of dict

    Examples
    --------
    >>> trials = random_search(ANIModel, {"lr": (1e-4, 1e-2, "log")}, train, val)  # doctest: +SKIP
    """
    base = TrainConfig() if config is None else (TrainConfig.from_dict(config) if isinstance(config, dict)
                                                 else config)
    fields = set(base.to_dict())
    rng = np.random.default_rng(seed)
    trials = []
    for trial in range(int(n_trials)):
        params = {}
        for name, choice in space.items():
            if isinstance(choice, (list, tuple)) and len(choice) in (2, 3) and all(
                    isinstance(v, (int, float)) for v in choice[:2]) and (len(choice) == 2 or choice[2] == "log") \
                    and isinstance(choice, tuple):
                low, high = float(choice[0]), float(choice[1])
                if len(choice) == 3:
                    value = math.exp(rng.uniform(math.log(low), math.log(high)))
                else:
                    value = rng.uniform(low, high)
                if isinstance(choice[0], int) and isinstance(choice[1], int):
                    value = int(round(value))
            elif isinstance(choice, (list, tuple)) and choice:
                value = choice[int(rng.integers(len(choice)))]
            else:
                raise ValueError(f"search space entry {name!r} must be a non-empty list of choices or a "
                                 "(low, high[, 'log']) tuple")
            params[name] = value
        train_options = {k: v for k, v in params.items() if k in fields}
        model_options = {k: v for k, v in params.items() if k not in fields}
        trial_config = TrainConfig.from_dict({**base.to_dict(), **train_options, "log_dir": None})
        result = fit(build_model(**model_options), train_set, val_set, trial_config)
        trials.append({"trial": trial, "params": params, "val_loss": result.best_val_loss,
                       "epochs": len(result.history), "model": result.model})
    trials.sort(key=lambda t: t["val_loss"])
    return trials
