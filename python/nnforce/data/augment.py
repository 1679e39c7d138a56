"""Frames that teach a model its walls, for a teacher to label: copies of a molecule's frames with one covalent bond
stretched (:func:`stretch_bonds`) or with two atoms three or more bonds apart pushed together (:func:`close_contacts`).
Thermal data never holds a bond at 1.5x its length nor a methyl hydrogen at a carbonyl oxygen, so a small model
trained on it alone is free to turn over there -- its energy rising, then falling -- and a long simulation finds the
way out (an atom leaves: the "hole" of a distilled potential). Labelled frames put the teacher's walls into the
data."""
import numpy as np

__all__ = ["stretch_bonds", "close_contacts"]


def _inputs(atomic_numbers, frames_nm, count, ratio_range, floor):
    """Checked (z, frames [F, N, 3] float64, low, high) with ``floor < low <= high``."""
    z = np.asarray([int(v) for v in atomic_numbers])
    x = np.asarray(frames_nm, dtype=np.float64)
    if x.ndim != 3 or x.shape[1:] != (len(z), 3) or len(x) == 0:
        raise ValueError(f"frames_nm must be [F, {len(z)}, 3] with F >= 1, got shape {x.shape}")
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0:
        raise ValueError(f"count must be a whole number >= 0, got {count!r}")
    low, high = (float(v) for v in ratio_range)
    if not floor < low <= high:
        raise ValueError(f"ratio_range must be (low, high) with {floor:g} < low <= high, got {ratio_range!r}")
    return z, x, low, high


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

    z, x, low, high = _inputs(atomic_numbers, frames_nm, count, ratio_range, 1.0)
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


def close_contacts(atomic_numbers, frames_nm, count, ratio_range=(1.5, 2.2), max_shift_nm=0.08, hydrogen_only=True,
                   seed=0):
    """``count`` copies of frames drawn from ``frames_nm`` (seeded), each with one pair of atoms that are not
    bonded to each other nor to a common atom (three or more bonds apart in the first frame's covalent graph,
    :func:`nnforce.train.stability.covalent_bonds`) pushed together: both atoms move along the pair's line, half the
    way each, until their distance is a ratio drawn uniformly from ``ratio_range`` times the sum of their covalent
    radii (O...H 0.146-0.213 nm for the default), among the pairs that get there by moving at most ``max_shift_nm``
    in all (so the rest of the molecule stays near a real geometry); with ``hydrogen_only`` (default) only pairs
    with a hydrogen, the light atoms that a hot or biased trajectory throws fastest (heavy-atom pairs pushed as far
    cost hundreds of kJ/mol and crowd the data's energy range). A teacher's labels there are its repulsive wall:
    the collision a small model trained on thermal frames alone does not know (the demo's student let a methyl
    hydrogen reach a carbonyl oxygen at 0.134 nm, where the closest training pair was 0.196 nm, and the molecule
    blew apart).

    Returns
    -------
    dict
        ``frames_nm`` [count, N, 3], ``source``, ``pair`` [count, 2], ``distance_nm``.

    Examples
    --------
    >>> from ase.build import molecule
    >>> atoms = molecule("CH3CH2OH")
    >>> out = close_contacts(atoms.get_atomic_numbers(), atoms.positions[None] / 10, 3, seed=1)
    >>> [round(float(np.linalg.norm(f[j] - f[i])), 6) == round(float(d), 6)
    ...  for f, (i, j), d in zip(out["frames_nm"], out["pair"], out["distance_nm"])]
    [True, True, True]
    """
    from ..train.stability import COVALENT_RADII_NM, covalent_bonds

    z, x, low, high = _inputs(atomic_numbers, frames_nm, count, ratio_range, 0.0)
    pairs, _ = covalent_bonds(z, x[0])
    n = len(z)
    adjacent = np.zeros((n, n), dtype=bool)
    adjacent[pairs[:, 0], pairs[:, 1]] = adjacent[pairs[:, 1], pairs[:, 0]] = True
    near = adjacent | ((adjacent.astype(int) @ adjacent.astype(int)) > 0) | np.eye(n, dtype=bool)
    radii = np.array([COVALENT_RADII_NM[v] for v in z])
    if hydrogen_only:
        light = z == 1
        near = near | ~(light[:, None] | light[None, :])
    rng = np.random.default_rng(seed)
    out = np.empty((count, n, 3))
    source = np.empty(count, dtype=np.int64)
    chosen = np.empty((count, 2), dtype=np.int64)
    distance = np.empty(count)
    for k in range(count):
        for _ in range(1000):
            f = int(rng.integers(0, len(x)))
            d = np.linalg.norm(x[f][:, None] - x[f][None], axis=-1)
            target = rng.uniform(low, high) * (radii[:, None] + radii[None, :])
            i, j = np.nonzero(~near & (d > target) & (d - target <= float(max_shift_nm))
                              & np.triu(np.ones((n, n), bool), 1))
            if len(i):
                break
        else:
            raise ValueError(f"no pair three or more bonds apart lies within {max_shift_nm} nm of {low}-{high}x its "
                             "covalent radii in these frames: nothing to push together (raise max_shift_nm)")
        p = int(rng.integers(0, len(i)))
        a, b = int(i[p]), int(j[p])
        y = x[f].copy()
        shift = 0.5 * (d[a, b] - target[a, b]) * (y[b] - y[a]) / d[a, b]
        y[a] += shift
        y[b] -= shift
        out[k], source[k], chosen[k], distance[k] = y, f, (a, b), target[a, b]
    return {"frames_nm": out, "source": source, "pair": chosen, "distance_nm": distance}
