"""ANI-style AEVs against a slow numpy reference; every trainable model: scripting, batching, forces, periodicity."""
import itertools
import math

import numpy as np
import pytest
import torch

from nnforce.data import Batch, Dataset, block_pairs
from nnforce.models import ANIEncoder, ANIModel, PairPotential, SchNetModel, ani_ensemble
from nnforce.models._geometry import pair_vectors

# float() of an energy computed from trainable parameters: harmless here, and noisy
pytestmark = pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad")

# ethanol (ase.build.molecule("CH3CH2OH")), Angstrom -> nm, slightly distorted so nothing is symmetric
ETHANOL_Z = np.array([6, 6, 8, 1, 1, 1, 1, 1, 1])
ETHANOL_NM = 0.1 * np.array([
    [1.168181, -0.400382, 0.0], [0.0, 0.553135, 0.0], [-1.190742, -0.252290, 0.0],
    [-1.960502, 0.330205, 0.0], [2.122580, 0.129301, 0.0], [1.137658, -1.043613, 0.884707],
    [1.137658, -1.043613, -0.884707], [0.048168, 1.204880, 0.878597], [0.048168, 1.204880, -0.878597]]) + \
    np.random.default_rng(0).normal(scale=0.004, size=(9, 3))


def cutoff_np(r, rc):
    return 0.5 * (np.cos(np.pi * r / rc) + 1.0) if r < rc else 0.0


def aev_reference(z, x, elements, aev):
    """Direct loops over atoms, neighbours and neighbour pairs (independent of the vectorised code)."""
    index = {e: k for k, e in enumerate(elements)}
    ne = len(elements)
    pairs = [(a, b) for a in range(ne) for b in range(a, ne)]
    rs = aev.radial_shifts.numpy()
    sa = aev.angular_shifts.numpy()
    sz = aev.angle_sections.numpy()
    out = []
    for i in range(len(z)):
        radial = np.zeros((ne, len(rs)))
        angular = np.zeros((len(pairs), len(sz), len(sa)))
        for j in range(len(z)):
            if j == i:
                continue
            r = np.linalg.norm(x[j] - x[i])
            if r < aev.radial_cutoff:
                radial[index[z[j]]] += 0.25 * np.exp(-aev.radial_eta * (r - rs) ** 2) * cutoff_np(r, aev.radial_cutoff)
        for j, k in itertools.combinations([n for n in range(len(z)) if n != i], 2):
            vj, vk = x[j] - x[i], x[k] - x[i]
            rj, rk = np.linalg.norm(vj), np.linalg.norm(vk)
            if rj >= aev.angular_cutoff or rk >= aev.angular_cutoff:
                continue
            theta = math.acos(0.95 * vj @ vk / (rj * rk))
            a, b = sorted((index[z[j]], index[z[k]]))
            for s, section in enumerate(sz):
                f1 = 2.0 * ((1 + math.cos(theta - section)) / 2) ** aev.zeta
                f2 = np.exp(-aev.angular_eta * ((rj + rk) / 2 - sa) ** 2)
                angular[pairs.index((a, b)), s] += f1 * f2 * cutoff_np(rj, aev.angular_cutoff) * \
                    cutoff_np(rk, aev.angular_cutoff)
        out.append(np.concatenate([radial.reshape(-1), angular.reshape(-1)]))
    return np.array(out)


def test_aev_matches_numpy_reference():
    model = ANIModel([1, 6, 8]).double()
    x = torch.tensor(ETHANOL_NM)
    species = model.element_index[torch.tensor(ETHANOL_Z)]
    i, j, v = pair_vectors(x)
    ours = model.aev(species, i, j, v).numpy()
    reference = aev_reference(ETHANOL_Z, ETHANOL_NM, [1, 6, 8], model.aev)
    assert ours.shape == (9, 3 * 16 + 6 * 32)
    assert np.abs(reference).max() > 0.1 and np.count_nonzero(reference[:, 48:]) > 100  # angular terms present
    np.testing.assert_allclose(ours, reference, rtol=1e-10, atol=1e-12)


