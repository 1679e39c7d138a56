"""Training loop: weighted energy + force MSE, Adam/AdamW/SGD, plateau or cosine schedules, early stopping with
best-weights restore, gradient clipping, resumable checkpoints, CSV + TensorBoard logs, progress bars.

Batches are molecules concatenated into one system with a block-diagonal all-pairs list, evaluated with the
model's ``atomic_energies`` and summed per molecule; forces come from autograd (``create_graph`` when trained on).
"""
import copy
import dataclasses
import math
import os
import time

import numpy as np
import torch

from ..data.batch import Batch
from ..units import KCAL_MOL_A_PER_KJ_MOL_NM, KCAL_MOL_PER_KJ_MOL, MEV_A_PER_KJ_MOL_NM, MEV_PER_KJ_MOL
from .checkpoint import _checkpoint_state, load_checkpoint, save_checkpoint
from .config import TrainConfig
from .feature_cache import CacheTooLarge, FeatureBatch, FeatureCache, can_cache
from .logs import add_scalars, tensorboard_writer, write_history_csv
from .optim import _budget_lr, _make_optimizer, _make_scheduler, _progress, _step_scheduler
from .self_energies import fit_self_energies, self_energy_sum



@dataclasses.dataclass
class FitResult:
    """What :func:`fit` returns.

    Attributes
    ----------
    model : torch.nn.Module
        With the best (lowest validation loss) weights restored.
    history : list of dict
        One row per epoch.
    best_epoch : int
    best_val_loss : float
    stopped_early : bool
    checkpoint : str or None
        ``best.ckpt`` when a log_dir was given.

    Examples
    --------
    >>> result = fit(model, train, val, TrainConfig(epochs=50))  # doctest: +SKIP
    >>> result.best_epoch, len(result.history)  # doctest: +SKIP
    """

    model: torch.nn.Module  # with the best (lowest validation loss) weights restored
    history: list  # one dict per epoch: epoch, lr, train_loss, val_loss, val_energy_mae_kj_mol, ..., time_s
    best_epoch: int
    best_val_loss: float
    stopped_early: bool
    checkpoint: str = None  # best.ckpt when log_dir was given
    feature_cache: bool = False  # whether the networks were trained on stored features (feature_cache.py)


class _Labels:
    """Per-dataset float64 reference energies minus self energies (what the networks learn)."""

    def __init__(self, model, dataset):
        self.residual = dataset.energies_kj_mol - self_energy_sum(model, dataset)


def _predict(model, batch, need_forces, create_graph):
    """Energies [M] and forces [N, 3] (or None) of a :class:`Batch`, or of a :class:`FeatureBatch` of stored features
    (whose forces come from the stored AEV term slopes)."""
    stored = isinstance(batch, FeatureBatch)
    inputs = batch.features if stored else batch.positions
    if need_forces:
        inputs = inputs.detach().requires_grad_(True)
    if stored:
        atomic = model.energies_from_features(inputs, batch.species)
    else:
        atomic = model.atomic_energies(inputs, batch.atomic_numbers, batch.neighbors, None, None, False)
    energies = torch.zeros(batch.n_molecules, dtype=atomic.dtype).index_add(0, batch.molecule_index, atomic)
    if not need_forces:
        return energies, None
    (gradient,) = torch.autograd.grad(energies.sum(), inputs, create_graph=create_graph)
    return energies, (batch.slopes.forces(gradient) if stored else -gradient)


def _model_dtype(model):
    return model.energy_scale.dtype


