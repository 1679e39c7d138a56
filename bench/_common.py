"""Shared pieces of the benchmarks: systems, timers and the markdown table writer."""
import datetime
import os
import platform
import sys
import time

import numpy as np
import openmm
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from nnforce._io import atomic_write  # noqa: E402
from nnforce.force import build_context  # noqa: E402

# One thread for torch and for OpenMM's CPU platform: on this shared 2-core machine, OpenMP's busy-waiting threads
# make multi-threaded timings swing several-fold with the load of other processes. Override with NNFORCE_BENCH_THREADS.
THREADS = int(os.environ.get("NNFORCE_BENCH_THREADS", "1"))
torch.set_num_threads(THREADS)


def platform_properties(platform):
    return {"Threads": str(THREADS)} if platform == "CPU" else {}


def context(force, n, platform):
    """A Context of ``n`` carbon-mass particles with ``force`` alone (Verlet 0.1 fs, the bench's thread count)."""
    system = openmm.System()
    for _ in range(n):
        system.addParticle(12.0)
    system.addForce(force)
    integrator = openmm.VerletIntegrator(0.0001)
    return build_context(system, integrator, platform, platform_properties(platform))


RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def lattice(n, density_per_nm3, jitter_nm=0.01, seed=0):
    """n atoms on a jittered simple-cubic lattice at the given number density; returns positions and cube edge (nm)."""
    side = int(np.ceil(n ** (1 / 3)))
    edge = (n / density_per_nm3) ** (1 / 3)
    spacing = edge / side
    index = np.stack(np.unravel_index(np.arange(n), (side, side, side)), axis=1).astype(float)
    positions = (index + 0.5) * spacing
    positions += np.random.default_rng(seed).normal(scale=jitter_nm, size=positions.shape)
    return positions, edge


def best_of(function, repeats=3):
    """Smallest wall time of a few repeats (seconds): the least disturbed by other load on a shared machine."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def machine_line():
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), OpenMM {openmm.__version__}, Python {platform.python_version()}, "
            f"{datetime.date.today().isoformat()}")


def write_table(name, title, header, rows, notes):
    lines = [f"# {title}", "", f"Machine: {machine_line()}", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    lines += [""] + notes + [""]
    text = "\n".join(lines)
    print(text)
    os.makedirs(RESULTS, exist_ok=True)
    with atomic_write(os.path.join(RESULTS, name), "w") as handle:
        handle.write(text)
    return text
