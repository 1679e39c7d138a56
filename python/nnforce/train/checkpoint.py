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


def _refuse_exported_model(path):
    """Raise ValueError for an exported model (TorchScript or .pt2) given where a training checkpoint is expected
    (torch.load would answer with its weights_only essay)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return
    kind = ("an AOTInductor package (.pt2)" if any("aotinductor" in n for n in names) else
            "a TorchScript model" if any(n.split("/", 1)[-1].startswith(("code/", "constants.pkl")) for n in names)
            else None)
    if kind:
        raise ValueError(f"{path} is {kind}, already exported, not a training checkpoint: `nnforce export` turns a "
                         "checkpoint (best.ckpt from `nnforce train`) into a model; to read this model's metadata use "
                         f"`nnforce export {path} --info`")


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
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path} is a directory, not a training checkpoint (best.ckpt or last.ckpt inside it?)")
    _refuse_exported_model(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises RuntimeError/UnpicklingError/EOFError with long texts
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ValueError(f"{path} is not a readable training checkpoint ({first[:200]}); it may be damaged or cut "
                         "short: use another checkpoint (best.ckpt/last.ckpt) or train again") from None
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
    try:
        model = build_model(state["model_spec"])
    except (TypeError, ValueError, KeyError) as error:
        raise ValueError(f"{path}: its model spec {state['model_spec']!r} does not build a model ({error}); the "
                         "checkpoint was written by another nnforce version or edited: train again") from None
    weights = state["best_model_state"] or state["model_state"]
    try:
        model.load_state_dict(weights)
    except (RuntimeError, TypeError, AttributeError) as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ValueError(f"{path}: the weights it holds do not fit the model its spec describes ({first[:200]}); "
                         "the checkpoint was damaged or edited: use another checkpoint (best.ckpt/last.ckpt) or train "
                         "again") from None
    model.eval()
    return model, state
