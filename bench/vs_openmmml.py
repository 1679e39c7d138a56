"""openmm-ml (PythonForce) vs nnforce.potentials (NNForce, TorchScript) for each model family, side by side.

Run: `python bench/vs_openmmml.py --openmmml-python /path/to/openmmml-venv/bin/python [--rounds 3]`;
writes bench/results/vs_openmmml.md. openmm-ml is the released `openmmml` from PyPI, installed in its own
environment (with the same torch 2.13.0 and family packages), and runs in its own process as its users run it.

For each family one openmm-ml worker and one nnforce worker stay alive; the main process alternates them
(round r: nnforce then openmm-ml on every system), 1 thread each (torch and OpenMM's CPU platform), and records
the CPU time per step each worker's process got (time.process_time) and the wall time. Systems: alanine
dipeptide in vacuum (22 atoms) and a cubic TIP3P water box (1,038 atoms, 2.2 nm). Models are float32 (openmm-ml's
MACE/NequIP default is the model's dtype; both sides get the same file or object), random-initialised and seeded,
built with each package's own constructors (no pretrained weights can be downloaded here), ANI-1x from the
torchani 2.1.1 wheel.

Shims on the openmm-ml side, only where it cannot get a model offline: its ANI path calls
torchani.models.ANI2x() (a download), so torchani.models.ANI2x is replaced by the wheel's ANI-1x ensemble; its
NequIP path calls nequip's load_saved_model (a trained checkpoint), so that returns the seeded model object.
Everything else is openmm-ml's own code.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
FAMILIES = ["ani", "mace", "torchmdnet", "nequip"]
SYSTEMS = {"ala2 vacuum (22 atoms)": "ala2", "water box (1,038 atoms)": "water"}
STEPS = {"ala2": 20, "water": 2}


# ---------------------------------------------------------------------------------------------- worker side
def build_systems():
    import openmm.app as app
    import openmm.unit as unit

    sys.path.insert(0, os.path.join(ROOT, "tests", "fixtures"))
    import make_alanine

    path = os.path.join(os.environ["NNFORCE_BENCH_DIR"], "ala2.pdb")
    if not os.path.exists(path):
        make_alanine.alanine_dipeptide_pdb(path)
    pdb = app.PDBFile(path)
    water = app.Modeller(app.Topology(), [])
    water.addSolvent(app.ForceField("amber14/tip3p.xml"), boxSize=openmm.Vec3(2.2, 2.2, 2.2) * unit.nanometer)
    return {"ala2": (pdb.topology, pdb.positions), "water": (water.topology, water.positions)}


def make_nequip(dtype="float32"):
    from nequip.utils.global_state import set_global_state

    set_global_state()
    from nequip.model import NequIPGNNModel

    return NequIPGNNModel(seed=2026, model_dtype=dtype, r_max=5.0, type_names=["H", "C", "N", "O"], num_layers=3,
                          l_max=1, num_features=32, avg_num_neighbors=12.0,
                          per_type_energy_shifts={"H": -13.57, "C": -1029.41, "N": -1484.82, "O": -2041.85},
                          per_type_energy_scales={"H": 0.5, "C": 0.5, "N": 0.5, "O": 0.5})


def potential_for(side, family, folder):
    if side == "nnforce":
        sys.path.insert(0, os.path.join(ROOT, "python"))
        from nnforce.potentials import MLPotential

        if family == "mace":
            return MLPotential("mace", modelPath=os.path.join(folder, "mace.model")), {"precision": "single"}
        if family == "ani":
            return MLPotential("ani1x"), {"precision": "single"}
        if family == "torchmdnet":
            return MLPotential("torchmdnet", modelPath=os.path.join(folder, "tensornet.ckpt")), {}
        return MLPotential("nequip", model=make_nequip()), {}
    from openmmml import MLPotential

    if family == "mace":
        return MLPotential("mace", modelPath=os.path.join(folder, "mace.model")), {"precision": "single"}
    if family == "ani":
        import torchani

        sys.path.insert(0, os.path.join(ROOT, "python"))
        from nnforce.potentials.ani import torchani_ani1x  # torchani's own constructors on the wheel's files

        torchani.models.ANI2x = lambda **kwargs: torchani_ani1x()
        return MLPotential("ani2x"), {}
    if family == "torchmdnet":
        return MLPotential("torchmdnet", modelPath=os.path.join(folder, "tensornet.ckpt")), {}
    import nequip.model.saved_models.load_utils as load_utils

    model = make_nequip()
    load_utils.load_saved_model = lambda *args, **kwargs: model
    return MLPotential("nequip", modelPath="seeded-model", lengthScale=0.1, energyScale=96.48533212331002), {}


def worker(side, family):
    import openmm
    import openmm.unit as unit
    import torch

    torch.set_num_threads(1)
    folder = os.environ["NNFORCE_BENCH_DIR"]
    potential, options = potential_for(side, family, folder)
    systems = build_systems()
    contexts = {}
    for key, (topology, positions) in systems.items():
        system = potential.createSystem(topology, **options)
        integrator = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond, 0.5 * unit.femtosecond)
        integrator.setRandomNumberSeed(1)
        context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("CPU"), {"Threads": "1"})
        context.setPositions(positions)
        state = context.getState(getEnergy=True, getForces=True)
        energy = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
        forces = state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)
        np.save(os.path.join(folder, f"forces-{side}-{family}-{key}.npy"), np.asarray(forces))
        integrator.step(1)  # warm-up (lazy compilation, first neighbor list)
        contexts[key] = (context, integrator, positions, energy)
    print(json.dumps({"ready": True, "energies": {k: v[3] for k, v in contexts.items()}}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        context, integrator, positions, _ = contexts[request["system"]]
        context.setPositions(positions)
        cpu, wall = time.process_time(), time.perf_counter()
        integrator.step(request["steps"])
        context.getState(getEnergy=True)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        print(json.dumps({"cpu_ms": 1000 * cpu / request["steps"], "wall_ms": 1000 * wall / request["steps"]}),
              flush=True)


# ---------------------------------------------------------------------------------------------- main side
def make_models(folder):
    """The MACE file and TorchMD-Net checkpoint both sides load (float32, seeded, the packages' constructors)."""
    import torch

    sys.path.insert(0, os.path.join(ROOT, "python"))
    from nnforce.potentials.mace import import_mace

    modules = import_mace()
    from e3nn import o3
    from torchmdnet.models.model import create_model
    from torchmdnet.scripts.train import get_argparse

    torch.manual_seed(2026)
    mace = modules.ScaleShiftMACE(
        atomic_inter_scale=0.6, atomic_inter_shift=0.0, r_max=5.0, num_bessel=8, num_polynomial_cutoff=5, max_ell=3,
        interaction_cls=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
        interaction_cls_first=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
        num_interactions=2, num_elements=4, hidden_irreps=o3.Irreps("96x0e"), MLP_irreps=o3.Irreps("16x0e"),
        gate=torch.nn.functional.silu, atomic_energies=np.array([-13.57, -1029.41, -1484.82, -2041.85]),
        avg_num_neighbors=12.0, atomic_numbers=[1, 6, 7, 8], correlation=3, radial_type="bessel").float()
    torch.save(mace, os.path.join(folder, "mace.model"))
    args = vars(get_argparse().parse_args(["--model", "tensornet", "--embedding-dimension", "128", "--num-layers",
                                           "2", "--num-rbf", "32", "--cutoff-upper", "5.0", "--precision", "32",
                                           "--max-num-neighbors", "128"]))
    tensornet = create_model(dict(args))
    torch.save({"hyper_parameters": args, "state_dict": {"model." + k: v for k, v in tensornet.state_dict().items()}},
               os.path.join(folder, "tensornet.ckpt"))


class Worker:
    def __init__(self, python, side, family, folder):
        env = dict(os.environ, OMP_NUM_THREADS="1", NNFORCE_BENCH_DIR=folder)
        self.process = subprocess.Popen([python, os.path.abspath(__file__), "--worker", side, family],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        self.ready = self._read()

    def _read(self):
        while True:
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError(f"worker {self.process.args[-2:]} ended: see its stderr above")
            if line.startswith("{"):
                return json.loads(line)

    def run(self, system, steps):
        self.process.stdin.write(json.dumps({"system": system, "steps": steps}) + "\n")
        self.process.stdin.flush()
        return self._read()

    def close(self):
        self.process.stdin.close()
        self.process.wait(timeout=60)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--openmmml-python", required=True, help="python of the environment with openmmml installed")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--families", nargs="+", default=FAMILIES)
    parser.add_argument("--workdir", default=os.path.join(ROOT, ".cache", "bench-vs-openmmml"))
    args = parser.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    make_models(args.workdir)
    rows = []
    for family in args.families:
        ours = Worker(sys.executable, "nnforce", family, args.workdir)
        theirs = Worker(args.openmmml_python, "openmmml", family, args.workdir)
        times = {(side, key): [] for side in ("nnforce", "openmmml") for key in STEPS}
        for _ in range(args.rounds):
            for key, steps in STEPS.items():
                times[("nnforce", key)].append(ours.run(key, steps))
                times[("openmmml", key)].append(theirs.run(key, steps))
        ours.close()
        theirs.close()
        for label, key in SYSTEMS.items():
            rows.append(row(family, label, key, times, ours.ready, theirs.ready, args.workdir))
        write(rows, args)  # after every family, so a stopped run still leaves the families it measured


def row(family, label, key, times, ours, theirs, folder):
    cpu_ours = statistics.median(t["cpu_ms"] for t in times[("nnforce", key)])
    cpu_theirs = statistics.median(t["cpu_ms"] for t in times[("openmmml", key)])
    e_ours, e_theirs = ours["energies"][key], theirs["energies"][key]
    f_ours = np.load(os.path.join(folder, f"forces-nnforce-{family}-{key}.npy"))
    f_theirs = np.load(os.path.join(folder, f"forces-openmmml-{family}-{key}.npy"))
    rel_e = abs(e_ours - e_theirs) / abs(e_theirs)
    force_ratio = float(np.linalg.norm(f_theirs) / np.linalg.norm(f_ours))
    rel_f = float(np.abs(f_ours - f_theirs).max() / np.abs(f_ours).max())
    speedup = cpu_theirs / cpu_ours
    goal_speed = speedup >= 1.5 if key == "ala2" else speedup >= 1.0
    return [family, label, f"{cpu_theirs:.2f}", f"{cpu_ours:.2f}", f"{speedup:.2f}x",
            "met" if goal_speed else "not met", f"{e_theirs:.4f}", f"{rel_e:.1e}", "met" if rel_e <= 1e-4 else "not met",
            f"{rel_f:.1e}", f"{force_ratio:.3f}"]


def write(rows, args):
    sys.path.insert(0, HERE)
    from _common import write_table

    header = ["family", "system", "openmm-ml ms/step (CPU)", "nnforce ms/step (CPU)", "speed-up", "speed goal",
              "openmm-ml energy kJ/mol", "energy rel. diff", "energy goal (1e-4, float32)", "max force diff / max |F|",
              "|F openmm-ml| / |F nnforce|"]
    notes = [
        f"CPU platform, 1 thread, float32 models, median over {args.rounds} interleaved rounds of CPU time per step "
        "(time.process_time of each worker process; LangevinMiddle 0.5 fs). nnforce runs TorchScript; the .pt2 "
        "variant is not in this table (the pt2 branch's to_pt2 was not merged when this ran).",
        "Speed goals: >= 1.5x at 22 atoms, >= 1.0x (never slower) at 1,038 atoms. Energy goal: 1e-4 relative in float32.",
        "Forces are compared too: openmm-ml's ANI path hands PythonForce the gradient in kJ/mol/A as kJ/mol/nm "
        "(forces 10x too small), which the last column shows as 0.1.",
        "Shims on the openmm-ml side (module docstring): ANI2x() returns the wheel's ANI-1x; NequIP's loader returns "
        "the seeded model. Versions: " + versions(),
    ]
    write_table("vs_openmmml.md", "openmm-ml (PythonForce) vs nnforce.potentials (NNForce)", header, rows, notes)


def versions():
    import importlib.metadata as md

    names = ["torch", "openmm", "mace-torch", "e3nn", "torchani", "torchmd-net", "nequip"]
    out = []
    for name in names:
        try:
            out.append(f"{name} {md.version(name)}")
        except md.PackageNotFoundError:
            out.append(f"{name} missing")
    return ", ".join(out)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        import openmm  # noqa: F401

        worker(sys.argv[2], sys.argv[3])
    else:
        main()
