"""The teacher's reference phi/psi free energy of alanine dipeptide (issue 25): ANI-1x through NNForce.

ANI-1x (``nnforce.models.ani1x()``, 8 networks) compiled with ``nnforce.export.to_pt2`` in float32 runs issue 25's
sampling protocol (:class:`nnforce.simulate.metadynamics.SamplingProtocol`, defaults frozen): phase 1, well-tempered
metadynamics on (phi, psi) with ``openmm.app.Metadynamics``; phase 2, R replicas under the phase-1 bias held
static, batched in one Context, reweighted exactly (w ~ exp(V/kT)). OpenMM CPU platform, one thread, one torch
thread. Writes ``python/nnforce/demo/data/teacher_fes.npz`` (the demo compares its student against it) and
``bench/results/teacher_fes.md``.

Usage: python bench/teacher_fes.py [--metad-steps N] [--replicas R] [--production-steps N] [--seed S]
       python bench/teacher_fes.py --compile-only    (compile/cache the .pt2 and stop)
       python bench/teacher_fes.py --time-only       (measure ms/step, single walker and R replicas, and stop)
"""
import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "python"))

import torch  # noqa: E402

torch.set_num_threads(1)

PT2_PRECISION = "single"


def compile_teacher(path):
    """ANI-1x as a float32 ``.pt2`` at ``path`` (cached by to_pt2); returns (path, compile seconds, metadata)."""
    from nnforce._pt2 import contract_example
    from nnforce.demo.molecule import alanine_dipeptide, atomic_numbers
    from nnforce.export import to_pt2
    from nnforce.models.ani1x import ani1x
    from openmm import unit

    topology, positions = alanine_dipeptide()
    start = time.perf_counter()
    info = to_pt2(ani1x(), path, contract_example(atomic_numbers(topology),
                                                 positions.value_in_unit(unit.nanometer)), precision=PT2_PRECISION)
    return path, time.perf_counter() - start, info



