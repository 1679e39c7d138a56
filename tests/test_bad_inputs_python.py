"""Issue 15, Python side: one test per defect and per message (each fails on the code before the fix).

Checkpoints that do not match their hash, trajectories cut mid-frame, the CLI's one-line errors, the wrong or vague
messages, and the newcomer path (the README snippet as printed, built-in models by name, short-run defaults,
``nnforce analyze`` on short data).
"""
import contextlib
import io
import json
import os
import re
import subprocess
import sys

import numpy as np
import openmm
import pytest
import torch
from openmm import app

from nnforce.models import LennardJones

pytestmark = pytest.mark.usefixtures("one_torch_thread")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cli(*argv):
    from nnforce.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as stop:
            code = stop.code
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def argon(tmp_path_factory):
    """Four argon atoms (a PDB without a box), an exported LJ model, and a 400-step run writing 200 frames."""
    root = tmp_path_factory.mktemp("argon")
    topology = app.Topology()
    residue = topology.addResidue("AR", topology.addChain())
    for i in range(4):
        topology.addAtom(f"AR{i + 1}", app.element.argon, residue)
    positions = np.array([[0, 0, 0], [0.38, 0, 0], [0, 0.38, 0], [0.19, 0.19, 0.33]]) + 1.0
    pdb = root / "argon.pdb"
    with open(pdb, "w") as handle:
        app.PDBFile.writeFile(topology, positions * 10 * openmm.unit.angstrom, handle)
    model = root / "lj.pt"
    torch.jit.script(LennardJones()).save(str(model))
    run = root / "run"
    code, _, err = cli("simulate", pdb, model, "-o", run, "--steps", "400", "--platform", "Reference", "--no-progress",
                       "--threads", "1", "--timestep-fs", "2", "--temperature", "80", "--checkpoint-interval", "200",
                       "--trajectory-interval", "2")
    assert code == 0, err
    return {"root": root, "pdb": str(pdb), "model": str(model), "run": str(run), "stderr": err}


# ---- checkpoints ----

