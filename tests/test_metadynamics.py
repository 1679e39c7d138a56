"""Issue 25's sampling protocol (nnforce.simulate.metadynamics): metadynamics bias, static-bias replicas, exact
reweighting, free-energy comparison.

Each check compares with an independent computation: OpenMM's own CustomCVForce energy (C++ spline) against the
module's numpy spline, the metadynamics grid rebuilt Gaussian by Gaussian from the walker's recorded (phi, psi),
reweighting against the exact answer of a case built to have one, and basin populations against exact Boltzmann
populations of a discrete model.
"""
import io
import math

import numpy as np
import openmm
import pytest
import torch
from openmm import app, unit

from nnforce.demo import alanine_dipeptide
from nnforce.demo.measure import BASINS, basin_indices
from nnforce.force import build_ml_system
from nnforce.simulate import metadynamics as md
from nnforce.units import MOLAR_GAS_CONSTANT_KJ_MOL_K

KT = MOLAR_GAS_CONSTANT_KJ_MOL_K * 300.0


@pytest.fixture(scope="module")
def molecule():
    topology, positions = alanine_dipeptide()
    return topology, positions.value_in_unit(unit.nanometer)


class ElasticNetwork(torch.nn.Module):
    """A cheap NNForce model: springs between every pair in the neighbor list, relaxed at a reference structure
    (the molecule keeps its shape and its torsions fluctuate; replica copies share the reference)."""

    def __init__(self, reference_nm, k_kj_mol_nm2=5000.0):
        super().__init__()
        ref = torch.as_tensor(reference_nm, dtype=torch.float64)
        self.register_buffer("d0", torch.cdist(ref, ref))
        self.n = int(ref.shape[0])
        self.k = float(k_kj_mol_nm2)

    def forward(self, positions: torch.Tensor, neighbors: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
        i, j = neighbors[0], neighbors[1]
        r = torch.linalg.norm(positions[j] - positions[i] + shifts, dim=1)
        d0 = self.d0[i % self.n, j % self.n].to(positions.dtype)
        return self.k * torch.sum((r - d0) ** 2)


@pytest.fixture(scope="module")
def ml_system(molecule):
    """Alanine dipeptide with a small TorchScript model through NNForce (float64), one torch thread."""
    torch.set_num_threads(1)
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(ElasticNetwork(molecule[1])), buffer)
    return build_ml_system(buffer.getvalue(), molecule[0], precision="double", neighbor_cutoff_nm=0.4)


def periodic_grid(width, seed):
    """A random smooth periodic bias grid [W, W] (last row/column = first), kJ/mol."""
    rng = np.random.default_rng(seed)
    x = md._grid(width)
    phi, psi = np.meshgrid(x, x, indexing="ij")
    grid = np.zeros_like(phi)
    for _ in range(6):
        a, b = rng.integers(-2, 3, size=2)
        grid += rng.normal(scale=3.0) * np.cos(a * phi + b * psi + rng.uniform(0, 2 * np.pi))
    grid[-1], grid[:, -1] = grid[0], grid[:, 0]
    return grid


def test_backbone_torsions_are_alanines_phi_psi(molecule):
    topology, _ = molecule
    phi, psi = md.backbone_torsions(topology)
    names = [(a.residue.name, a.name) for a in topology.atoms()]
    assert [names[i] for i in phi] == [("ACE", "C"), ("ALA", "N"), ("ALA", "CA"), ("ALA", "C")]
    assert [names[i] for i in psi] == [("ALA", "N"), ("ALA", "CA"), ("ALA", "C"), ("NME", "N")]
    for target in [(60.0, 45.0), (-150.0, 170.0), (-70.0, -40.0)]:
        _, x = alanine_dipeptide(*target)
        x = x.value_in_unit(unit.nanometer)
        got = np.degrees([md.dihedrals(x, phi), md.dihedrals(x, psi)])
        assert np.allclose(got, target, atol=1e-6)


