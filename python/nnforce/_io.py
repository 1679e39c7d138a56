"""File helpers shared by every stage: all output is written atomically (temporary file + rename)."""
import contextlib
import os
import tempfile


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _publish(tmp, path):
    """Give the temporary file the permissions a normal open() would have, then move it into place."""
    os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, path)


@contextlib.contextmanager
def atomic_write(path, mode="wb"):
    """Open a temporary file beside ``path`` and rename it over ``path`` only if the block succeeds.

    A crash or exception part-way leaves any earlier ``path`` untouched and no partial file behind.

    Parameters
    ----------
    path : str
    mode : str
        ``"wb"`` or ``"w"``.

    Yields
    ------
    file object

    Examples
    --------
    >>> with atomic_write("out.txt", "w") as handle:  # doctest: +SKIP
    ...     handle.write("done")
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        _publish(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_save(path, writer):
    """Call ``writer(tmp_path)`` (for libraries that insist on a file name), then rename onto ``path``.

    Parameters
    ----------
    path : str
    writer : callable
        Called with the temporary file name (same extension as ``path``).

    Examples
    --------
    >>> atomic_save("traj.dcd", trajectory.save)  # doctest: +SKIP
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    base, ext = os.path.splitext(os.path.basename(path))
    fd, tmp = tempfile.mkstemp(prefix="." + base + ".", suffix=".tmp" + ext, dir=directory)
    os.close(fd)
    try:
        writer(tmp)
        _publish(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
