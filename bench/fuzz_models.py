"""Single-byte corruption of a model file: does any damaged byte change the energy without an error?

Run: `python bench/fuzz_models.py [--model FILE] [--xor 255] [--stride 1]`; writes bench/results/fuzz_models.md.

Without --model it writes a small TorchScript model (a radial-basis pair network with weights, buffers and
constants: every kind of entry torch.jit.save writes, stored and deflated) and flips every byte of it, one at a
time (byte ^= --xor). Each damaged copy goes through what a user does: ``NNForce(path)``, a Context on the
Reference platform, the energy and forces of a fixed 8-atom configuration. Each flip ends as one of:

* refused: a clean error (openmm.OpenMMException, or a Python error carrying a message) before any number;
* same: the model loaded and gave exactly the undamaged energy and forces (the byte is never read);
* silent: the energy or forces changed with no error (the failure this script exists to count; goal 0);
* crash: the worker process died (segfault, abort).

Flips run in a worker subprocess that reports each result as it goes, so a crash costs one flip, not the run.
``--nnforce-python DIR`` runs the workers against another copy of the package (e.g. an older checkout's
``python`` folder) for a before/after comparison in one table.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
OUTCOMES = ("refused", "same", "silent", "crash")
POSITIONS = [[0.00, 0.00, 0.00], [0.31, 0.02, -0.05], [0.05, 0.29, 0.08], [-0.27, 0.11, 0.12],
             [0.12, -0.24, 0.30], [0.40, 0.33, 0.21], [-0.18, -0.35, -0.22], [0.26, -0.08, 0.41]]


def write_small_model(path, seed=0):
    """A few-kB TorchScript pair network: Gaussian radial basis -> Linear -> tanh -> Linear, summed over pairs."""
    import torch

    class SmallPairNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            generator = torch.Generator().manual_seed(seed)
            self.register_buffer("centers", torch.linspace(0.1, 0.6, 6, dtype=torch.float64))
            self.hidden = torch.nn.Linear(6, 4).double()
            self.out = torch.nn.Linear(4, 1).double()
            with torch.no_grad():
                for p in self.parameters():
                    p.copy_(torch.randn(p.shape, generator=generator, dtype=torch.float64) * 0.5)
            self.width = 25.0

        def forward(self, positions: torch.Tensor) -> torch.Tensor:
            n = positions.shape[0]
            ij = torch.triu_indices(n, n, 1)
            d = positions[ij[1]] - positions[ij[0]]
            r = torch.sqrt((d * d).sum(1))
            basis = torch.exp(-self.width * (r[:, None] - self.centers[None, :]) ** 2)
            return self.out(torch.tanh(self.hidden(basis))).sum()

    torch.jit.script(SmallPairNet()).save(path)


def worker(model, xor, start, stop, stride):
    """Evaluate damaged copies [start, stop) of model; print one JSON line per flip (and one for the reference)."""
    import numpy as np
    import torch

    torch.set_num_threads(1)
    import nnforce
    from _common import context as bench_context

    def evaluate(data):
        with tempfile.NamedTemporaryFile(suffix=".pt", delete=False) as handle:
            handle.write(data)
        try:
            context = bench_context(nnforce.NNForce(handle.name), len(POSITIONS), "Reference")
            context.setPositions(POSITIONS)
            state = context.getState(getEnergy=True, getForces=True)
            return [state.getPotentialEnergy()._value] + np.asarray(state.getForces(asNumpy=True)._value).ravel().tolist()
        finally:
            os.unlink(handle.name)

    original = open(model, "rb").read()
    reference = evaluate(original)
    print(json.dumps({"reference": reference}), flush=True)
    for index in range(start, stop, stride):
        damaged = bytearray(original)
        damaged[index] ^= xor
        try:
            values = evaluate(bytes(damaged))
            outcome = "same" if values == reference else "silent"
            message = ""
        except Exception as error:  # noqa: BLE001 - classifying every failure is the point
            text = str(error).strip().splitlines()
            outcome = "refused" if text else "silent"
            message = f"{type(error).__name__}: {text[0] if text else ''}"[:160]
        print(json.dumps({"index": index, "outcome": outcome, "message": message}), flush=True)


def run(model, xor, stride, nnforce_python):
    """Flip every stride-th byte of model in worker processes (restarted after a crash); outcome per index."""
    size = os.path.getsize(model)
    environment = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=nnforce_python)
    results, start = {}, 0
    while start < size:
        command = [sys.executable, os.path.abspath(__file__), "--worker", model, "--xor", str(xor), "--stride", str(stride),
                   "--range", str(start), str(size)]
        process = subprocess.run(command, env=environment, capture_output=True, text=True)
        done = [json.loads(line) for line in process.stdout.splitlines() if line.startswith("{")]
        indices = [d["index"] for d in done if "index" in d]
        for d in done:
            if "index" in d:
                results[d["index"]] = d
        if process.returncode == 0:
            break
        if not done:
            raise RuntimeError(f"the worker failed before the undamaged model was evaluated:\n{process.stderr[-2000:]}")
        crashed = (max(indices) + stride) if indices else start
        results[crashed] = {"index": crashed, "outcome": "crash", "message": f"worker exit status {process.returncode}"}
        start = crashed + stride
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model file to damage (default: a small generated TorchScript model)")
    parser.add_argument("--xor", type=int, default=255, help="XOR mask applied to each byte (default 255: every bit)")
    parser.add_argument("--stride", type=int, default=1, help="flip every n-th byte (default 1: every byte)")
    parser.add_argument("--nnforce-python", action="append", default=None, metavar="DIR",
                        help="the python/ folder holding the nnforce package to test (repeat to compare builds); "
                             "default: this checkout's")
    parser.add_argument("--output", default="fuzz_models.md", help="file name under bench/results")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--range", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.xor, args.range[0], args.range[1], args.stride)
        return

    sys.path.insert(0, HERE)
    from _common import write_table

    folders = args.nnforce_python or [os.path.join(HERE, "..", "python")]
    with tempfile.TemporaryDirectory() as scratch:
        model = args.model or os.path.join(scratch, "small_pair_net.pt")
        if not args.model:
            write_small_model(model)
        size = os.path.getsize(model)
        rows, examples = [], {}
        for folder in folders:
            began = time.process_time(), time.perf_counter()
            results = run(model, args.xor, args.stride, os.path.abspath(folder))
            counts = {o: sum(1 for r in results.values() if r["outcome"] == o) for o in OUTCOMES}
            seconds = time.perf_counter() - began[1]
            rows.append([os.path.relpath(os.path.abspath(folder)), f"{size} B", len(results)] + [counts[o] for o in OUTCOMES] +
                        [f"{seconds:.0f}"])
            for r in results.values():
                if r["outcome"] in ("silent", "crash") or (r["outcome"] == "refused" and len(examples) < 6 and r["message"] not in examples.values()):
                    examples.setdefault(f"{folder}:{r['index']}", r["message"] or r["outcome"])
            print(f"{folder}: {len(results)} flips, " + ", ".join(f"{o} {counts[o]}" for o in OUTCOMES), flush=True)
    header = ["nnforce package", "model", "flips", "refused", "same", "silent", "crash", "wall s"]
    notes = [f"Every {'' if args.stride == 1 else str(args.stride) + '-th '}byte of "
             f"{'the generated 6-4-1 radial pair network' if not args.model else os.path.basename(args.model)} XOR {args.xor}, "
             "each copy loaded with NNForce(path) and evaluated on the Reference platform (energy and forces of 8 atoms).",
             "refused: a clean error; same: identical energy and forces (the byte is never read); silent: a changed result "
             "with no error (goal 0); crash: the process died (goal 0).", "", "Sample messages:", ""]
    notes += [f"- byte {key.split(':')[-1]}: `{message}`" for key, message in list(examples.items())[:12]]
    write_table(os.path.basename(args.output), "Single-byte corruption of a model file", header, rows, notes)


if __name__ == "__main__":
    main()