def test_no_backbone_is_refused():
    topology = app.Topology()
    chain = topology.addChain()
    residue = topology.addResidue("HOH", chain)
    o = topology.addAtom("O", app.element.oxygen, residue)
    for name in ("H1", "H2"):
        topology.addBond(o, topology.addAtom(name, app.element.hydrogen, residue))
    with pytest.raises(ValueError, match="phi .* psi"):
        md.backbone_torsions(topology)


def test_bad_inputs(molecule, ml_system):
    topology, x = molecule
    good = periodic_grid(12, 0)
    protocol = md.SamplingProtocol(replicas=2, production_steps=2, report_interval_steps=1)
    with pytest.raises(ValueError, match="square bias grid"):
        md.run_biased_replicas(ml_system, topology, [x, x], good[:, :-1], protocol)
    not_periodic = good.copy()
    not_periodic[-1] += 1.0
    with pytest.raises(ValueError, match="periodic"):
        md.bias_at(not_periodic, 0.0, 0.0)
    with pytest.raises(ValueError, match="no frame"):
        md.run_biased_replicas(ml_system, topology, [x, x], good, md.SamplingProtocol(replicas=2, production_steps=5))
    with pytest.raises(ValueError, match="protocol.replicas"):
        md.run_biased_replicas(ml_system, topology, [x, x, x], good, protocol)
    with pytest.raises(ValueError, match=r"\[\.\.\., 22, 3\]"):
        md.build_bias(ml_system, topology, x[:5], protocol)
    with pytest.raises(ValueError, match="bias_factor"):
        md.SamplingProtocol(bias_factor=1.0)
    with pytest.raises(ValueError, match="production_steps"):
        md.SamplingProtocol(production_steps=0)
    with pytest.raises(ValueError, match="one weight per frame"):
        md.reweighted_fes(np.zeros(4), np.zeros(4), np.ones(3))
    with pytest.raises(ValueError, match="different grids"):
        md.fes_rms_difference(np.zeros((4, 4)), np.zeros((5, 5)))


def test_bias_force_is_the_grid_interpolated_one_force_per_replica(molecule, ml_system):
    """Each replica's CustomCVForce energy (OpenMM's own periodic bicubic spline, C++) equals bias_at (numpy) at
    that replica's phi/psi, and only that replica's atoms move it."""
    topology, _ = molecule
    grid = periodic_grid(24, 1)
    conformations = [(-80.0, 150.0), (-70.0, -40.0), (60.0, 45.0), (179.0, -179.5)]
    starts = np.array([alanine_dipeptide(*c)[1].value_in_unit(unit.nanometer) for c in conformations])
    groups, batched = md.biased_replica_systems(ml_system, topology, starts, grid)
    assert batched and len(groups) == 1 and groups[0].num_replicas == len(conformations)
    system, positions = groups[0].system, groups[0].positions
    bias_forces = [system.getForce(i) for i in range(system.getNumForces())
                   if isinstance(system.getForce(i), openmm.CustomCVForce)]
    assert len(bias_forces) == len(conformations)
    for k, force in enumerate(bias_forces):
        force.setForceGroup(1 + k)
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(positions)
    phi_atoms, psi_atoms = md.backbone_torsions(topology)
    expected = md.bias_at(grid, md.dihedrals(starts, phi_atoms), md.dihedrals(starts, psi_atoms))
    assert np.ptp(expected) > 1.0  # the four points see different biases
    for k in range(len(conformations)):
        energy = context.getState(getEnergy=True, groups={1 + k}).getPotentialEnergy().value_in_unit(
            unit.kilojoule_per_mole)
        assert energy == pytest.approx(expected[k], abs=1e-6)
    # bias_at at grid nodes is the grid itself, and the tabulated spline is not the same as a bilinear guess
    nodes = md._grid(24)
    assert np.allclose(md.bias_at(grid, nodes[3], nodes[17]), grid[3, 17], atol=1e-10)


