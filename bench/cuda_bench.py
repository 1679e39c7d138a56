"""NNForce on OpenMM's CUDA platform: ms/step and ns/day with and without CUDA graphs, against the bare model
(forward + backward, CUDA-graphed, same process) and against openmm.PythonForce running the same model on the GPU.

Run on a GPU machine: `python bench/cuda_bench.py [--sizes 22 200 1000 5000 20000] [--budget-s 300]` (tests/gpu/run.sh
does it); writes bench/results/cuda.md with the device name and the date. Exits with an explanation where there is no
CUDA platform. Models: the ANI-like radial MLP (nnforce.models.RadialMLP, 4 elements) and Lennard-Jones
(nnforce.models.LennardJones), both fed by NNForce's neighbor list; mixed precision (float32 model).
"""
import argparse
import math
import os
import sys
import time

import numpy as np
import openmm
import torch

from _common import lattice, machine_line, write_table

import nnforce
from nnforce.models import LennardJones, RadialMLP

ELEMENTS = [1, 6, 7, 8]
TIMESTEP_FS = 1.0  # for ns/day; the runs themselves use a tiny step so that every size stays stable
CASES = {
    # name: (model factory, number density nm^-3, cutoff nm, skin nm, uses atomic numbers)
    "ANI-like RadialMLP": (lambda: RadialMLP(elements=ELEMENTS, cutoff=0.52), 100.0, 0.52, 0.06, True),
    "LJ": (lambda: LennardJones(cutoff=0.85), 21.0, 0.85, 0.1, False),
}


def make_case(name, n):
    factory, density, cutoff, skin, numbered = CASES[name]
    positions, _ = lattice(n, density_per_nm3=density, jitter_nm=0.005)
    numbers = np.array(ELEMENTS * (n // len(ELEMENTS) + 1))[:n] if numbered else None
    return positions, factory(), numbers, cutoff, skin


def make_context(force, positions, precision="mixed"):
    system = openmm.System()
    for _ in range(len(positions)):
        system.addParticle(12.0)
    system.addForce(force)
    integrator = openmm.VerletIntegrator(1e-5)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("CUDA"), {"Precision": precision})
    context.setPositions(positions)
    return context, integrator


def time_steps(run, sync, budget_s):
    """ms per call of run(k): probe, then time enough calls to fill about budget_s (at least 3)."""
    run(2)
    sync()
    start = time.perf_counter()
    run(3)
    sync()
    probe = (time.perf_counter() - start) / 3
    steps = max(3, min(5000, int(budget_s / max(probe, 1e-6))))
    start = time.perf_counter()
    run(steps)
    sync()
    return 1000 * (time.perf_counter() - start) / steps


def nnforce_ms(name, n, graphs, budget_s):
    positions, model, numbers, cutoff, skin = make_case(name, n)
    force = nnforce.NNForce(torch.jit.script(model))
    if numbers is not None:
        force.setAtomicNumbers(numbers.tolist())
    force.setNeighborList(cutoff, skin)
    force.setProperty("useCUDAGraphs", "true" if graphs else "false")
    force.setProperty("CUDAGraphWarmupSteps", "2")
    context, integrator = make_context(force, positions)
    integrator.step(5)  # warm-up: TorchScript profiling runs, neighbor-list growth, graph capture
    sync = lambda: context.getState(getPositions=True)  # noqa: E731  (downloading positions waits for the GPU)
    return time_steps(integrator.step, sync, budget_s)


def gpu_inputs(name, n, dtype):
    positions, model, numbers, cutoff, skin = make_case(name, n)
    scripted = torch.jit.script(model).to(dtype).cuda()
    inputs = {}
    if numbers is not None:
        inputs["atomic_numbers"] = torch.tensor(numbers, device="cuda")
    pairs, shifts = nnforce.neighbor_pairs(positions, cutoff + skin)
    inputs["neighbors"] = torch.tensor(pairs, device="cuda")
    inputs["shifts"] = torch.tensor(shifts, dtype=dtype, device="cuda")
    return positions, scripted, inputs


def bare_graphed_ms(name, n, budget_s, dtype=torch.float32):
    positions, scripted, inputs = gpu_inputs(name, n, dtype)
    static = torch.tensor(positions, dtype=dtype, device="cuda").requires_grad_(True)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):  # warm-up on a side stream, as torch.cuda.graph requires
            energy = scripted(static, **inputs)
            torch.autograd.grad(energy, static)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        energy = scripted(static, **inputs)
        (grad,) = torch.autograd.grad(energy, static)

    def run(k):
        for _ in range(k):
            graph.replay()

    return time_steps(run, torch.cuda.synchronize, budget_s)


