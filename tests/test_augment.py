"""nnforce.data.augment: stretched bonds and close contacts, checked against the geometry they promise."""
import numpy as np
import pytest

from nnforce.data.augment import close_contacts, stretch_bonds
from nnforce.train.stability import COVALENT_RADII_NM, covalent_bonds


def ethanol_frames(n=6, seed=0):
    from ase.build import molecule

    atoms = molecule("CH3CH2OH")
    x = atoms.positions / 10.0
    rng = np.random.default_rng(seed)
    return atoms.get_atomic_numbers(), x + rng.normal(0.0, 0.003, (n, len(x), 3))


def test_stretch_bonds_moves_the_lighter_atom_to_the_ratio():
    z, frames = ethanol_frames()
    out = stretch_bonds(z, frames, 40, ratio_range=(1.2, 1.8), seed=3)
    pairs = {tuple(sorted(p)) for p in covalent_bonds(z, frames[0])[0].tolist()}
    for y, f, (a, b), r in zip(out["frames_nm"], out["source"], out["bond"], out["ratio"]):
        x = frames[f]
        assert tuple(sorted((a, b))) in pairs and z[a] >= z[b] and 1.2 <= r <= 1.8
        assert np.linalg.norm(y[b] - y[a]) == pytest.approx(r * np.linalg.norm(x[b] - x[a]), rel=1e-12)
        moved = np.flatnonzero(np.abs(y - x).max(axis=1) > 0)
        assert moved.tolist() == [b]
        # along the bond: the moved atom stays on the line through a and its old place
        assert np.cross(y[b] - y[a], x[b] - x[a]) == pytest.approx(np.zeros(3), abs=1e-12)
    assert len(set(out["bond"][:, 1].tolist())) > 3  # different bonds, seeded
    again = stretch_bonds(z, frames, 40, ratio_range=(1.2, 1.8), seed=3)
    np.testing.assert_array_equal(again["frames_nm"], out["frames_nm"])
    with pytest.raises(ValueError, match="ratio_range"):
        stretch_bonds(z, frames, 2, ratio_range=(0.9, 1.2))
    with pytest.raises(ValueError, match=r"\[F, 9, 3\]"):
        stretch_bonds(z, frames[..., :2], 2)


def test_close_contacts_push_a_hydrogen_pair_three_bonds_apart_to_the_distance():
    z, frames = ethanol_frames()
    pairs = covalent_bonds(z, frames[0])[0]
    n = len(z)
    graph = np.full((n, n), 99)
    np.fill_diagonal(graph, 0)
    graph[pairs[:, 0], pairs[:, 1]] = graph[pairs[:, 1], pairs[:, 0]] = 1
    for k in range(n):  # shortest bond paths (Floyd-Warshall), an independent count of bonds apart
        graph = np.minimum(graph, graph[:, k:k + 1] + graph[k:k + 1, :])
    out = close_contacts(z, frames, 30, ratio_range=(1.5, 2.2), max_shift_nm=0.08, seed=5)
    for y, f, (a, b), d in zip(out["frames_nm"], out["source"], out["pair"], out["distance_nm"]):
        x = frames[f]
        assert graph[a, b] >= 3 and 1 in (z[a], z[b])
        radii = COVALENT_RADII_NM[z[a]] + COVALENT_RADII_NM[z[b]]
        assert 1.5 * radii - 1e-12 <= d <= 2.2 * radii + 1e-12
        assert np.linalg.norm(y[b] - y[a]) == pytest.approx(d, rel=1e-12)
        assert 0 < np.linalg.norm(x[b] - x[a]) - d <= 0.08 + 1e-12
        np.testing.assert_allclose(y[a] + y[b], x[a] + x[b], atol=1e-12)  # half the way each
        others = np.setdiff1d(np.arange(n), [a, b])
        np.testing.assert_array_equal(y[others], x[others])
    with pytest.raises(ValueError, match="nothing to push together"):
        close_contacts(z, frames, 1, ratio_range=(1.5, 2.2), max_shift_nm=1e-6)
