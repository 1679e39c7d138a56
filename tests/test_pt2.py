""".pt2 AOTInductor packages through NNForce: the same energies, forces and parameter derivatives as the TorchScript
file of the same model (Reference and CPU), eager PyTorch and finite differences; periodic triclinic boxes, a subset
of the System's particles, per-atom inputs and a neighbor list that grows; XML, deepcopy, threads; and bad packages.

One small library model (RadialMLP inside a wrapper adding a global parameter and a per-atom input) is compiled once
per session, and a small ANI-style model once in its own test (both cached across sessions in ~/.cache/nnforce or
$NNFORCE_CACHE).
"""
import copy
import json
import shutil
import threading
import zipfile

import numpy as np
import openmm
import pytest
import torch

import nnforce
from nnforce.export import read_metadata, to_pt2
from nnforce.models._geometry import minimum_image
from plugin_helpers import context_for, make_system
from pt2_models import CUTOFF, ELEMENTS, Scaled

SKIN = 0.05
BOX = np.array([[1.3, 0.0, 0.0], [0.3, 1.25, 0.0], [-0.2, 0.35, 1.2]])  # OpenMM reduced triclinic form
N_SYSTEM = 24
MODEL_ATOMS = list(range(2, 22))  # the model sees a subset, in this order


def _structure(seed=0, n=N_SYSTEM):
    rng = np.random.default_rng(seed)
    fractional = rng.uniform(0, 1, (n, 3))
    return fractional @ BOX


Z = [ELEMENTS[k % 3] for k in range(len(MODEL_ATOMS))]
CHARGES = [0.1 * ((k % 5) - 2) for k in range(len(MODEL_ATOMS))]


def _all_pairs(x):
    """Every pair within the cutoff through the minimum image (independent of the plugin's neighbor list)."""
    x = torch.as_tensor(x, dtype=torch.float64)
    n = x.shape[0]
    ij = torch.triu_indices(n, n, 1)
    raw = x[ij[1]] - x[ij[0]]
    wrapped = minimum_image(raw, torch.tensor(BOX))
    keep = (wrapped * wrapped).sum(1) < CUTOFF ** 2
    return ij[:, keep], (wrapped - raw)[keep]


@pytest.fixture(scope="session")
def files(tmp_path_factory):
    """The TorchScript file and the .pt2 package of the same model (compiled once; cached across sessions)."""
    directory = tmp_path_factory.mktemp("pt2")
    model = Scaled().double().eval()
    x = torch.tensor(_structure()[MODEL_ATOMS])
    neighbors, shifts = _all_pairs(x)
    example = {"positions": x, "atomic_numbers": torch.tensor(Z), "neighbors": neighbors, "shifts": shifts,
               "scale": torch.tensor(1.3, dtype=torch.float64), "charges": torch.tensor(CHARGES)}
    pt2 = directory / "model.pt2"
    info = to_pt2(model, pt2, example, precision="double", derivatives=["scale"], max_atoms=1000)
    script = directory / "model.pt"
    torch.jit.save(torch.jit.script(model), str(script))
    return {"model": model, "pt2": str(pt2), "script": str(script), "info": info}


def _force(path, periodic=True):
    force = nnforce.NNForce(path)
    force.setAtoms(MODEL_ATOMS)
    force.setAtomicNumbers(Z)
    force.addPerAtomInput("charges", CHARGES)
    force.addGlobalParameter("scale", 1.3)
    force.addEnergyParameterDerivative("scale")
    force.setNeighborList(CUTOFF, SKIN)
    force.setUsesPeriodicBoundaryConditions(periodic)
    return force