def test_metadynamics_grid_is_the_sum_of_its_gaussians(molecule, ml_system):
    """The bias build_bias returns equals the well-tempered Gaussians rebuilt from the walker's recorded (phi, psi)
    (one Gaussian per frame when frequency = report interval), heights h exp(-V/(k dT)) with V the bias so far."""
    topology, x = molecule
    protocol = md.SamplingProtocol(metad_steps=60, frequency_steps=10, report_interval_steps=10, grid_width=20,
                                   height_kj_mol=2.0, sigma_rad=0.5, timestep_fs=1.0)
    result = md.build_bias(ml_system, topology, x, protocol, seed=4, platform="Reference")
    assert result.frames_nm.shape == (6, 22, 3) and result.phi_rad.shape == (6,)
    width = protocol.grid_width
    nodes = np.linspace(0.0, 1.0, width)
    variance = (protocol.sigma_rad / (2 * math.pi)) ** 2
    delta_t = protocol.temperature_k * (protocol.bias_factor - 1.0)
    rebuilt = np.zeros((width, width))
    for phi, psi in zip(result.phi_rad, result.psi_rad):
        current = md.bias_at(rebuilt, phi, psi) if rebuilt.any() else 0.0
        height = protocol.height_kj_mol * math.exp(-current / (MOLAR_GAS_CONSTANT_KJ_MOL_K * delta_t))
        axes = []
        for angle in (phi, psi):
            d = np.abs(nodes - ((angle + math.pi) / (2 * math.pi)) % 1.0)
            d = np.minimum(d, np.abs(d - 1.0))
            d[-1] = d[0]
            axes.append(np.exp(-0.5 * d * d / variance))
        rebuilt += height * np.outer(axes[0], axes[1])  # [phi, psi]
    assert np.allclose(result.bias_kj_mol, rebuilt, atol=1e-6 * protocol.height_kj_mol)
    gamma = protocol.bias_factor
    assert np.allclose(result.free_energy_kj_mol, -gamma / (gamma - 1) * result.bias_kj_mol)


def test_small_run_end_to_end(molecule, ml_system, tmp_path):
    """Tiny lengths (the demo's --small path): phase 1 then phase 2 with DCDs; the per-frame bias is the grid at
    the frame's phi/psi, and the frames on disk are the frames returned."""
    import mdtraj

    topology, x = molecule
    protocol = md.SamplingProtocol(metad_steps=40, frequency_steps=10, report_interval_steps=10, replicas=3,
                                   production_steps=30, grid_width=16)
    bias = md.build_bias(ml_system, topology, x, protocol, seed=1, platform="Reference")
    assert bias.bias_kj_mol.max() > 0
    starts = md.pick_starts(bias, protocol.replicas, seed=2)
    result = md.run_biased_replicas(ml_system, topology, starts, bias, protocol, seed=3, out_dir=str(tmp_path),
                                    platform="Reference")
    assert result.batched and result.phi_rad.shape == (3, 3) and result.positions_nm.shape == (3, 3, 22, 3)
    assert np.allclose(result.bias_kj_mol, md.bias_at(bias.bias_kj_mol, result.phi_rad, result.psi_rad))
    assert len(result.dcd_paths) == 3
    for k, path in enumerate(result.dcd_paths):
        traj = mdtraj.load(path, top=mdtraj.Topology.from_openmm(topology))
        assert np.allclose(traj.xyz, result.positions_nm[k], atol=2e-6)
    weights = md.frame_weights(result.bias_kj_mol, protocol.temperature_k)
    assert weights.shape == (3, 3) and weights.sum() == pytest.approx(1.0)


