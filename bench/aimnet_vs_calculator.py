"""AIMNet2 as a .pt2 package in NNForce against aimnet's own AIMNet2Calculator (issue 23).

    PYTHONPATH=python python bench/aimnet_vs_calculator.py

The model is tests/test_potentials_aimnet.py's seeded small AIMNet2 (aimnet's bundled architecture file, narrower
layers; nothing downloaded). ``MLPotential("aimnet", model=...).createSystem`` compiles the adapter to ``.pt2``
(minutes the first time, then cached under ``$NNFORCE_CACHE``), and the System runs on OpenMM's Reference and CPU
platforms; energies and forces are compared with the calculator's (float32, as openmm-ml calls it), neutral and
charged. Writes bench/results/aimnet.md.
"""
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))


def main():
    import openmm
    import openmm.unit as unit
    import torch

    from nnforce.potentials import MLPotential
    from test_potentials_aimnet import NUMBERS, POSITIONS_NM, calculator_reference, small_aimnet2, topology_of

    torch.set_num_threads(1)
    model = small_aimnet2()
    rows = []
    for charge in (0, 1):
        start = time.process_time()
        system = MLPotential("aimnet", model=model).createSystem(topology_of(NUMBERS), charge=charge)
        build_s = time.process_time() - start
        ref_e, ref_f = calculator_reference(model, NUMBERS, POSITIONS_NM, charge)
        for platform in ("Reference", "CPU"):
            properties = {"Threads": "1"} if platform == "CPU" else {}
            context = openmm.Context(system, openmm.VerletIntegrator(0.001),
                                     openmm.Platform.getPlatformByName(platform), properties)
            context.setPositions(POSITIONS_NM * unit.nanometer)
            state = context.getState(getEnergy=True, getForces=True)
            energy = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
            forces = state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)
            rows.append((str(charge), platform, f"{build_s:.1f}", f"{ref_e:.6f}", f"{energy:.6f}",
                         f"{abs(energy - ref_e) / abs(ref_e):.1e}",
                         f"{np.abs(forces - ref_f).max() / np.abs(ref_f).max():.1e}"))
            print(" | ".join(rows[-1]), flush=True)
    timing = time_per_evaluation(model, NUMBERS, POSITIONS_NM, topology_of)
    lines = ["# AIMNet2: nnforce's .pt2 in NNForce vs aimnet's AIMNet2Calculator", "",
             "Written by `python bench/aimnet_vs_calculator.py` (aimnet 0.2.6, seeded small AIMNet2 from the wheel's "
             "models/aimnet2.yaml, 8 atoms: two waters and a CH fragment, nm positions in "
             "tests/test_potentials_aimnet.py). The System is built by `MLPotential('aimnet', model=...)`, whose "
             "default modelFormat for AIMNet2 is 'pt2' (the adapter compiled with torch.export + AOTInductor, "
             "float64); the calculator runs in float32, as openmm-ml calls it. Build: CPU seconds of "
             "createSystem in this process (the C++ compiler's child processes not counted; about 5 minutes of wall "
             "time each on this shared 2-core machine) (the .pt2 compile the first time, a cache hit afterwards; the charged System recompiles, "
             "the charge being a constant of the package). Forces: largest component difference over the largest "
             "reference component.", "",
             "| charge | platform | build CPU s | E calculator (kJ/mol) | E NNForce | rel. diff. | forces rel. diff. |",
             "|---|---|---|---|---|---|---|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    lines += ["", "## Time per energy + forces evaluation (CPU platform, 1 thread)", "",
              "CPU time of this process per `getState(getEnergy=True, getForces=True)`, 8 atoms, best of 5 rounds of "
              "50, the two Systems interleaved. Callback: an `openmm.PythonForce` calling the same "
              "`AIMNet2Calculator` (float32, `forces=True`) the way openmm-ml 1.8 does; NNForce runs float64. The "
              "model is the narrow seeded one, where the per-call Python overhead dominates: a full-size AIMNet2 "
              "would show a smaller ratio (not measured: its weights need a download).", "",
              "| System | ms per evaluation |", "|---|---|"]
    lines += [f"| {label} | {ms:.2f} |" for label, ms in timing]
    lines.append(f"\nRatio callback / NNForce: {timing[1][1] / timing[0][1]:.2f}x")
    text = "\n".join(lines) + "\n"
    path = os.path.join(HERE, "results", "aimnet.md")
    with open(path + ".tmp", "w") as handle:
        handle.write(text)
    os.replace(path + ".tmp", path)
    print(text)


def time_per_evaluation(model, numbers, positions_nm, topology_of, rounds=5, steps=50):
    import openmm
    import openmm.unit as unit
    import torch
    from aimnet.calculators import AIMNet2Calculator

    from nnforce.potentials import MLPotential
    from nnforce.units import ANGSTROM_PER_NM, KJ_MOL_PER_EV

    topology = topology_of(numbers)
    ours = MLPotential("aimnet", model=model).createSystem(topology)  # the cached .pt2
    calculator = AIMNet2Calculator(model, device="cpu")
    z = torch.tensor([numbers])

    def compute(state):
        coord = torch.tensor(state.getPositions(asNumpy=True).value_in_unit(unit.nanometer) * ANGSTROM_PER_NM,
                             dtype=torch.float32).unsqueeze(0)
        result = calculator({"coord": coord, "numbers": z, "charge": torch.tensor([0.0])}, forces=True)
        return (float(result["energy"].detach().sum()) * KJ_MOL_PER_EV,
                result["forces"][0].detach().double().numpy() * KJ_MOL_PER_EV * ANGSTROM_PER_NM)

    callback = openmm.System()
    for atom in topology.atoms():
        callback.addParticle(atom.element.mass)
    callback.addForce(openmm.PythonForce(compute))
    contexts = []
    for system in (ours, callback):
        context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("CPU"),
                                 {"Threads": "1"})
        context.setPositions(positions_nm * unit.nanometer)
        context.getState(getEnergy=True, getForces=True)  # warm-up
        contexts.append(context)
    best = [float("inf"), float("inf")]
    for _ in range(rounds):
        for k, context in enumerate(contexts):
            start = time.process_time()
            for _ in range(steps):
                context.getState(getEnergy=True, getForces=True)
            best[k] = min(best[k], (time.process_time() - start) / steps * 1000.0)
    return [("NNForce (.pt2)", best[0]), ("PythonForce + AIMNet2Calculator", best[1])]


if __name__ == "__main__":
    main()
