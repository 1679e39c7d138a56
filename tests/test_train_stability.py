"""The MD stability check of nnforce.train: a real potential keeps ethanol's bonds at 500 K, a broken one does not;
the bond table and the NVE drift are checked against independent numbers."""
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
def ani1x_member():
    from nnforce.models.ani1x import ani1x

    return torch.jit.script(ani1x(members=[0]))


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


def test_real_potential_is_stable_at_500K(ani1x_member):
    z, x = ethanol()
    report = md_stability(ani1x_member, z, x, temperature_k=500.0, time_ps=0.2, nve_ps=0.05, platform="Reference",
                          seed=1)
    assert report["stable"] and report["broken_bond"] is None
    assert report["simulated_ps"] == pytest.approx(0.2)
    assert 0.8 < report["min_ratio"] < 1.0 < report["max_ratio"] < 1.3  # the bonds did vibrate
    assert abs(report["nve_drift_kj_mol_ps_atom"]) < 0.05
    again = md_stability(ani1x_member, z, x, temperature_k=500.0, time_ps=0.05, nve_ps=0.0, platform="Reference", seed=1)
    first = md_stability(ani1x_member, z, x, temperature_k=500.0, time_ps=0.05, nve_ps=0.0, platform="Reference", seed=1)
    assert again["max_ratio"] == first["max_ratio"]  # seeded: the same trajectory


class Inverted(torch.nn.Module):
    """ANI-1x with its interaction energy turned upside down: atoms fly apart."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, positions: Tensor, atomic_numbers: Tensor) -> Tensor:
        return -self.model(positions, atomic_numbers)


def test_broken_potential_is_caught(ani1x_member):
    z, x = ethanol()
    report = md_stability(torch.jit.script(Inverted(ani1x_member)), z, x, temperature_k=500.0, time_ps=2.0,
                          platform="Reference", check_interval=10)
    assert not report["stable"]
    assert report["failed_at_ps"] < 2.0 and report["broken_bond"] is not None
    assert np.isnan(report["nve_drift_kj_mol_ps_atom"])
