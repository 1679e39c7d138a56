"""openmm-ml (PythonForce) vs nnforce.potentials (NNForce: TorchScript or .pt2) for each model family, side by side.

Run: `python bench/vs_openmmml.py --openmmml-python /path/to/openmmml-venv/bin/python [--rounds 3]
[--format torchscript|pt2|fastest]`; writes bench/results/vs_openmmml.md. ``--format fastest`` (default) runs an
nnforce worker per format (``MLPotential.createSystem(..., modelFormat=...)``), interleaved with openmm-ml, and
reports the faster one per system; a family whose ``.pt2`` does not compile keeps TorchScript and the table says
why. openmm-ml is the released `openmmml` from PyPI, installed in its own
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
One more, so both sides evaluate the same weights: openmm-ml loads TorchMD-Net checkpoints with
``check_errors=False``; torchmd-net 3.1.0's load_model writes its keyword arguments into the checkpoint's own
hyper_parameters dict and then takes "check_errors in hyper_parameters" as the sign of an old-format checkpoint,
so it permutes TensorNet's linear layers of a current checkpoint ("compatibility_load"). The shim adds
``compatibility_load=False`` to openmm-ml's call (``--no-torchmdnet-shim`` runs openmm-ml as released).
Everything else is openmm-ml's own code.

Energies are compared in float64 (``precision="double"``, the same ``returnEnergyType`` on both sides) where
openmm-ml can run float64 (MACE, NequIP); its ANI and TorchMD-Net paths hand the model float32 positions
whatever the model's dtype, so there openmm-ml's float32 energy is compared with nnforce's float64 energy.
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
FORMATS = ("torchscript", "pt2")
KJ_MOL_PER_EV = 96.48533212331002  # nnforce.units' value, given to openmm-ml (its TorchMD-Net default: 96.4916)
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


def potential_for(side, family, folder, model_format="torchscript", nequip_dtype="float32"):
    if side == "nnforce":
        sys.path.insert(0, os.path.join(ROOT, "python"))
        from nnforce.potentials import MLPotential

        options = {"modelFormat": model_format}
        if family == "mace":
            return MLPotential("mace", modelPath=os.path.join(folder, "mace.model")), {
                "precision": "single", "returnEnergyType": "interaction_energy", **options}
        if family == "ani":
            return MLPotential("ani1x"), {"precision": "single", **options}
        if family == "torchmdnet":
            return MLPotential("torchmdnet", modelPath=os.path.join(folder, "tensornet.ckpt")), options
        return MLPotential("nequip", model=make_nequip(nequip_dtype)), options
    from openmmml import MLPotential

    if family == "mace":
        return MLPotential("mace", modelPath=os.path.join(folder, "mace.model")), {
            "precision": "single", "returnEnergyType": "interaction_energy"}
    if family == "ani":
        import torchani

        sys.path.insert(0, os.path.join(ROOT, "python"))
        from nnforce.potentials.ani import torchani_ani1x  # torchani's own constructors on the wheel's files

        torchani.models.ANI2x = lambda **kwargs: torchani_ani1x()
        return MLPotential("ani2x"), {}
    if family == "torchmdnet":
        if os.environ.get("NNFORCE_BENCH_TMD_SHIM") == "1":
            import torchmdnet.models.model as tmn_model

            released = tmn_model.load_model
            tmn_model.load_model = lambda *args, **kwargs: released(*args, compatibility_load=False, **kwargs)
        return MLPotential("torchmdnet", modelPath=os.path.join(folder, "tensornet.ckpt"),
                           energyScale=KJ_MOL_PER_EV), {}
    import nequip.model.saved_models.load_utils as load_utils

    # one seeded model per dtype, looked up by the modelPath openmm-ml passes to the loader when it builds a System:
    # a single replaced loader would hand every later System the model made last (the float64 one made for the
    # energy comparison, whose weights differ: the 2026-12-07 run's "periodic .pt2 forces wrong" came from that)
    models = dict(getattr(load_utils.load_saved_model, "bench_models", {}))
    models[f"seeded-{nequip_dtype}"] = make_nequip(nequip_dtype)

    def load_saved_model(path, *args, **kwargs):
        return models[path]

    load_saved_model.bench_models = models
    load_utils.load_saved_model = load_saved_model
    return MLPotential("nequip", modelPath=f"seeded-{nequip_dtype}", lengthScale=0.1,
                       energyScale=96.48533212331002), {}


def energy_float64(potential, options, topology, positions):
    """The potential's energy in float64 (``precision="double"``), Reference platform."""
    import openmm
    import openmm.unit as unit

    system = potential.createSystem(topology, **dict(options, precision="double"))
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(positions)
    return context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)


