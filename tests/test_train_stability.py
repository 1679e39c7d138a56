"""The MD stability check of nnforce.train: a real potential keeps ethanol's bonds at 500 K, a broken one does not;
the bond table and the NVE drift are checked against independent numbers."""
import os

import numpy as np
import pytest
import torch
from torch import Tensor

from nnforce.train import covalent_bonds, md_stability

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def ethanol():
    from ase.build import molecule

    atoms = molecule("CH3CH2OH")
    return atoms.get_atomic_numbers(), atoms.positions / 10.0


@pytest.fixture(scope="module")
def real_potential():
    """A real potential: the committed ANI-style ethanol model trained on GFN2-xTB labels."""
    return torch.jit.load(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench", "results", "models",
                                       "ethanol_ani.pt"))


def test_covalent_bonds_of_ethanol():
    z, x = ethanol()
    pairs, lengths = covalent_bonds(z, x)
    # ethanol: C-C, C-O, O-H and five C-H bonds; no H-H or 1-3 pairs
    kinds = sorted(tuple(sorted((int(z[i]), int(z[j])))) for i, j in pairs)
    assert kinds == sorted([(6, 6), (6, 8), (1, 8)] + [(1, 6)] * 5)
    cc = lengths[[k for k, (i, j) in enumerate(pairs) if z[i] == 6 and z[j] == 6][0]]
    assert cc == pytest.approx(np.linalg.norm(x[0] - x[1]), rel=1e-12) and 0.14 < cc < 0.16
    with pytest.raises(ValueError, match="no covalent radius for atomic numbers \\[92\\]"):
        covalent_bonds([92, 1], [[0, 0, 0], [0.1, 0, 0]])


def test_real_potential_is_stable_at_500K(real_potential):
    z, x = ethanol()
    report = md_stability(real_potential, z, x, temperature_k=500.0, time_ps=0.1, nve_ps=0.025, platform="CPU",
                          seed=1)
    assert report["stable"] and report["broken_bond"] is None
    assert report["simulated_ps"] == pytest.approx(0.1)
    assert 0.8 < report["min_ratio"] < 1.0 < report["max_ratio"] < 1.3  # the bonds did vibrate
    # a slope over 25 fs is noisy; forces inconsistent with the energy drift by kJ/mol/ps per atom
    assert abs(report["nve_drift_kj_mol_ps_atom"]) < 0.3
    again = md_stability(real_potential, z, x, temperature_k=500.0, time_ps=0.02, nve_ps=0.0, platform="CPU", seed=1)
    first = md_stability(real_potential, z, x, temperature_k=500.0, time_ps=0.02, nve_ps=0.0, platform="CPU", seed=1)
    assert again["max_ratio"] == first["max_ratio"]  # seeded: the same trajectory


class Inverted(torch.nn.Module):
    """The real potential turned upside down: atoms fly apart."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, positions: Tensor, atomic_numbers: Tensor) -> Tensor:
        return -self.model(positions, atomic_numbers)


def test_broken_potential_is_caught(real_potential):
    z, x = ethanol()
    report = md_stability(torch.jit.script(Inverted(real_potential)), z, x, temperature_k=500.0, time_ps=2.0,
                          platform="CPU", check_interval=10)
    assert not report["stable"]
    assert report["failed_at_ps"] < 2.0 and report["broken_bond"] is not None
    assert np.isnan(report["nve_drift_kj_mol_ps_atom"])


MODELS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench", "results", "models")


@pytest.mark.parametrize("name", ["ethanol_ani.pt", "ethanol_schnet.pt"])
def test_committed_ethanol_models_hold_their_bonds_at_500K(name):
    """The benched models (bench/train_accuracy.py) in a short seeded 500 K run; bench/md_stability.py runs longer."""
    from nnforce.contract import read_metadata

    path = os.path.join(MODELS, name)
    metadata = read_metadata(path)
    assert metadata["elements"] == [1, 6, 8] and "test-500K" in metadata["test_metrics"]
    z, x = ethanol()
    report = md_stability(path, z, x, temperature_k=500.0, time_ps=0.1, nve_ps=0.0, platform="CPU", seed=0)
    assert report["stable"], report
    assert 0.8 < report["min_ratio"] < 1.0 < report["max_ratio"] < 1.3


def test_bond_breaks_finds_the_first_frame_a_bond_leaves_the_window():
    from ase.build import molecule

    from nnforce.train.stability import bond_breaks, covalent_bonds

    atoms = molecule("CH3CH2OH")
    z, x = atoms.get_atomic_numbers(), atoms.positions / 10.0
    pairs, lengths = covalent_bonds(z, x)
    # the first C-H bond of the list, stretched along itself from frame 5 of trajectory 1 (1.7x, past 1.6x)
    k = next(b for b, (i, j) in enumerate(pairs) if {z[i], z[j]} == {1, 6})
    i, j = pairs[k]
    trajectories = np.repeat(x[None, None], 8, axis=1).repeat(2, axis=0)
    trajectories[1, 5:, j] = x[i] + 1.7 * (x[j] - x[i])
    assert bond_breaks(z, x, trajectories) == [{"trajectory": 1, "frame": 5, "bond": [int(i), int(j)],
                                                "ratio": 1.7}]
    assert bond_breaks(z, x, trajectories[:1]) == []
    with pytest.raises(ValueError, match="window"):
        bond_breaks(z, x, trajectories, window=(1.2, 1.6))
    with pytest.raises(ValueError, match=r"\[R, T, 9, 3\]"):
        bond_breaks(z, x, trajectories[..., :2])
