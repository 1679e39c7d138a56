"""Training a committee for :mod:`nnforce.train.learn`: its members from fresh weights or warm-started from the
previous round's, one after another or in parallel processes."""
import os

__all__ = ["train_committee"]


def train_committee(data, config, round_dir, seed, previous_dir=None):
    """Train ``config.members`` ANI-style models on ``data``; returns the eager members.

    With ``config.warm_start`` and ``previous_dir`` (the previous round's folder), member m starts from that round's
    member m (its ``best.ckpt``, self energies and energy scale kept) instead of fresh weights; with
    ``config.workers`` > 1 the members train in that many processes at once (each with ``train["threads"]``
    threads, default 1), their results read back from their checkpoints."""
    from ..data import split

    n_val = max(1, int(round(config.validation_fraction * len(data))))
    workers = min(int(config.workers), int(config.members))
    jobs = []
    for m in range(int(config.members)):
        train_set, val_set = split(data, (len(data) - n_val, n_val), seed=seed + 101 * m)
        spec = {**config.model, "elements": list(config.model.get("elements") or data.elements), "seed": seed + m}
        settings = {**config.train, "seed": seed + m, "log_dir": os.path.join(round_dir, f"member{m}"),
                    "progress": False, "tensorboard": False}
        if workers > 1:  # one thread per process unless train says otherwise
            settings["threads"] = settings.get("threads") or 1
        start = None
        if config.warm_start and previous_dir is not None:
            start = os.path.join(previous_dir, f"member{m}", "best.ckpt")
            if not os.path.isfile(start):
                raise FileNotFoundError(f"warm_start: {start} (the previous round's member {m}) does not exist; "
                                        "rerun that round or set warm_start: false")
            settings.update({"self_energies": "keep", "energy_scale": "keep"})
        jobs.append((spec, settings, start, train_set, val_set))
    if workers <= 1:
        return [_train_member(*job) for job in jobs]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from .checkpoint import model_from_checkpoint

    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        paths = [future.result() for future in [pool.submit(_train_member, *job, False) for job in jobs]]
    return [model_from_checkpoint(path)[0] for path in paths]


def _train_member(spec, settings, start, train_set, val_set, return_model=True):
    """One committee member: fresh from ``spec`` or from the checkpoint ``start``; the trained model, or (in a
    worker process) the path of its best checkpoint."""
    import torch

    from .checkpoint import model_from_checkpoint
    from .config import TrainConfig, build_model
    from .fit import fit

    if start is None:
        model = build_model(spec)
    else:
        model = model_from_checkpoint(start)[0].train()
    torch.manual_seed(int(settings["seed"]))
    result = fit(model, train_set, val_set, TrainConfig.from_dict(settings), model_spec=spec)
    return result.model if return_model else result.checkpoint
