"""The plugin's neighbor list, atom subsets and per-atom inputs (issue: ML/MM-ready NNForce)."""
import itertools

import numpy as np
import openmm
import pytest
import torch
from hypothesis import given, settings, strategies as st
from torch import Tensor

import nnforce
from nnforce.models import LennardJones, RadialMLP
from plugin_helpers import context_for, energy_forces, make_system, random_positions, rel_err, torch_energy_forces


def brute_force_pairs(pos, cutoff, box=None):
    """All (i, j, image shift) with |r_j - r_i + shift| < cutoff: every pair, every image next to the minimum one."""
    i, j = np.triu_indices(len(pos), 1)
    d = pos[j] - pos[i]
    if box is None:
        keep = (d * d).sum(1) < cutoff * cutoff
        return {(a, b, 0, 0, 0) for a, b in zip(i[keep].tolist(), j[keep].tolist())}
    nearest = np.round(d @ np.linalg.inv(box))
    found = set()
    for offset in itertools.product((-1, 0, 1), repeat=3):
        shift = -(nearest + np.array(offset)) @ box
        v = d + shift
        keep = (v * v).sum(1) < cutoff * cutoff
        for a, b, s in zip(i[keep].tolist(), j[keep].tolist(), np.round(shift[keep] * 1e6).astype(np.int64).tolist()):
            found.add((a, b) + tuple(s))
    return found


def plugin_pairs(pos, cutoff, box=None):
    pairs, shifts = nnforce.neighbor_pairs(pos, cutoff, box)
    result = set()
    assert pairs.shape == (2, len(shifts))  # laid out as the contract's neighbors [2, P]
    for (i, j), s in zip(pairs.T, shifts):
        assert i < j
        result.add((int(i), int(j)) + tuple(np.round(s * 1e6).astype(np.int64)))
    assert len(result) == pairs.shape[1]  # each pair once
    return result


def reduced_box(lengths, skews):
    ax, by, cz = lengths
    bx, cx, cy = skews
    return np.array([[ax, 0, 0], [bx * ax * 0.5, by, 0], [cx * ax * 0.5, cy * by * 0.5, cz]])


def min_height(box):
    a, b, c = box
    volume = abs(np.linalg.det(box))
    return min(volume / np.linalg.norm(np.cross(b, c)), volume / np.linalg.norm(np.cross(c, a)),
               volume / np.linalg.norm(np.cross(a, b)))


@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 60), seed=st.integers(0, 10 ** 6), cutoff=st.floats(0.05, 1.5))
def test_non_periodic_pairs_equal_brute_force(n, seed, cutoff):
    pos = (np.random.default_rng(seed).random((n, 3)) - 0.5) * 4.0
    assert plugin_pairs(pos, cutoff) == brute_force_pairs(pos, cutoff)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 60), seed=st.integers(0, 10 ** 6),
       lengths=st.tuples(*[st.floats(1.0, 3.0)] * 3), skews=st.tuples(*[st.floats(-1.0, 1.0)] * 3),
       triclinic=st.booleans(), fraction=st.floats(0.05, 0.499), spread=st.floats(1.0, 20.0))
def test_periodic_pairs_equal_brute_force(n, seed, lengths, skews, triclinic, fraction, spread):
    box = reduced_box(lengths, skews if triclinic else (0, 0, 0))
    cutoff = fraction * min_height(box)  # up to just under half the box
    rng = np.random.default_rng(seed)
    pos = (rng.random((n, 3)) - 0.3) * spread  # many atoms far outside the primary cell
    assert plugin_pairs(pos, cutoff, box) == brute_force_pairs(pos, cutoff, box)


def test_box_smaller_than_twice_the_cutoff():
    box = np.eye(3) * 1.0
    with pytest.raises(openmm.OpenMMException, match="more than half the smallest periodic box height"):
        nnforce.neighbor_pairs(np.zeros((3, 3)), 0.6, box)
    force = nnforce.NNForce(torch.jit.script(LennardJones(cutoff=0.5)))
    force.setUsesPeriodicBoundaryConditions(True)
    force.setNeighborList(0.5, 0.1)
    context = context_for(make_system(3, force, box=box))
    context.setPositions(np.random.default_rng(0).random((3, 3)))
    with pytest.raises(openmm.OpenMMException, match=r"cutoff \+ skin = 0.6 nm"):
        context.getState(getEnergy=True)


