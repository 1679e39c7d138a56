"""Optimizers and learning-rate schedules of :func:`nnforce.train.fit`: Adam/AdamW/SGD; plateau, cosine and
``budget_cosine`` (a half cosine over the run's epoch, CPU-time or wall-time budget, whichever is used up first)."""
import math

import torch


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
    return None  # budget_cosine is set per epoch by _budget_lr; none keeps lr


def _progress(config, epoch, wall_s, cpu_s):
    """Fraction of the run done before ``epoch``: the largest of the epoch, CPU-time and wall-time fractions."""
    done = epoch / config.epochs
    if config.max_cpu_s is not None:
        done = max(done, cpu_s / config.max_cpu_s)
    if config.max_time_s is not None:
        done = max(done, wall_s / config.max_time_s)
    return min(done, 1.0)


def _budget_lr(config, progress):
    """``budget_cosine``: a half cosine from ``lr`` (progress 0) to ``min_lr`` (progress 1)."""
    return config.min_lr + 0.5 * (config.lr - config.min_lr) * (1.0 + math.cos(math.pi * progress))


def _step_scheduler(scheduler, config, val_loss):
    if scheduler is None:
        return
    if config.schedule == "plateau":
        scheduler.step(val_loss)
    else:
        scheduler.step()
