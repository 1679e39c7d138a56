"""ANI-1x built by our NeuroChem reader: published energy, forces, TorchScript, neighbor lists, periodicity."""
import io
import os

import numpy as np
import pytest
import torch

from nnforce.models import neurochem
from nnforce.models.ani1x import (ANGSTROM_PER_NM, HARTREE_IN_KJ_PER_MOL, METHANE_ANGSTROM, METHANE_ATOMIC_NUMBERS,
                                  METHANE_PUBLISHED_HARTREE, ani1x, resource_directory)

# torchani's documentation prints -40.45901871 Ha: a float32 result (that decimal is exactly a float32 number).
# Near 40 Ha float32 numbers are 2**-18 = 3.8e-6 Ha apart, so a float64 evaluation can only agree to that spacing.
FLOAT32_SPACING_AT_40_HARTREE = 2.0 ** -18
# torchani 2.1.1 itself (its AEVComputer + neurochem loaders on the same files, converted to float64), measured
# once by hand: torchani cannot be imported in this environment (it needs pkg_resources, gone from setuptools 81+).
TORCHANI_2_1_1_FLOAT64_HARTREE = -40.459022111361435


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def model():
    return ani1x()


def methane():
    return torch.tensor(METHANE_ANGSTROM, dtype=torch.float64) / ANGSTROM_PER_NM, torch.tensor(METHANE_ATOMIC_NUMBERS)


def ethanol_and_water():
    """Ethanol (ASE's G2 geometry) plus a water 0.3 nm away: H, C, O and intermolecular pairs, seeded noise."""
    from ase.build import molecule

    atoms = molecule("CH3CH2OH") + molecule("H2O")
    atoms.positions[-3:] += [3.0, 0.4, 0.2]
    rng = np.random.default_rng(7)
    positions = atoms.positions / ANGSTROM_PER_NM + rng.normal(0.0, 0.003, atoms.positions.shape)
    return torch.tensor(positions, dtype=torch.float64), torch.tensor(atoms.numbers)


def test_methane_matches_published_energy(model):
    positions, numbers = methane()
    energy = model.energy_hartree(positions, numbers).item()
    assert abs(energy - METHANE_PUBLISHED_HARTREE) < FLOAT32_SPACING_AT_40_HARTREE
    assert abs(energy - TORCHANI_2_1_1_FLOAT64_HARTREE) < 5e-8
    # forward() returns kJ/mol; check the conversion against ASE's independent CODATA constants
    import ase.units

    assert HARTREE_IN_KJ_PER_MOL == pytest.approx(ase.units.Hartree * ase.units.mol / ase.units.kJ, rel=1e-9)
    assert model(positions, numbers).item() == pytest.approx(energy * HARTREE_IN_KJ_PER_MOL, rel=1e-14)
    # float32 parameters give the same number to float32 precision
    single = ani1x(dtype=torch.float32).energy_hartree(positions.float(), numbers).item()
    assert abs(single - METHANE_PUBLISHED_HARTREE) <= 2 * FLOAT32_SPACING_AT_40_HARTREE


def test_ensemble_is_mean_of_members(model):
    positions, numbers = ethanol_and_water()
    members = [ani1x(members=[k]).energy_hartree(positions, numbers).item() for k in (0, 5)]
    pair = ani1x(members=[0, 5]).energy_hartree(positions, numbers).item()
    assert pair == pytest.approx(sum(members) / 2, abs=1e-10)
    assert abs(members[0] - members[1]) > 1e-5  # the members really differ


def test_forces_match_finite_differences(model):
    positions, numbers = ethanol_and_water()
    p = positions.clone().requires_grad_()
    forces = -torch.autograd.grad(model(p, numbers), p)[0]
    h = 1e-6  # ANI's surface is stiff: larger steps are dominated by the O(h^4) truncation error
    rng = np.random.default_rng(3)
    for flat in rng.choice(positions.numel(), size=8, replace=False):
        atom, axis = divmod(int(flat), 3)

        def energy(offset):
            moved = positions.clone()
            moved[atom, axis] += offset
            return model(moved, numbers).item()

        # five-point central difference: truncation error O(h^4)
        numeric = -(8 * (energy(h) - energy(-h)) - (energy(2 * h) - energy(-2 * h))) / (12 * h)
        assert forces[atom, axis].item() == pytest.approx(numeric, rel=1e-7, abs=3e-4)


def test_torchscript_matches_eager_and_roundtrips(model):
    positions, numbers = ethanol_and_water()
    scripted = torch.jit.script(model)
    buffer = io.BytesIO()
    torch.jit.save(scripted, buffer)
    loaded = torch.jit.load(io.BytesIO(buffer.getvalue()))
    assert list(loaded.elements) == [1, 6, 7, 8]
    assert loaded.cutoff_nm == pytest.approx(0.52)
    for module in (scripted, loaded):
        p = positions.clone().requires_grad_()
        energy = module(p, numbers)
        grad = torch.autograd.grad(energy, p)[0]
        q = positions.clone().requires_grad_()
        reference = model(q, numbers)
        assert energy.item() == pytest.approx(reference.item(), abs=1e-8)
        assert torch.allclose(grad, torch.autograd.grad(reference, q)[0], atol=1e-8)


