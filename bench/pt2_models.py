"""Every model in nnforce.models compiles to a .pt2 and runs through NNForce: to_pt2 (with its checks) and, for the
trainable model types, `nnforce export --format pt2` on a training checkpoint.

For each model: compile time, the package against the eager model (energy, forces, extra outputs; to_pt2's check), its
forces against finite differences of its energy, and the package through NNForce (Reference platform, float64) against
the model's TorchScript file through NNForce, on alanine dipeptide (22 atoms, neighbor list). Writes
bench/results/pt2_models.md.

Usage: python bench/pt2_models.py [--models lj pair radial ani schnet aniencoder committee ani1x] [--cli ani schnet ...]
"""
import argparse
import io
import os
import resource
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import openmm  # noqa: E402
import openmm.app as app  # noqa: E402

import nnforce  # noqa: E402
from _common import context, write_table  # noqa: E402
from nnforce.export import to_pt2  # noqa: E402
from nnforce.models import (ANIEncoder, ANIModel, Committee, LennardJones, PairPotential, RadialMLP,  # noqa: E402
                            SchNetModel)

ELEMENTS = [1, 6, 7, 8]
PDB = os.path.join(os.path.dirname(nnforce.__file__), "demo", "alanine_dipeptide.pdb")


def alanine():
    pdb = app.PDBFile(PDB)
    x = np.asarray(pdb.getPositions(asNumpy=True).value_in_unit(openmm.unit.nanometer))
    return x, [a.element.atomic_number for a in pdb.topology.atoms()]


def models():
    from nnforce.models.ani1x import ani1x

    return {
        "lj": (LennardJones(epsilon=0.5, sigma=0.25, cutoff=0.6), False),
        "pair": (PairPotential(ELEMENTS, cutoff=0.6), True),
        "radial": (RadialMLP(ELEMENTS, cutoff=0.52, seed=1), True),
        "ani": (ANIModel(ELEMENTS, hidden=[64, 32], seed=1), True),
        "schnet": (SchNetModel(ELEMENTS, seed=1), True),
        "aniencoder": (ANIEncoder(ELEMENTS, seed=1), True),
        "committee": (Committee(ANIModel(ELEMENTS, hidden=[32, 16], ensemble_size=4, seed=1)), True),
        "ani1x": (ani1x(), True),
    }


def example_for(x, z, cutoff, takes_z):
    n = len(z)
    ij = torch.triu_indices(n, n, 1)
    xt = torch.tensor(x)
    keep = ((xt[ij[1]] - xt[ij[0]]) ** 2).sum(1) < (cutoff + 0.05) ** 2
    example = {"positions": xt, "neighbors": ij[:, keep], "shifts": torch.zeros(int(keep.sum()), 3, dtype=torch.float64)}
    if takes_z:
        example["atomic_numbers"] = torch.tensor(z)
    return example


def nnforce_energy_forces(model_file, x, z, cutoff):
    force = nnforce.NNForce(model_file)
    force.setNeighborList(cutoff, 0.05)
    force.setAtomicNumbers(z)
    force.setProperty("precision", "double")
    simulation = context(force, len(z), "Reference")
    simulation.setPositions(x)
    state = simulation.getState(getEnergy=True, getForces=True)
    outputs = {name: np.asarray(force.getOutput(simulation, name)) for name in force.getOutputNames(simulation)
               if name not in ("energy", "forces")}
    return state.getPotentialEnergy()._value, np.asarray(state.getForces(asNumpy=True)._value), outputs


def relative(a, b):
    return float(np.abs(np.asarray(a) - np.asarray(b)).max()) / max(1.0, float(np.abs(np.asarray(b)).max()))


def check_model(name, model, takes_z, directory):
    x, z = alanine()
    cutoff = float(getattr(model, "cutoff", getattr(model, "cutoff_nm", 0.5)))
    model = model.double().eval()
    start = time.perf_counter()
    info = to_pt2(model, os.path.join(directory, f"{name}.pt2"), example_for(x, z, cutoff, takes_z), precision="double")
    compile_s = time.perf_counter() - start
    script = os.path.join(directory, f"{name}.pt")
    torch.jit.save(torch.jit.script(model), script)
    e2, f2, o2 = nnforce_energy_forces(os.path.join(directory, f"{name}.pt2"), x, z, cutoff)
    e1, f1, o1 = nnforce_energy_forces(script, x, z, cutoff)
    checks = info["checks"]
    extra = ", ".join(f"{k} {relative(o2[k], o1[k]):.1e}" for k in o2) or "-"
    return [name, "to_pt2", f"{compile_s:.0f}", f"{checks['pt2_vs_eager_energy']:.1e}",
            f"{checks['pt2_vs_eager_forces']:.1e}", f"{checks['pt2_force_fd_max_error_kj_mol_nm']:.1e} (max abs F {np.abs(f1).max():.1e})",
            f"{relative(e2, e1):.1e}", f"{relative(f2, f1):.1e}", extra]


