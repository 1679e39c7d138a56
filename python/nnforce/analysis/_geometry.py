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
    comps = np.moveaxis(np.asarray(vectors), -1, 0).copy()
    _minimum_image_components(comps, np.asarray(box, dtype=comps.dtype))
    return np.moveaxis(comps, 0, -1)


def _minimum_image_components(d, box):
    """In place on component arrays d (3, F, P) with boxes (F, 3, 3)."""
    if np.all(box[:, [1, 2, 2], [0, 0, 1]] == 0):
        for axis in range(3):
            length = box[:, axis, axis][:, None]
            d[axis] -= length * np.rint(d[axis] / length)
        return
    for axis in (2, 1, 0):
        shift = np.rint(d[axis] / box[:, axis, axis][:, None])
        for k in range(axis + 1):
            d[k] -= shift * box[:, axis, k][:, None]
    # The reduced-box pass is exact only for vectors shorter than half the smallest box width; check the
    # neighbouring images of the rest so the result is the true minimum image (as MDAnalysis does).
    widths = np.abs(box[:, [0, 1, 2], [0, 1, 2]]).min(axis=1)[:, None]
    long = _dot(d, d) > (0.5 * widths) ** 2
    if not np.any(long):
        return
    frames, pairs = np.nonzero(long)
    v = d[:, frames, pairs]  # (3, L)
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
    d[:, frames, pairs] = best


def _components(xyz, index):
    """Coordinates of the atoms ``index`` uses as components (3, F, U), and ``index`` remapped into U.

    Taking the few used atoms once (``np.take``) and working on contiguous x, y, z planes is much faster
    than fancy indexing a large (F, N, 3) array and numpy's cross/einsum on trailing axes of length 3.
    """
    index = np.asarray(index, dtype=np.intp)
    used, local = np.unique(index, return_inverse=True)
    sub = np.take(xyz, used, axis=1)
    return np.ascontiguousarray(np.moveaxis(sub, -1, 0)), local.reshape(index.shape)


def _diff(comps, i, j, box):
    d = comps[:, :, j] - comps[:, :, i]
    if box is not None:
        _minimum_image_components(d, np.asarray(box, dtype=d.dtype))
    return d


def _dot(u, v):
    return u[0] * v[0] + u[1] * v[1] + u[2] * v[2]


def _cross(u, v):
    return np.stack([u[1] * v[2] - u[2] * v[1], u[2] * v[0] - u[0] * v[2], u[0] * v[1] - u[1] * v[0]])


def displacements(xyz, pairs, box=None):
    """r_j - r_i for each (i, j) in pairs: (F, P, 3)."""
    comps, pairs = _components(xyz, np.asarray(pairs, dtype=np.intp).reshape(-1, 2))
    return np.moveaxis(_diff(comps, pairs[:, 0], pairs[:, 1], box), 0, -1)


def distances(xyz, pairs, box=None):
    """Distances (F, P) in nm."""
    comps, pairs = _components(xyz, np.asarray(pairs, dtype=np.intp).reshape(-1, 2))
    d = _diff(comps, pairs[:, 0], pairs[:, 1], box)
    return np.sqrt(_dot(d, d))


def angles(xyz, triples, box=None):
    """Angles i-j-k in radians (F, T), vertex j."""
    comps, t = _components(xyz, np.asarray(triples, dtype=np.intp).reshape(-1, 3))
    u = _diff(comps, t[:, 1], t[:, 0], box)
    v = _diff(comps, t[:, 1], t[:, 2], box)
    cos = _dot(u, v) / np.sqrt(_dot(u, u) * _dot(v, v))
    return np.arccos(np.clip(cos, -1.0, 1.0))


def dihedrals(xyz, quads, box=None):
    """Dihedral angles i-j-k-l in radians (F, Q), in (-pi, pi], IUPAC sign convention (trans = pi)."""
    comps, q = _components(xyz, np.asarray(quads, dtype=np.intp).reshape(-1, 4))
    b1 = _diff(comps, q[:, 0], q[:, 1], box)
    b2 = _diff(comps, q[:, 1], q[:, 2], box)
    b3 = _diff(comps, q[:, 2], q[:, 3], box)
    n1 = _cross(b1, b2)
    n2 = _cross(b2, b3)
    # atan2(|b2| b1 . n2, n1 . n2)
    return np.arctan2(np.sqrt(_dot(b2, b2)) * _dot(b1, n2), _dot(n1, n2))
