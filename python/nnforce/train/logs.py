"""The logs of a training run in ``log_dir``: ``history.csv`` (one row per epoch) and TensorBoard events."""
import csv
import io
import os

from .._io import atomic_write


def write_history_csv(path, history):
    """Write the history rows (dicts; the columns are every key seen, in order of appearance) as CSV, atomically."""
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


def tensorboard_writer(config, start_epoch):
    """A TensorBoard writer in ``log_dir/tensorboard`` (None without a log_dir, when disabled or not installed)."""
    if not config.log_dir:
        return None
    os.makedirs(config.log_dir, exist_ok=True)
    if not config.tensorboard:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(os.path.join(config.log_dir, "tensorboard"), purge_step=start_epoch)


def add_scalars(writer, row, epoch):
    """Add the float entries of a history row to a TensorBoard writer (nothing when ``writer`` is None)."""
    if writer is None:
        return
    for key, value in row.items():
        if key != "epoch" and isinstance(value, float):
            writer.add_scalar(key, value, epoch)
    writer.flush()