def _evaluate(force, positions, platform="Reference", properties=None, box=BOX):
    context = context_for(make_system(N_SYSTEM, force, box), platform, properties)
    context.setPeriodicBoxVectors(*[openmm.Vec3(*row) for row in box])
    context.setPositions(positions)
    state = context.getState(getEnergy=True, getForces=True, getParameterDerivatives=True)
    energy = state.getPotentialEnergy().value_in_unit(openmm.unit.kilojoule_per_mole)
    forces = np.asarray(state.getForces(asNumpy=True).value_in_unit(openmm.unit.kilojoule_per_mole / openmm.unit.nanometer))
    return energy, forces, state.getEnergyParameterDerivatives()["scale"]


def _eager(model, positions):
    x = torch.tensor(positions[MODEL_ATOMS], requires_grad=True)
    scale = torch.tensor(1.3, dtype=torch.float64, requires_grad=True)
    neighbors, shifts = _all_pairs(x.detach())
    energy = model(x, torch.tensor(Z), neighbors, shifts, scale, torch.tensor(CHARGES))
    gx, gs = torch.autograd.grad(energy, [x, scale])
    forces = np.zeros((N_SYSTEM, 3))
    forces[MODEL_ATOMS] = -gx.numpy()
    return float(energy), forces, float(gs)


def _close(a, b, rtol=1e-10):
    scale = max(1.0, float(np.abs(np.asarray(b)).max()))
    assert float(np.abs(np.asarray(a) - np.asarray(b)).max()) <= rtol * scale, (a, b)


def test_package_metadata_and_format(files):
    info = read_metadata(files["pt2"])
    assert info["inputs"] == ["positions", "neighbors", "shifts", "atomic_numbers", "scale", "charges"]
    assert info["outputs"] == ["energy", "forces", "dE/dscale"]
    assert info["elements"] == ELEMENTS and info["cutoff_nm"] == CUTOFF and info["precision"] == "double"
    assert info["torch_version"] == torch.__version__
    assert files["info"]["checks"]["pt2_vs_eager_forces"] < 1e-10
    assert nnforce.NNForce(files["pt2"]).getModelFormat() == "pt2"
    assert nnforce.NNForce(files["script"]).getModelFormat() == "torchscript"


@pytest.mark.parametrize("platform", ["Reference", "CPU"])
def test_pt2_equals_torchscript_and_eager(files, platform, one_torch_thread):
    positions = _structure()
    properties = {} if platform == "Reference" else None
    pt2 = _evaluate(_force(files["pt2"]), positions, platform, properties)
    script_force = _force(files["script"])
    script_force.setProperty("precision", "double")
    script = _evaluate(script_force, positions, platform, properties)
    eager = _eager(files["model"], positions)
    assert abs(eager[0]) > 1.0 and np.abs(eager[1]).max() > 1.0 and abs(eager[2]) > 0.1  # nothing trivially zero
    for k in range(3):  # the two formats through NNForce: equal to 1e-10 (the criterion)
        _close(pt2[k], script[k])
    for got in (pt2, script):  # eager PyTorch on its own minimum-image pair list
        _close(got[0], eager[0], 1e-8)
        _close(got[1], eager[1], 1e-8)
        _close(got[2], eager[2], 1e-8)
    assert np.all(pt2[1][[0, 1, 22, 23]] == 0.0)  # particles outside the subset feel nothing


def test_pt2_forces_match_finite_differences(files):
    positions = _structure()
    force = _force(files["pt2"])
    context = context_for(make_system(N_SYSTEM, force, BOX))
    context.setPositions(positions)
    forces = context.getState(getForces=True).getForces(asNumpy=True)._value
    h = 1e-5
    for atom, d in [(2, 0), (7, 1), (15, 2)]:
        energies = []
        for sign in (1, -1):
            moved = positions.copy()
            moved[atom, d] += sign * h
            context.setPositions(moved)
            energies.append(context.getState(getEnergy=True).getPotentialEnergy()._value)
        assert -(energies[0] - energies[1]) / (2 * h) == pytest.approx(forces[atom, d], rel=1e-6, abs=1e-6)


