"""SchNet-style potential for ethanol, trained on GFN2-xTB labels, then used for MD through NNForce.

1. Langevin MD of ethanol at 500 K on the GFN2-xTB surface (tblite + ASE) gives labelled frames (kJ/mol, nm).
2. A SchNet-style model is trained on energies and forces (seeded split, early stopping on validation).
3. It is exported to TorchScript (checked against the model contract) and run in OpenMM with NNForce.
The MD checks that the molecule stays intact (C-C and C-O bond lengths) at 300 K.

Run:  PYTHONPATH=python python examples/schnet_ethanol_md.py [--smoke] [--out DIR]
"""
import argparse
import os
import tempfile
import time

import numpy as np
import openmm
import openmm.unit as unit
import torch

import nnforce
from nnforce.data import split
from nnforce.data.label import xtb_md
from nnforce.export import export_model
from nnforce.models import SchNetModel
from nnforce.train import TrainConfig, evaluate, fit


def ethanol_frames(n_frames, interval, seed):
    from ase.build import molecule

    atoms = molecule("CH3CH2OH")
    return xtb_md(atoms.get_atomic_numbers(), atoms.get_positions() / 10.0, n_frames, interval=interval,
                  temperature_K=500.0, timestep_fs=0.5, equilibration_steps=200 if n_frames < 100 else 2000, seed=seed)


def start_energies(model_path, data):
    """Energy of the first frame from the exported file: through NNForce (Reference, float64) and through torch."""
    numbers = data.atomic_numbers[data.offsets[0]:data.offsets[1]]
    positions = data.positions_nm[data.offsets[0]:data.offsets[1]]
    system = openmm.System()
    for _ in numbers:
        system.addParticle(1.0)
    force = nnforce.NNForce(model_path)
    force.setAtomicNumbers([int(z) for z in numbers])
    system.addForce(force)
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(positions)
    plugin = context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    module = torch.jit.load(model_path).double()
    direct = float(module(torch.tensor(positions), torch.tensor(numbers)))
    return plugin, direct


def run_md(model_path, data, steps, seed):
    """NNForce MD at 300 K from the first training geometry; returns C-C and C-O distances along the run (nm)."""
    numbers = data.atomic_numbers[data.offsets[0]:data.offsets[1]]
    positions = data.positions_nm[data.offsets[0]:data.offsets[1]]
    masses = {1: 1.008, 6: 12.011, 8: 15.999}
    system = openmm.System()
    for z in numbers:
        system.addParticle(masses[int(z)])
    force = nnforce.NNForce(model_path)
    force.setAtomicNumbers([int(z) for z in numbers])
    system.addForce(force)
    integrator = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 5 / unit.picosecond, 0.0005 * unit.picoseconds)
    integrator.setRandomNumberSeed(seed)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("CPU"))
    context.setPositions(positions)
    context.setVelocitiesToTemperature(300 * unit.kelvin, seed)
    carbons = [i for i, z in enumerate(numbers) if z == 6]
    oxygen = [i for i, z in enumerate(numbers) if z == 8][0]
    cc, co = [], []
    for _ in range(max(1, steps // 10)):
        integrator.step(10)
        x = context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer)
        cc.append(np.linalg.norm(x[carbons[0]] - x[carbons[1]]))
        co.append(min(np.linalg.norm(x[c] - x[oxygen]) for c in carbons))
    return np.array(cc), np.array(co)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny data set and run (seconds), for the test suite")
    parser.add_argument("--out", default=None, help="directory for the exported model (default: a temporary one)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    out = args.out or tempfile.mkdtemp(prefix="schnet-ethanol-")
    n_frames, sizes, epochs, steps = (60, (40, 10, 10), 15, 200) if args.smoke else (1200, (950, 50, 200), 300, 20000)
    started = time.time()
    data = ethanol_frames(n_frames, interval=5 if args.smoke else 10, seed=args.seed)
    train, val, test = split(data, sizes, seed=args.seed)
    model = SchNetModel(elements=[1, 6, 8], features=32 if args.smoke else 64, interactions=2 if args.smoke else 3,
                        cutoff=0.5, seed=args.seed)
    config = TrainConfig(epochs=epochs, batch_size=16, lr=1e-3, force_weight=10.0, seed=args.seed,
                         early_stopping_patience=30, tensorboard=False)
    result = fit(model, train, val, config)
    metrics = evaluate(model, test)
    path = os.path.join(out, "schnet_ethanol.pt")
    export_model(model, path, metadata={"data": data.name, "test_metrics": metrics})
    start_nnforce, start_torch = start_energies(path, data)
    cc, co = run_md(path, data, steps, args.seed)
    print(f"trained {len(result.history)} epochs; test energy MAE {metrics['energy_mae_kcal_mol']:.3f} kcal/mol, "
          f"force MAE {metrics['force_mae_kcal_mol_a']:.3f} kcal/mol/A")
    print(f"MD {steps} steps at 300 K: C-C {cc.mean() * 10:.3f} +- {cc.std() * 10:.3f} A, "
          f"C-O {co.mean() * 10:.3f} +- {co.std() * 10:.3f} A; model {path}; {time.time() - started:.0f} s")
    print(f"energy at the first frame: NNForce (Reference) {start_nnforce:.6f}, torch {start_torch:.6f} kJ/mol")
    return {"metrics": metrics, "cc_nm": cc, "co_nm": co, "model_path": path,
            "start_energy_nnforce": start_nnforce, "start_energy_torch": start_torch}


if __name__ == "__main__":
    main()