MODELS = {
    "ani": lambda: ANIModel([1, 6, 8], hidden=[16, 8], seed=1),
    "ani-ensemble": lambda: ANIModel([1, 6, 8], hidden=[16, 8], ensemble_size=3, seed=1),
    "schnet": lambda: SchNetModel([1, 6, 8], features=16, interactions=2, seed=1),
    "pair": lambda: PairPotential([1, 6, 8], epsilon=0.4, sigma=0.15),
    "aniencoder": lambda: ANIEncoder([1, 6, 8], latent=8, encoder_hidden=[16], head_hidden=[8], seed=1),
}


def _with_self_energies(model):
    with torch.no_grad():
        model.self_energies.copy_(torch.tensor([-1300.0, -99000.0, -197000.0], dtype=model.self_energies.dtype))
        model.energy_scale.fill_(3.0)
    return model


@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_contract(name):
    model = _with_self_energies(MODELS[name]()).double()
    scripted = torch.jit.script(model)
    z = torch.tensor(ETHANOL_Z)
    x = torch.tensor(ETHANOL_NM, requires_grad=True)
    energy = scripted(x, z)
    assert energy.dtype == torch.float64
    eager = model(x, z)
    assert float(energy.detach()) == pytest.approx(float(eager.detach()), abs=1e-9)
    # self energies enter the total exactly: 2 C + 1 O + 6 H
    interaction = float(model.atomic_energies(x, z, None, None, None, False).sum().detach())
    assert float(energy.detach()) - interaction == pytest.approx(2 * -99000 + -197000 + 6 * -1300, abs=1e-6)
    # forces: autograd vs central finite differences
    (gradient,) = torch.autograd.grad(energy, x)
    energy = energy.detach()
    h = 1e-6

    def interaction(positions):  # the self energies are constant; leaving them out avoids cancellation
        with torch.no_grad():
            return float(scripted.atomic_energies(torch.tensor(positions), z, None, None, None, False).sum())

    for atom, dim in [(0, 0), (2, 1), (5, 2), (8, 0)]:
        plus, minus = ETHANOL_NM.copy(), ETHANOL_NM.copy()
        plus[atom, dim] += h
        minus[atom, dim] -= h
        fd = (interaction(plus) - interaction(minus)) / (2 * h)
        assert float(gradient[atom, dim]) == pytest.approx(fd, rel=1e-5, abs=1e-5)
    # an explicit neighbor list with periodic shifts gives the same energy as all pairs
    box = torch.eye(3, dtype=torch.float64) * 3.0
    image = torch.tensor([k % 2 for k in range(9)], dtype=torch.float64)
    moved = x.detach() + image.unsqueeze(1) * box[2]
    ij = torch.triu_indices(9, 9, 1)
    shifts = (image[ij[0]] - image[ij[1]]).unsqueeze(1) * box[2]
    assert float(scripted(moved, z, ij, shifts)) == pytest.approx(float(energy), abs=1e-8)
    assert float(scripted(moved, z, None, None, box)) == pytest.approx(float(energy), abs=1e-8)
    # rotation + translation invariance
    q, _ = np.linalg.qr(np.random.default_rng(3).normal(size=(3, 3)))
    turned = torch.tensor(ETHANOL_NM @ q.T + 0.37)
    assert float(scripted(turned, z)) == pytest.approx(float(energy), abs=1e-7)
    # float32 evaluation agrees with float64
    model32 = MODELS[name]()
    model32.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in model.state_dict().items()})
    e32 = float(torch.jit.script(model32)(torch.tensor(ETHANOL_NM, dtype=torch.float32), z))
    assert e32 == pytest.approx(float(energy), rel=1e-6)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_batched_atomic_energies_equal_single_molecules(name):
    model = MODELS[name]().double()
    rng = np.random.default_rng(5)
    frames = [ETHANOL_NM + rng.normal(scale=0.005, size=(9, 3)) for _ in range(3)]
    frames.append(ETHANOL_NM[[0, 3, 4]])  # a different molecule in the same batch
    numbers = [ETHANOL_Z] * 3 + [ETHANOL_Z[[0, 3, 4]]]
    data = Dataset.from_frames(numbers, frames)
    batch = Batch(data, np.arange(4), dtype=torch.float64)
    atomic = model.atomic_energies(batch.positions, batch.atomic_numbers, batch.neighbors, None, None, True)
    per_molecule = torch.zeros(4, dtype=torch.float64).index_add(0, batch.molecule_index, atomic)
    for k in range(4):
        single = model(torch.tensor(frames[k]), torch.tensor(numbers[k]))
        assert float(per_molecule[k]) == pytest.approx(float(single), abs=1e-9)