def test_replicas_split_over_threads_step_as_their_own_run(molecule, ml_system, tmp_path):
    """workers=2: 3 replicas in two Contexts (replicas 0-1 and 2) stepped at once in two threads (CPU platform). The first Context
    is seeded as a one-Context run of replicas 0-1 alone, so its frames must equal that run's bit for bit (threads
    change nothing); the DCDs hold the returned frames, the bias is the grid's."""
    import dataclasses

    import mdtraj

    topology, x = molecule
    protocol = md.SamplingProtocol(metad_steps=40, frequency_steps=10, report_interval_steps=10, replicas=3,
                                   production_steps=30, grid_width=16)
    bias = md.build_bias(ml_system, topology, x, protocol, seed=1, platform="Reference")
    starts = md.pick_starts(bias, protocol.replicas, seed=2)
    # the CPU platform (one thread): each Context has its own random generator (Reference's is process-wide)
    split = md.run_biased_replicas(ml_system, topology, starts, bias, protocol, seed=3, out_dir=str(tmp_path / "s"),
                                   platform="CPU", workers=2)
    alone = md.run_biased_replicas(ml_system, topology, starts[:2], bias, dataclasses.replace(protocol, replicas=2),
                                   seed=3, platform="CPU")
    assert split.batched and split.positions_nm.shape == (3, 3, 22, 3) and split.steps == 30
    np.testing.assert_array_equal(split.positions_nm[:2], alone.positions_nm)
    assert not np.array_equal(split.positions_nm[2], split.positions_nm[0])
    assert np.allclose(split.bias_kj_mol, md.bias_at(bias.bias_kj_mol, split.phi_rad, split.psi_rad))
    for k, path in enumerate(split.dcd_paths):
        traj = mdtraj.load(path, top=mdtraj.Topology.from_openmm(topology))
        assert np.allclose(traj.xyz, split.positions_nm[k], atol=2e-6)
    with pytest.raises(ValueError, match="groups must be"):
        md.run_biased_replicas(ml_system, topology, starts, bias, protocol, platform="Reference", workers=0)


def test_reweighting_exact_on_uniform_frames():
    """Frames spread uniformly (one per bin) under bias V: the biased ensemble is flat, so the unbiased free energy
    is exactly -V/kT (+ const); reweighted_fes with frame_weights must return it bin by bin."""
    bins = 36
    centres = -math.pi + (np.arange(bins) + 0.5) * 2 * math.pi / bins
    phi, psi = np.meshgrid(centres, centres, indexing="ij")
    v = 5.0 * np.cos(phi) + 3.0 * np.sin(2 * psi) + 2.0 * np.cos(phi - psi)  # kJ/mol
    fes = md.reweighted_fes(phi, psi, md.frame_weights(v, 300.0), 300.0, bins)
    expected = -v / KT
    expected -= expected.min()
    assert np.allclose(fes["fes_kt"], expected, atol=1e-9)
    assert np.allclose(fes["fes_kj_mol"], expected * KT)
    assert (fes["counts"] == 1).all()