def test_neighbor_list_grows(files):
    """Gathering eight atoms into a cluster adds pairs: the package's pair dimension follows, values stay equal."""
    positions = _structure()
    rng = np.random.default_rng(5)
    gathered = positions.copy()
    gathered[MODEL_ATOMS[:8]] = positions[MODEL_ATOMS[0]] + rng.uniform(-0.15, 0.15, (8, 3))
    spread = _evaluate(_force(files["pt2"]), positions)
    pt2 = _evaluate(_force(files["pt2"]), gathered)
    script = _evaluate(_force(files["script"]), gathered)
    assert _all_pairs(gathered[MODEL_ATOMS])[0].shape[1] > _all_pairs(positions[MODEL_ATOMS])[0].shape[1] + 10
    assert abs(pt2[0] - spread[0]) > 1e-3
    for k in range(3):
        _close(pt2[k], script[k])
    _close(pt2[0], _eager(files["model"], gathered)[0], 1e-8)
    # and within one Context: a run of steps that rebuilds the list
    force = _force(files["pt2"])
    context = context_for(make_system(N_SYSTEM, force, BOX))
    context.setPositions(positions)
    context.setVelocitiesToTemperature(300, 1)
    context.getIntegrator().step(20)
    state = context.getState(getEnergy=True, getPositions=True)
    check = _eager(files["model"], state.getPositions(asNumpy=True)._value)
    assert state.getPotentialEnergy()._value == pytest.approx(check[0], rel=1e-9)


def test_xml_deepcopy_and_bytes(files, tmp_path):
    positions = _structure()
    reference = _evaluate(_force(files["pt2"]), positions)
    force = _force(files["pt2"])
    xml = openmm.XmlSerializer.serialize(make_system(N_SYSTEM, _force(files["pt2"]), BOX))
    system = openmm.XmlSerializer.deserialize(xml)
    assert nnforce.NNForce.cast(system.getForce(0)).getModelFormat() == "pt2"
    context = context_for(system)
    context.setPositions(positions)
    state = context.getState(getEnergy=True, getForces=True)
    _close(state.getPotentialEnergy()._value, reference[0], 0)
    _close(state.getForces(asNumpy=True)._value, reference[1], 0)
    copied = copy.deepcopy(force)
    moved = tmp_path / "gone.pt2"
    shutil.copy(files["pt2"], moved)
    from_file = _force(str(moved))
    moved.unlink()  # the force holds the bytes
    for other in (copied, from_file):
        got = _evaluate(other, positions)
        _close(got[0], reference[0], 0)
        _close(got[1], reference[1], 0)