def lj_fluid(n, density=21.0, seed=0):
    """A simple-cubic lattice (jittered) of argon-like atoms at liquid density (atoms/nm^3)."""
    side = int(np.ceil(n ** (1 / 3)))
    length = (n / density) ** (1 / 3)
    grid = np.array(list(itertools.product(range(side), repeat=3))[:n], dtype=float)
    pos = (grid + 0.5) * (length / side)
    pos += np.random.default_rng(seed).normal(scale=0.01, size=pos.shape)
    return pos, np.eye(3) * length


@pytest.mark.parametrize("box_kind", ["none", "cubic", "triclinic"])
@pytest.mark.parametrize("make_model", [lambda: LennardJones(cutoff=0.6), lambda: RadialMLP(elements=[1, 8], cutoff=0.6)])
def test_neighbor_list_model_equals_all_pairs_twin(box_kind, make_model):
    pos, box = lj_fluid(64, density=12.0)
    if box_kind == "triclinic":
        box = box.copy()
        box[1, 0] = 0.3 * box[0, 0]
        box[2, 0], box[2, 1] = -0.2 * box[0, 0], 0.4 * box[1, 1]
    species = [1, 8] * 32
    results = []
    for use_list in (True, False):
        force = nnforce.NNForce(torch.jit.script(make_model()))
        force.setAtomicNumbers(species)
        if box_kind != "none":
            force.setUsesPeriodicBoundaryConditions(True)
        if use_list:
            force.setNeighborList(0.6, 0.05)
        system = make_system(len(pos), force, box=None if box_kind == "none" else box)
        results.append(energy_forces(context_for(system), pos))
    (e_list, f_list), (e_all, f_all) = results
    assert e_list == pytest.approx(e_all, rel=1e-10)
    assert rel_err(f_list, f_all) < 1e-10
    assert abs(e_all) > 1e-3


def test_verlet_reuse_matches_fresh_list_over_1000_steps():
    pos, box = lj_fluid(108)
    model = torch.jit.script(LennardJones(cutoff=0.7))
    reused = nnforce.NNForce(model)
    reused.setUsesPeriodicBoundaryConditions(True)
    reused.setNeighborList(0.7, 0.1)
    system = make_system(len(pos), reused, box=box)
    for i in range(len(pos)):
        system.setParticleMass(i, 39.9)
    integrator = openmm.VerletIntegrator(0.004)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(pos)
    context.setVelocitiesToTemperature(120.0, 1)
    fresh_force = nnforce.NNForce(model)
    fresh_force.setUsesPeriodicBoundaryConditions(True)
    fresh_force.setNeighborList(0.7, 0.0)  # no skin: rebuilt at every evaluation
    fresh = context_for(make_system(len(pos), fresh_force, box=box))
    max_diff, start = 0.0, None
    for step in range(1000):
        integrator.step(1)
        state = context.getState(getEnergy=True, getPositions=True)
        fresh.setPositions(state.getPositions(asNumpy=True))
        e_fresh = fresh.getState(getEnergy=True).getPotentialEnergy()._value
        max_diff = max(max_diff, abs(state.getPotentialEnergy()._value - e_fresh) / abs(e_fresh))
        start = start if start is not None else state.getPositions(asNumpy=True)._value
    moved = np.abs(state.getPositions(asNumpy=True)._value - start).max()
    assert moved > 0.1  # atoms really moved beyond the skin, so the list was rebuilt along the way
    assert max_diff < 1e-12


class PairCount(torch.nn.Module):
    """Energy = LJ over the pairs given + number of neighbor-list entries (to see the capacity)."""

    def __init__(self):
        super().__init__()
        self.lj = LennardJones(cutoff=0.6)

    def forward(self, positions: Tensor, neighbors: Tensor, shifts: Tensor, box: Tensor) -> Tensor:
        return self.lj(positions, neighbors, shifts, box) + 1e6 * neighbors.shape[1]