def evaluate(model, dataset, batch_size=256, forces=None):
    """Energy MAE/RMSE per molecule and force MAE/RMSE per component, in kJ/mol(/nm), kcal/mol(/A) and meV(/A).

    Predictions add the self energies in float64, so large total energies lose no precision.

    Parameters
    ----------
    model : torch.nn.Module
    dataset : Dataset
    batch_size : int
    forces : bool, optional
        Evaluate forces (default: when the dataset has them).

    Returns
    -------
    dict
        ``energy_mae_kj_mol``, ``energy_rmse_kj_mol``, ``energy_mae_kcal_mol``, ``energy_mae_mev``, the force
        counterparts and ``n_frames``.

    Examples
    --------
    >>> evaluate(model, test_set)["energy_mae_kcal_mol"]  # doctest: +SKIP
    """
    if dataset.energies_kj_mol is None:
        raise ValueError(f"{dataset.name}: no energy labels to evaluate against")
    dataset.check_elements(model.elements)
    forces = dataset.has_forces if forces is None else (forces and dataset.has_forces)
    base = self_energy_sum(model, dataset)
    predicted = np.empty(len(dataset))
    force_errors = []
    was_training = model.training
    model.eval()
    dtype = _model_dtype(model)
    for start in range(0, len(dataset), batch_size):
        frames = np.arange(start, min(start + batch_size, len(dataset)))
        batch = Batch(dataset, frames, dtype=dtype)
        with torch.set_grad_enabled(forces):
            energies, f = _predict(model, batch, forces, False)
        predicted[frames] = energies.detach().double().numpy() + base[frames]
        if forces:
            force_errors.append((f.detach().double() - batch.forces.double()).numpy().reshape(-1))
    model.train(was_training)
    error = predicted - dataset.energies_kj_mol
    metrics = {"n_frames": len(dataset),
               "energy_mae_kj_mol": float(np.abs(error).mean()),
               "energy_rmse_kj_mol": float(np.sqrt((error ** 2).mean()))}
    if forces:
        ferr = np.concatenate(force_errors)
        metrics["force_mae_kj_mol_nm"] = float(np.abs(ferr).mean())
        metrics["force_rmse_kj_mol_nm"] = float(np.sqrt((ferr ** 2).mean()))
    for key in list(metrics):
        if key.endswith("_kj_mol"):
            stem = key[: -len("_kj_mol")]
            metrics[stem + "_kcal_mol"] = metrics[key] * KCAL_MOL_PER_KJ_MOL
            metrics[stem + "_mev"] = metrics[key] * MEV_PER_KJ_MOL
        elif key.endswith("_kj_mol_nm"):
            stem = key[: -len("_kj_mol_nm")]
            metrics[stem + "_kcal_mol_a"] = metrics[key] * KCAL_MOL_A_PER_KJ_MOL_NM
            metrics[stem + "_mev_a"] = metrics[key] * MEV_A_PER_KJ_MOL_NM
    return metrics


def _check_data(model, train_set, val_set, config):
    for name, data in (("training", train_set), ("validation", val_set)):
        if data is None or len(data) == 0:
            raise ValueError(f"the {name} set is empty; give it at least one frame")
        if data.energies_kj_mol is None and config.energy_weight > 0:
            raise ValueError(f"the {name} set has no energy labels but energy_weight > 0")
        if config.force_weight > 0 and not data.has_forces:
            raise ValueError(f"the {name} set has no force labels but force_weight > 0; label forces or set "
                             "force_weight: 0")
        data.check_elements(model.elements)


def _prepare(model, train_set, config):
    from ..models import ANIEncoder, PairPotential

    if config.self_energies == "fit" and not isinstance(model, PairPotential):
        fit_self_energies(model, train_set)
    residual = _Labels(model, train_set).residual
    n_mean = float(train_set.n_atoms.mean())
    if config.energy_scale == "auto" and not isinstance(model, PairPotential):
        scale = float(np.std(residual)) / math.sqrt(n_mean)
        if train_set.has_forces:
            scale = max(scale, float(np.sqrt((train_set.forces_kj_mol_nm ** 2).mean())) * 0.02)
        with torch.no_grad():
            model.energy_scale.fill_(max(scale, 1e-3))
    if isinstance(model, ANIEncoder):
        with torch.no_grad():
            batch = Batch(train_set, np.arange(min(len(train_set), 256)), dtype=_model_dtype(model))
            species = model.element_index.index_select(0, batch.atomic_numbers)
            from ..models._geometry import pair_vectors

            i, j, v = pair_vectors(batch.positions, batch.neighbors)
            aev = model.aev(species, i, j, v)
            model.aev_scale.fill_(float(aev.std()) or 1.0)


