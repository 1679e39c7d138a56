"""Frames that teach a model its walls: copies of a molecule's frames with one covalent bond stretched, for a teacher
to label. Thermal data never holds a bond at 1.5x its length, so a small model trained on it alone is free to
turn over there -- its energy rising, then falling as the bond lengthens -- and a long simulation finds the way
out (an atom leaves: the "hole" of a distilled potential). Labelled stretched frames put the teacher's rising wall
into the data."""
import numpy as np

__all__ = ["stretch_bonds"]


def stretch_bonds(atomic_numbers, frames_nm, count, ratio_range=(1.15, 1.9), seed=0):
    """``count`` copies of frames drawn from ``frames_nm`` (seeded), each with one of its covalent bonds (the bonds
    of the first frame, :func:`nnforce.train.stability.covalent_bonds`) stretched to a ratio drawn uniformly from
    ``ratio_range`` times its length in that frame: the bond's lighter atom (the second of the pair when both weigh
    the same) moves along the bond, every other atom stays.

    Parameters
    ----------
    atomic_numbers : sequence of int
    frames_nm : array [F, N, 3]
    count : int
    ratio_range : (float, float)
        1 < low <= high.
    seed : int

    Returns
    -------
    dict
        ``frames_nm`` [count, N, 3], ``source`` (the frame each copy came from), ``bond`` [count, 2] (atoms,
        the moved one second), ``ratio`` [count].

    Examples
    --------
    >>> x = np.array([[[0, 0, 0], [0.0957, 0, 0], [-0.024, 0.0927, 0]]])
    >>> out = stretch_bonds([8, 1, 1], x, 2, ratio_range=(1.5, 1.5))
    >>> [round(float(np.linalg.norm(f[b[1]] - f[b[0]]) / np.linalg.norm(x[0][b[1]] - x[0][b[0]])), 6)
    ...  for f, b in zip(out["frames_nm"], out["bond"])]
    [1.5, 1.5]
    """
    from ..train.stability import covalent_bonds

    z = np.asarray([int(v) for v in atomic_numbers])
    x = np.asarray(frames_nm, dtype=np.float64)
    if x.ndim != 3 or x.shape[1:] != (len(z), 3) or len(x) == 0:
        raise ValueError(f"frames_nm must be [F, {len(z)}, 3] with F >= 1, got shape {x.shape}")
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0:
        raise ValueError(f"count must be a whole number >= 0, got {count!r}")
    low, high = (float(v) for v in ratio_range)
    if not 1.0 < low <= high:
        raise ValueError(f"ratio_range must be (low, high) with 1 < low <= high, got {ratio_range!r}")
    pairs, _ = covalent_bonds(z, x[0])
    rng = np.random.default_rng(seed)
    source = rng.integers(0, len(x), size=count)
    chosen = rng.integers(0, len(pairs), size=count)
    ratio = rng.uniform(low, high, size=count)
    out = x[source].copy()
    bonds = np.empty((count, 2), dtype=np.int64)
    for k in range(count):
        a, b = (int(v) for v in pairs[chosen[k]])
        if z[a] < z[b]:  # the lighter atom moves (hydrogens, mostly)
            a, b = b, a
        out[k, b] = out[k, a] + ratio[k] * (out[k, b] - out[k, a])
        bonds[k] = (a, b)
    return {"frames_nm": out, "source": source, "bond": bonds, "ratio": ratio}