DEFAULT_OUT = os.path.join(HERE, "..", "python", "nnforce", "demo", "data", "teacher_fes.npz")
DEFAULT_PT2 = os.path.join(os.environ.get("NNFORCE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "nnforce"),
                           "teacher_ani1x.pt2")  # beside to_pt2's cache, never in the repository


def log(text):
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def teacher_system(pt2_path):
    """The pure-ML System of alanine dipeptide with the teacher's .pt2 (as the demo builds its student's)."""
    from nnforce.contract import inspect_model
    from nnforce.demo.molecule import alanine_dipeptide
    from nnforce.simulate import SimulationConfig, build_system
    from openmm import unit

    topology, positions = alanine_dipeptide()
    x = positions.value_in_unit(unit.nanometer)
    system = build_system(SimulationConfig(model=pt2_path, topology=topology, positions=x), topology,
                          inspect_model(pt2_path))
    return system, topology, x


def time_steps(system, topology, x, replicas, protocol, steps, seed=0):
    """Wall and CPU ms per step of ``replicas`` copies (batched, each with its bias force on a zero grid) under the
    protocol's integrator, CPU platform, one thread."""
    import numpy as np
    import openmm
    from openmm import unit

    from nnforce.force import build_context
    from nnforce.simulate import metadynamics as md

    rng = np.random.default_rng(seed)
    starts = np.array([x + rng.normal(scale=1e-3, size=x.shape) for _ in range(replicas)])
    width = protocol.grid_width
    groups, _ = md.biased_replica_systems(system, topology, starts, np.zeros((width, width)),
                                          protocol.hydrogen_mass_amu)
    batch_system, positions, _ = groups[0]
    integrator = openmm.LangevinMiddleIntegrator(protocol.temperature_k, protocol.friction_per_ps,
                                                 protocol.timestep_fs / 1000.0)
    integrator.setRandomNumberSeed(7)
    context = build_context(batch_system, integrator, "CPU", {"Threads": "1"})
    context.setPositions(positions)
    context.setVelocitiesToTemperature(protocol.temperature_k * unit.kelvin, 11)
    integrator.step(5)
    wall, cpu = time.perf_counter(), time.process_time()
    integrator.step(steps)
    return 1000 * (time.perf_counter() - wall) / steps, 1000 * (time.process_time() - cpu) / steps


def crossings(phi_rad, margin_deg=20.0):
    """phi < 0 -> phi > 0 and back, per replica summed (with a +-margin hysteresis so that jitter at phi = 0 or pi
    does not count); returns (negative to positive, positive to negative)."""
    import numpy as np

    phi = np.atleast_2d(np.degrees(phi_rad))
    up = down = 0
    for row in phi:
        side = 0
        for value in row:
            now = 1 if value > margin_deg and value < 180 - margin_deg else (
                -1 if value < -margin_deg and value > -180 + margin_deg else 0)
            if now and side and now != side:
                up += now > 0
                down += now < 0
            side = now or side
    return int(up), int(down)


def versions():
    import platform

    import numpy
    import openmm

    import nnforce

    try:
        import subprocess

        commit = subprocess.run(["git", "-C", HERE, "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10).stdout.strip()
    except Exception:
        commit = ""
    return {"torch": torch.__version__, "openmm": openmm.__version__, "numpy": numpy.__version__,
            "nnforce": getattr(nnforce, "__version__", ""), "python": platform.python_version(),
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores", "git_commit": commit}


def main(argv=None):
    import json

    import numpy as np

    from nnforce._io import atomic_write
    from nnforce.simulate import metadynamics as md

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--metad-steps", type=int, default=None, help="phase 1 length (default: the protocol's)")
    parser.add_argument("--replicas", type=int, default=None)
    parser.add_argument("--production-steps", type=int, default=None, help="phase 2 steps per replica")
    parser.add_argument("--seed", type=int, default=2025)
    parser.add_argument("--bins", type=int, default=36)
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--max-wall-s", type=float, default=None,
                        help="stop each phase at a frame boundary once the whole run has used this long (the lengths "
                             "recorded are those actually run)")
    parser.add_argument("--out", default=DEFAULT_OUT)
    parser.add_argument("--results", default=os.path.join(HERE, "results", "teacher_fes.md"))
    parser.add_argument("--pt2", default=DEFAULT_PT2)
    parser.add_argument("--time-only", action="store_true")
    args = parser.parse_args(argv)

    started_wall, started_cpu = time.perf_counter(), time.process_time()
    run_versions = versions()  # the commit the run starts from
    overrides = {k: v for k, v in (("metad_steps", args.metad_steps), ("replicas", args.replicas),
                                   ("production_steps", args.production_steps)) if v is not None}
    protocol = md.SamplingProtocol(**overrides)
    log(f"protocol {protocol.as_dict()}; seed {args.seed}")
    _, compile_s, info = compile_teacher(args.pt2)
    log(f"ANI-1x .pt2 ({PT2_PRECISION}) ready in {compile_s:.0f} s (cached by to_pt2); checks {info.get('checks')}")
    system, topology, x = teacher_system(args.pt2)
    single = time_steps(system, topology, x, 1, protocol, 100)
    batched = time_steps(system, topology, x, protocol.replicas, protocol, 20)
    log(f"teacher ms/step (wall, cpu): 1 molecule {single[0]:.1f}, {single[1]:.1f}; {protocol.replicas} replicas "
        f"batched {batched[0]:.1f}, {batched[1]:.1f} ({batched[0] / protocol.replicas:.2f} wall per replica-step)")
    if args.time_only:
        return 0

    def budget_left():
        if args.max_wall_s is None:
            return None
        return max(args.max_wall_s - (time.perf_counter() - started_wall), 1.0)

    def every(label, total, parts=20):
        marks = {int(total * k / parts) // protocol.report_interval_steps * protocol.report_interval_steps
                 for k in range(1, parts + 1)}
        return lambda step, _total: log(f"{label}: step {step}/{total}") if step in marks else None

    log(f"phase 1: metadynamics, {protocol.metad_steps} steps")
    bias = md.build_bias(system, topology, x, protocol, seed=args.seed, progress=every("phase 1", protocol.metad_steps),
                         max_wall_s=budget_left() and budget_left() * protocol.metad_steps /
                         (protocol.metad_steps + protocol.production_steps * batched[0] / single[0]))
    log(f"phase 1 done: {bias.steps} steps, {bias.ms_per_step:.1f} ms/step, wall {bias.wall_s:.0f} s, cpu "
        f"{bias.cpu_s:.0f} s, walker T {bias.temperature_k.mean():.1f} K, bias max {bias.bias_kj_mol.max():.1f} kJ/mol")
    partial = args.out + ".phase1.npz"
    with atomic_write(partial, "wb") as handle:
        np.savez(handle, bias_kj_mol=bias.bias_kj_mol, phi_rad=bias.phi_rad, psi_rad=bias.psi_rad,
                 frames_nm=bias.frames_nm)
    starts = md.pick_starts(bias, protocol.replicas, seed=args.seed + 1)
    log(f"phase 2: {protocol.replicas} replicas x {protocol.production_steps} steps under the frozen bias")
    production = md.run_biased_replicas(system, topology, starts, bias, protocol, seed=args.seed + 2,
                                        progress=every("phase 2", protocol.production_steps), max_wall_s=budget_left())
    log(f"phase 2 done: {production.steps} steps per replica, {production.ms_per_step:.1f} ms/step (all replicas), "
        f"wall {production.wall_s:.0f} s, cpu {production.cpu_s:.0f} s, T {production.temperature_k.mean():.1f} K")

    with atomic_write(args.out + ".phase2.npz", "wb") as handle:  # the raw result, before any analysis can fail
        np.savez(handle, phi_rad=production.phi_rad, psi_rad=production.psi_rad,
                 bias_kj_mol_frames=production.bias_kj_mol, bias_grid_kj_mol=bias.bias_kj_mol,
                 walker_phi_rad=bias.phi_rad, walker_psi_rad=bias.psi_rad)
    T = protocol.temperature_k
    weights = md.frame_weights(production.bias_kj_mol, T)
    fes = md.reweighted_fes(production.phi_rad, production.psi_rad, weights, T, args.bins)
    pops = md.basin_populations(production.phi_rad, production.psi_rad, weights, args.n_boot, args.seed)
    noise = md.fes_noise(production.phi_rad, production.psi_rad, weights, T, args.bins, n_boot=200, seed=args.seed)
    ess = float(1.0 / np.sum(weights ** 2))
    up, down = crossings(production.phi_rad)
    walker_up, walker_down = crossings(bias.phi_rad)
    # metadynamics' own estimate, binned on the same grid for a look (not the measurement)
    centres = -np.pi + (np.arange(args.bins) + 0.5) * 2 * np.pi / args.bins
    cphi, cpsi = np.meshgrid(centres, centres, indexing="ij")
    metad_fes = -(protocol.bias_factor / (protocol.bias_factor - 1.0)) * md.bias_at(bias.bias_kj_mol, cphi, cpsi)
    metad_fes = (metad_fes - metad_fes.min()) / protocol.kt_kj_mol
    metad_vs_reweighted = md.fes_comparison(fes, metad_fes)
    wall, cpu = time.perf_counter() - started_wall, time.process_time() - started_cpu
    record = {
        "protocol": protocol.as_dict(), "seed": args.seed, "model": "ANI-1x (nnforce.models.ani1x(), 8 networks)",
        "pt2_precision": PT2_PRECISION, "platform": "CPU, 1 thread, 1 torch thread",
        "lengths": {"metad_steps": bias.steps, "replicas": protocol.replicas, "production_steps": production.steps,
                    "metad_ps": bias.steps * protocol.timestep_fs / 1000,
                    "production_ps_per_replica": production.steps * protocol.timestep_fs / 1000,
                    "frames": int(production.phi_rad.size)},
        "ms_per_step": {"single_molecule_wall": single[0], "single_molecule_cpu": single[1],
                        "batched_wall": batched[0], "batched_cpu": batched[1], "phase1_wall": bias.ms_per_step,
                        "phase2_wall": production.ms_per_step},
        "wall_s": {"total": wall, "phase1": bias.wall_s, "phase2": production.wall_s, "compile": compile_s},
        "cpu_s": {"total": cpu, "phase1": bias.cpu_s, "phase2": production.cpu_s},
        "temperature_k": {"phase1_mean": float(bias.temperature_k.mean()),
                          "phase2_mean": float(production.temperature_k.mean())},
        "basin_populations": {k: list(v) for k, v in pops.items()},
        "fes_noise": noise, "effective_sample_size": ess,
        "phi_crossings": {"phase2_neg_to_pos": up, "phase2_pos_to_neg": down, "walker_neg_to_pos": walker_up,
                          "walker_pos_to_neg": walker_down},
        "metad_estimate_vs_reweighted": metad_vs_reweighted,
        "versions": run_versions, "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with atomic_write(args.out, "wb") as handle:
        np.savez_compressed(
            handle, fes_kt=fes["fes_kt"], counts=fes["counts"], edges_rad=fes["edges_rad"],
            phi_rad=production.phi_rad, psi_rad=production.psi_rad, weights=weights,
            bias_kj_mol_frames=production.bias_kj_mol, bias_grid_kj_mol=bias.bias_kj_mol,
            basins=np.array(list(pops)), basin_populations=np.array([pops[k] for k in pops]),
            ms_per_step=np.float64(single[0]), record=np.array(json.dumps(record)))
    os.remove(partial)
    os.remove(args.out + ".phase2.npz")
    write_markdown(args.results, record, fes)
    log(f"wrote {args.out} and {args.results}")
    return 0


def write_markdown(path, record, fes):
    import numpy as np

    from nnforce._io import atomic_write

    p, L, ms = record["protocol"], record["lengths"], record["ms_per_step"]
    lines = [
        "# The teacher's reference phi/psi free energy (ANI-1x through NNForce)", "",
        f"`python bench/teacher_fes.py` ({record['date']}; seed {record['seed']}; {record['versions']['machine']}, "
        f"torch {record['versions']['torch']}, OpenMM {record['versions']['openmm']}, commit "
        f"{record['versions']['git_commit'][:10]}). Model: {record['model']}, `.pt2` in {record['pt2_precision']} "
        f"precision; {record['platform']}.", "",
        "Protocol (`nnforce.simulate.metadynamics.SamplingProtocol`, the defaults): "
        + ", ".join(f"{k} {v}" for k, v in p.items() if k not in ("metad_steps", "replicas", "production_steps")) + ".",
        "", f"Lengths: phase 1 {L['metad_steps']} steps ({L['metad_ps']:g} ps, one walker); phase 2 {L['replicas']} "
        f"replicas x {L['production_steps']} steps ({L['production_ps_per_replica']:g} ps each), {L['frames']} frames.",
        "", "| cost | wall ms/step | CPU ms/step |", "|---|---|---|",
        f"| 1 molecule (the teacher's cost per step) | {ms['single_molecule_wall']:.1f} | {ms['single_molecule_cpu']:.1f} |",
        f"| {L['replicas']} replicas batched in one Context | {ms['batched_wall']:.1f} | {ms['batched_cpu']:.1f} |",
        f"| phase 1 as run (metadynamics) | {ms['phase1_wall']:.1f} | |",
        f"| phase 2 as run ({L['replicas']} replicas) | {ms['phase2_wall']:.1f} | |", "",
        f"Wall {record['wall_s']['total']:.0f} s (compile {record['wall_s']['compile']:.0f}, phase 1 "
        f"{record['wall_s']['phase1']:.0f}, phase 2 {record['wall_s']['phase2']:.0f}); CPU time received "
        f"{record['cpu_s']['total']:.0f} s (the machine is shared: wall/CPU shows the load).", "",
        "| basin | population | 95% interval (bootstrap over replicas) |", "|---|---|---|"]
    for name, (value, low, high) in record["basin_populations"].items():
        lines.append(f"| {name} | {value:.4f} | {low:.4f} - {high:.4f} |")
    n = record["fes_noise"]
    c = record["phi_crossings"]
    m = record["metad_estimate_vs_reweighted"]
    lines += ["",
              f"FES noise over the {n['bins']} bins (of {fes['fes_kt'].size}) within 4 kT: bootstrap over replicas "
              f"{n['bootstrap_rms_kt']:.3f} kT (RMS of the per-bin standard deviation); half split (even vs odd "
              f"replicas) differ by {n['half_split_difference_kt']:.3f} kT, i.e. {n['half_split_rms_kt']:.3f} kT for "
              "the whole.",
              f"Effective sample size of the reweighted frames: {record['effective_sample_size']:.0f} of {L['frames']}.",
              f"phi crossings (+-20 deg hysteresis): phase 2 {c['phase2_neg_to_pos']} negative->positive, "
              f"{c['phase2_pos_to_neg']} positive->negative; the metadynamics walker {c['walker_neg_to_pos']} / "
              f"{c['walker_pos_to_neg']}.",
              f"Mean kinetic temperature: phase 1 {record['temperature_k']['phase1_mean']:.1f} K, phase 2 "
              f"{record['temperature_k']['phase2_mean']:.1f} K (target {p['temperature_k']} K).",
              f"Metadynamics' own estimate -(gamma/(gamma-1)) V vs the reweighted surface: RMS {m['rms_kt']:.2f} kT over "
              f"{m['bins']} bins (a consistency look; the reweighted phase 2 is the reference).", "",
              "The reference file `python/nnforce/demo/data/teacher_fes.npz` holds the FES grid (kT, min 0, NaN where "
              "unsampled, [phi, psi] bins over [-pi, pi)), the basin populations with intervals, phi/psi, bias and "
              "weight of every frame, the bias grid, ms_per_step and the record above as JSON (`record`).", ""]
    with atomic_write(path, "w") as handle:
        handle.write("\n".join(lines))


if __name__ == "__main__":
    if "--compile-only" in sys.argv:
        out = DEFAULT_PT2
        _, seconds, info = compile_teacher(out)
        print(f"compiled {out} in {seconds:.0f} s; checks {info.get('checks')}")
        sys.exit(0)
    sys.exit(main())
