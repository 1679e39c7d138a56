"""Training checkpoints: written atomically with ``torch.save``, read with ``weights_only=True``, and the model
rebuilt from the spec stored in them."""
import io
import json
import os

import torch

from .._io import atomic_write

CHECKPOINT_VERSION = 1


def save_checkpoint(path, state):
    """torch.save a dict of tensors/primitives atomically (loadable with weights_only=True).

    Parameters
    ----------
    path : str
    state : dict

    Examples
    --------
    >>> save_checkpoint("run/last.ckpt", {"model_state": model.state_dict()})  # doctest: +SKIP
    """
    buffer = io.BytesIO()
    torch.save(state, buffer)
    with atomic_write(path) as handle:
        handle.write(buffer.getvalue())


def load_checkpoint(path):
    """Read a checkpoint written by :func:`save_checkpoint` (``torch.load`` with ``weights_only=True``).

    Parameters
    ----------
    path : str

    Returns
    -------
    dict

    Examples
    --------
    >>> state = load_checkpoint("run/best.ckpt")  # doctest: +SKIP
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != "nnforce-checkpoint":
        raise ValueError(f"{path} is not an nnforce training checkpoint")
    return state


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
    """Rebuild the model stored in a checkpoint (needs the model spec that ``fit`` was given).

    Parameters
    ----------
    path : str

    Returns
    -------
    tuple
        ``(model in eval mode, the checkpoint dict)``.

    Examples
    --------
    >>> model, state = model_from_checkpoint("run/best.ckpt")  # doctest: +SKIP
    """
    from .config import build_model

    state = load_checkpoint(path)
    if not state.get("model_spec"):
        raise ValueError(f"{path} carries no model spec; pass model_spec= to fit() to make exportable checkpoints")
    model = build_model(state["model_spec"])
    weights = state["best_model_state"] or state["model_state"]
    model.load_state_dict(weights)
    model.eval()
    return model, state