def check_cli(kind, directory):
    """`nnforce export --format pt2` on a one-epoch training checkpoint of model type ``kind``."""
    from nnforce.cli import main
    from nnforce.data import Dataset, split
    from nnforce.train import TrainConfig, build_model, fit
    from nnforce.train.checkpoint import model_from_checkpoint

    x, z = alanine()
    rng = np.random.default_rng(0)
    frames = [x + rng.normal(scale=0.003, size=x.shape) for _ in range(12)]
    energies = [-400000.0 + 10 * k for k in range(12)]
    train, val = split(Dataset.from_frames(np.array(z), frames, energies), (8, 4), seed=0)
    spec = {"type": kind, "elements": ELEMENTS}
    run = os.path.join(directory, f"run-{kind}")
    fit(build_model(spec), train, val, TrainConfig(epochs=1, log_dir=run), model_spec=spec)
    out = os.path.join(directory, f"cli-{kind}.pt2")
    start = time.perf_counter()
    code = main(["export", os.path.join(run, "best.ckpt"), "-o", out, "--format", "pt2"])
    compile_s = time.perf_counter() - start
    if code != 0:
        raise RuntimeError(f"nnforce export exited with {code}")
    model, _ = model_from_checkpoint(os.path.join(run, "best.ckpt"))
    model = model.double().eval()
    cutoff = float(model.cutoff)
    e2, f2, _ = nnforce_energy_forces(out, x, z, cutoff)
    xg = torch.tensor(x, requires_grad=True)
    energy = model(xg, torch.tensor(z))
    forces = -torch.autograd.grad(energy, xg)[0].numpy()
    meta = nnforce.export.read_metadata(out)
    return [kind, "nnforce export --format pt2", f"{compile_s:.0f}", "-", "-", "-",
            f"{relative(e2, float(energy)):.1e} (eager)", f"{relative(f2, forces):.1e} (eager)",
            f"precision {meta['precision']}"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="*", default=list(models()))
    parser.add_argument("--cli", nargs="*", default=["pair", "ani", "schnet", "aniencoder"])
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    built = models()
    rows, failures = [], []
    cpu0 = [resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    wall0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as directory:
        for name in args.models:
            try:
                rows.append(check_model(name, *built[name], directory))
            except Exception as error:  # noqa: BLE001  (recorded; the other models still run)
                failures.append(f"{name}: FAILED ({type(error).__name__}: {str(error).splitlines()[0][:200]})")
            print(rows[-1] if rows else failures[-1], flush=True)
        for kind in args.cli:
            try:
                rows.append(check_cli(kind, directory))
            except Exception as error:  # noqa: BLE001
                failures.append(f"cli {kind}: FAILED ({type(error).__name__}: {str(error).splitlines()[0][:200]})")
            print(rows[-1] if rows else failures[-1], flush=True)
    cpu = sum(u.ru_utime - s.ru_utime + u.ru_stime - s.ru_stime
              for u, s in zip([resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)], cpu0))
    wall = time.perf_counter() - wall0
    notes = ["Alanine dipeptide (22 atoms), float64, neighbor list (cutoff + 0.05 nm). eager columns: to_pt2's own check "
             "(package vs eager model, relative to max(1, |value|)); FD: the package's forces vs central differences of "
             "its energy (kJ/mol/nm, 3 atoms); NNForce columns: the .pt2 vs the model's TorchScript file, both through "
             "NNForce on the Reference platform (double), or vs the eager model for the CLI rows; extra outputs: "
             "getOutput of each extra output, .pt2 vs TorchScript. CLI rows: a one-epoch training checkpoint of "
             "that model type exported with `nnforce export --format pt2`.", "",
             f"This run: {wall:.0f} s wall, {cpu:.0f} s CPU (process and compiler children) on the shared 2-core machine."]
    if failures:
        notes += ["", "Failures:"] + [f"- {f}" for f in failures]
    else:
        notes += ["", f"Every model compiled and agreed ({len(rows)} rows; none failed)."]
    write_table("pt2_models.md", "Every nnforce model as a .pt2 (to_pt2 and nnforce export --format pt2)",
                ["model", "via", "compile s", "energy vs eager", "forces vs eager", "forces vs FD",
                 "NNForce energy vs TorchScript", "NNForce forces vs TorchScript", "extra outputs / notes"], rows, notes)


if __name__ == "__main__":
    main()
