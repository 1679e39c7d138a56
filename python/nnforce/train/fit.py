"""Training loop: weighted energy + force MSE, Adam/AdamW/SGD, plateau or cosine schedules, early stopping with
best-weights restore, gradient clipping, resumable checkpoints, CSV + TensorBoard logs, progress bars.

Batches are molecules concatenated into one system with a block-diagonal all-pairs list, evaluated with the
model's ``atomic_energies`` and summed per molecule; forces come from autograd (``create_graph`` when trained on).
"""
import copy
import csv
import dataclasses
import io
import json
import math
import os
import time

import numpy as np
import torch

from .._io import atomic_save, atomic_write
from ..data.batch import Batch
from ..data.units import (KCAL_MOL_A_PER_KJ_MOL_NM, KCAL_MOL_PER_KJ_MOL, MEV_A_PER_KJ_MOL_NM, MEV_PER_KJ_MOL)
from .config import TrainConfig

CHECKPOINT_VERSION = 1


@dataclasses.dataclass
class FitResult:
    model: torch.nn.Module  # with the best (lowest validation loss) weights restored
    history: list  # one dict per epoch: epoch, lr, train_loss, val_loss, val_energy_mae_kj_mol, ..., time_s
    best_epoch: int
    best_val_loss: float
    stopped_early: bool
    checkpoint: str = None  # best.ckpt when log_dir was given


def fit_self_energies(model, dataset, rcond=None):
    """Least-squares per-element energies (kJ/mol) from element counts; stored in ``model.self_energies``."""
    if dataset.energies_kj_mol is None:
        raise ValueError(f"{dataset.name}: no energy labels to fit self energies")
    counts = dataset.composition(model.elements).astype(np.float64)
    solution, *_ = np.linalg.lstsq(counts, dataset.energies_kj_mol, rcond=rcond)
    # elements absent from the data get 0 (lstsq gives the minimum-norm solution there already)
    with torch.no_grad():
        model.self_energies.copy_(torch.as_tensor(solution, dtype=model.self_energies.dtype))
    return solution


def self_energy_sum(model, dataset):
    """Sum of the model's self energies per frame, float64 [F] (kJ/mol), computed in numpy (exact)."""
    counts = dataset.composition(model.elements).astype(np.float64)
    return counts @ model.self_energies.detach().double().numpy()


class _Labels:
    """Per-dataset float64 reference energies minus self energies (what the networks learn)."""

    def __init__(self, model, dataset):
        self.residual = dataset.energies_kj_mol - self_energy_sum(model, dataset)


def _predict(model, batch, need_forces, create_graph):
    positions = batch.positions
    if need_forces:
        positions = positions.detach().requires_grad_(True)
    atomic = model.atomic_energies(positions, batch.atomic_numbers, batch.neighbors, None, None, False)
    energies = torch.zeros(batch.n_molecules, dtype=atomic.dtype).index_add(0, batch.molecule_index, atomic)
    forces = None
    if need_forces:
        (gradient,) = torch.autograd.grad(energies.sum(), positions, create_graph=create_graph)
        forces = -gradient
    return energies, forces


def _model_dtype(model):
    return model.energy_scale.dtype


def evaluate(model, dataset, batch_size=256, forces=None):
    """Energy MAE/RMSE per molecule and force MAE/RMSE per component, in kJ/mol(/nm), kcal/mol(/A) and meV(/A).

    Predictions add the self energies in float64, so large total energies lose no precision.
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
    return loss, loss_e, loss_f


def _make_optimizer(model, config):
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)


def _make_scheduler(optimizer, config):
    if config.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=config.plateau_factor,
                                                          patience=config.plateau_patience, min_lr=config.min_lr)
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs, eta_min=config.min_lr)
    return None


def save_checkpoint(path, state):
    """torch.save a dict of tensors/primitives atomically (loadable with weights_only=True)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    with atomic_write(path) as handle:
        handle.write(buffer.getvalue())


