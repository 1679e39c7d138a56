"""TorchScript vs .pt2 (AOTInductor) through NNForce vs openmm.PythonForce running the eager model: step time.

Models: LJ, the radial MLP, ANI-1x, the demo's ANI-style model and SchNet-style, at 22, 200, 1000 and 5000 atoms
(a jittered cluster at liquid density, 100 atoms/nm^3, H/C/N/O; the plugin's neighbor list for every model). All in
float64 (the TorchScript force gets precision=double, the .pt2 is compiled in double) so the three run the same
arithmetic; one torch thread, one OpenMM thread; the three variants of a row alternate in rounds (interleaved) and
each keeps its best round. Agreement: energy and forces of the .pt2 relative to TorchScript on the first
configuration. Writes bench/results/pt2.md.

Usage: python bench/pt2.py [--sizes 22 200 1000 5000] [--models lj radial ani1x ani schnet] [--rounds 3]
"""
import argparse
import os
import resource
import sys
import tempfile
import time

import numpy as np
import openmm
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import context, write_table  # noqa: E402

import nnforce  # noqa: E402
from nnforce.export import to_pt2  # noqa: E402
from nnforce.models import ANIModel, LennardJones, RadialMLP, SchNetModel  # noqa: E402

PATTERN = [1, 6, 1, 1, 8, 1, 7, 1, 6, 1]  # H-rich organic mix
SKIN = 0.05


def cluster(n, seed=0):
    """n atoms at 100 atoms/nm^3 in a cube, no two closer than 0.09 nm; atomic numbers from PATTERN."""
    rng = np.random.default_rng(seed)
    edge = (n / 100.0) ** (1 / 3)
    side = int(np.ceil(n ** (1 / 3)))
    index = np.stack(np.unravel_index(np.arange(n), (side,) * 3), axis=1).astype(float)
    x = (index + 0.5) * (edge / side) + rng.normal(scale=0.01, size=(n, 3))
    z = [PATTERN[k % len(PATTERN)] for k in range(n)]
    return x, z


def build_models():
    from nnforce.models.ani1x import ani1x

    elements = [1, 6, 7, 8]
    return {
        "lj": (LennardJones(epsilon=0.5, sigma=0.25, cutoff=0.6), False),
        "radial": (RadialMLP(elements, cutoff=0.52), True),
        "ani1x": (ani1x(), True),
        "ani": (ANIModel(elements, hidden=[64, 32], seed=1), True),  # the demo's ANI-style model (full mode)
        # the same model as the demo runs it: float32 (.pt2 compiled in single precision, TorchScript on NNForce's
        # default single precision), energy accumulated in float64
        "ani-single": (ANIModel(elements, hidden=[64, 32], seed=1), True),
        "schnet": (SchNetModel(elements, seed=1), True),
    }


class WithZ(torch.nn.Module):
    """Contract wrapper used by the TorchScript file and the .pt2: positions, neighbors, shifts, atomic_numbers."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, positions, neighbors, shifts, atomic_numbers):
        return self.model(positions, atomic_numbers=atomic_numbers, neighbors=neighbors, shifts=shifts)


class WithoutZ(WithZ):
    """The same for a model without elements (LJ): atomic_numbers is taken and ignored."""

    def forward(self, positions, neighbors, shifts, atomic_numbers):
        return self.model(positions, neighbors=neighbors, shifts=shifts)


def cutoff_of(model):
    return float(getattr(model, "cutoff", getattr(model, "cutoff_nm", 0.5)))


def nnforce_context(path, n, z, cutoff, platform, takes_z, double=False):
    force = nnforce.NNForce(path)
    force.setNeighborList(cutoff, SKIN)
    force.setAtomicNumbers(z)
    force.setProperty("precision", "double" if double else "single")
    return context(force, n, platform)


def python_force_context(model, n, z, cutoff, platform, takes_z):
    """openmm.PythonForce calling the eager model with an O(N) cell list from the plugin's own Python helper."""
    model = model.double().eval()
    z_t = torch.tensor(z)

    def compute(state):
        x = torch.tensor(state.getPositions(asNumpy=True)._value, requires_grad=True)
        neighbors, shifts = pairs_within(x.detach(), cutoff)
        energy = model(x, neighbors=neighbors, shifts=shifts, **({"atomic_numbers": z_t} if takes_z else {}))
        (gradient,) = torch.autograd.grad(energy, x)
        return float(energy), -gradient.numpy()

    return context(openmm.PythonForce(compute), n, platform)