def test_reweighted_populations_match_boltzmann_of_a_discrete_model():
    """A discrete (phi, psi) model with energy U: frames drawn exactly from the biased distribution exp(-(U+V)/kT)
    by 40 independent 'replicas'; reweighted basin populations recover exp(-U/kT)'s, inside their intervals, and the
    reweighted free energy is within noise of the exact one."""
    bins = 36
    centres = -math.pi + (np.arange(bins) + 0.5) * 2 * math.pi / bins
    phi, psi = np.meshgrid(centres, centres, indexing="ij")
    u = -8.0 * np.exp(np.cos(phi + 1.4) + np.cos(psi - 2.6) - 2) - 6.0 * np.exp(np.cos(phi + 1.2) + np.cos(psi + 0.7) - 2) \
        - 5.0 * np.exp(np.cos(phi - 1.0) + np.cos(psi - 0.8) - 2)
    u = 4.0 * u  # kJ/mol; wells of 20-32 kJ/mol
    v = -0.8 * (u - u.max())  # a bias that flattens most of the landscape
    p_biased = np.exp(-(u + v) / KT).ravel()
    p_biased /= p_biased.sum()
    rng = np.random.default_rng(11)
    draws = rng.choice(p_biased.size, size=(40, 2000), p=p_biased)
    a, b = phi.ravel()[draws], psi.ravel()[draws]
    weights = md.frame_weights(v.ravel()[draws], 300.0)
    pops = md.basin_populations(a, b, weights, n_boot=300, seed=0)
    exact = np.bincount(basin_indices(phi.ravel(), psi.ravel()), weights=np.exp(-(u - u.min()) / KT).ravel(),
                        minlength=len(BASINS))
    exact /= exact.sum()
    for i, name in enumerate(BASINS):
        value, low, high = pops[name]
        sigma = (high - low) / 3.92  # the 95% interval's half-width is 1.96 standard errors
        assert abs(value - exact[i]) <= 4 * sigma + 1e-6, (name, exact[i], pops[name])
        assert high - low < 0.05
    unweighted = md.basin_populations(a, b, None, n_boot=50, seed=0)
    assert max(abs(unweighted[name][0] - exact[i]) for i, name in enumerate(BASINS)) > 0.1  # the bias matters
    assert sum(p[0] for p in pops.values()) == pytest.approx(1.0)
    fes = md.reweighted_fes(a, b, weights, 300.0, bins)
    exact_fes = (u - u.min()) / KT
    assert md.fes_rms_difference(fes, exact_fes) < 0.25
    # unweighted (biased) frames do NOT give the unbiased surface: the test can fail
    assert md.fes_rms_difference(md.reweighted_fes(a, b, None, 300.0, bins), exact_fes) > 1.0


def test_fes_rms_difference_on_constructed_grids():
    a = np.array([[0.0, 1.0, 2.0], [3.0, 9.0, np.nan], [0.5, 6.0, 4.0]])
    # a constant offset is removed
    assert md.fes_rms_difference(a, a + 2.5) == pytest.approx(0.0, abs=1e-12)
    # bins within 4 kT of either minimum: a <= 4 -> (0,0),(0,1),(0,2),(1,0),(2,0),(2,2); NaN never compared
    b = a.copy()
    b[0, 1] += 1.0  # inside: counts
    b[1, 1] += 7.0  # 9 and 16: outside on both, ignored
    d = np.array([0.0, 1.0, 0.0, 0.0, 0.0, 0.0])
    assert md.fes_rms_difference(a, b) == pytest.approx(np.sqrt(np.mean((d - d.mean()) ** 2)))
    c = a.copy()
    c[1, 1] = 2.0  # now within 4 kT on c: the bin joins
    d = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -7.0])
    detail = md.fes_comparison(a, c)
    assert detail["bins"] == 7
    assert detail["rms_kt"] == pytest.approx(np.sqrt(np.mean((d - d.mean()) ** 2)))
    e = a.copy()
    e[2, 2] = np.nan  # a low bin of a that e never sampled: excluded and reported
    assert md.fes_comparison(a, e)["missing_in_b"] == 1


def test_reweight_stationary_of_a_biased_msm():
    """States with a flat bias keep their biased weights; a state under bias V gains exp(V/kT)."""
    pi_b = np.array([0.5, 0.3, 0.2])
    bias = np.array([0.0, 0.0, 2.0, 2.0, 0.0, 0.0])
    states = np.array([0, 0, 1, 1, 2, 2])
    out = md.reweight_stationary(pi_b, bias, states, 300.0)
    expected = pi_b * np.array([1.0, math.exp(2.0 / KT), 1.0])
    assert np.allclose(out, expected / expected.sum())