def worker(side, family, model_format):
    import openmm
    import openmm.unit as unit
    import torch

    torch.set_num_threads(1)
    folder = os.environ["NNFORCE_BENCH_DIR"]
    potential, options = potential_for(side, family, folder, model_format)
    systems = build_systems()
    contexts, energies64, skipped = {}, {}, {}
    tag = f"{side}-{model_format}" if side == "nnforce" else side
    for key, (topology, positions) in systems.items():
        try:
            system = potential.createSystem(topology, **options)
        except ValueError as error:  # a format refused for this system (e.g. periodic torchani .pt2): say why
            if side != "nnforce" or model_format == "torchscript":
                raise
            skipped[key] = str(error)
            continue
        integrator = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond, 0.5 * unit.femtosecond)
        integrator.setRandomNumberSeed(1)
        context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("CPU"), {"Threads": "1"})
        context.setPositions(positions)
        state = context.getState(getEnergy=True, getForces=True)
        energy = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
        forces = state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)
        np.save(os.path.join(folder, f"forces-{tag}-{family}-{key}.npy"), np.asarray(forces))
        integrator.step(1)  # warm-up (lazy compilation, first neighbor list)
        contexts[key] = (context, integrator, positions, energy)
        if os.environ.get("NNFORCE_BENCH_ENERGY64") == "1":
            if side == "openmmml" and family in ("ani", "torchmdnet"):
                energies64[key] = energy  # openmm-ml's ANI/TorchMD-Net paths run float32 only (module docstring)
            else:
                pair = (potential, options)
                if family == "nequip":  # nequip bakes model_dtype in (casts inside): a float64 model, same seed
                    pair = potential_for(side, family, folder, model_format, "float64")
                energies64[key] = energy_float64(*pair, topology, positions)
    print(json.dumps({"ready": True, "energies": {k: v[3] for k, v in contexts.items()}, "energies64": energies64,
                      "skipped": skipped}),
          flush=True)
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
    def __init__(self, python, side, family, folder, model_format="-", energy64=False, torchmdnet_shim=True):
        env = dict(os.environ, OMP_NUM_THREADS="1", NNFORCE_BENCH_DIR=folder,
                   NNFORCE_BENCH_ENERGY64="1" if energy64 else "0",
                   NNFORCE_BENCH_TMD_SHIM="1" if torchmdnet_shim else "0")
        self.log = os.path.join(folder, f"worker-{side}-{model_format}-{family}.log")
        with open(self.log, "w") as log:
            self.process = subprocess.Popen([python, os.path.abspath(__file__), "--worker", side, family, model_format],
                                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True,
                                            env=env)
        self.ready = self._read()

    def error_line(self):
        """The last error line of the worker's stderr (why it ended)."""
        with open(self.log) as log:
            lines = [line.strip() for line in log if "Error" in line or "error" in line]
        return lines[-1][:300] if lines else "no error line"

    def _read(self):
        while True:
            line = self.process.stdout.readline()
            if not line:
                self.process.wait()
                raise RuntimeError(f"worker {self.process.args[-3:]} ended: {self.error_line()} (log {self.log})")
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
    parser.add_argument("--format", choices=FORMATS + ("fastest",), default="fastest",
                        help="nnforce's model format; fastest: time both, report the faster per system")
    parser.add_argument("--torchscript-only", nargs="*", default=[], metavar="FAMILY",
                        help="families timed in TorchScript only (saves their .pt2 compilation)")
    parser.add_argument("--no-torchmdnet-shim", action="store_true",
                        help="run openmm-ml's TorchMD-Net loading as released (see the module docstring)")
    parser.add_argument("--results-name", default="vs_openmmml.md", help="file name under bench/results")
    parser.add_argument("--workdir", default=os.path.join(ROOT, ".cache", "bench-vs-openmmml"))
    args = parser.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    make_models(args.workdir)
    formats = FORMATS if args.format == "fastest" else (args.format,)
    rows, failures = [], []
    for family in args.families:
        ours = {}
        for model_format in (("torchscript",) if family in args.torchscript_only else formats):
            try:
                ours[model_format] = Worker(sys.executable, "nnforce", family, args.workdir, model_format,
                                            energy64=not ours)
            except RuntimeError as error:
                failures.append(f"{family} {model_format}: {error}")
        theirs = Worker(args.openmmml_python, "openmmml", family, args.workdir, energy64=True,
                        torchmdnet_shim=not args.no_torchmdnet_shim)
        if not ours:
            theirs.close()
            continue
        times = {(side, key): [] for side in list(ours) + ["openmmml"] for key in STEPS}
        for _ in range(args.rounds):
            for key, steps in STEPS.items():
                for model_format, process in ours.items():
                    if key not in process.ready.get("skipped", {}):
                        times[(model_format, key)].append(process.run(key, steps))
                times[("openmmml", key)].append(theirs.run(key, steps))
        for process in list(ours.values()) + [theirs]:
            process.close()
        for model_format, process in ours.items():
            for key, why in process.ready.get("skipped", {}).items():
                failures.append(f"{family} {model_format} on {key}: {why}")
        for label, key in SYSTEMS.items():
            rows.append(row(family, label, key, times, {f: w.ready for f, w in ours.items()}, theirs.ready,
                            args.workdir))
        write(rows, failures, args)  # after every family, so a stopped run still leaves the families it measured
    write(rows, failures, args)