def load_checkpoint(path):
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path} is a directory, not a training checkpoint (best.ckpt or last.ckpt inside it?)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises RuntimeError/UnpicklingError/EOFError with long texts
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ValueError(f"{path} is not a readable training checkpoint ({first[:200]}); it may be damaged or cut "
                         "short: use another checkpoint (best.ckpt/last.ckpt) or train again") from None
    if not isinstance(state, dict) or state.get("format") != "nnforce-checkpoint":
        raise ValueError(f"{path} is not an nnforce training checkpoint")
    return state


def _write_csv(path, history):
    if not history:
        return
    keys = list(history[0].keys())
    for row in history:
        keys.extend(k for k in row if k not in keys)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=keys)
    writer.writeheader()
    writer.writerows(history)
    with atomic_write(path, "w") as handle:
        handle.write(text.getvalue())


def fit(model, train_set, val_set, config=None, resume=None, model_spec=None, metadata=None):
    """Train ``model`` on ``train_set``, early-stopping on ``val_set``; returns :class:`FitResult`.

    ``config``: :class:`TrainConfig` or dict. ``resume``: a ``last.ckpt`` to continue from (the same loss
    trajectory as an uninterrupted run: batches are shuffled by ``seed + epoch``). With ``config.log_dir`` the run
    writes ``history.csv``, TensorBoard events, ``last.ckpt`` (every epoch) and ``best.ckpt``. ``model_spec`` (the
    dict for :func:`build_model`) and ``metadata`` (e.g. the data hash) are stored in checkpoints for export.
    """
    if config is None:
        config = TrainConfig()
    elif isinstance(config, dict):
        config = TrainConfig.from_dict(config)
    if config.threads:
        torch.set_num_threads(int(config.threads))
    _check_data(model, train_set, val_set, config)
    model.train()
    optimizer = _make_optimizer(model, config)
    scheduler = _make_scheduler(optimizer, config)
    history, start_epoch, best_val, best_epoch, bad_epochs, best_state = [], 0, math.inf, -1, 0, None
    if resume is not None:
        state = load_checkpoint(resume)
        model.load_state_dict(state["model_state"])
        optimizer.load_state_dict(state["optimizer_state"])
        if scheduler is not None and state.get("scheduler_state") is not None:
            scheduler.load_state_dict(state["scheduler_state"])
        history = list(state["history"])
        start_epoch = int(state["epoch"]) + 1
        best_val, best_epoch, bad_epochs = float(state["best_val_loss"]), int(state["best_epoch"]), int(
            state["bad_epochs"])
        best_state = state["best_model_state"]
    else:
        _prepare(model, train_set, config)
    var_e, mean_f2 = _normalisers(train_set, model)
    train_residual = _Labels(model, train_set).residual
    val_residual = _Labels(model, val_set).residual
    dtype = _model_dtype(model)
    writer = None
    if config.log_dir:
        os.makedirs(config.log_dir, exist_ok=True)
        if config.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                writer = SummaryWriter(os.path.join(config.log_dir, "tensorboard"), purge_step=start_epoch)
            except ImportError:
                writer = None
    multitask = hasattr(model, "combine_losses") and hasattr(model, "reconstruction_loss")
    started = time.time()
    stopped_early = False
    epochs = range(start_epoch, config.epochs)
    bar = None
    if config.progress:
        from tqdm import tqdm

        bar = tqdm(total=config.epochs, initial=start_epoch, desc="training", unit="epoch")
    for epoch in epochs:
        t0 = time.time()
        order = np.random.default_rng(config.seed + 1000003 * epoch).permutation(len(train_set))
        sums = {"loss": 0.0, "loss_energy": 0.0, "loss_force": 0.0, "loss_reconstruction": 0.0}
        for start in range(0, len(order), config.batch_size):
            frames = order[start:start + config.batch_size]
            batch = Batch(train_set, frames, dtype=dtype)
            loss, loss_e, loss_f = _batch_loss(model, batch, train_residual[frames], config, var_e, mean_f2)
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
        val_loss, val_metrics = _validate(model, val_set, val_residual, config, var_e, mean_f2)
        lr = optimizer.param_groups[0]["lr"]
        row = {"epoch": epoch, "lr": lr}
        row.update({f"train_{k}": v / len(train_set) for k, v in sums.items()})
        row["val_loss"] = val_loss
        row.update({f"val_{k}": v for k, v in val_metrics.items() if k != "n_frames"})
        if multitask:
            row["sigma_task"], row["sigma_reconstruction"] = [float(v) for v in torch.exp(model.log_sigma.detach())]
        row["epoch_time_s"] = time.time() - t0
        history.append(row)
        if scheduler is not None:
            if config.schedule == "plateau":
                scheduler.step(val_loss)
            else:
                scheduler.step()
        if val_loss < best_val:
            best_val, best_epoch, bad_epochs = val_loss, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            bad_epochs += 1
        if writer is not None:
            for key, value in row.items():
                if key != "epoch" and isinstance(value, float):
                    writer.add_scalar(key, value, epoch)
            writer.flush()
        if config.log_dir:
            _write_csv(os.path.join(config.log_dir, "history.csv"), history)
            save_checkpoint(os.path.join(config.log_dir, "last.ckpt"), _checkpoint_state(
                model, optimizer, scheduler, epoch, history, best_val, best_epoch, bad_epochs, best_state, config,
                model_spec, metadata))
            if best_epoch == epoch:
                save_checkpoint(os.path.join(config.log_dir, "best.ckpt"), _checkpoint_state(
                    model, None, None, epoch, history, best_val, best_epoch, bad_epochs, None, config, model_spec,
                    metadata))
        if bar is not None:
            bar.update(1)
            bar.set_postfix(val_loss=f"{val_loss:.4g}", e_mae=f"{val_metrics['energy_mae_kj_mol']:.3g}")
        if bad_epochs >= config.early_stopping_patience:
            stopped_early = True
            break
        if config.max_time_s is not None and time.time() - started > config.max_time_s:
            break
    if bar is not None:
        bar.close()
    if writer is not None:
        writer.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    checkpoint = os.path.join(config.log_dir, "best.ckpt") if config.log_dir else None
    return FitResult(model, history, best_epoch, best_val, stopped_early, checkpoint)


