"""Completeness and timing of trajectory files, read from their own headers before any frame is analysed.

A DCD or XTC file cut short (a run killed while writing, a copy that stopped) ends in a partial frame that
readers either turn into garbage coordinates or silently drop. :func:`check_trajectory` finds the last complete
frame from the file layout alone:

* DCD (CHARMM/NAMD/OpenMM, either byte order): a fixed-size header (Fortran records: control block, titles,
  atom count) then fixed-size frames (optional unit-cell record, then x, y, z records); the header's frame count
  (NSET) is compared with the frames present. The header also gives the time between frames:
  ``NSAVC * DELTA`` in AKMA time units (:data:`AKMA_TIME_PS`).
* XTC: frames of varying size, each starting with the magic number 1995; their headers are walked one by one.

Other formats are not checked (None).
"""
import contextlib
import os
import struct
import sys
import warnings

__all__ = ["check_trajectory", "trajectory_layout", "quiet_native_output", "AKMA_TIME_PS"]

AKMA_TIME_PS = 0.04888821  # CHARMM's AKMA time unit in ps (sqrt(A^2 amu / (kcal/mol)))
XTC_MAGIC = 1995


def _dcd_layout(path):
    """Frame layout of a DCD file, or None when it uses a variant this reader does not size (fixed atoms, 64-bit
    record markers)."""
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        head = handle.read(4)
        if len(head) < 4:
            raise ValueError(f"{path} is empty or cut short inside its DCD header")
        for order in "<>":
            if struct.unpack(order + "i", head)[0] == 84:
                break
        else:
            wide = head + handle.read(4)
            if len(wide) == 8 and 84 in (struct.unpack("<q", wide)[0], struct.unpack(">q", wide)[0]):
                return None  # 64-bit record markers: not sized here
            raise ValueError(f"{path} is not a DCD file (its first record is not the 84-byte CORD header)")
        block = handle.read(88)
        if len(block) < 88 or block[:4] != b"CORD":
            raise ValueError(f"{path} is not a DCD file (no CORD header) or its header is damaged")
        control = struct.unpack(order + "20i", block[4:84])
        delta = struct.unpack(order + "f", block[40:44])[0]
        nset, nsavc, fixed, has_cell, four_dims = control[0], control[2], control[8], control[10], control[11]
        title_length = handle.read(4)
        if len(title_length) < 4:
            raise ValueError(f"{path} is cut short inside its DCD header")
        length = struct.unpack(order + "i", title_length)[0]
        if length < 4 or 4 + 88 + 8 + length + 12 > size:
            raise ValueError(f"{path} has a damaged DCD title record")
        handle.seek(length + 4, 1)
        atoms_record = handle.read(12)
        if len(atoms_record) < 12:
            raise ValueError(f"{path} is cut short inside its DCD header")
        marker, n_atoms, marker_end = struct.unpack(order + "3i", atoms_record)
        if marker != 4 or marker_end != 4 or n_atoms <= 0:
            raise ValueError(f"{path} has a damaged DCD atom-count record")
        header = handle.tell()
    if fixed:
        return None
    frame = (56 if has_cell else 0) + (4 if four_dims else 3) * (8 + 4 * n_atoms)
    complete, partial = divmod(size - header, frame)
    # mdtraj's writer (and others that do not know the time) record NSAVC 1 and DELTA 1.0: no time at all
    known = nsavc > 0 and delta > 0 and not (nsavc == 1 and delta == 1.0)
    interval_ps = nsavc * delta * AKMA_TIME_PS if known else None
    return {"format": "dcd", "atoms": n_atoms, "complete_frames": complete, "partial_bytes": partial,
            "frame_bytes": frame, "header_frames": nset, "frame_interval_ps": interval_ps}


def _xtc_layout(path):
    """Frame count of an XTC file from its frame headers (the coordinates themselves are not decoded)."""
    size = os.path.getsize(path)
    complete, position, n_atoms, times = 0, 0, None, []
    with open(path, "rb") as handle:
        while position < size:
            handle.seek(position)
            head = handle.read(92)
            if len(head) < 56:
                return _xtc_result(n_atoms, complete, size - position, times, None)
            magic, atoms, _step, time = struct.unpack(">iiif", head[:16])
            if magic != XTC_MAGIC or atoms <= 0:
                raise ValueError(f"{path}: frame {complete + 1} does not start with the XTC magic number (the file is "
                                 "damaged or not an XTC file)")
            n_atoms = atoms if n_atoms is None else n_atoms
            if atoms <= 9:
                end = position + 56 + 12 * atoms
            elif len(head) < 92:
                return _xtc_result(n_atoms, complete, size - position, times, None)
            else:
                count = struct.unpack(">i", head[88:92])[0]
                end = position + 92 + (count + 3) // 4 * 4
            if end > size:
                return _xtc_result(n_atoms, complete, size - position, times, end - position)
            complete += 1
            if len(times) < 2:
                times.append(time)
            position = end
    return _xtc_result(n_atoms, complete, 0, times, None)