def pairs_within(x, cutoff):
    """Pairs closer than cutoff (non-periodic), each unordered pair once, from scipy's k-d tree."""
    from scipy.spatial import cKDTree

    pairs = cKDTree(x.detach().numpy()).query_pairs(cutoff, output_type="ndarray")
    neighbors = torch.from_numpy(pairs.T.astype(np.int64)).contiguous()
    return neighbors, torch.zeros(neighbors.shape[1], 3, dtype=x.dtype)


def step_time(ctx, steps):
    start = time.perf_counter()
    ctx.getIntegrator().step(steps)
    return (time.perf_counter() - start) / steps


def measure(name, model, takes_z, sizes, platforms, rounds, directory):
    double = not name.endswith("-single")
    wrapper = (WithZ if takes_z else WithoutZ)(model).double().eval()
    script = os.path.join(directory, f"{name}.pt")
    torch.jit.save(torch.jit.script(wrapper), script)
    x, z = cluster(max(sizes[0], 22))
    cutoff = cutoff_of(model)
    neighbors, shifts = pairs_within(torch.tensor(x), cutoff + SKIN)
    example = {"positions": torch.tensor(x), "neighbors": neighbors, "shifts": shifts,
               "atomic_numbers": torch.tensor(z)}
    package = os.path.join(directory, f"{name}.pt2")
    start = time.perf_counter()
    to_pt2(wrapper, package, example, precision="double" if double else "single", check=False)
    compile_s = time.perf_counter() - start
    rows = []
    for n in sizes:
        x, z = cluster(n)
        steps = max(1, min(20, int(4000 / n)))
        for platform in platforms:
            contexts = {
                "torchscript": nnforce_context(script, n, z, cutoff, platform, takes_z, double=double),
                "pt2": nnforce_context(package, n, z, cutoff, platform, takes_z, double=double),
                "python": python_force_context(model, n, z, cutoff, platform, takes_z),
            }
            values = {}
            for key, ctx in contexts.items():
                ctx.setPositions(x)
                state = ctx.getState(getEnergy=True, getForces=True)
                values[key] = (state.getPotentialEnergy()._value, state.getForces(asNumpy=True)._value)
                ctx.getIntegrator().step(3)  # warm-up (TorchScript's profiling executor optimizes in its first runs)
            best = {key: float("inf") for key in contexts}
            for _ in range(rounds):  # interleaved
                for key, ctx in contexts.items():
                    best[key] = min(best[key], step_time(ctx, steps))
            e_ts, f_ts = values["torchscript"]
            e_pt, f_pt = values["pt2"]
            rel_e = abs(e_pt - e_ts) / max(1.0, abs(e_ts))
            rel_f = float(np.abs(f_pt - f_ts).max()) / max(1.0, float(np.abs(f_ts).max()))
            rows.append([name, n, platform, f"{best['torchscript'] * 1e3:.3f}", f"{best['pt2'] * 1e3:.3f}",
                         f"{best['python'] * 1e3:.3f}", f"{best['torchscript'] / best['pt2']:.2f}",
                         f"{best['python'] / best['pt2']:.2f}", f"{rel_e:.1e}", f"{rel_f:.1e}"])
            print(" | ".join(str(c) for c in rows[-1]), flush=True)
            del contexts
    return rows, compile_s