def _validate(model, val_set, residual, config, var_e, mean_f2):
    model.eval()
    total, count = 0.0, 0
    use_forces = config.force_weight > 0
    errors_e, errors_f = [], []
    dtype = _model_dtype(model)
    for start in range(0, len(val_set), config.eval_batch_size):
        frames = np.arange(start, min(start + config.eval_batch_size, len(val_set)))
        batch = Batch(val_set, frames, dtype=dtype)
        with torch.set_grad_enabled(use_forces):
            loss, _, _ = _batch_loss(model, batch, residual[frames], config, var_e, mean_f2)
            energies, forces = _predict(model, batch, use_forces, False)
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


def _checkpoint_state(model, optimizer, scheduler, epoch, history, best_val, best_epoch, bad_epochs, best_state,
                      config, model_spec, metadata):
    return {
        "format": "nnforce-checkpoint", "version": CHECKPOINT_VERSION,
        "model_state": model.state_dict(),
        "optimizer_state": None if optimizer is None else optimizer.state_dict(),
        "scheduler_state": None if scheduler is None else scheduler.state_dict(),
        "epoch": epoch, "history": history, "best_val_loss": best_val, "best_epoch": best_epoch,
        "bad_epochs": bad_epochs, "best_model_state": best_state, "config": config.to_dict(),
        "model_spec": None if model_spec is None else dict(model_spec),
        "metadata": None if metadata is None else json.loads(json.dumps(metadata)),
    }


def model_from_checkpoint(path):
    """Rebuild the model stored in a checkpoint (needs the model spec that ``fit`` was given)."""
    from .config import build_model

    state = load_checkpoint(path)
    if not state.get("model_spec"):
        raise ValueError(f"{path} carries no model spec; pass model_spec= to fit() to make exportable checkpoints")
    model = build_model(state["model_spec"])
    weights = state["best_model_state"] or state["model_state"]
    model.load_state_dict(weights)
    model.eval()
    return model, state
