"""Thread defaults of `nnforce simulate` (issue 24): the README's first-hour command with the default settings vs
`--threads 1` / `--threads 2`, on an idle-ish machine and with two busy loops beside it, side by side.

Each run is the real command line in a fresh process: `nnforce simulate alanine_dipeptide.pdb ani1x --steps N
--equilibration-steps 0 --no-minimize --no-progress` (alanine dipeptide, 22 atoms, the issue's 19-atom peptide's neighbour in
size), plus the variant's flags or environment. What is timed is the production run (ms/step from the run's own
ns/day), and the whole process's wall and CPU time (user + system of the child). One run per variant per condition,
variants interleaved; the load average is recorded before every run. Writes bench/results/threads.md.

Run: PYTHONPATH=python .venv/bin/python bench/threads.py [--steps 100] [--busy-steps 60]

(Without --no-minimize the minimisation dominates: under a load of 10 the `--threads 2` run had not finished
minimising after 5 minutes, where the default's whole run took 50 s.)
"""
import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "python"))

from _common import write_table  # noqa: E402

# (label, extra flags, extra environment)
VARIANTS = [
    ("default", [], {}),
    ("--threads 1", ["--threads", "1"], {}),
    ("--threads 2", ["--threads", "2"], {}),
    ("torch's own default (old)", [], {"NNFORCE_THREADS": "torch"}),
]


TITLE = "`nnforce simulate` thread defaults (issue 24)"
HEADER = ["condition", "steps", "settings", "load avg (1 min) before", "ms/step (production)",
          "vs best of --threads 1/2", "process wall s", "process CPU s"]
NOTES = ["`nnforce simulate <alanine dipeptide, 22 atoms> ani1x --steps N --equilibration-steps 0 --no-minimize "
           "--no-progress`, "
           "CPU platform (the fastest here), one fresh process per run, one run each, variants interleaved; ms/step "
           "from the run's own ns/day (production only); wall and CPU time are the whole process's (imports, model "
           "load included; --no-minimize, since a minimisation with 2 threads under load took minutes). 'two busy loops': two `while True: pass` Python processes beside the run. "
           "'torch's own default (old)': NNFORCE_THREADS=torch, the settings before this change (torch's intra-op "
           "threads = the core count, OpenMM's CPU platform threads = the core count). The machine has 2 cores "
           "shared with four other engineers' builds and tests, so it is never idle: the load average before each run "
           "is recorded.",
           "",
           "The rule the defaults follow (nnforce.simulate.threads: default_torch_threads, apply_thread_defaults): torch's intra-op threads = "
           "1 per 2,000 model atoms, at least 1 and at most the cores this process may use (os.sched_getaffinity); "
           "OpenMM's CPU platform threads: 1 for a pure-ML system (its only work is the integrator), else OpenMM's own "
           "default (ML/MM: the MM forces use them). `--threads N` sets torch's threads; NNFORCE_THREADS=torch "
           "restores torch's and OpenMM's own defaults (the old behaviour, measured above as 'torch's own default').",
           "",
           "Why, for 16+ cores: an ANI-style model on tens of atoms runs hundreds of small ops per step, each a few "
           "microseconds of work; splitting one over OpenMP threads costs a fork/join (several microseconds) per op "
           "and, when any core is busy, waits for the slowest thread, so beyond one thread it only loses (measured "
           "here: above). Intra-op threads pay once an op holds tens of thousands of elements (thousands of atoms or "
           "pairs): hence one thread per 2,000 atoms. OpenMM's CPU platform threads and torch's threads would "
           "otherwise both claim every core; in a pure-ML system OpenMM has nothing to spread, so it keeps one."]


def _busy_loops(n):
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def _run(pdb, steps, flags, env_extra, timestep_fs=0.5, timeout_s=None):
    out = tempfile.mkdtemp(prefix="nnforce-threads-")
    env = dict(os.environ, **env_extra)
    env["PYTHONPATH"] = os.path.join(HERE, "..", "python")
    for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.pop(key, None)
    argv = [sys.executable, "-m", "nnforce.cli", "simulate", pdb, "ani1x", "--steps", str(steps),
            "--equilibration-steps", "0", "--no-minimize", "--no-progress", "--trajectory-interval", str(steps), "-o", out, *flags]
    load = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    try:
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:  # (subprocess.run kills and reaps it: its CPU time is counted)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        shutil.rmtree(out, ignore_errors=True)
        return {"load": load, "wall": time.perf_counter() - start, "ms": None, "warnings": [],
                "cpu": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)}
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{done.stderr}")
    result = json.load(open(os.path.join(out, "result.json")))
    shutil.rmtree(out, ignore_errors=True)
    ms_per_step = timestep_fs * 1e-6 / result["ns_per_day"] * 86400e3
    warnings = [line for line in done.stderr.splitlines() if "warning" in line.lower()]
    return {"load": load, "wall": wall, "cpu": cpu, "ms": ms_per_step, "warnings": warnings}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100, help="production steps on the idle-ish machine")
    parser.add_argument("--busy-steps", type=int, default=60, help="production steps beside two busy loops")
    parser.add_argument("--run-timeout", type=float, default=300.0,
                        help="seconds after which a run is stopped and reported as not finished")
    args = parser.parse_args()
    from nnforce.demo.molecule import ALANINE_PDB

    rows, results = [], {}
    for condition, busy, steps in (("idle-ish", 0, args.steps), ("two busy loops", 2, args.busy_steps)):
        loops = _busy_loops(busy)
        try:
            if busy:
                time.sleep(2)
            for label, flags, env in VARIANTS:
                r = _run(ALANINE_PDB, steps, flags, env, timeout_s=args.run_timeout)
                results[(condition, label)] = r
                speed = "did not finish" if r["ms"] is None else f"{r['ms']:.1f} ms/step"
                print(f"{condition:15s} {label:28s} load {r['load']:.2f}  {speed}  wall {r['wall']:.1f} s  "
                      f"cpu {r['cpu']:.1f} s", flush=True)
        finally:
            for loop in loops:
                loop.kill()
                loop.wait()
    for condition, steps in (("idle-ish", args.steps), ("two busy loops", args.busy_steps)):
        finished = [results[(condition, label)]["ms"] for label, _, _ in VARIANTS[1:3]]
        best = min(ms for ms in finished if ms is not None) if any(ms is not None for ms in finished) else None
        for label, _, _ in VARIANTS:
            r = results[(condition, label)]
            if r["ms"] is None:
                rows.append([condition, steps, label, f"{r['load']:.2f}", f"did not finish in {r['wall']:.0f} s", "-",
                             f"{r['wall']:.1f}", f"{r['cpu']:.1f}"])
                continue
            rows.append([condition, steps, label, f"{r['load']:.2f}", f"{r['ms']:.1f}",
                         f"{r['ms'] / best:.2f}" if best else "-", f"{r['wall']:.1f}", f"{r['cpu']:.1f}"])
    write_table("threads.md", TITLE, HEADER, rows, NOTES)


if __name__ == "__main__":
    main()