def _xtc_result(n_atoms, complete, partial, times, frame_bytes):
    interval = float(times[1] - times[0]) if len(times) == 2 and times[1] > times[0] else None
    return {"format": "xtc", "atoms": n_atoms, "complete_frames": complete, "partial_bytes": partial,
            "frame_bytes": frame_bytes, "header_frames": None, "frame_interval_ps": interval}


def trajectory_layout(path):
    """What a trajectory file's headers say: atoms, complete frames, bytes of a partial last frame, the frame
    count the header promises (DCD) and the time between frames in ps (or None).

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    dict or None
        None for formats other than DCD and XTC (and DCD variants with fixed atoms).

    Raises
    ------
    ValueError
        When the header itself is damaged or cut short.

    Examples
    --------
    >>> trajectory_layout("trajectory.dcd")["complete_frames"]  # doctest: +SKIP
    200
    """
    path = os.fspath(path)
    suffix = os.path.splitext(path)[1].lower()
    if suffix == ".dcd":
        return _dcd_layout(path)
    if suffix == ".xtc":
        return _xtc_layout(path)
    return None


def check_trajectory(path, complete_frames_only=False):
    """Refuse a trajectory whose last frame is incomplete, naming the frame; with ``complete_frames_only`` return
    the number of complete frames to read instead. A DCD holding fewer whole frames than its header records is
    read with a warning (every frame present is complete).

    Parameters
    ----------
    path : str or os.PathLike
    complete_frames_only : bool
        Analyse the complete frames of a truncated file instead of refusing it.

    Returns
    -------
    int or None
        The number of frames to read (None: the whole file, or a format that is not checked).

    Raises
    ------
    ValueError
        For a truncated file (unless ``complete_frames_only``) or a damaged header.

    Examples
    --------
    >>> check_trajectory("cut.dcd")  # doctest: +SKIP
    Traceback (most recent call last):
    ValueError: cut.dcd: frame 151 is incomplete (the file ends 812 of its 1096 bytes into it) ...
    """
    path = os.fspath(path)
    layout = trajectory_layout(path)
    if layout is None:
        return None
    complete = layout["complete_frames"]
    problem = None
    if layout["partial_bytes"]:
        total = f" of its {layout['frame_bytes']}" if layout["frame_bytes"] else ""
        problem = (f"frame {complete + 1} is incomplete (the file ends {layout['partial_bytes']}{total} bytes into it): "
                   "the file was cut short")
    elif layout["header_frames"] and layout["header_frames"] > complete:
        # Cut on a frame boundary (or a writer that recorded the planned count): every frame present is whole.
        warnings.warn(f"{path}: its header records {layout['header_frames']} frames but {complete} are in the file "
                      f"(the run or copy stopped early); the {complete} complete frames are analysed", stacklevel=3)
    if problem is None:
        return None
    if not complete_frames_only:
        raise ValueError(f"{path}: {problem} (a run killed while writing, or an interrupted copy). To analyse its "
                         f"{complete} complete frames, pass --complete-frames-only (complete_frames_only=True)")
    return complete


@contextlib.contextmanager
def quiet_native_output():
    """Silence what native code writes to the process's standard output while the block runs: mdtraj's DCD reader
    (VMD's dcdplugin) prints three lines ("dcdplugin) detected standard 32-bit DCD file ...") each time it opens a
    file, 64 lines per ``nnforce analyze``. Python's own output is flushed before and goes on after."""
    import ctypes

    try:
        libc = ctypes.CDLL(None)
        sys.stdout.flush()
        libc.fflush(None)
        saved, devnull = os.dup(1), os.open(os.devnull, os.O_WRONLY)
    except (OSError, AttributeError, ValueError):  # no fd 1 (an embedded interpreter): nothing to silence
        yield
        return
    os.dup2(devnull, 1)
    try:
        yield
    finally:
        libc.fflush(None)
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)