def _normalisers(train_set, model):
    residual = _Labels(model, train_set).residual
    var_e = float(np.var(residual)) if len(residual) > 1 else 1.0
    mean_f2 = float((train_set.forces_kj_mol_nm ** 2).mean()) if train_set.has_forces else 1.0
    return max(var_e, 1e-8), max(mean_f2, 1e-8)


def _batch_loss(model, batch, residual, config, var_e, mean_f2):
    use_forces = config.force_weight > 0
    energies, forces = _predict(model, batch, use_forces, create_graph=use_forces and torch.is_grad_enabled())
    target = torch.as_tensor(residual, dtype=energies.dtype)
    loss_e = ((energies - target) ** 2).mean() / var_e
    loss = config.energy_weight * loss_e
    loss_f = None
    if use_forces:
        loss_f = ((forces - batch.forces.to(forces.dtype)) ** 2).mean() / mean_f2
        loss = loss + config.force_weight * loss_f
    return loss, loss_e, loss_f, energies, forces


def fit(model, train_set, val_set, config=None, resume=None, model_spec=None, metadata=None):
    """Train ``model`` on ``train_set``, early-stopping on ``val_set``; returns :class:`FitResult`.

    ``config``: :class:`TrainConfig` or dict. ``resume``: a ``last.ckpt`` to continue from (the same loss
    trajectory as an uninterrupted run: batches are shuffled by ``seed + epoch``). With ``config.log_dir`` the run
    writes ``history.csv``, TensorBoard events, ``last.ckpt`` (every epoch) and ``best.ckpt``. ``model_spec`` (the
    dict for :func:`build_model`) and ``metadata`` (e.g. the data hash) are stored in checkpoints for export.

    Parameters
    ----------
    model : torch.nn.Module
    train_set, val_set : Dataset
    config : TrainConfig or dict, optional
    resume : str, optional
    model_spec, metadata : dict, optional

    Returns
    -------
    FitResult

    Examples
    --------
    >>> result = fit(build_model({"type": "ani", "elements": [1, 6, 8]}), train, val, {"epochs": 100})  # doctest: +SKIP
    """
    config = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(config or {})
    previous_threads = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(int(config.threads))
    try:
        return _fit(model, train_set, val_set, config, resume, model_spec, metadata)
    finally:  # the caller's thread count back (a later MD step on a small molecule is slower with more threads)
        torch.set_num_threads(previous_threads)


def _fit(model, train_set, val_set, config, resume, model_spec, metadata):
    _check_data(model, train_set, val_set, config)
    optimizer, scheduler, (history, start_epoch, best_val, best_epoch, bad_epochs, best_state) = _start(
        model, train_set, config, resume)
    var_e, mean_f2 = _normalisers(train_set, model)
    train_residual = _Labels(model, train_set).residual
    val_residual = _Labels(model, val_set).residual
    dtype = _model_dtype(model)
    writer = tensorboard_writer(config, start_epoch)
    multitask = hasattr(model, "combine_losses") and hasattr(model, "reconstruction_loss")
    # CPU time (time.process_time) is the fair budget on a shared machine; a resumed run continues its count
    cpu_before = float(history[-1].get("cpu_s", 0.0)) if history else 0.0
    wall_before = float(history[-1].get("wall_s", 0.0)) if history else 0.0
    started, cpu_started = time.time() - wall_before, time.process_time() - cpu_before
    caches = _feature_caches(model, train_set, val_set, config, dtype)  # inside the time budget
    stopped_early = False
    bar = _progress_bar(config, start_epoch)
    for epoch in range(start_epoch, config.epochs):
        t0 = time.time()
        if config.schedule == "budget_cosine":
            _set_lr(optimizer, _budget_lr(config, _progress(config, epoch, t0 - started,
                                                            time.process_time() - cpu_started)))
        sums = _train_epoch(model, optimizer, train_set, train_residual, config, var_e, mean_f2, dtype, epoch,
                            multitask, caches[0])
        val_loss, val_metrics = _validate(model, val_set, val_residual, config, var_e, mean_f2, caches[1])
        row = _history_row(model, optimizer, epoch, sums, len(train_set), val_loss, val_metrics, multitask, t0)
        row["wall_s"], row["cpu_s"] = time.time() - started, time.process_time() - cpu_started
        history.append(row)
        _step_scheduler(scheduler, config, val_loss)
        if val_loss < best_val:
            best_val, best_epoch, bad_epochs = val_loss, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            bad_epochs += 1
        add_scalars(writer, row, epoch)
        if config.log_dir:
            write_history_csv(os.path.join(config.log_dir, "history.csv"), history)
            _save_checkpoints(config, model, optimizer, scheduler, epoch, history, best_val, best_epoch, bad_epochs,
                              best_state, model_spec, metadata)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(val_loss=f"{val_loss:.4g}", e_mae=f"{val_metrics['energy_mae_kj_mol']:.3g}")
        stopped_early = bad_epochs >= config.early_stopping_patience
        if stopped_early or _past_time_cap(config, row):
            break
    for handle in (bar, writer):
        if handle is not None:
            handle.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    checkpoint = os.path.join(config.log_dir, "best.ckpt") if config.log_dir else None
    return FitResult(model, history, best_epoch, best_val, stopped_early, checkpoint, caches[0] is not None)


