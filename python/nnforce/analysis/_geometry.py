"""Vectorized geometry on coordinate arrays (nm), with periodic boxes built once per chunk.

mdtraj rebuilds ``unitcell_vectors`` frame by frame on every access (about 0.1 ms per frame on a boxed
trajectory), and its periodic distance/angle/torsion functions access it on every call. Here the box
vectors of a whole chunk come from its lengths and angles in one vectorized expression, and the
minimum-image convention is applied with array operations.
"""
import numpy as np


def box_vectors(lengths, angles_deg):
    """Box vectors (F, 3, 3), rows a, b, c, from unit-cell lengths (F, 3) in nm and angles (F, 3) in degrees.

    Same convention as mdtraj/OpenMM: a along x, b in the xy plane (reduced/lower-triangular form).
    """
    lengths = np.asarray(lengths, dtype=np.float64)
    angles_deg = np.asarray(angles_deg, dtype=np.float64)
    if np.all(angles_deg == 90.0):
        box = np.zeros((len(lengths), 3, 3))
        box[:, [0, 1, 2], [0, 1, 2]] = lengths
        return box
    alpha, beta, gamma = np.radians(np.asarray(angles_deg, dtype=np.float64)).T
    a, b, c = lengths.T
    cos_a, cos_b, cos_g, sin_g = np.cos(alpha), np.cos(beta), np.cos(gamma), np.sin(gamma)
    # snap angles that are 90 deg to exact zeros so orthorhombic boxes stay exactly diagonal
    cos_a = np.where(np.abs(cos_a) < 1e-6, 0.0, cos_a)
    cos_b = np.where(np.abs(cos_b) < 1e-6, 0.0, cos_b)
    cos_g = np.where(np.abs(cos_g) < 1e-6, 0.0, cos_g)
    sin_g = np.where(np.abs(cos_g) == 0.0, 1.0, sin_g)
    box = np.zeros((len(lengths), 3, 3))
    box[:, 0, 0] = a
    box[:, 1, 0] = b * cos_g
    box[:, 1, 1] = b * sin_g
    box[:, 2, 0] = c * cos_b
    box[:, 2, 1] = c * (cos_a - cos_b * cos_g) / sin_g
    box[:, 2, 2] = np.sqrt(np.maximum(c ** 2 - box[:, 2, 0] ** 2 - box[:, 2, 1] ** 2, 0.0))
    return box


def minimum_image(vectors, box):
    """Apply the minimum-image convention to difference vectors (F, P, 3) given boxes (F, 3, 3) or None.

    Exact for orthorhombic and triclinic boxes: triclinic vectors get the reduced-box pass (subtract c, then
    b, then a, as OpenMM does) and those still longer than half the smallest box width are compared against
    their 26 neighbouring images.
    """
    if box is None:
        return vectors
    comps = np.ascontiguousarray(np.transpose(np.asarray(vectors), (2, 1, 0)))  # (3, P, F)
    _minimum_image_components(comps, np.asarray(box, dtype=comps.dtype))
    return np.transpose(comps, (2, 1, 0))


def _minimum_image_components(d, box):
    """In place on component arrays d (3, P, F) with boxes (F, 3, 3)."""
    if np.all(box[:, [1, 2, 2], [0, 0, 1]] == 0):
        for axis in range(3):
            length = box[:, axis, axis]
            # most vectors in torsions/angles are bonds: skip the rounding when none crosses half the box
            if np.any(np.abs(d[axis]) > 0.5 * length):
                d[axis] -= length * np.rint(d[axis] / length)
        return
    for axis in (2, 1, 0):
        shift = np.rint(d[axis] / box[:, axis, axis])
        if not np.any(shift):
            continue
        for k in range(axis + 1):
            d[k] -= shift * box[:, axis, k]
    # The reduced-box pass is exact only for vectors shorter than half the smallest box width; check the
    # neighbouring images of the rest so the result is the true minimum image (as MDAnalysis does).
    widths = np.abs(box[:, [0, 1, 2], [0, 1, 2]]).min(axis=1)
    long = _dot(d, d) > (0.5 * widths) ** 2
    if not np.any(long):
        return
    pairs, frames = np.nonzero(long)
    v = d[:, pairs, frames]  # (3, L)
    b = box[frames]  # (L, 3, 3)
    best = v.copy()
    best_len = _dot(v, v)
    for i, j, k in np.ndindex(3, 3, 3):
        if (i, j, k) == (1, 1, 1):
            continue
        shift = (i - 1) * b[:, 0] + (j - 1) * b[:, 1] + (k - 1) * b[:, 2]  # (L, 3)
        cand = v + shift.T
        length = _dot(cand, cand)
        better = length < best_len
        best[:, better] = cand[:, better]
        best_len = np.where(better, length, best_len)
    d[:, pairs, frames] = best