def _numpy_neighbor_list(positions, box, cutoff):
    """Every unordered pair (i <= j, images included) closer than cutoff, by brute force over images."""
    pos = positions.numpy()
    pairs, shifts = [], []
    cells = [np.array([a, b, c]) for a in (-1, 0, 1) for b in (-1, 0, 1) for c in (-1, 0, 1)]
    for i in range(len(pos)):
        for j in range(i, len(pos)):
            for cell in cells:
                if i == j and tuple(cell) <= (0, 0, 0):
                    continue  # an atom and its own image: count each image pair once
                shift = cell @ box if box is not None else np.zeros(3)
                if box is None and cell.any():
                    continue
                if np.linalg.norm(pos[j] - pos[i] + shift) < cutoff:
                    pairs.append((i, j))
                    shifts.append(shift)
    return torch.tensor(pairs, dtype=torch.long).T.contiguous(), torch.tensor(np.array(shifts))


def test_neighbor_list_matches_all_pairs(model):
    positions, numbers = ethanol_and_water()
    neighbors, shifts = _numpy_neighbor_list(positions, None, 0.6)  # a Verlet list may include pairs beyond rc
    # padding entry of a fixed-capacity list: a pair pushed far beyond any cutoff
    neighbors = torch.cat([neighbors, torch.zeros(2, 1, dtype=torch.long)], dim=1)
    shifts = torch.cat([shifts, torch.tensor([[1.0e3, 0.0, 0.0]], dtype=torch.float64)])
    assert model(positions, numbers, neighbors, shifts).item() == pytest.approx(
        model(positions, numbers).item(), abs=1e-8)


def test_periodic_box_images():
    """A 1.1 nm box of 3 waters: minimum image all-pairs, a brute-force image list and a 3x3x3 supercell agree."""
    model = ani1x(members=[0])
    from ase.build import molecule

    rng = np.random.default_rng(11)
    water = molecule("H2O").positions / ANGSTROM_PER_NM
    box = np.diag([1.1, 1.1, 1.1])
    positions = np.concatenate([water + rng.uniform(0, 1.1, 3) for _ in range(3)])
    numbers = torch.tensor([8, 1, 1] * 3)
    wrapped = torch.tensor(positions - np.floor(positions / 1.1) * 1.1)
    box_t = torch.tensor(box)
    energy_min_image = model(wrapped, numbers, box=box_t).item()
    neighbors, shifts = _numpy_neighbor_list(wrapped, box, 0.53)
    energy_list = model(wrapped, numbers, neighbors, shifts, box_t).item()
    # 27 copies without periodicity: the central copy's atoms see exactly their periodic environment
    cells = [np.array([a, b, c]) * 1.1 for a in (-1, 0, 1) for b in (-1, 0, 1) for c in (-1, 0, 1)]
    supercell = torch.tensor(np.concatenate([wrapped.numpy() + c for c in cells]))
    # the AEVs (atomic features) of the central copy equal the periodic AEVs
    species = model.species(numbers)
    aev_periodic = model.aev(wrapped, species, box=box_t)
    big_species = model.species(numbers.repeat(27))
    centre = 13  # (0, 0, 0) in the cells' order
    aev_block = model.aev(supercell, big_species)[centre * 9:(centre + 1) * 9]
    assert torch.allclose(aev_periodic, aev_block, atol=1e-12)
    assert energy_list == pytest.approx(energy_min_image, abs=1e-8)
    shifted = torch.tensor(positions) + torch.tensor([0.37, -0.2, 0.9])
    shifted = shifted - torch.floor(shifted / 1.1) * 1.1
    assert model(shifted, numbers, box=box_t).item() == pytest.approx(energy_min_image, abs=1e-8)


def test_rotation_invariance(model):
    positions, numbers = ethanol_and_water()
    rotation = torch.tensor(np.linalg.qr(np.random.default_rng(5).normal(size=(3, 3)))[0])
    assert model(positions @ rotation.T, numbers).item() == pytest.approx(model(positions, numbers).item(), abs=1e-8)


def test_unknown_element_is_rejected(model):
    positions, _ = methane()
    with pytest.raises(ValueError, match="only knows the elements"):
        model(positions, torch.tensor([6, 1, 1, 1, 17]))


def test_reader_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        ani1x(path=tmp_path / "nowhere")
    bad = tmp_path / "bad.params"
    bad.write_text("Rcr = 5.2\n")
    with pytest.raises(ValueError, match="missing"):
        neurochem.read_params(bad)
    with pytest.raises(ValueError):
        ani1x(members=[8])
    # a network file whose weight file is truncated is caught, not silently misread
    source = os.path.join(resource_directory(), "train0", "networks")
    for name in os.listdir(source):
        if name.startswith("ANN-H.nnf"):
            data = open(os.path.join(source, name), "rb").read()
            (tmp_path / name).write_bytes(data[:-4] if name.endswith("l2.wparam") else data)
    with pytest.raises(ValueError, match="expected 20480 float32 values"):
        neurochem.read_network(tmp_path / "ANN-H.nnf")


def test_matches_torchani_when_importable():
    torchani = pytest.importorskip("torchani", reason="torchani is not importable here")
    from torchani import neurochem as tn

    root = resource_directory()
    consts = tn.Constants(os.path.join(root, "train0", "rHCNO-5.2R_16-3.5A_a4-8.params"))
    reference = torchani.nn.Sequential(
        torchani.AEVComputer(**consts), tn.load_model_ensemble(consts.species, os.path.join(root, "train"), 8),
        tn.load_sae(os.path.join(root, "sae_linfit.dat"))).double()
    positions, numbers = ethanol_and_water()
    symbols = "".join({1: "H", 6: "C", 7: "N", 8: "O"}[int(z)] for z in numbers)
    expected = reference((consts.species_to_tensor(symbols).unsqueeze(0),
                          (positions * ANGSTROM_PER_NM).unsqueeze(0))).energies.item()
    assert ani1x().energy_hartree(positions, numbers).item() == pytest.approx(expected, abs=1e-7)