def test_two_contexts_in_two_threads(files):
    positions = [_structure(1), _structure(2)]
    expected = [_eager(files["model"], p)[0] for p in positions]
    results = [None, None]

    def run(k):
        results[k] = _evaluate(_force(files["pt2"]), positions[k], "CPU")[0]

    threads = [threading.Thread(target=run, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got, want in zip(results, expected):
        assert got == pytest.approx(want, rel=1e-8)


def _rewrite_metadata(source, target, change):
    """Copy a real package, changing its nnforce metadata entries (what a different build would have written)."""
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename.endswith("wrapper_metadata.json"):
                entries = json.loads(data)
                change(entries)
                data = json.dumps(entries).encode()
            zout.writestr(item, data)
    return str(target)


@pytest.mark.parametrize("change, message", [
    (lambda m: [m.pop(k) for k in list(m) if k.startswith("nnforce.")], "carries no nnforce metadata"),
    (lambda m: m.update({"nnforce.torch_version": "2.12.0"}), "compiled with torch 2.12.0"),
    (lambda m: m.update({"AOTI_DEVICE_KEY": "cuda"}), "compiled for the device 'cuda'"),
    (lambda m: m.update({"nnforce.max_atoms": "5"}), "compiled for 2 to 5 atoms"),
])
def test_bad_packages(files, tmp_path, change, message):
    bad = _rewrite_metadata(files["pt2"], tmp_path / "bad.pt2", change)
    with pytest.raises(openmm.OpenMMException, match=message):
        _evaluate(_force(bad), _structure())


def test_package_for_the_other_device_is_refused(files, tmp_path):
    """The device is part of the package's metadata; a package compiled for CUDA (here: a CPU package whose metadata
    says cuda, as to_pt2(..., device="cuda") writes it) is refused on Reference/CPU with the way to recompile."""
    with zipfile.ZipFile(files["pt2"]) as archive:
        name = next(n for n in archive.namelist() if n.endswith("wrapper_metadata.json"))
        assert json.loads(archive.read(name))["nnforce.device"] == "cpu"
    assert read_metadata(files["pt2"])["device"] == "cpu"
    bad = _rewrite_metadata(files["pt2"], tmp_path / "cuda.pt2", lambda m: m.update({"nnforce.device": "cuda"}))
    for platform in ("Reference", "CPU"):
        with pytest.raises(openmm.OpenMMException) as caught:
            _evaluate(_force(bad), _structure(), platform)
        message = str(caught.value)
        assert "compiled for the device 'cuda' but this platform runs it on 'cpu'" in message
        assert 'to_pt2(model, path, example, device="cpu")' in message
        assert "nnforce export --format pt2 --device cpu" in message and "the CUDA platform" in message


def test_to_pt2_device_checks(files, tmp_path):
    x = torch.tensor(_structure()[MODEL_ATOMS])
    with pytest.raises(ValueError, match="device must be 'cpu'.*or 'cuda'.*not 'gpu'"):
        to_pt2(files["model"], tmp_path / "x.pt2", {"positions": x}, device="gpu")
    if not torch.cuda.is_available():  # this torch has no CUDA, or no GPU is visible: said before any compiling
        why = "has no CUDA" if torch.version.cuda is None else "torch sees none here"
        with pytest.raises(ValueError, match=f"device='cuda'.*{why}"):
            to_pt2(files["model"], tmp_path / "x.pt2", {"positions": x}, device="cuda")
    assert not (tmp_path / "x.pt2").exists()


def test_bad_bindings(files):
    positions = _structure()
    force = _force(files["pt2"])
    force.addGlobalParameter("other", 1.0)
    force.addEnergyParameterDerivative("other")
    with pytest.raises(openmm.OpenMMException, match=r"dE/dother.*not compiled.*derivatives=\[\"other\"\]"):
        _evaluate(force, positions)
    force = _force(files["pt2"])
    force.setNeighborList(0.0)
    with pytest.raises(openmm.OpenMMException, match="input 'neighbors'.*no neighbor list"):
        _evaluate(force, positions)
    force = _force(files["pt2"])
    force.setProperty("precision", "single")
    with pytest.raises(openmm.OpenMMException, match="compiled in double precision.*precision=\"single\""):
        _evaluate(force, positions, "CPU")
    force = _force(files["pt2"])
    force.setAtomicNumbers([7] + Z[1:])
    with pytest.raises(openmm.OpenMMException, match="atomic number 7 is not among"):
        _evaluate(force, positions)


def test_python_side_errors(files, tmp_path):
    model = files["model"]
    with pytest.raises(ValueError, match="must contain 'positions'"):
        to_pt2(model, tmp_path / "x.pt2", {"atomic_numbers": torch.tensor(Z)})
    with pytest.raises(ValueError, match="both 'neighbors' and 'shifts'"):
        to_pt2(model, tmp_path / "x.pt2", {"positions": torch.zeros(3, 3), "neighbors": torch.zeros(2, 3)})
    torch.save({"w": torch.zeros(2)}, str(tmp_path / "weights.pt"))
    with pytest.raises(ValueError, match="no nnforce metadata"):
        nnforce.export.read_pt2_metadata(tmp_path / "weights.pt")


def test_ani_style_pt2(tmp_path):
    """The ANI-style model (AEV with nonzero-filtered pairs, triplets and per-element networks: data-dependent sizes),
    as a two-member committee returning a Dict (energy, uncertainty, member energies), compiles to a .pt2 whose energy,
    forces and extra outputs (NNForce.getOutput) through NNForce equal its TorchScript file's and eager PyTorch's.
    (Its forces used to come out wrong: AOTInductor miscompiled the backward of ElementNetworks' index_put.)"""
    from nnforce.models import ANIModel, Committee

    model = Committee(ANIModel(ELEMENTS, hidden=[8], ensemble_size=2, seed=2)).double().eval()
    cutoff = model.cutoff
    positions = _structure(seed=4)
    x = torch.tensor(positions[MODEL_ATOMS])
    ij = torch.triu_indices(len(MODEL_ATOMS), len(MODEL_ATOMS), 1)
    raw = x[ij[1]] - x[ij[0]]
    wrapped = minimum_image(raw, torch.tensor(BOX))
    keep = (wrapped * wrapped).sum(1) < cutoff ** 2
    neighbors, shifts = ij[:, keep], (wrapped - raw)[keep]
    with torch.no_grad():  # the example has angular (triplet) terms, so the whole AEV path is compiled and checked
        aev = model.model.features(x, model.model.element_index[torch.tensor(Z)], neighbors, shifts)
    assert float(aev[:, model.model.aev.radial_length:].abs().sum()) > 0.0
    example = {"positions": x, "atomic_numbers": torch.tensor(Z), "neighbors": neighbors, "shifts": shifts}
    info = to_pt2(model, tmp_path / "ani.pt2", example, precision="double", max_atoms=1000)
    assert info["checks"]["pt2_vs_eager_forces"] < 1e-10 and info["checks"]["pt2_vs_eager_uncertainty"] < 1e-10
    assert info["extra_outputs"] == ["uncertainty", "member_energies"]
    torch.jit.save(torch.jit.script(model), str(tmp_path / "ani.pt"))
    results = []
    for path in ("ani.pt2", "ani.pt"):
        force = nnforce.NNForce(str(tmp_path / path))
        force.setAtoms(MODEL_ATOMS)
        force.setAtomicNumbers(Z)
        force.setNeighborList(cutoff, SKIN)
        force.setUsesPeriodicBoundaryConditions(True)
        if path.endswith(".pt"):
            force.setProperty("precision", "double")
        context = context_for(make_system(N_SYSTEM, force, BOX))
        context.setPositions(positions)
        state = context.getState(getEnergy=True, getForces=True)
        assert list(force.getOutputNames(context)) == ["energy", "forces", "uncertainty", "member_energies"] or \
            path.endswith(".pt")  # TorchScript lists the Dict's own keys (no forces)
        results.append((state.getPotentialEnergy().value_in_unit(openmm.unit.kilojoule_per_mole),
                        np.asarray(state.getForces(asNumpy=True)._value),
                        np.asarray(force.getOutput(context, "uncertainty")),
                        np.asarray(force.getOutput(context, "member_energies"))))
    xg = x.clone().requires_grad_(True)
    out = model(xg, torch.tensor(Z), neighbors, shifts)
    energy = out["energy"]
    eager_forces = np.zeros((N_SYSTEM, 3))
    eager_forces[MODEL_ATOMS] = -torch.autograd.grad(energy, xg)[0].numpy()
    assert np.abs(eager_forces).max() > 1.0
    _close(results[0][0], results[1][0])
    _close(results[0][1], results[1][1])
    _close(results[0][0], float(energy), 1e-8)
    _close(results[0][1], eager_forces, 1e-8)
    members = out["member_energies"].detach().numpy()
    assert abs(members[0] - members[1]) > 1e-3  # two different members: the spread is not zero
    for k in (0, 1):
        _close(results[k][2], float(out["uncertainty"]), 1e-8)
        _close(results[k][3], members, 1e-8)