def test_fixed_capacity_pads_and_grows_without_dropping_pairs():
    pos, box = lj_fluid(64, density=12.0)
    exact_pairs = nnforce.neighbor_pairs(pos, 0.6, box)[0].shape[1]
    lj_energy = None
    for capacity in (0, 10, 5000):
        force = nnforce.NNForce(torch.jit.script(PairCount()))
        force.setUsesPeriodicBoundaryConditions(True)
        force.setNeighborList(0.6, 0.0, capacity)
        energy, forces = energy_forces(context_for(make_system(len(pos), force, box=box)), pos)
        entries = round(energy / 1e6)
        lj_part = energy - 1e6 * entries
        if capacity == 0:
            assert entries == exact_pairs
        elif capacity == 10:
            assert entries >= exact_pairs  # grown past the overflow, every pair kept
        else:
            assert entries == 5000  # padded to the fixed capacity
        lj_energy = lj_part if lj_energy is None else lj_energy
        assert lj_part == pytest.approx(lj_energy, abs=1e-6)


class Charged(torch.nn.Module):
    """E = sum q_i z_i |r_i|^2 + k * sum d_i . r_i: reads atomic_numbers and two per-atom inputs."""

    def forward(self, positions: Tensor, atomic_numbers: Tensor, charges: Tensor, dipoles: Tensor) -> Tensor:
        r2 = (positions * positions).sum(1)
        return (charges * atomic_numbers.to(positions.dtype) * r2).sum() + (dipoles * positions).sum()


def test_subsets_and_per_atom_inputs_match_direct_torch():
    n = 10
    pos = random_positions(n, 1.0, seed=8)
    atoms = [7, 2, 5, 0]
    z = [8, 1, 6, 1]
    charges = [0.5, -0.25, 0.1, 0.3]
    dipoles = np.arange(12, dtype=float).reshape(4, 3) / 10
    force = nnforce.NNForce(torch.jit.script(Charged()))
    force.setAtoms(atoms)
    force.setAtomicNumbers(z)
    force.addPerAtomInput("charges", charges)
    force.addPerAtomInput("dipoles", dipoles.reshape(-1).tolist(), 3)
    context = context_for(make_system(n, force))
    energy, forces = energy_forces(context, pos)

    def direct(q):
        return torch_energy_forces(Charged(), pos[atoms], atomic_numbers=torch.tensor(z),
                                   charges=torch.tensor(q, dtype=torch.float64), dipoles=torch.tensor(dipoles))

    expected, expected_forces = direct(charges)
    assert energy == pytest.approx(expected, rel=1e-12)
    assert rel_err(forces[atoms], expected_forces) < 1e-12
    others = [i for i in range(n) if i not in atoms]
    assert np.all(forces[others] == 0.0)
    # change charges at run time
    new_charges = [-1.0, 0.5, 0.5, 0.0]
    force.setPerAtomInput("charges", new_charges)
    force.updateParametersInContext(context)
    energy2, _ = energy_forces(context, pos)
    assert energy2 == pytest.approx(direct(new_charges)[0], rel=1e-12)
    assert energy2 != pytest.approx(energy)


def test_subset_bad_inputs():
    def context_with(configure, n=5):
        force = nnforce.NNForce(torch.jit.script(Charged()))
        configure(force)
        return context_for(make_system(n, force))

    with pytest.raises(openmm.OpenMMException, match="out of range: the System has 5 particles"):
        context_with(lambda f: (f.setAtoms([0, 9]), f.setAtomicNumbers([1, 1]), f.addPerAtomInput("charges", [0, 0]),
                                f.addPerAtomInput("dipoles", [0] * 6, 3)))
    with pytest.raises(openmm.OpenMMException, match="3 atomic numbers but the model sees 2 atoms"):
        context_with(lambda f: (f.setAtoms([0, 1]), f.setAtomicNumbers([1, 1, 1])))
    with pytest.raises(openmm.OpenMMException, match="'charges' has 3 rows but the model sees 2 atoms"):
        context_with(lambda f: (f.setAtoms([0, 1]), f.setAtomicNumbers([1, 1]), f.addPerAtomInput("charges", [0, 0, 0])))
    with pytest.raises(openmm.OpenMMException, match="needs the argument 'atomic_numbers'.*setAtomicNumbers"):
        context_with(lambda f: None)
    force = nnforce.NNForce(torch.jit.script(Charged()))
    with pytest.raises(openmm.OpenMMException, match="appears twice"):
        force.setAtoms([1, 2, 1])
    with pytest.raises(openmm.OpenMMException, match="no per-atom input named 'spins'"):
        force.setPerAtomInput("spins", [1.0])