def test_hydrogen_mass_repartitioning_keeps_total_mass(molecule, ml_system):
    topology, _ = molecule
    system = md._copy_system(ml_system)
    before = [system.getParticleMass(i).value_in_unit(unit.dalton) for i in range(system.getNumParticles())]
    md.repartition_hydrogen_mass(system, topology, 3.0)
    after = [system.getParticleMass(i).value_in_unit(unit.dalton) for i in range(system.getNumParticles())]
    assert sum(after) == pytest.approx(sum(before))
    for atom in topology.atoms():
        if atom.element is app.element.hydrogen:
            assert after[atom.index] == pytest.approx(3.0)
    methyl_c = [a.index for a in topology.atoms() if a.residue.name == "ACE" and a.name == "CH3"][0]
    h_mass = app.element.hydrogen.mass.value_in_unit(unit.dalton)
    assert after[methyl_c] == pytest.approx(before[methyl_c] - 3 * (3.0 - h_mass))  # ACE's CH3 carries three H


def test_an_mm_system_runs_one_context_per_replica(molecule, tmp_path):
    """amber14 (not an NNForce System): one Context per replica, each with its bias; the frames' bias values are
    the grid at their phi/psi, and each replica's DCD holds its own frames."""
    import mdtraj

    topology, x = molecule
    system = app.ForceField("amber14-all.xml").createSystem(topology, nonbondedMethod=app.NoCutoff, constraints=None)
    grid = periodic_grid(16, 5)
    protocol = md.SamplingProtocol(replicas=2, production_steps=20, report_interval_steps=10)
    starts = np.array([x, alanine_dipeptide(60.0, 45.0)[1].value_in_unit(unit.nanometer)])
    result = md.run_biased_replicas(system, topology, starts, grid, protocol, seed=1, out_dir=str(tmp_path),
                                    platform="Reference")
    assert not result.batched and result.phi_rad.shape == (2, 2)
    assert np.allclose(result.bias_kj_mol, md.bias_at(grid, result.phi_rad, result.psi_rad))
    assert result.phi_rad[0, 0] < 0 < result.phi_rad[1, 0]  # each replica stays where it started (40 fs)
    for k, path in enumerate(result.dcd_paths):
        traj = mdtraj.load(path, top=mdtraj.Topology.from_openmm(topology))
        assert np.allclose(traj.xyz, result.positions_nm[k], atol=2e-6)
    assert not any(isinstance(f, openmm.CustomCVForce) for f in system.getForces())  # the caller's System untouched


def test_teacher_reference_is_this_protocol_and_its_own_frames():
    """The committed teacher reference (bench/teacher_fes.py) was made with SamplingProtocol's defaults (only the
    lengths differ), and its FES, weights, per-frame bias and basin populations are what this module computes from
    its stored frames."""
    ref = md.load_teacher_fes()
    record = ref["record"]
    defaults = md.SamplingProtocol().as_dict()
    lengths = ("metad_steps", "replicas", "production_steps")
    assert {k: v for k, v in record["protocol"].items() if k not in lengths} == \
        {k: v for k, v in defaults.items() if k not in lengths}
    temperature = record["protocol"]["temperature_k"]
    phi, psi = ref["phi_rad"], ref["psi_rad"]
    assert phi.shape == (record["lengths"]["replicas"], record["lengths"]["frames"] // record["lengths"]["replicas"])
    assert np.allclose(ref["bias_kj_mol"], md.bias_at(ref["bias_grid_kj_mol"], phi, psi), atol=1e-9)
    assert np.allclose(ref["weights"], md.frame_weights(ref["bias_kj_mol"], temperature), rtol=1e-12, atol=0)
    fes = md.reweighted_fes(phi, psi, ref["weights"], temperature, bins=ref["fes"]["fes_kt"].shape[0])
    assert np.array_equal(np.isnan(fes["fes_kt"]), np.isnan(ref["fes"]["fes_kt"]))
    assert np.allclose(fes["fes_kt"], ref["fes"]["fes_kt"], equal_nan=True, atol=1e-12)
    pops = md.basin_populations(phi, psi, ref["weights"], n_boot=10, seed=0)
    for name, (value, low, high) in ref["basin_populations"].items():
        assert pops[name][0] == pytest.approx(value, abs=1e-12)
        assert low <= value <= high
    assert ref["ms_per_step"] > 0
