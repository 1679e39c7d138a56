"""Committee uncertainty: an ANI-style ensemble exported as a dict-returning model, its spread read through
NNForce.getOutput, logged by nnforce.simulate (flag / stop past a threshold)."""
import csv

import numpy as np
import openmm
import pytest
import torch
from openmm import app

import nnforce
from nnforce.export import export_committee
from nnforce.models import ANIModel, Committee
from nnforce.simulate import SimulationConfig, run

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ELEMENTS = [1, 6, 8]


def members():
    """Three small ANI-style models with different seeds and self energies: they disagree."""
    out = []
    for seed in range(3):
        model = ANIModel(ELEMENTS, hidden=[16], seed=seed)
        model.self_energies.copy_(torch.tensor([-1.0, -2.0, -3.0]) * (1 + 0.1 * seed))
        model.energy_scale.fill_(5.0 + seed)
        out.append(model)
    return out


def ethanol():
    from ase.build import molecule

    atoms = molecule("CH3CH2OH")
    topology = app.Topology()
    residue = topology.addResidue("ETH", topology.addChain())
    for symbol in atoms.get_chemical_symbols():
        topology.addAtom(symbol, app.element.Element.getBySymbol(symbol), residue)
    return topology, atoms.positions / 10.0, torch.tensor(atoms.get_atomic_numbers())


@pytest.fixture(scope="module")
def committee_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("committee") / "committee.pt"
    info = export_committee(members(), str(path))
    assert info["outputs"] == ["energy", "uncertainty", "member_energies"]
    return str(path)


def direct(positions, z):
    """Each member evaluated on its own (float64): mean energy, population std, the energies."""
    x = torch.tensor(np.asarray(positions), dtype=torch.float64)
    energies = np.array([float(m.double()(x, z)) for m in members()])
    return energies.mean(), energies.std(), energies


def test_committee_needs_two_members():
    with pytest.raises(ValueError, match="at least two members"):
        Committee(ANIModel(ELEMENTS, hidden=[8]))


# the exported committee holds float32 parameters (folded members), so even float64 evaluation differs from the
# unfolded members at ~1e-8 relative
@pytest.mark.parametrize("platform,tol", [("Reference", 1e-6), ("CPU", 1e-4)])
def test_uncertainty_through_nnforce_matches_members(platform, tol, committee_file):
    topology, positions, z = ethanol()
    force = nnforce.NNForce(committee_file)
    force.setAtomicNumbers([int(v) for v in z])
    system = openmm.System()
    for atom in topology.atoms():
        system.addParticle(atom.element.mass)
    system.addForce(force)
    context = openmm.Context(system, openmm.VerletIntegrator(0.0005), openmm.Platform.getPlatformByName(platform))
    context.setPositions(positions)
    energy = context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(openmm.unit.kilojoule_per_mole)
    mean, spread, energies = direct(positions, z)
    assert spread > 1.0  # the members really disagree
    assert energy == pytest.approx(mean, rel=tol)
    assert float(force.getOutput(context, "uncertainty")) == pytest.approx(spread, rel=tol * 10)
    np.testing.assert_allclose(force.getOutput(context, "member_energies"), energies, rtol=tol)


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def config(tmp_path, model, **options):
    topology, positions, _ = ethanol()
    settings = dict(model=model, topology=topology, positions=positions, output_dir=str(tmp_path), steps=20,
                    timestep_fs=0.25, temperature_k=300.0, minimize=False, report_interval=5, checkpoint_interval=0,
                    trajectory=None, platform="Reference", progress=False, seed=3)
    settings.update(options)
    return SimulationConfig(**settings)


def test_simulate_logs_uncertainty_per_frame(tmp_path, committee_file):
    result = run(config(tmp_path, committee_file))
    rows = read_csv(tmp_path / "energies.csv")
    assert [int(r["step"]) for r in rows] == [0, 5, 10, 15, 20]
    assert all(r["flagged"] == "0" for r in rows)
    _, _, z = ethanol()
    _, spread, _ = direct(result["positions_nm"], z)
    assert float(rows[-1]["uncertainty_kj_mol"]) == pytest.approx(spread, rel=1e-5)
    assert result["uncertainty_max_kj_mol"] == pytest.approx(max(float(r["uncertainty_kj_mol"]) for r in rows))
    assert result["flagged_frames"] == 0 and result["stopped_by_uncertainty_at_step"] is None


def test_simulate_flags_and_stops_past_threshold(tmp_path, committee_file):
    flagged = run(config(tmp_path / "flag", committee_file, uncertainty_threshold_kj_mol=1e-3))
    rows = read_csv(tmp_path / "flag" / "energies.csv")
    assert flagged["final_step"] == 20 and flagged["flagged_frames"] == len(rows) == 5
    assert all(r["flagged"] == "1" for r in rows)
    stopped = run(config(tmp_path / "stop", committee_file, uncertainty_threshold_kj_mol=1e-3, uncertainty_action="stop"))
    assert stopped["final_step"] == 0 and stopped["stopped_by_uncertainty_at_step"] == 0
    assert len(read_csv(tmp_path / "stop" / "energies.csv")) == 1


def test_threshold_needs_a_committee(tmp_path):
    plain = tmp_path / "plain.pt"
    torch.jit.save(torch.jit.script(members()[0]), str(plain))
    with pytest.raises(ValueError, match="needs a model returning an \"uncertainty\" output"):
        run(config(tmp_path, str(plain), uncertainty_threshold_kj_mol=1.0))
    with pytest.raises(ValueError, match="uncertainty_action"):
        config(tmp_path, str(plain), uncertainty_action="abort")
