"""Starting structures picked across the conformations of a trajectory (issue 14)."""
import mdtraj
import numpy as np
import pytest
from openmm import unit

from nnforce.demo import alanine_dipeptide
from nnforce.simulate.seeding import pick_starts

BASINS = {"C7eq": (-80.0, 150.0), "alphaR": (-70.0, -40.0), "alphaL": (60.0, 40.0), "C7ax": (70.0, -70.0)}
SIZES = {"C7eq": 14, "alphaR": 8, "alphaL": 3, "C7ax": 2}  # uneven, as sampled data are


@pytest.fixture(scope="module")
def landscape():
    """Frames in four basins, +-10 degrees around each centre; returns (trajectory, basin name per frame)."""
    rng = np.random.default_rng(0)
    frames, names, topology = [], [], None
    for name, (phi, psi) in BASINS.items():
        for _ in range(SIZES[name]):
            top, pos = alanine_dipeptide(phi + rng.uniform(-10, 10), psi + rng.uniform(-10, 10))
            topology = topology or mdtraj.Topology.from_openmm(top)
            frames.append(pos.value_in_unit(unit.nanometer))
            names.append(name)
    order = rng.permutation(len(frames))
    return mdtraj.Trajectory(np.array(frames)[order], topology), [names[i] for i in order]


def basin_of(trajectory, frame):
    phi = np.degrees(mdtraj.compute_phi(trajectory[frame])[1][0, 0])
    psi = np.degrees(mdtraj.compute_psi(trajectory[frame])[1][0, 0])
    distance = {name: np.hypot(((phi - p + 180) % 360) - 180, ((psi - s + 180) % 360) - 180)
                for name, (p, s) in BASINS.items()}
    return min(distance, key=distance.get)


def test_every_basin_gets_starts(landscape):
    trajectory, names = landscape
    starts = pick_starts(trajectory, 8, clusters=4, seed=1)
    assert sorted(starts.cluster_sizes) == sorted(SIZES.values())
    picked = [names[f] for f in starts.frames]
    assert sorted(picked) == sorted([name for name in BASINS for _ in range(2)])  # two per basin, even the rare ones
    assert [basin_of(trajectory, f) for f in starts.frames] == picked  # the positions are those frames
    assert np.array_equal(starts.positions, trajectory.xyz[starts.frames].astype(np.float64))
    assert len(set(starts.frames)) == 8
    # the first start of each cluster is its member nearest the centre: rerunning with the same seed is identical
    assert pick_starts(trajectory, 8, clusters=4, seed=1).frames == starts.frames


def test_more_starts_than_frames_cycle_within_clusters(landscape):
    trajectory, names = landscape
    starts = pick_starts(trajectory[:5], 12, clusters=2, seed=0)
    assert len(starts.frames) == 12 and set(starts.frames) <= set(range(5))
    assert starts.clusters == [0, 1] * 6


def test_bad_input(landscape):
    trajectory, _ = landscape
    with pytest.raises(ValueError, match="count must be >= 1"):
        pick_starts(trajectory, 0)
    with pytest.raises(ValueError, match="clusters must be between 1 and the number of frames"):
        pick_starts(trajectory[:3], 4, clusters=5)
    with pytest.raises(ValueError, match="feature rows"):
        pick_starts(trajectory, 4, features=np.zeros((3, 2)))