def goals(rows):
    def ratio(model, n, platform="CPU"):
        for row in rows:
            if row[0] == model and row[1] == n and row[2] == platform:
                return float(row[6]), float(row[4])
        return None, None

    lines = []
    for model, n, target in (("ani1x", 22, 2.0), ("ani", 22, 2.0), ("ani1x", 1000, 1.5), ("ani", 1000, 1.5)):
        value, _ = ratio(model, n)
        verdict = "not measured" if value is None else ("MET" if value >= target else "NOT MET")
        lines.append(f"- .pt2 >= {target}x faster than TorchScript, {model} at {n} atoms (CPU): "
                     f"{'-' if value is None else f'{value:.2f}x'} -> {verdict}")
    for model in ("ani", "ani-single"):
        _, ms = ratio(model, 22)
        verdict = "not measured" if ms is None else ("MET" if ms <= 1.0 else "NOT MET")
        lines.append(f"- ANI-style demo model ({model}) at 22 atoms <= 1 ms/step on the CPU platform: "
                     f"{'-' if ms is None else f'{ms:.3f} ms'} -> {verdict}")
    worst = max((max(float(r[8]), float(r[9])) for r in rows if not r[0].endswith("-single")), default=None)
    verdict = "not measured" if worst is None else ("MET" if worst <= 1e-10 else "NOT MET")
    lines.append(f"- energies and forces equal to TorchScript to 1e-10 relative (float64): worst "
                 f"{'-' if worst is None else f'{worst:.1e}'} -> {verdict}")
    return lines


def kept_rows(rerun):
    """Rows of the existing results table for models other than ``rerun`` (strings, as written)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "pt2.md")
    if not os.path.exists(path):
        return []
    rows = []
    for line in open(path):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and len(cells) == 10 and cells[1].isdigit() and cells[0] not in rerun:
            rows.append([cells[0], int(cells[1])] + cells[2:])
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[22, 200, 1000, 5000])
    parser.add_argument("--models", nargs="+", default=["lj", "radial", "ani1x", "ani", "schnet"])
    parser.add_argument("--platforms", nargs="+", default=["Reference", "CPU"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep", action="store_true",
                        help="keep the rows of models not re-run from the existing bench/results/pt2.md")
    args = parser.parse_args(argv)
    models = build_models()
    rows, compiles = [], []
    cpu_start = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    wall_start = time.perf_counter()
    with tempfile.TemporaryDirectory() as directory:
        for name in args.models:
            model, takes_z = models[name]
            try:
                found, compile_s = measure(name, model, takes_z, args.sizes, args.platforms, args.rounds, directory)
            except Exception as error:  # noqa: BLE001  (recorded in the table's notes, the other models still run)
                compiles.append(f"{name} FAILED ({type(error).__name__}: {str(error).splitlines()[0][:200]})")
                continue
            rows += found
            compiles.append(f"{name} {compile_s:.0f} s")
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    cpu = sum(u.ru_utime - s.ru_utime + u.ru_stime - s.ru_stime for u, s in zip(usage, cpu_start))
    wall = time.perf_counter() - wall_start
    notes = ["Step time in ms (best of the interleaved rounds; VerletIntegrator steps). speedup = TorchScript / .pt2; "
             "python/pt2 = PythonForce (eager model, Python in every step) / .pt2. rel dE, rel dF: .pt2 vs "
             "TorchScript, relative to max(1, |value|), first configuration.", "",
             f"Compile time of each .pt2 (cached afterwards): {', '.join(compiles)}.",
             f"This run: {wall:.0f} s wall, {cpu:.0f} s CPU (process and compiler children; {cpu / wall:.0%} of one core: "
             "the 2-core machine was shared with other jobs, which the interleaving of the three variants protects the "
             "ratios against, not the absolute times).", "", "Goals (issue 11), as measured:"]
    if args.keep:
        rows = kept_rows(set(args.models)) + rows
        notes.insert(2, "Rows of models not re-run in this invocation are kept from the previous table (--keep).")
    notes += goals(rows)
    write_table("pt2.md", "TorchScript vs .pt2 vs PythonForce (NNForce, float64, 1 thread)",
                ["model", "atoms", "platform", "TorchScript ms", ".pt2 ms", "PythonForce ms", "speedup",
                 "python/pt2", "rel dE", "rel dF"], rows, notes)


if __name__ == "__main__":
    main()