def _components(xyz, index):
    """Coordinates of the atoms ``index`` uses as (U, 3, F) -- one contiguous x, y, z row per used atom --
    and ``index`` remapped into U.

    Taking the few used atoms' columns once and working on contiguous per-atom component rows is much faster
    than fancy indexing a large (F, N, 3) array and numpy's cross/einsum on trailing axes of length 3.
    """
    index = np.asarray(index, dtype=np.intp)
    used, local = np.unique(index, return_inverse=True)
    n_frames = xyz.shape[0]
    columns = (3 * used[:, None] + np.arange(3)).ravel()
    flat = np.take(np.asarray(xyz).reshape(n_frames, -1), columns, axis=1)  # (F, 3U)
    return np.ascontiguousarray(flat.T).reshape(len(used), 3, n_frames), local.reshape(index.shape)


def _diff(comps, i, j, box):
    """r_j - r_i as components (3, P, F), minimum image when a box is given."""
    n_pairs = len(i)
    if n_pairs <= 512:  # one pass per pair beats fancy-indexed copies of whole blocks
        d = np.empty((3, n_pairs, comps.shape[2]), dtype=comps.dtype)
        for p in range(n_pairs):
            np.subtract(comps[j[p]], comps[i[p]], out=d[:, p, :])
    else:
        d = np.transpose(comps[j] - comps[i], (1, 0, 2))
    if box is not None:
        _minimum_image_components(d, np.asarray(box, dtype=d.dtype))
    return d


def _dot(u, v):
    return u[0] * v[0] + u[1] * v[1] + u[2] * v[2]


def _cross(u, v):
    out = np.empty_like(u)
    np.multiply(u[1], v[2], out=out[0])
    out[0] -= u[2] * v[1]
    np.multiply(u[2], v[0], out=out[1])
    out[1] -= u[0] * v[2]
    np.multiply(u[0], v[1], out=out[2])
    out[2] -= u[1] * v[0]
    return out


def displacements(xyz, pairs, box=None):
    """r_j - r_i for each (i, j) in pairs: (F, P, 3)."""
    comps, pairs = _components(xyz, np.asarray(pairs, dtype=np.intp).reshape(-1, 2))
    return np.transpose(_diff(comps, pairs[:, 0], pairs[:, 1], box), (2, 1, 0))


def _distances(xyz, pairs, box=None):
    """Distances (F, P) in nm."""
    comps, pairs = _components(xyz, np.asarray(pairs, dtype=np.intp).reshape(-1, 2))
    d = _diff(comps, pairs[:, 0], pairs[:, 1], box)
    return np.sqrt(_dot(d, d)).T


def _angles(xyz, triples, box=None):
    """Angles i-j-k in radians (F, T), vertex j."""
    comps, t = _components(xyz, np.asarray(triples, dtype=np.intp).reshape(-1, 3))
    u = _diff(comps, t[:, 1], t[:, 0], box)
    v = _diff(comps, t[:, 1], t[:, 2], box)
    cos = _dot(u, v) / np.sqrt(_dot(u, u) * _dot(v, v))
    return np.arccos(np.clip(cos, -1.0, 1.0)).T


def _dihedrals(xyz, quads, box=None):
    """Dihedral angles i-j-k-l in radians (F, Q), in (-pi, pi], IUPAC sign convention (trans = pi)."""
    comps, q = _components(xyz, np.asarray(quads, dtype=np.intp).reshape(-1, 4))
    b1 = _diff(comps, q[:, 0], q[:, 1], box)
    b2 = _diff(comps, q[:, 1], q[:, 2], box)
    b3 = _diff(comps, q[:, 2], q[:, 3], box)
    n1 = _cross(b1, b2)
    n2 = _cross(b2, b3)
    # atan2(|b2| b1 . n2, n1 . n2)
    return np.arctan2(np.sqrt(_dot(b2, b2)) * _dot(b1, n2), _dot(n1, n2)).T


_BLOCK_FRAMES = 8192  # frames per block: keeps every temporary array in cache


def _blocked(kernel, xyz, index, box):
    n = xyz.shape[0]
    if n <= _BLOCK_FRAMES:
        return kernel(xyz, index, box)
    out = None
    for a in range(0, n, _BLOCK_FRAMES):
        b = min(a + _BLOCK_FRAMES, n)
        part = kernel(xyz[a:b], index, None if box is None else box[a:b])
        if out is None:
            out = np.empty((n,) + part.shape[1:], dtype=part.dtype)
        out[a:b] = part
    return out


def distances(xyz, pairs, box=None):
    """Distances (F, P) in nm between the atoms of each pair (i, j); minimum image when ``box`` is given."""
    return _blocked(_distances, xyz, pairs, box)


def angles(xyz, triples, box=None):
    """Angles i-j-k in radians (F, T), vertex j."""
    return _blocked(_angles, xyz, triples, box)


def dihedrals(xyz, quads, box=None):
    """Dihedral angles i-j-k-l in radians (F, Q), in (-pi, pi], IUPAC sign convention (trans = pi)."""
    return _blocked(_dihedrals, xyz, quads, box)