def test_block_pairs_are_all_intramolecular_pairs():
    counts = [3, 1, 4, 2]
    pairs = block_pairs(counts).numpy()
    expected, start = [], 0
    for n in counts:
        expected += [(start + a, start + b) for a in range(n) for b in range(a + 1, n)]
        start += n
    assert sorted(map(tuple, pairs.T)) == sorted(expected)


def test_unknown_element_and_missing_numbers_raise():
    model = torch.jit.script(ANIModel([1, 6, 8], hidden=[8]))
    x = torch.tensor(ETHANOL_NM, dtype=torch.float32)
    with pytest.raises(Exception, match="not among the model's elements"):
        model(x, torch.tensor([6, 6, 7, 1, 1, 1, 1, 1, 1]))
    with pytest.raises(Exception, match="pass atomic_numbers"):
        model(x)


def test_ensemble_merges_members_exactly():
    members = []
    for seed in (1, 2):
        m = ANIModel([1, 6, 8], hidden=[8], seed=seed).double()
        with torch.no_grad():
            m.self_energies.copy_(torch.tensor([-1.0 * seed, -20.0, -30.0 + seed], dtype=torch.float64))
            m.energy_scale.fill_(2.0 * seed)
        members.append(m)
    merged = torch.jit.script(ani_ensemble(members))
    x, z = torch.tensor(ETHANOL_NM), torch.tensor(ETHANOL_Z)
    singles = [float(m(x, z)) for m in members]
    assert float(merged(x, z)) == pytest.approx(np.mean(singles), abs=1e-9)
    assert merged.member_energies(x, z).tolist() == pytest.approx(singles, abs=1e-9)


@pytest.mark.parametrize("layout", ["ani-style", "torchani"])
def test_aev_term_slopes_give_autograd_forces(layout):
    """The stored-feature training path's forces (nnforce.models.aev_jacobian: closed-form slopes of each AEV term,
    -dE/dG . dG/dx) equal autograd's through the AEV, for the ANI-style layout and torchani's (two etas, a non-integer
    zeta), on three concatenated molecules of different sizes, for several feature gradients dE/dG."""
    from nnforce.models.aev import AEV
    from nnforce.models.aev_jacobian import aev_term_slopes

    if layout == "ani-style":
        aev = ANIModel([1, 6, 8], radial_shifts=[0.09, 0.15, 0.21], angular_shifts=[0.1, 0.2],
                       num_angle_sections=4).aev.double()
    else:
        aev = AEV(3, 0.52, 0.35, [900.0, 1600.0], [0.09, 0.2, 0.3], [500.0, 800.0], [0.1, 0.25], [7.5, 32.0],
                  [0.2, 1.3, 2.5]).double()
    rng = np.random.default_rng(5)
    sizes = [7, 4, 9]
    positions = torch.as_tensor(rng.uniform(0.0, 0.45, (sum(sizes), 3)))
    species = torch.as_tensor(rng.integers(0, 3, sum(sizes)))
    neighbors = block_pairs(sizes)

    def features(x):
        i, j, v = pair_vectors(x, neighbors)
        return aev(species, i, j, v)

    values, slopes = aev_term_slopes(aev, species, *pair_vectors(positions, neighbors))
    torch.testing.assert_close(values, features(positions), rtol=1e-12, atol=1e-12)
    first_atom = torch.as_tensor(np.repeat(np.cumsum([0] + sizes[:-1]), sizes))
    assert int(slopes.to_local(first_atom).centre.max()) < max(sizes)  # frame-local indices, as a cache stores them
    assert slopes.centre.shape[0] > 100  # triplets exist
    for k in range(3):
        gradient = torch.as_tensor(rng.normal(size=values.shape))
        x = positions.clone().requires_grad_(True)
        (expected,) = torch.autograd.grad((features(x) * gradient).sum(), x)
        torch.testing.assert_close(slopes.forces(gradient), -expected, rtol=1e-9, atol=1e-10)
        assert expected.abs().max() > 1.0  # the comparison is not between zeros