def row(family, label, key, times, ours, theirs, folder):
    ours = {f: ready for f, ready in ours.items() if times[(f, key)]}  # formats refused for this system left out
    cpu = {side: statistics.median(t["cpu_ms"] for t in times[(side, key)])
           for side in list(ours) + ["openmmml"]}
    first = next(iter(ours))  # the worker that computed the float64 energies
    agree = {f: abs(ours[f]["energies"][key] - ours[first]["energies"][key]) <= 1e-4 * abs(ours[first]["energies"][key])
             for f in ours}  # a format whose float32 energy differs from the first format's is never "fastest"
    best = min((f for f in ours if agree[f]), key=lambda f: cpu[f])
    e_theirs, e_ours = theirs["energies64"][key], ours[first]["energies64"][key]
    f_ours = np.load(os.path.join(folder, f"forces-nnforce-{best}-{family}-{key}.npy"))
    f_theirs = np.load(os.path.join(folder, f"forces-openmmml-{family}-{key}.npy"))
    rel_e = abs(e_ours - e_theirs) / abs(e_theirs)
    formats_agree = "-"
    if len(ours) > 1:
        a, b = (ours[f]["energies"][key] for f in FORMATS)
        formats_agree = f"{abs(a - b) / abs(a):.1e}"
    force_ratio = float(np.linalg.norm(f_theirs) / np.linalg.norm(f_ours))
    rel_f = float(np.abs(f_ours - f_theirs).max() / np.abs(f_ours).max())
    speedup = cpu["openmmml"] / cpu[best]
    goal_speed = speedup >= 1.5 if key == "ala2" else speedup >= 1.0
    float32_only = family in ("ani", "torchmdnet")
    return [family, label, f"{cpu['openmmml']:.2f}",
            f"{cpu['torchscript']:.2f}" if "torchscript" in cpu else "-",
            f"{cpu['pt2']:.2f}" if "pt2" in cpu else "-", best, f"{speedup:.2f}x",
            "met" if goal_speed else "not met",
            f"{e_theirs:.4f}" + (" (float32)" if float32_only else ""), f"{rel_e:.1e}",
            "met" if rel_e <= 1e-6 else "not met", formats_agree, f"{rel_f:.1e}", f"{force_ratio:.3f}"]


def write(rows, failures, args):
    sys.path.insert(0, HERE)
    from _common import write_table

    header = ["family", "system", "openmm-ml ms/step (CPU)", "nnforce TorchScript ms/step (CPU)",
              "nnforce .pt2 ms/step (CPU)", "fastest", "speed-up (fastest)", "speed goal",
              "openmm-ml energy kJ/mol (float64)", "energy rel. diff (float64)", "energy goal (1e-6)",
              ".pt2 vs TorchScript energy (float32)", "max force diff / max |F| (float32)",
              "|F openmm-ml| / |F nnforce|"]
    notes = [
        f"CPU platform, 1 thread, float32 models for the timing, median over {args.rounds} interleaved rounds of CPU "
        "time per step (time.process_time of each worker process; LangevinMiddle 0.5 fs; per round: each nnforce "
        "format, then openmm-ml, on each system). Format option: " + args.format + ".",
        "Speed goals: >= 1.5x at 22 atoms, >= 1.0x (never slower) at 1,038 atoms, for the fastest nnforce format. "
        "Energy goal: 1e-6 relative in float64 (precision='double' on both sides, Reference platform; MACE with "
        "returnEnergyType='interaction_energy' on both sides; nnforce's float64 energy from the TorchScript worker "
        "when both formats run). openmm-ml's ANI and TorchMD-Net paths are float32 only (they convert positions to "
        "float32), so those rows compare openmm-ml's float32 energy with nnforce's float64 energy.",
        "Forces are compared too (float32, the fastest format vs openmm-ml): openmm-ml's ANI path hands PythonForce "
        "the gradient in kJ/mol/A as kJ/mol/nm (forces 10x too small), which the last column shows as 0.1.",
        "Shims on the openmm-ml side (module docstring): ANI2x() returns the wheel's ANI-1x; NequIP's loader returns "
        "the seeded model; TorchMD-Net: energyScale=96.48533 given explicitly (openmm-ml's default is 96.4916) and "
        + ("no compatibility_load shim (openmm-ml as released)" if args.no_torchmdnet_shim else
           "compatibility_load=False added to its load_model call (torchmd-net 3.1.0 otherwise permutes the "
           "checkpoint's weights because of openmm-ml's check_errors=False)") + ". Versions: " + versions(),
    ]
    notes += [f"Not run: {failure}" for failure in failures]
    if args.torchscript_only:
        notes.append(f"TorchScript only in this run (--torchscript-only): {', '.join(args.torchscript_only)}.")
    write_table(args.results_name, "openmm-ml (PythonForce) vs nnforce.potentials (NNForce)", header, rows, notes)


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

        worker(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        main()
