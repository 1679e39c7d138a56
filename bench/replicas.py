"""Replicas: aggregate MD steps per second of R alanine dipeptide replicas in one Context (one model call per step)
vs R separate Contexts, and of an ensemble on Dask with 2 local workers vs 1.

Run: `python bench/replicas.py [--replicas 1 4 16 64] [--quick]`; writes bench/results/replicas.md.
One thread (torch and OpenMM's CPU platform), CPU platform, float32 model, the demo's ANI-style architecture
(hidden 64-32, untrained weights cost the same), neighbor list at the model's 0.52 nm cutoff. Each row is timed
side by side, interleaved over several rounds (median), with the CPU time the process got recorded: the machine
is shared, compare ratios. Goals (issue 14): 16 replicas in one call >= 4x the aggregate throughput of 16
separate Contexts; Dask on 2 local workers >= 1.7x one worker.
"""
import argparse
import os
import shutil
import sys
import tempfile
import time

import numpy as np
import openmm
import torch

from _common import THREADS, platform_properties, write_table

import nnforce  # noqa: F401
from nnforce.demo import alanine_dipeptide
from nnforce.export import export_model
from nnforce.force import build_context, build_ml_system
from nnforce.models import ANIModel
from nnforce.simulate.replicas import replicate

ELEMENTS = [1, 6, 7, 8]


def model_bytes(directory):
    """The exported model (its metadata carries the 0.52 nm cutoff the ensemble's neighbor list uses)."""
    path = os.path.join(directory, "model.pt")
    export_model(ANIModel(ELEMENTS, hidden=[64, 32], seed=0), path, check=False)
    with open(path, "rb") as handle:
        return handle.read()


def pt2_bytes(directory):
    """The same model compiled into a float32 .pt2 AOTInductor package (cached by torch between runs)."""
    from nnforce.export import to_pt2

    topology, positions = alanine_dipeptide()
    x = np.asarray(positions.value_in_unit(openmm.unit.nanometer))
    pairs, shifts = nnforce.neighbor_pairs(x, 0.52)
    numbers = [a.element.atomic_number for a in topology.atoms()]
    example = {"positions": torch.tensor(x, dtype=torch.float32), "atomic_numbers": torch.tensor(numbers),
               "neighbors": torch.tensor(pairs), "shifts": torch.tensor(shifts, dtype=torch.float32)}
    path = os.path.join(directory, "model.pt2")
    to_pt2(ANIModel(ELEMENTS, hidden=[64, 32], seed=0), path, example, precision="single", max_atoms=64 * 22 + 1)
    with open(path, "rb") as handle:
        return handle.read()


def molecule(data):
    topology, positions = alanine_dipeptide()
    return build_ml_system(data, topology, neighbor_cutoff_nm=0.52), topology, positions


def context(system, positions, seed):
    integrator = openmm.LangevinMiddleIntegrator(300, 1.0, 0.0005)
    integrator.setRandomNumberSeed(seed)
    ctx = build_context(system, integrator, "CPU", platform_properties("CPU"))
    ctx.setPositions(positions)
    ctx.setVelocitiesToTemperature(300, seed)
    return ctx


def timed(run):
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - wall, time.process_time() - cpu


def bench_contexts(r, steps, rounds, data):
    system, topology, positions = molecule(data)
    batch = replicate(system, topology, [positions] * r)
    one = context(batch.system, batch.positions, 1)
    many = [context(system, positions, k + 1) for k in range(r)]
    one.getIntegrator().step(5)  # warm-up: TorchScript's profiling executor settles in its first calls
    for c in many:
        c.getIntegrator().step(5)
    batched, separate = [], []
    for _ in range(rounds):  # interleaved
        batched.append(timed(lambda: one.getIntegrator().step(steps)))
        separate.append(timed(lambda: [c.getIntegrator().step(steps) for c in many]))
    median = lambda pairs: (float(np.median([p[0] for p in pairs])), sum(p[1] for p in pairs) / sum(p[0] for p in pairs))
    (tb, cpu_b), (ts, cpu_s) = median(batched), median(separate)
    return r * steps / tb, r * steps / ts, min(cpu_b, cpu_s)


