"""NNForce overhead: ms/step of NNForce (Reference, CPU) vs the bare model (forward + backward) vs openmm.PythonForce.

Run: `python bench/plugin_overhead.py [--sizes 22 200 1000 5000] [--quick]`; writes bench/results/plugin_overhead.md.
All timings are taken side by side in one process (the machine is shared and noisy: compare the ratios).
Models: all-pairs Lennard-Jones in torch, and the small ANI-like radial MLP fed by the plugin's neighbor list
(the bare model gets the same neighbor pairs, precomputed, so only the plugin's own work differs).
"""
import argparse
import copy
import os
import sys
import time

import numpy as np
import openmm
import torch


from _common import THREADS, lattice, platform_properties, write_table

import nnforce
from nnforce.force import build_context
from nnforce.models import LennardJones, RadialMLP

ELEMENTS = [1, 6, 7, 8]


def make_case(kind, n):
    if kind == "LJ all-pairs":
        positions, _ = lattice(n, density_per_nm3=21.0)
        return positions, LennardJones(cutoff=1000.0), {}, None
    positions, _ = lattice(n, density_per_nm3=100.0, jitter_nm=0.005)
    numbers = np.array(ELEMENTS * (n // len(ELEMENTS) + 1))[:n]
    return positions, RadialMLP(elements=ELEMENTS, cutoff=0.52), {"atomic_numbers": numbers}, (0.52, 0.06)


def steps_for(n):
    return {22: 300, 200: 100, 1000: 20}.get(n, 4)


def nnforce_runner(model, positions, extras, neighbor, platform, precision):
    force = nnforce.NNForce(torch.jit.script(model))
    force.setProperty("precision", precision)
    if "atomic_numbers" in extras:
        force.setAtomicNumbers(extras["atomic_numbers"].tolist())
    if neighbor:
        force.setNeighborList(*neighbor)
    return integrator_runner(force, positions, platform)


def integrator_runner(force, positions, platform):
    """A callable that advances `steps` MD steps (one force evaluation each), after a warm-up."""
    system = openmm.System()
    for _ in range(len(positions)):
        system.addParticle(12.0)
    system.addForce(force)
    integrator = openmm.VerletIntegrator(1e-5)
    context = build_context(system, integrator, platform, platform_properties(platform))
    context.setPositions(positions)
    integrator.step(3)  # warm-up: TorchScript's profiling runs, allocations
    return lambda steps: integrator.step(steps), (context, integrator)


def bare_inputs(extras, neighbor, positions, dtype):
    inputs = {}
    if "atomic_numbers" in extras:
        inputs["atomic_numbers"] = torch.tensor(extras["atomic_numbers"])
    if neighbor:
        pairs, shifts = nnforce.neighbor_pairs(positions, neighbor[0] + neighbor[1])
        inputs["neighbors"] = torch.tensor(pairs)
        inputs["shifts"] = torch.tensor(shifts, dtype=dtype)
    return inputs


def scripted_for_md(model, dtype):
    """The module as an MD code would hold it: scripted, in eval mode, weights not requiring gradients."""
    scripted = torch.jit.script(copy.deepcopy(model)).to(dtype).eval()  # own weights: variants must not share
    for parameter in scripted.parameters():
        parameter.requires_grad_(False)
    return scripted


def bare_runner(model, positions, extras, neighbor, dtype):
    scripted = scripted_for_md(model, dtype)
    inputs = bare_inputs(extras, neighbor, positions, dtype)
    base = torch.tensor(positions, dtype=dtype)

    def once():
        p = base.detach().requires_grad_(True)
        energy = scripted(p, **inputs)
        (grad,) = torch.autograd.grad(energy, p)
        return energy.item(), grad

    for _ in range(3):
        once()
    return lambda steps: [once() for _ in range(steps)], scripted


def python_force_runner(model, positions, extras, neighbor, platform, dtype):
    scripted = scripted_for_md(model, dtype)
    inputs = bare_inputs(extras, neighbor, positions, dtype)
    # a PythonForce user rebuilds the neighbor list in Python when atoms move; here they barely move, so the
    # precomputed one is reused: this favours PythonForce.

    def compute(state):
        pos = torch.tensor(state.getPositions(asNumpy=True)._value, dtype=dtype, requires_grad=True)
        energy = scripted(pos, **inputs)
        (grad,) = torch.autograd.grad(energy, pos)
        return energy.item(), -grad.double().numpy()

    return integrator_runner(openmm.PythonForce(compute), positions, platform)


def interleaved_ms(runners, steps, repeats=5):
    """Best ms/step of each runner, timing them in turn within each repeat so load changes hit all alike."""
    best = {name: float("inf") for name in runners}
    for _ in range(repeats):
        for name, run in runners.items():
            start = time.perf_counter()
            run(steps)
            best[name] = min(best[name], (time.perf_counter() - start) / steps * 1000)
    return best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[22, 200, 1000, 5000])
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    rows = []
    for kind in ("LJ all-pairs", "ANI-like radial (neighbor list)"):
        for n in args.sizes:
            positions, model, extras, neighbor = make_case(kind, n)
            keep = {}
            runners = {}
            for name, (factory, args_) in {
                "ref": (nnforce_runner, ("Reference", "double")),
                "bare64": (bare_runner, (torch.float64,)),
                "py_ref": (python_force_runner, ("Reference", torch.float64)),
                "cpu": (nnforce_runner, ("CPU", "single")),
                "bare32": (bare_runner, (torch.float32,)),
                "py_cpu": (python_force_runner, ("CPU", torch.float32)),
            }.items():
                runners[name], keep[name] = factory(model, positions, extras, neighbor, *args_)
            t = interleaved_ms(runners, steps_for(n))
            ref, bare64, py_ref, cpu, bare32, py_cpu = (t[k] for k in ("ref", "bare64", "py_ref", "cpu", "bare32", "py_cpu"))
            rows.append([kind, n, f"{ref:.3f}", f"{bare64:.3f}", f"{ref / bare64:.2f}", f"{py_ref:.3f}",
                         f"{py_ref / ref:.2f}", f"{cpu:.3f}", f"{bare32:.3f}", f"{cpu / bare32:.2f}", f"{py_cpu:.3f}",
                         f"{py_cpu / cpu:.2f}"])
            print(rows[-1], flush=True)
    header = ["model", "N", "NNForce Ref f64 ms", "bare f64 ms", "Ref / bare", "PythonForce Ref ms", "PythonForce / NNForce",
              "NNForce CPU f32 ms", "bare f32 ms", "CPU / bare", "PythonForce CPU ms", "PythonForce / NNForce"]
    notes = [
        f"torch and OpenMM CPU threads: {THREADS} (NNFORCE_BENCH_THREADS); multi-threaded timings on this shared machine are not reproducible.",
        "ms/step from `VerletIntegrator.step` (one force evaluation per step), best of 5 repeats after 3 warm-up steps; the six",
        "variants are timed in turn within each repeat (interleaved), so a change of machine load hits all of them alike.",
        "bare = the same TorchScript module called from Python: forward + `torch.autograd.grad`, same dtype, same inputs.",
        "Goal (issue 2): NNForce <= 1.05x the bare model at N >= 200 and faster than PythonForce at every N.",
        "The radial model gets the plugin's neighbor list (cutoff 0.52 nm + 0.06 nm skin); the bare model and the",
        "PythonForce get the same pairs precomputed once, so their numbers exclude any neighbor search.",
    ]
    write_table("plugin_overhead.md", "NNForce plugin overhead (Reference and CPU platforms)", header, rows, notes)


if __name__ == "__main__":
    sys.exit(main())
