"""`nnforce export --format pt2` on a training checkpoint (the trainable pair model, compiled in single precision), the
package through NNForce against the eager model, and `nnforce simulate` running the .pt2."""
import os

import numpy as np
import openmm
import openmm.app as app
import pytest
import torch

import nnforce
from nnforce.export import read_metadata
from test_train_data_helpers import ETHANOL_NM, ETHANOL_Z


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from nnforce.cli import main
    from nnforce.data import Dataset, split
    from nnforce.train import TrainConfig, build_model, fit

    directory = tmp_path_factory.mktemp("pt2cli")
    rng = np.random.default_rng(0)
    frames = [ETHANOL_NM + rng.normal(scale=0.003, size=ETHANOL_NM.shape) for _ in range(12)]
    energies = [-400000.0 + 10 * k for k in range(12)]  # self energies dominate, as in real data
    train, val = split(Dataset.from_frames(ETHANOL_Z, frames, energies), (8, 4), seed=0)
    spec = {"type": "pair", "elements": [1, 6, 8]}  # the pair model: the quickest .pt2 to compile (ANI-style has its own test in test_pt2.py)
    fit(build_model(spec), train, val, TrainConfig(epochs=1, log_dir=str(directory / "run")), model_spec=spec)
    out = directory / "model.pt2"
    assert main(["export", str(directory / "run" / "best.ckpt"), "-o", str(out), "--format", "pt2",
                 "--precision", "single"]) == 0
    from nnforce.train.checkpoint import model_from_checkpoint

    model, _ = model_from_checkpoint(str(directory / "run" / "best.ckpt"))
    return out, model, directory


def test_cli_pt2_metadata_and_energy(exported):
    out, model, _ = exported
    meta = read_metadata(out)
    assert meta["format"] == "nnforce-pt2" and meta["precision"] == "single" and meta["model_spec"]["type"] == "pair"
    assert meta["inputs"] == ["positions", "neighbors", "shifts", "atomic_numbers"]
    force = nnforce.NNForce(str(out))
    force.setAtomicNumbers([int(v) for v in ETHANOL_Z])
    force.setNeighborList(model.cutoff, 0.05)
    system = openmm.System()
    for _ in ETHANOL_Z:
        system.addParticle(12.0)
    system.addForce(force)
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("CPU"))
    context.setPositions(ETHANOL_NM)
    energy = context.getState(getEnergy=True).getPotentialEnergy()._value
    with torch.no_grad():
        e64 = float(model.double()(torch.tensor(ETHANOL_NM), torch.tensor(ETHANOL_Z)))
        interaction = float(model.double().atomic_energies(torch.tensor(ETHANOL_NM), torch.tensor(ETHANOL_Z),
                                                           include_self=False).sum())
    # the float32 package agrees with float64 to float32 precision of the interaction energy
    assert energy == pytest.approx(e64, abs=1e-5 * max(1.0, abs(interaction)) + 1e-4)


def test_cli_simulate_runs_pt2(exported):
    from nnforce.cli import main

    out, model, directory = exported
    topology = app.Topology()
    residue = topology.addResidue("ETH", topology.addChain())
    for k, z in enumerate(ETHANOL_Z):
        topology.addAtom(f"X{k}", app.Element.getByAtomicNumber(z), residue)
    pdb = directory / "ethanol.pdb"
    with open(pdb, "w") as handle:
        app.PDBFile.writeFile(topology, ETHANOL_NM * 10.0, handle)  # Angstrom in the PDB
    run = directory / "sim"
    assert main(["simulate", str(pdb), str(out), "-o", str(run), "--steps", "20", "--platform", "CPU",
                 "--trajectory", "none", "--no-progress", "--no-minimize", "--report-interval", "10",
                 "--neighbor-skin", "0.05"]) == 0
    assert os.listdir(run)


def test_cli_pt2_device(exported, capsys):
    """The package records the device it was compiled for; --device is refused for TorchScript output and, without a
    CUDA torch and a GPU, for cuda, each with one line saying why."""
    from nnforce.cli import main

    out, _, directory = exported
    assert read_metadata(out)["device"] == "cpu"
    checkpoint = str(directory / "run" / "best.ckpt")
    capsys.readouterr()
    assert main(["export", checkpoint, "-o", str(directory / "m.pt"), "--device", "cuda"]) == 2
    assert "--device cuda applies to --format pt2 only" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(["export", checkpoint, "-o", str(directory / "m.pt2"), "--device", "cuda"]) == 2
        assert "device='cuda'" in capsys.readouterr().err
        assert not (directory / "m.pt2").exists()