def bench_dask(replicas, steps, data, model_path, pdb_path):
    from nnforce.simulate.ensemble import EnsembleConfig, connect, run_ensemble

    clients = {w: connect(None, w) for w in (1, 2)}
    rows = {1: [], 2: []}
    try:
        for client in clients.values():  # workers import torch and the plugin before the clock starts
            client.run(lambda: __import__("nnforce").NNForce)
        for workers in (1, 2, 1, 2):  # interleaved
            out = tempfile.mkdtemp(prefix="nnforce-bench-")
            try:
                config = EnsembleConfig(model_path, pdb_path, replicas=replicas, output_dir=out, steps=steps,
                                        trajectory_interval=steps // 4, checkpoint_interval=steps // 2,
                                        minimize=False, progress=False)
                summary = run_ensemble(config, client=clients[workers])
                rows[workers].append(replicas * steps / summary["wall_s"])
            finally:
                shutil.rmtree(out, ignore_errors=True)
    finally:
        for client in clients.values():
            cluster = client.cluster
            client.close()
            cluster.close()
    return {w: max(v) for w, v in rows.items()}  # the least disturbed of two runs


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--quick", action="store_true", help="fewer steps and rounds (a smoke run)")
    parser.add_argument("--dask-replicas", type=int, default=8)
    parser.add_argument("--no-pt2", action="store_true", help="TorchScript only (compiling the .pt2 takes minutes)")
    args = parser.parse_args(argv)
    work = tempfile.mkdtemp(prefix="nnforce-bench-inputs-")
    data = model_bytes(work)
    rounds = 2 if args.quick else 3
    load_before = os.getloadavg()
    formats = [("TorchScript", data)]
    pt2_note = "not measured (--no-pt2)"
    if not args.no_pt2:
        try:
            formats.append((".pt2", pt2_bytes(work)))
            pt2_note = "compiled with nnforce.export.to_pt2 (AOTInductor, float32, dynamic atoms and pairs)"
        except Exception as error:  # noqa: BLE001 (reported in the table notes)
            pt2_note = f"not available: {type(error).__name__}: {str(error).splitlines()[0][:200]}"
    rows, ratio16 = [], {}
    for r in args.replicas:
        steps = max(3 if args.quick else 5, (20 if args.quick else 60) // max(1, r // 4))
        for name, model in formats:
            one, many, cpu = bench_contexts(r, steps, rounds, model)
            rows.append([r, name, f"{one:.1f}", f"{many:.1f}", f"{one / many:.2f}x", f"{cpu:.2f}"])
            if r == 16:
                ratio16[name] = one / many
            print(rows[-1], flush=True)
    try:
        from openmm.app import PDBFile

        model_path, pdb_path = os.path.join(work, "model.pt"), os.path.join(work, "mol.pdb")
        topology, positions = alanine_dipeptide()
        with open(pdb_path, "w") as handle:
            PDBFile.writeFile(topology, positions, handle)
        dask_steps = 40 if args.quick else 200
        dask = bench_dask(args.dask_replicas, dask_steps, data, model_path, pdb_path)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    load_after = os.getloadavg()
    dask_ratio = dask[2] / dask[1]
    goal16 = "; ".join(f"{name}: {'met' if v >= 4 else 'not met'} ({v:.2f}x)" for name, v in ratio16.items()) or "not measured"
    notes = [
        "Aggregate steps/s = replicas x steps / wall time. 'CPU share' is the process's CPU time over wall time "
        f"(1.00 = it had a core to itself; {THREADS} thread).",
        f"Load average (1, 5, 15 min) before: {', '.join(f'{x:.1f}' for x in load_before)}; after: "
        f"{', '.join(f'{x:.1f}' for x in load_after)} on {os.cpu_count()} cores shared with other jobs.",
        f".pt2: {pt2_note}.",
        "",
        f"Dask ensemble, {args.dask_replicas} replicas x {dask_steps} steps (batched per worker, LocalCluster, "
        f"1 thread per worker): 1 worker {dask[1]:.1f} steps/s, 2 workers {dask[2]:.1f} steps/s, "
        f"ratio {dask_ratio:.2f}x (wall time of the tasks, the best of two runs each, interleaved; cluster start-up and the workers' first import excluded).",
        "",
        f"Goal: 16 replicas in one call >= 4x 16 separate Contexts: **{goal16}**.",
        f"Goal: Dask 2 local workers >= 1.7x one worker: **{'met' if dask_ratio >= 1.7 else 'not met'}** "
        f"({dask_ratio:.2f}x; with {os.cpu_count()} cores shared by other jobs a second worker gets a whole core only "
        "when the machine is otherwise idle).",
    ]
    write_table("replicas.md", "Replicas in one Context vs separate Contexts (alanine dipeptide, 22 atoms)",
                ["replicas", "model", "one Context, steps/s", "R Contexts, steps/s", "ratio", "CPU share"], rows, notes)


if __name__ == "__main__":
    sys.exit(main())