def _start(model, train_set, config, resume):
    """The optimizer, the scheduler and the loop's state (history, start epoch, best loss, best epoch, bad epochs,
    best weights): fresh (after :func:`_prepare`) or from the checkpoint ``resume``."""
    model.train()
    optimizer = _make_optimizer(model, config)
    scheduler = _make_scheduler(optimizer, config)
    if resume is not None:
        return optimizer, scheduler, _resume(model, optimizer, scheduler, resume)
    _prepare(model, train_set, config)
    return optimizer, scheduler, ([], 0, math.inf, -1, 0, None)


def _progress_bar(config, start_epoch):
    if not config.progress:
        return None
    from tqdm import tqdm

    return tqdm(total=config.epochs, initial=start_epoch, desc="training", unit="epoch")


def _set_lr(optimizer, lr):
    for group in optimizer.param_groups:
        group["lr"] = lr


def _save_checkpoints(config, model, optimizer, scheduler, epoch, history, best_val, best_epoch, bad_epochs,
                      best_state, model_spec, metadata):
    """``last.ckpt`` every epoch (everything needed to resume), ``best.ckpt`` when this epoch is the best."""
    for name, full in (("last.ckpt", True), ("best.ckpt", False)):
        if full or best_epoch == epoch:
            save_checkpoint(os.path.join(config.log_dir, name), _checkpoint_state(
                model, optimizer if full else None, scheduler if full else None, epoch, history, best_val,
                best_epoch, bad_epochs, best_state if full else None, config, model_spec, metadata))


def _past_time_cap(config, row):
    """Whether the run is past its wall or CPU time cap (judged on the times the history records, so its last row is
    the first one past a cap)."""
    return ((config.max_time_s is not None and row["wall_s"] > config.max_time_s)
            or (config.max_cpu_s is not None and row["cpu_s"] > config.max_cpu_s))


def _feature_caches(model, train_set, val_set, config, dtype):
    """(train, validation) :class:`FeatureCache` when training may use stored features, else (None, None)."""
    if not can_cache(model, config):
        return None, None
    forces, limit = config.force_weight > 0, config.feature_cache_max_gib * 2**30
    try:
        train = FeatureCache(model, train_set, dtype, forces=forces, max_bytes=limit)
        stored = train.bytes()
        return train, FeatureCache(model, val_set, dtype, forces=forces, max_bytes=limit - stored)
    except CacheTooLarge:
        return None, None