def test_truncated_checkpoint_is_refused_naming_the_file_and_nothing_is_loaded(argon, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(argon["run"], run)
    chk = run / "checkpoint.chk"
    data = chk.read_bytes()
    chk.write_bytes(data[: len(data) - 100])  # used to be loaded: the run went on without the integrator's state
    before = (run / "energies.csv").read_text()
    code, _, err = cli("simulate", argon["pdb"], argon["model"], "-o", run, "--steps", "600", "--platform", "Reference",
                       "--no-progress", "--timestep-fs", "2", "--temperature", "80", "--resume")
    assert code == 2
    assert re.search(r"error: resume: .*checkpoint\.chk \(\d+ bytes\) does not match the SHA-256 recorded in .*checkpoint\.json",
                     err)
    assert (run / "energies.csv").read_text() == before  # nothing was run or rewritten


def test_checkpoint_json_error_names_the_file(argon, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(argon["run"], run)
    (run / "checkpoint.json").write_text('{"step": 2')
    code, _, err = cli("simulate", argon["pdb"], argon["model"], "-o", run, "--steps", "600", "--platform", "Reference",
                       "--no-progress", "--timestep-fs", "2", "--temperature", "80", "--resume")
    assert code == 2 and f"{run / 'checkpoint.json'} is not valid JSON" in err


def test_checkpoint_hash_is_recorded_beside_it(argon):
    import hashlib

    saved = json.load(open(os.path.join(argon["run"], "checkpoint.json")))
    data = open(os.path.join(argon["run"], "checkpoint.chk"), "rb").read()
    assert saved["checkpoint_sha256"] == hashlib.sha256(data).hexdigest()


# ---- trajectories ----

def test_dcd_cut_mid_frame_names_the_incomplete_frame(argon, tmp_path):
    from nnforce.analysis.trajfile import check_trajectory, trajectory_layout

    dcd = os.path.join(argon["run"], "trajectory.dcd")
    layout = trajectory_layout(dcd)
    assert layout["complete_frames"] == 200 and layout["partial_bytes"] == 0
    assert layout["frame_interval_ps"] == pytest.approx(0.004, rel=1e-6)  # 2 steps x 2 fs, from the DCD header
    cut = tmp_path / "cut.dcd"
    cut.write_bytes(open(dcd, "rb").read()[:-10])
    with pytest.raises(ValueError, match=r"frame 200 is incomplete \(the file ends 62 of its 72 bytes into it\)"):
        check_trajectory(cut)
    assert check_trajectory(cut, complete_frames_only=True) == 199


def test_xtc_cut_mid_frame_is_detected(argon, tmp_path):
    import mdtraj as md

    from nnforce.analysis.trajfile import check_trajectory

    traj = md.load(os.path.join(argon["run"], "trajectory.dcd"), top=argon["pdb"])
    xtc = tmp_path / "t.xtc"
    traj[:20].save_xtc(str(xtc))
    assert check_trajectory(xtc) is None
    cut = tmp_path / "cut.xtc"
    cut.write_bytes(open(xtc, "rb").read()[:-5])
    with pytest.raises(ValueError, match=r"frame 20 is incomplete"):
        check_trajectory(cut)


# ---- the CLI ----

def test_every_failure_is_one_line_and_debug_shows_the_traceback(argon, tmp_path):
    garbage = tmp_path / "garbage.pdb"
    garbage.write_bytes(os.urandom(300))  # used to print an IndexError/ValueError traceback from OpenMM's reader
    code, _, err = cli("simulate", garbage, argon["model"], "-o", tmp_path / "o", "--platform", "Reference")
    assert code == 2 and "Traceback" not in err
    assert len([line for line in err.splitlines() if "error:" in line]) == 1
    assert err.strip().splitlines()[-1].startswith(f"nnforce simulate: error: structure {garbage} is not a readable PDB")
    command = [sys.executable, "-m", "nnforce.cli", "simulate", str(garbage), argon["model"], "--debug"]
    result = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert result.returncode != 0 and "Traceback (most recent call last)" in result.stderr


def test_model_that_fails_in_forward_is_one_line_with_its_own_message(argon, tmp_path):
    class Refuses(torch.nn.Module):
        def forward(self, positions: torch.Tensor) -> torch.Tensor:
            if bool(positions.sum() > -1e9):
                raise RuntimeError("positions out of the training domain")
            return positions.sum()

    path = tmp_path / "refuses.pt"
    torch.jit.script(Refuses()).save(str(path))
    code, _, err = cli("simulate", argon["pdb"], path, "-o", tmp_path / "o", "--platform", "Reference", "--no-progress")
    assert code == 2 and "Traceback" not in err
    assert re.search(r"nnforce simulate: error: NNForce: the model raised an error in forward\(\): .*positions out of "
                     r"the training domain", err)


def test_unwritable_output_folder_is_one_line(argon):
    code, _, err = cli("simulate", argon["pdb"], argon["model"], "-o", "/proc/nnforce/run", "--platform", "Reference")
    assert code == 2 and "error: cannot write to the output folder /proc/nnforce/run" in err


# ---- messages ----

def test_truncated_model_is_not_blamed_on_torch_save(argon, tmp_path):
    data = open(argon["model"], "rb").read()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[: len(data) * 2 // 3])
    code, _, err = cli("simulate", argon["pdb"], cut, "-o", tmp_path / "o", "--platform", "Reference")
    assert code == 2 and "no zip end record (the file was cut short" in err and "torch.save" not in err


def test_directory_given_as_model_says_directory(argon, tmp_path):
    code, _, err = cli("simulate", argon["pdb"], tmp_path, "-o", tmp_path / "o", "--platform", "Reference")
    assert code == 2 and "is a directory, not a model file" in err and "not found" not in err


def test_bad_analysis_option_names_the_option(argon, tmp_path):
    code, _, err = cli("analyze", os.path.join(argon["run"], "trajectory.dcd"), "--top", argon["pdb"], "--features",
                       "distances:selection=all", "--reduce", "tica:lag=abc", "-o", tmp_path / "a")
    assert code == 2 and "reduce option lag='abc' in 'tica:lag=abc' must be a positive whole number" in err


def test_corrupt_training_checkpoint_is_one_line_naming_it(tmp_path):
    bad = tmp_path / "best.ckpt"
    bad.write_bytes(b"PK\x03\x04" + os.urandom(200))
    code, _, err = cli("export", bad, "-o", tmp_path / "m.pt")
    assert code == 2 and f"{bad} is not a readable training checkpoint" in err and "Traceback" not in err


# ---- the newcomer path ----

def test_readme_snippet_runs_exactly_as_printed(tmp_path):
    text = open(os.path.join(ROOT, "README.md")).read()
    section = text[text.index("## NNForce in an OpenMM script"):]
    start = section.index("```python\n") + len("```python\n")
    snippet = section[start:section.index("\n```", start)]
    script = tmp_path / "snippet.py"
    script.write_text(snippet)
    import nnforce  # the snippet runs with the nnforce under test (installed by `make test`, or on PYTHONPATH)

    environment = dict(os.environ, OMP_NUM_THREADS="1",
                       PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(nnforce.__file__))))
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, env=environment,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    energy = float(result.stdout.split()[0])
    assert -2000.0 < energy < -500.0  # 216 LJ argon atoms in the liquid at 120 K: about -5 kJ/mol per atom


def test_builtin_model_by_name_is_the_published_ani1x(tmp_path):
    from nnforce.contract import inspect_model
    from nnforce.models.ani1x import ani1x

    info = inspect_model("ani1x")  # no such file: the built-in model
    assert info["elements"] == [1, 6, 7, 8] and "atomic_numbers" in info["arguments"]
    module = torch.jit.load(io.BytesIO(info["bytes"]))
    methane = torch.tensor([[0.0, 0.0, 0.0], [0.0629, 0.0629, 0.0629], [-0.0629, -0.0629, 0.0629],
                            [-0.0629, 0.0629, -0.0629], [0.0629, -0.0629, -0.0629]], dtype=torch.float64)
    z = torch.tensor([6, 1, 1, 1, 1])
    assert module(methane, z).item() == pytest.approx(ani1x()(methane, z).item(), abs=1e-9)
    code, out, _ = cli("simulate", "--help")
    assert "ani1x" in out


def test_short_runs_get_equilibration_and_a_trajectory_interval_scaled_to_the_run(argon):
    from nnforce.simulate.config import short_run_defaults

    assert short_run_defaults(2000, 0.5) == {"equilibration_steps": 1000, "trajectory_interval": 20,
                                             "report_interval": 10}
    result = json.load(open(os.path.join(argon["run"], "result.json")))
    assert result["equilibration_steps"] == 250  # 0.5 ps at 2 fs
    assert "equilibration steps 250, report interval 2" in argon["stderr"]  # the trajectory interval was given


def test_temperature_far_from_target_is_warned_about():
    from nnforce.simulate.outputs import temperature_warning

    # the run: 213 K mean for a 300 K target; a 22-atom molecule over 1 ps of Langevin dynamics
    assert "213.0 K is far from the 300 K target" in temperature_warning([213.0] * 200, 300.0, 60, 1.0, 1.0)
    assert temperature_warning([290.0, 310.0] * 100, 300.0, 60, 1.0, 1.0) is None


def test_equilibration_brings_a_minimised_structure_to_temperature(tmp_path):
    """With the CLI's default equilibration (0.5 ps, strong friction) the production mean is near the target."""
    from nnforce.simulate import SimulationConfig, run

    rng = np.random.default_rng(3)
    topology = app.Topology()
    residue = topology.addResidue("AR", topology.addChain())
    grid = np.indices((3, 3, 3)).reshape(3, -1).T * 0.39
    for i in range(27):
        topology.addAtom(f"A{i}", app.element.argon, residue)
    positions = grid + rng.normal(scale=0.01, size=grid.shape)
    result = run(SimulationConfig(model=torch.jit.script(LennardJones()), topology=topology, positions=positions,
                                  output_dir=str(tmp_path / "r"), steps=2000, equilibration_steps=250, timestep_fs=2.0,
                                  temperature_k=80.0, platform="Reference", trajectory=None, report_interval=10,
                                  progress=False))
    assert result["temperature_warning"] is None
    assert abs(result["temperature_mean_k"] - 80.0) < 12.0


def test_analyze_with_defaults_on_200_frames_adapts_and_writes_the_report(argon, tmp_path):
    out = tmp_path / "analysis"
    code, printed, err = cli("analyze", os.path.join(argon["run"], "trajectory.dcd"), "--top", argon["pdb"],
                             "--features", "distances:selection=all", "-o", out)
    assert code == 0, err
    assert "frames: 200" in printed and "frame interval: 0.004 ps" in printed
    assert "k-means k 10 for 200 frames" in printed and "TICA lag 10 frames" in printed
    page = (out / "analysis.html").read_text()
    assert "chosen for the data" in page and " ps" in page
    links = re.findall(r'<a href="([^"]+\.pdb)"', page)
    assert links and all((out / link).is_file() for link in links)


def test_timescales_longer_than_the_data_are_flagged():
    from nnforce.analysis.adapt import flag_timescales

    assert flag_timescales([0.5, 3.0], 1.0, "ps") == "0.5 ps, 3 ps (longer than the 1 ps of data: not resolved)"


# ---- issue 24 ----

def test_no_hydrogen_structure_under_a_model_with_hydrogen_is_warned(argon, tmp_path):
    """ANI-1x on a structure without hydrogens ran without a word: now one warning line, and the run goes on."""
    model = tmp_path / "lj_h.pt"
    torch.jit.save(torch.jit.script(LennardJones()), str(model),
                   _extra_files={"nnforce_metadata.json": json.dumps({"elements": [1, 18], "cutoff_nm": 0.85})})
    code, _, err = cli("simulate", argon["pdb"], model, "-o", tmp_path / "run", "--steps", "2", "--platform",
                       "Reference", "--no-progress", "--equilibration-steps", "0", "--no-minimize")
    assert code == 0, err
    warnings = [line for line in err.splitlines() if "no hydrogen" in line]
    assert len(warnings) == 1 and warnings[0].startswith("nnforce simulate: warning: the structure has 4 atoms and no hydrogen")
    code, _, err = cli("simulate", argon["pdb"], argon["model"], "-o", tmp_path / "run2", "--steps", "2", "--platform",
                       "Reference", "--no-progress", "--equilibration-steps", "0", "--no-minimize")
    assert code == 0 and "no hydrogen" not in err  # a model that knows no hydrogen: nothing to say


def test_resume_with_the_same_structure_still_continues(argon, tmp_path):
    """The topology fingerprint refuses another structure (catalogue) but not the one the run was written with."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(argon["run"], run)
    saved = json.load(open(run / "checkpoint.json"))["step"]
    code, _, err = cli("simulate", argon["pdb"], argon["model"], "-o", run, "--steps", "410", "--platform", "Reference",
                       "--no-progress", "--timestep-fs", "2", "--temperature", "80", "--resume")
    assert code == 0, err
    assert json.load(open(run / "result.json"))["resumed_from_step"] == saved > 0


def test_thread_defaults_give_a_small_model_one_torch_thread_and_openmm_one(argon, tmp_path):
    from nnforce.simulate import SimulationConfig, run
    from nnforce.simulate.threads import apply_thread_defaults, default_torch_threads

    assert default_torch_threads(22, cores=64) == 1 and default_torch_threads(40000, cores=8) == 8
    properties = {}
    assert apply_thread_defaults(None, 22, True, "CPU", properties) == 1 and properties == {"Threads": "1"}
    assert torch.get_num_threads() == 1
    properties = {}
    assert apply_thread_defaults(None, 22, False, "CPU", properties) == 1 and properties == {}  # ML/MM: OpenMM's own
    torch.set_num_threads(2)
    result = run(SimulationConfig(model=argon["model"], pdb=argon["pdb"], output_dir=str(tmp_path / "t"), steps=2,
                                  platform="Reference", progress=False, trajectory=None))
    assert result["final_step"] == 2 and torch.get_num_threads() == 1


def test_equilibration_is_never_longer_than_the_run(argon, tmp_path):
    code, out, err = cli("simulate", argon["pdb"], argon["model"], "-o", tmp_path / "run", "--steps", "20",
                         "--platform", "Reference", "--no-progress", "--threads", "1")
    assert code == 0, err
    assert json.load(open(tmp_path / "run" / "result.json"))["equilibration_steps"] == 20


def test_msm_inactive_clusters_are_not_captioned_population_zero():
    from nnforce.analysis.stages import population_caption as _population_caption

    assert _population_caption(0.0, True) == "outside the MSM's active set (no stationary population)"
    assert _population_caption(0.25, False) == "population 0.250"


def test_report_interval_longer_than_the_run_is_warned(argon, tmp_path):
    """--report-interval 1000 on a 4-step run wrote an energies.csv without a row, without a word."""
    code, _, err = cli("simulate", argon["pdb"], argon["model"], "-o", tmp_path / "run", "--steps", "4", "--platform",
                       "Reference", "--no-progress", "--equilibration-steps", "0", "--report-interval", "1000",
                       "--no-minimize")
    assert code == 0, err
    warnings = [line for line in err.splitlines() if "warning" in line]
    assert warnings == ["nnforce simulate: warning: --report-interval 1000 is longer than the run (4 steps): energies.csv "
                        "gets no row; give --report-interval 1 or less"]


def test_to_pt2_refuses_max_atoms_zero_before_compiling():
    from nnforce.export import to_pt2

    with pytest.raises(ValueError, match=r"max_atoms must be a whole number >= 2 \(or None for the default\), got 0"):
        to_pt2(LennardJones(), "unused.pt2", {"positions": torch.zeros(3, 3, dtype=torch.float64)}, max_atoms=0)


def test_analyze_prints_no_dcd_reader_chatter(argon, tmp_path, capfd):
    """mdtraj's DCD reader printed 'dcdplugin) ...' lines on opening each file (64 per analysis)."""
    from nnforce.analysis.stream import iter_chunks

    capfd.readouterr()
    frames = sum(c.n_frames for c in iter_chunks(os.path.join(argon["run"], "trajectory.dcd"),
                                                 os.path.join(argon["run"], "final.pdb"), chunk=50))
    print("after")
    out, err = capfd.readouterr()
    assert frames > 0 and "dcdplugin" not in out + err and out == "after\n"


def test_replica_ensemble_resume_refuses_another_structure(argon, tmp_path):
    """The ensemble's manifest compared settings only: a structure with the same atom count in another order was
    continued from the replicas' checkpoints. It now records the topology fingerprint and refuses."""
    from openmm import app as openmm_app

    from nnforce.simulate.ensemble import EnsembleConfig, _manifest, _prepare_output

    topology = openmm_app.PDBFile(argon["pdb"]).topology
    swapped = openmm_app.Topology()
    residue = swapped.addResidue("AR", swapped.addChain())
    for name in ("AR2", "AR1", "AR3", "AR4"):
        swapped.addAtom(name, app.element.argon, residue)
    config = EnsembleConfig(model=argon["model"], pdb=argon["pdb"], replicas=2, steps=10, output_dir=str(tmp_path / "e"))
    os.makedirs(config.output_dir)
    info = {"sha256": "m"}
    _prepare_output(config, _manifest(config, info, [], topology))
    config.resume = True
    _prepare_output(config, _manifest(config, info, [], topology))  # the same structure: goes on
    with pytest.raises(ValueError, match=r"--resume: the ensemble in .* was run on another structure"):
        _prepare_output(config, _manifest(config, info, [], swapped))