def python_force_ms(name, n, budget_s, dtype=torch.float32):
    positions, scripted, inputs = gpu_inputs(name, n, dtype)

    # What a PythonForce user writes: positions to the GPU, forward + backward, energy and forces back to the host.
    # The neighbor pairs are precomputed once (atoms barely move), which favours PythonForce.
    def compute(state):
        pos = torch.tensor(state.getPositions(asNumpy=True)._value, dtype=dtype, device="cuda", requires_grad=True)
        energy = scripted(pos, **inputs)
        (grad,) = torch.autograd.grad(energy, pos)
        return energy.item(), -grad.double().cpu().numpy()

    context, integrator = make_context(openmm.PythonForce(compute), positions)
    sync = lambda: context.getState(getPositions=True)  # noqa: E731
    return time_steps(integrator.step, sync, budget_s)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[22, 200, 1000, 5000, 20000])
    parser.add_argument("--budget-s", type=float, default=400.0, help="rough wall-time budget for all measurements")
    args = parser.parse_args(argv)
    names = [openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())]
    if not torch.cuda.is_available() or "CUDA" not in names:
        print("cuda_bench: no CUDA device or no OpenMM CUDA platform here; nothing to measure.", file=sys.stderr)
        return 2
    torch.manual_seed(0)
    start = time.perf_counter()
    measurements = 4 * len(CASES) * len(args.sizes)
    per_measurement = max(0.2, 0.35 * args.budget_s / measurements)  # the rest goes to set-up and warm-up
    rows = []
    for name in CASES:
        for n in args.sizes:
            if time.perf_counter() - start > 0.9 * args.budget_s:
                print(f"budget spent: skipping {name} N={n}", flush=True)
                continue
            timings = {}
            for label, measure in [("eager", lambda: nnforce_ms(name, n, False, per_measurement)),
                                   ("graphs", lambda: nnforce_ms(name, n, True, per_measurement)),
                                   ("bare", lambda: bare_graphed_ms(name, n, per_measurement)),
                                   ("python", lambda: python_force_ms(name, n, per_measurement))]:
                try:
                    timings[label] = measure()
                except Exception as error:  # keep the table going; the error is printed and shown as "failed"
                    print(f"{name} N={n} {label}: {type(error).__name__}: {error}", flush=True)
                    timings[label] = math.nan
                torch.cuda.empty_cache()

            def cell(ms):
                return "failed" if math.isnan(ms) else f"{ms:.3f}"

            def per_day(ms):
                return "-" if math.isnan(ms) else f"{86.4 * TIMESTEP_FS / ms:.0f}"

            best = min(timings["eager"], timings["graphs"])
            rows.append([name, n, cell(timings["eager"]), cell(timings["graphs"]), per_day(timings["graphs"]),
                         cell(timings["bare"]), f"{best / timings['bare']:.2f}" if not math.isnan(best / timings["bare"]) else "-",
                         cell(timings["python"]), f"{timings['python'] / best:.1f}" if not math.isnan(timings["python"] / best) else "-"])
            print(rows[-1], flush=True)
    device = torch.cuda.get_device_name(0)
    header = ["model", "N", "NNForce ms/step", "NNForce + graphs ms/step", "ns/day (graphs, 1 fs)",
              "bare graphed ms", "best NNForce / bare", "PythonForce ms/step", "PythonForce / best NNForce"]
    notes = [
        f"Device: {device}, CUDA {torch.version.cuda}; {machine_line()}.",
        "OpenMM CUDA platform, mixed precision (float32 model), VerletIntegrator with a 1e-5 ps step so that every size stays",
        "stable; ns/day is quoted for a 1 fs step from the measured ms/step (86.4 / ms). Timings: wall time of integrator.step(k)",
        "plus a position download that waits for the GPU, after warm-up (TorchScript profiling runs, neighbor-list growth, graph",
        "capture), k chosen to fill a fixed time budget per cell.",
        "NNForce uses its GPU neighbor list (RadialMLP: 0.52 nm + 0.06 nm skin; LJ: 0.85 nm + 0.1 nm skin); atoms barely move, so",
        "the list is rarely rebuilt: the numbers show the per-step cost, not the O(N^2) rebuild.",
        "bare = the same TorchScript module, forward + torch.autograd.grad captured in one torch.cuda.CUDAGraph and replayed,",
        "with the neighbor pairs precomputed: the floor NNForce's own work is measured against.",
        "PythonForce = openmm.PythonForce whose callback runs the same model on the GPU (positions up, energy and forces down).",
    ]
    write_table("cuda.md", "NNForce on the CUDA platform", header, rows, notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