def _history_row(model, optimizer, epoch, sums, n_train, val_loss, val_metrics, multitask, t0):
    """One row of ``history.csv``: learning rate, mean training losses, validation loss and metrics, time."""
    row = {"epoch": epoch, "lr": optimizer.param_groups[0]["lr"]}
    row.update({f"train_{k}": v / n_train for k, v in sums.items()})
    row["val_loss"] = val_loss
    row.update({f"val_{k}": v for k, v in val_metrics.items() if k != "n_frames"})
    if multitask:
        row["sigma_task"], row["sigma_reconstruction"] = [float(v) for v in torch.exp(model.log_sigma.detach())]
    row["epoch_time_s"] = time.time() - t0
    return row


def _resume(model, optimizer, scheduler, path):
    """Load ``last.ckpt`` into the model, optimizer and scheduler; returns the loop's saved state."""
    state = load_checkpoint(path)
    model.load_state_dict(state["model_state"])
    optimizer.load_state_dict(state["optimizer_state"])
    if scheduler is not None and state.get("scheduler_state") is not None:
        scheduler.load_state_dict(state["scheduler_state"])
    return (list(state["history"]), int(state["epoch"]) + 1, float(state["best_val_loss"]), int(state["best_epoch"]),
            int(state["bad_epochs"]), state["best_model_state"])


def _train_epoch(model, optimizer, train_set, residual, config, var_e, mean_f2, dtype, epoch, multitask, cache=None):
    """One pass over the shuffled training set (order seeded by ``seed + epoch``); returns the summed losses.
    ``cache``: a :class:`FeatureCache` of ``train_set`` to take batches from."""
    order = np.random.default_rng(config.seed + 1000003 * epoch).permutation(len(train_set))
    sums = {"loss": 0.0, "loss_energy": 0.0, "loss_force": 0.0, "loss_reconstruction": 0.0}
    for start in range(0, len(order), config.batch_size):
        frames = order[start:start + config.batch_size]
        batch = Batch(train_set, frames, dtype=dtype) if cache is None else cache.batch(frames)
        loss, loss_e, loss_f, _, _ = _batch_loss(model, batch, residual[frames], config, var_e, mean_f2)
        if multitask:
            recon = model.reconstruction_loss(batch.positions, batch.atomic_numbers, batch.neighbors)
            sums["loss_reconstruction"] += float(recon.detach()) * len(frames)
            loss = model.combine_losses(torch.stack([loss, recon]))
        if not torch.isfinite(loss):
            raise FloatingPointError(f"the training loss became {float(loss)} at epoch {epoch}; lower lr "
                                     "or check the labels")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.clip_grad_norm:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad_norm)
        optimizer.step()
        sums["loss"] += float(loss.detach()) * len(frames)
        sums["loss_energy"] += float(loss_e.detach()) * len(frames)
        if loss_f is not None:
            sums["loss_force"] += float(loss_f.detach()) * len(frames)
    return sums


def _validate(model, val_set, residual, config, var_e, mean_f2, cache=None):
    model.eval()
    total, count = 0.0, 0
    use_forces = config.force_weight > 0
    errors_e, errors_f = [], []
    dtype = _model_dtype(model)
    for start in range(0, len(val_set), config.eval_batch_size):
        frames = np.arange(start, min(start + config.eval_batch_size, len(val_set)))
        batch = Batch(val_set, frames, dtype=dtype) if cache is None else cache.batch(frames)
        with torch.set_grad_enabled(use_forces):
            loss, _, _, energies, forces = _batch_loss(model, batch, residual[frames], config, var_e, mean_f2)
        total += float(loss.detach()) * len(frames)
        count += len(frames)
        errors_e.append(energies.detach().double().numpy() - residual[frames])
        if use_forces:
            errors_f.append((forces.detach() - batch.forces).double().numpy().reshape(-1))
    model.train()
    e = np.concatenate(errors_e)
    metrics = {"energy_mae_kj_mol": float(np.abs(e).mean()), "energy_rmse_kj_mol": float(np.sqrt((e ** 2).mean()))}
    if use_forces:
        f = np.concatenate(errors_f)
        metrics["force_mae_kj_mol_nm"] = float(np.abs(f).mean())
    return total / count, metrics
