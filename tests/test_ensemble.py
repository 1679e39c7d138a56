"""``nnforce simulate --replicas`` on Dask (issue 14): a real scheduler and workers as separate processes, a worker
killed mid-run, bad input. Every trajectory is compared frame by frame with an uninterrupted run of the same
replica, so a frame written twice, lost, or computed from the wrong state would show."""
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from nnforce.simulate.ensemble import EnsembleConfig, run_ensemble
from nnforce.simulate.replica_batch import read_checkpoint, run_batch

PYTHON = sys.executable
import nnforce  # noqa: E402

# The workers import the nnforce under test (installed by `make test`, or a source tree on PYTHONPATH), never
# a source tree that has no compiled plugin.
SRC = os.path.dirname(os.path.dirname(os.path.abspath(nnforce.__file__)))
STEPS, FRAME_EVERY, CHECKPOINT_EVERY = 240, 20, 40


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")]))
    env.pop("PYTEST_CURRENT_TEST", None)
    return env


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A small ANI-style model (exported with its cutoff) and alanine dipeptide."""
    from openmm.app import PDBFile

    from nnforce.demo import alanine_dipeptide
    from nnforce.export import export_model
    from nnforce.models import ANIModel

    root = tmp_path_factory.mktemp("ensemble")
    model = str(root / "model.pt")
    export_model(ANIModel([1, 6, 7, 8], hidden=[8], seed=2), model, check=False)
    topology, positions = alanine_dipeptide()
    pdb = str(root / "mol.pdb")
    with open(pdb, "w") as handle:
        PDBFile.writeFile(topology, positions, handle)
    return {"model": model, "pdb": pdb, "root": root}


def _spec(inputs, out, replicas):
    """The spec run_ensemble would give a batch (settings as in the CLI calls below)."""
    from openmm import unit
    from openmm.app import PDBFile

    from nnforce.contract import inspect_model

    with open(inputs["pdb"]) as handle:
        text = handle.read()
    start = PDBFile(inputs["pdb"]).getPositions(asNumpy=True).value_in_unit(unit.nanometer).tolist()
    return dict(output_dir=str(out), model_bytes=inspect_model(inputs["model"])["bytes"], pdb_text=text,
                replicas=list(replicas), starts={k: start for k in replicas}, steps=STEPS, timestep_fs=0.5,
                temperature_k=300.0, friction_per_ps=1.0, seed=3, trajectory_interval=FRAME_EVERY,
                checkpoint_interval=CHECKPOINT_EVERY, platform="CPU", model_precision=None, neighbor_cutoff_nm=None,
                neighbor_skin_nm=0.0, minimize=False, minimize_max_iterations=500, threads=1, suffix=".dcd")


def _frames(path, pdb):
    import mdtraj

    return mdtraj.load(path, top=pdb).xyz


@pytest.fixture(scope="module")
def reference(inputs):
    """Each replica run alone, uninterrupted, in this process (no Dask)."""
    out = inputs["root"] / "reference"
    for k in range(2):
        run_batch(_spec(inputs, out, [k]))
    return {k: _frames(str(out / f"replica_{k:04d}.dcd"), inputs["pdb"]) for k in range(2)}


def _cli(inputs, out, *extra, **popen):
    command = [PYTHON, "-m", "nnforce.cli", "simulate", inputs["pdb"], inputs["model"], "-o", str(out),
               "--steps", str(STEPS), "--trajectory-interval", str(FRAME_EVERY), "--checkpoint-interval",
               str(CHECKPOINT_EVERY), "--no-minimize", "--seed", "3", "--platform", "CPU", "--no-progress", *extra]
    return subprocess.Popen(command, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def _wait_for(condition, timeout, what):
    end = time.time() + timeout
    while time.time() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def dask_cluster(tmp_path):
    """`dask scheduler` and two `dask worker` processes (no nanny: killing one kills the worker) on 127.0.0.1."""
    from distributed import Client

    scheduler_file = str(tmp_path / "scheduler.json")
    processes = [subprocess.Popen([PYTHON, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
                                   "--no-dashboard", "--scheduler-file", scheduler_file], env=_env(),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    workers = {}
    try:
        _wait_for(lambda: os.path.isfile(scheduler_file), 60, "the scheduler")
        for name in ("w0", "w1"):
            workers[name] = subprocess.Popen(
                [PYTHON, "-m", "distributed.cli.dask_worker", "--scheduler-file", scheduler_file, "--nthreads", "1",
                 "--no-nanny", "--no-dashboard", "--host", "127.0.0.1", "--name", name], env=_env(),
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            processes.append(workers[name])
        with open(scheduler_file) as handle:
            address = json.load(handle)["address"]
        client = Client(address, timeout="30s")
        _wait_for(lambda: len(client.scheduler_info()["workers"]) == 2, 60, "two workers")
        yield address, client, workers
        client.close()
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                process.kill()
            process.wait()


def test_killed_worker_replicas_resume_from_checkpoints(inputs, reference, dask_cluster, tmp_path):
    address, client, workers = dask_cluster
    out = tmp_path / "out"
    run = _cli(inputs, out, "--replicas", "2", "--batch-size", "1", "--scheduler", address)

    def mid_run():  # a replica past its first checkpoint but not done, and the worker running it
        for k in range(2):
            saved = read_checkpoint(str(out), k) if os.path.isfile(out / f"replica_{k:04d}.chk.json") else None
            if saved and CHECKPOINT_EVERY <= saved["step"] < STEPS - CHECKPOINT_EVERY:
                for address_, keys in client.processing().items():
                    if any(key.startswith(f"nnforce-replicas-{k}-{k}-") for key in keys):
                        name = client.scheduler_info()["workers"][address_]["name"]
                        return k, saved["step"], name
        return None

    killed, step, name = _wait_for(mid_run, 240, "a replica in mid-run")
    workers[name].send_signal(signal.SIGKILL)
    stdout, stderr = run.communicate(timeout=300)
    assert run.returncode == 0, stderr
    result = json.load(open(out / "ensemble_result.json"))
    assert result["frames_per_replica"] == STEPS // FRAME_EVERY
    resumed = result["resumed_from"][str(killed)]
    assert resumed and resumed[0] >= step  # it went on from a checkpoint, not from the start
    for k in range(2):
        frames = _frames(str(out / f"replica_{k:04d}.dcd"), inputs["pdb"])
        assert frames.shape == (STEPS // FRAME_EVERY, 22, 3)
        np.testing.assert_array_equal(frames, reference[k])  # nothing twice, nothing lost, same dynamics


def test_bad_input(inputs, tmp_path):
    with pytest.raises(ValueError, match="--replicas must be at least 1"):
        EnsembleConfig(inputs["model"], inputs["pdb"], replicas=0)
    # a port nobody listens on: a clear error within the timeout, not a hang
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    began = time.time()
    with pytest.raises(ConnectionError, match="could not reach the Dask scheduler"):
        run_ensemble(EnsembleConfig(inputs["model"], inputs["pdb"], replicas=2, output_dir=str(tmp_path / "a"),
                                    scheduler=f"tcp://127.0.0.1:{port}", connect_timeout_s=2, progress=False))
    assert time.time() - began < 30
    # starting structures of another molecule (one atom fewer)
    import mdtraj

    other = str(tmp_path / "other.pdb")
    mdtraj.load(inputs["pdb"]).atom_slice(range(21)).save(other)
    with pytest.raises(ValueError, match="has 21 atoms but .* has 22"):
        run_ensemble(EnsembleConfig(inputs["model"], inputs["pdb"], replicas=2, output_dir=str(tmp_path / "b"),
                                    starts=[other], progress=False))


def _limit_file_size():
    resource.setrlimit(resource.RLIMIT_FSIZE, (3400, resource.RLIM_INFINITY))  # Python ignores SIGXFSZ: EFBIG


def test_full_disk_stops_cleanly_and_resumes(inputs, reference, tmp_path):
    """A file-size limit makes the trajectory write fail part-way (as a full disk would): the run stops with a
    clear error, the checkpoint and trajectory are intact, and --resume completes the same trajectory."""
    out = tmp_path / "out"
    run = _cli(inputs, out, "--replicas", "1", "--workers", "1", preexec_fn=_limit_file_size)
    _, stderr = run.communicate(timeout=300)
    assert run.returncode == 2, stderr  # an expected failure, on one line
    assert "error:" in stderr and "could not write" in stderr and "--resume" in stderr and "Traceback" not in stderr
    saved = read_checkpoint(str(out), 0)
    assert 0 < saved["step"] < STEPS and saved["frames"] == saved["step"] // FRAME_EVERY
    kept = _frames(str(out / "replica_0000.dcd"), inputs["pdb"])
    assert len(kept) >= saved["frames"]
    np.testing.assert_array_equal(kept[:saved["frames"]], reference[0][:saved["frames"]])
    run = _cli(inputs, out, "--replicas", "1", "--workers", "1", "--resume")
    _, stderr = run.communicate(timeout=300)
    assert run.returncode == 0, stderr
    np.testing.assert_array_equal(_frames(str(out / "replica_0000.dcd"), inputs["pdb"]), reference[0])
