"""`nnforce demo` in its small mode: the whole flow (amber14 sampling -> ANI-1x labels -> train -> export ->
NNForce MD -> analysis -> report.html), checked against independent computations, plus the report opened in
headless Chromium. One demo run (about a minute and a half on 2 cores) is shared by the tests of this module.
"""
import base64
import io
import math
import os
import re
import shutil
import subprocess

import numpy as np
import pytest
import torch


def _plugin_available():
    try:
        import nnforce

        nnforce.NNForce
        return True
    except ImportError:
        return False


pytestmark = pytest.mark.skipif(not _plugin_available(), reason="nnforce's compiled plugin is not built")

SECTIONS = ("training", "simulation", "phi-psi", "tica", "clusters", "run")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from nnforce.demo import run_demo

    threads = torch.get_num_threads()
    out = tmp_path_factory.mktemp("demo")
    info = run_demo(out, small=True, seed=0)
    assert torch.get_num_threads() == threads  # the demo restores the caller's thread count
    return info


def _dihedral(p0, p1, p2, p3):
    """Signed dihedral (radians) of four points (..., 3), the IUPAC convention, with plain numpy."""
    b0, b1, b2 = p0 - p1, p2 - p1, p3 - p2
    b1n = b1 / np.linalg.norm(b1, axis=-1, keepdims=True)
    v = b0 - np.sum(b0 * b1n, axis=-1, keepdims=True) * b1n
    w = b2 - np.sum(b2 * b1n, axis=-1, keepdims=True) * b1n
    x = np.sum(v * w, axis=-1)
    y = np.sum(np.cross(b1n, v) * w, axis=-1)
    return np.arctan2(y, x)


def _atom(topology, resname, name):
    return next(a.index for a in topology.atoms() if a.residue.name == resname and a.name == name)


# ------------------------------------------------------------------------------------------------ the report

def test_report_has_every_section_and_is_self_contained(demo):
    from PIL import Image

    path = demo["report"]
    assert os.path.isfile(path)
    with open(path, encoding="utf-8") as handle:
        page = handle.read()
    for section in SECTIONS:
        assert f'<section id="{section}">' in page
    for text in ("training curve", "energy trace", "phi/psi free energy", "cluster populations", "What was run",
                 "TICA free energy", "Timings (s)", "Versions"):
        assert text in page, text
    # nothing is loaded from elsewhere: every src/href is a data: URI, and there are no scripts
    references = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert references and all(ref.startswith("data:") for ref in references), references[:3]
    assert "<script" not in page.lower() and "http://" not in page and "https://" not in page
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) >= 6
    for encoded in images:
        with Image.open(io.BytesIO(base64.b64decode(encoded))) as image:
            image.verify()
            assert image.format == "PNG" and min(image.size) > 100
    # the table of what was run names the versions actually used and every timed step
    assert torch.__version__ in page
    for step in ("molecule", "reference_data", "train", "export", "simulate", "analyze"):
        assert f"<th>{step}</th>" in page or f"<td>{step}</td>" in page, step
        assert demo["timings_s"][step] > 0


# ------------------------------------------------------------------------------------------------ the molecule

def test_molecule_is_l_alanine_dipeptide_with_the_requested_backbone():
    import MDAnalysisTests.datafiles as datafiles
    import mdtraj

    from nnforce.demo import alanine_dipeptide, atomic_numbers

    topology, positions = alanine_dipeptide(-70.0, 135.0)
    x = np.asarray(positions.value_in_unit(positions.unit))
    z = atomic_numbers(topology)
    assert len(z) == 22 and np.bincount(z, minlength=9)[[1, 6, 7, 8]].tolist() == [12, 6, 2, 2]  # C6H12N2O2
    a = lambda res, name: x[_atom(topology, res, name)]  # noqa: E731
    phi = _dihedral(a("ACE", "C"), a("ALA", "N"), a("ALA", "CA"), a("ALA", "C"))
    psi = _dihedral(a("ALA", "N"), a("ALA", "CA"), a("ALA", "C"), a("NME", "N"))
    assert math.degrees(phi) == pytest.approx(-70.0, abs=1e-6)
    assert math.degrees(psi) == pytest.approx(135.0, abs=1e-6)
    # every bond has a chemically sensible length (hydrogens from OpenMM's templates included)
    for bond in topology.bonds():
        length = np.linalg.norm(x[bond[0].index] - x[bond[1].index])
        assert 0.09 < length < 0.16, (bond[0].name, bond[1].name, length)

    # L configuration: same sign of the CA chirality volume as every alanine of a real protein (adenylate kinase)
    def chirality(n, ca, c, cb):
        return np.sign(np.dot(np.cross(n - ca, c - ca), cb - ca))

    ours = chirality(a("ALA", "N"), a("ALA", "CA"), a("ALA", "C"), a("ALA", "CB"))
    protein = mdtraj.load(datafiles.PDB_small)
    signs = set()
    for residue in protein.topology.residues:
        if residue.name == "ALA":
            idx = {atom.name: atom.index for atom in residue.atoms}
            signs.add(chirality(*(protein.xyz[0, idx[k]].astype(float) for k in ("N", "CA", "C", "CB"))))
    assert len(signs) == 1 and ours == signs.pop()


# ------------------------------------------------------------------------------------------------ data + training

def test_ani1x_labels_equal_the_one_frame_teacher(demo):
    from nnforce.data import Dataset
    from nnforce.data.label import teacher_label
    from nnforce.demo import label_with_ani1x
    from nnforce.models import ani1x

    data = Dataset.load(demo["files"]["dataset"])
    few = data.subset([0, 7, len(data) - 1])
    reference = teacher_label(few, ani1x())
    frames = few.positions_nm.reshape(3, -1, 3)
    energies, forces = label_with_ani1x(ani1x(), few.atomic_numbers[:frames.shape[1]], frames, batch_frames=2)
    np.testing.assert_allclose(energies, reference.energies_kj_mol, rtol=1e-12, atol=1e-7)
    np.testing.assert_allclose(forces.reshape(-1, 3), reference.forces_kj_mol_nm, rtol=0, atol=1e-7)
    # and they are what the demo stored
    np.testing.assert_allclose(few.energies_kj_mol, reference.energies_kj_mol, rtol=1e-12, atol=1e-7)


def test_trained_model_beats_the_trivial_baseline(demo):
    from nnforce.data import Dataset, split

    data = Dataset.load(demo["files"]["dataset"])
    train, _, test = split(data, demo["settings"]["split"], seed=demo["seed"])
    model = torch.jit.load(demo["files"]["model"]).double()  # the exported file, evaluated independently
    z = torch.as_tensor(test.atomic_numbers[:int(test.n_atoms[0])])
    frames = test.positions_nm.reshape(len(test), -1, 3)
    energies, forces = [], []
    for x in frames:
        positions = torch.tensor(x, dtype=torch.float64, requires_grad=True)
        energy = model(positions, z)
        (gradient,) = torch.autograd.grad(energy, positions)
        energies.append(float(energy))
        forces.append(-gradient.numpy())
    energy_mae = np.abs(np.array(energies) - test.energies_kj_mol).mean()
    force_mae = np.abs(np.concatenate(forces) - test.forces_kj_mol_nm).mean()
    baseline_energy = np.abs(test.energies_kj_mol - train.energies_kj_mol.mean()).mean()
    baseline_force = np.abs(test.forces_kj_mol_nm).mean()
    assert math.isfinite(energy_mae) and math.isfinite(force_mae)
    assert energy_mae < baseline_energy, (energy_mae, baseline_energy)  # measured ratios 0.59-0.93 (small mode)
    assert force_mae < 0.8 * baseline_force, (force_mae, baseline_force)  # measured ratios 0.52-0.65
    # the demo's own numbers are these (same weights; the file stores them in float32)
    reported = demo["metrics"]["test"]
    assert reported["energy_mae_kj_mol"] == pytest.approx(energy_mae, rel=1e-5)
    assert reported["force_mae_kj_mol_nm"] == pytest.approx(force_mae, rel=1e-5)
    assert demo["metrics"]["baseline"]["energy_mae_kj_mol"] == pytest.approx(baseline_energy, rel=1e-12)
    history = demo["training"]["history"]
    assert history[-1]["train_loss"] < history[0]["train_loss"]


def test_exported_model_in_nnforce_gives_the_python_energy(demo):
    import openmm
    from openmm import app, unit

    import nnforce
    from nnforce.data import Dataset
    from nnforce.train import model_from_checkpoint

    model, _ = model_from_checkpoint(demo["files"]["checkpoint"])  # the trained weights, rebuilt in Python
    model = model.double()
    data = Dataset.load(demo["files"]["dataset"])
    z, x, _, _ = data.frame(3)
    positions = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    energy = model(positions, torch.as_tensor(z))
    (gradient,) = torch.autograd.grad(energy, positions)
    pdb = app.PDBFile(demo["files"]["structure"])
    assert [a.element.atomic_number for a in pdb.topology.atoms()] == z.tolist()
    for precision, tolerance in (("double", 1e-6), ("single", 2e-6 * abs(float(energy)))):
        force = nnforce.NNForce(demo["files"]["model"])
        force.setAtomicNumbers(z.tolist())
        force.setProperty("precision", precision)
        system = openmm.System()
        for atom in pdb.topology.atoms():
            system.addParticle(atom.element.mass)
        system.addForce(force)
        context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
        context.setPositions(x * unit.nanometer)
        state = context.getState(getEnergy=True, getForces=True)
        plugin_energy = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
        plugin_forces = state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)
        assert plugin_energy == pytest.approx(float(energy), abs=tolerance), precision
        scale = float(gradient.abs().max())
        np.testing.assert_allclose(plugin_forces, -gradient.numpy(), atol=(1e-9 if precision == "double" else 1e-3)
                                   * scale)
    assert demo["metrics"]["nnforce_vs_python_kj_mol"] < 1e-6


# ------------------------------------------------------------------------------------------------ MD + analysis

def test_simulation_frames_and_phi_psi(demo):
    import mdtraj
    from openmm import app

    s = demo["settings"]
    traj = mdtraj.load(demo["files"]["trajectory"], top=demo["files"]["structure"])
    assert demo["sim_steps_run"] == s["sim_steps"]  # the small mode runs a fixed length
    assert traj.n_frames == s["sim_steps"] // s["sim_trajectory_interval"] > 0
    assert np.all(np.isfinite(traj.xyz))
    # (no bond-length check: a model trained for seconds may let a hydrogen drift off; the full mode's report
    # measures that through the trajectory-vs-ANI-1x errors)
    with open(demo["files"]["energies_csv"]) as handle:
        rows = handle.read().strip().splitlines()[1:]
    # production rows only: the end of equilibration, then every report interval
    assert len(rows) == s["sim_steps"] // s["sim_report_interval"] + 1
    assert int(rows[0].split(",")[0]) == s["sim_equilibration_steps"]
    sim = demo["simulation"]
    assert sim["final_step"] == s["sim_steps"] + s["sim_equilibration_steps"]
    assert 0.5 * s["sim_temperature_k"] < sim["temperature_mean_k"] < 1.5 * s["sim_temperature_k"]

    phi, psi = demo["analysis"]["phi_rad"], demo["analysis"]["psi_rad"]
    assert len(phi) == len(psi) == traj.n_frames
    assert np.all(np.abs(phi) <= np.pi) and np.all(np.abs(psi) <= np.pi)
    top = app.PDBFile(demo["files"]["structure"]).topology
    xyz = traj.xyz.astype(np.float64)
    at = lambda res, name: xyz[:, _atom(top, res, name)]  # noqa: E731
    phi_ref = _dihedral(at("ACE", "C"), at("ALA", "N"), at("ALA", "CA"), at("ALA", "C"))
    psi_ref = _dihedral(at("ALA", "N"), at("ALA", "CA"), at("ALA", "C"), at("NME", "N"))
    wrap = lambda a: (a + np.pi) % (2 * np.pi) - np.pi  # noqa: E731
    np.testing.assert_allclose(wrap(phi - phi_ref), 0.0, atol=1e-4)
    np.testing.assert_allclose(wrap(psi - psi_ref), 0.0, atol=1e-4)


def test_cluster_populations_are_frame_fractions(demo):
    a = demo["analysis"]
    k = demo["settings"]["clusters"]
    populations = np.asarray(a["populations"])
    assert populations.shape == (k,) and populations.sum() == pytest.approx(1.0)
    frames = np.array([c["frames"] for c in a["clusters"]])
    assert frames.sum() == a["frames"]
    np.testing.assert_allclose(populations, frames / a["frames"])
    assert sum(a["basins"].values()) == pytest.approx(1.0)
    phi_deg = np.degrees(a["phi_rad"])
    assert a["basins"]["alpha_L / C7ax"] == pytest.approx(np.mean(phi_deg > 0))


# ------------------------------------------------------------------------------------------------ the browser

def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _open_in_chromium(path, user_dir, *extra):
    """Run headless Chromium on a local file; returns (stdout, console messages from stderr)."""
    command = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
               f"--user-data-dir={user_dir}", "--enable-logging=stderr", "--v=0", *extra,
               "file://" + os.path.abspath(path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    return done.stdout, console


@pytest.mark.skipif(_chromium() is None, reason="no chromium binary (install it: apt-get install -y chromium, "
                                                 "or `make chromium`)")
def test_report_opens_in_headless_chromium_without_console_errors(demo, tmp_path):
    from PIL import Image

    # the detector works: a page that logs an error and throws is caught
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><html><head><link rel="icon" href="data:,"></head><body>'
                   '<script>console.error("demo-probe"); notDefined();</script></body></html>')
    _, console = _open_in_chromium(bad, tmp_path / "profile-bad", "--dump-dom")
    assert any("demo-probe" in line for line in console)
    assert any("notDefined" in line for line in console)

    dom, console = _open_in_chromium(demo["report"], tmp_path / "profile", "--dump-dom")
    assert console == []
    assert "What was run" in dom and dom.count("<img") >= 6
    shot = tmp_path / "report.png"
    _, console = _open_in_chromium(demo["report"], tmp_path / "profile-shot", f"--screenshot={shot}",
                                   "--window-size=1100,1400", "--hide-scrollbars")
    assert console == []
    with Image.open(shot) as image:
        pixels = np.asarray(image.convert("L"), dtype=np.float64)
    assert pixels.shape == (1400, 1100)
    assert pixels.std() > 10  # rendered text and figures, not a blank page


# ------------------------------------------------------------------------------------------------ the command

def test_cli_rejects_bad_input(tmp_path, capsys):
    from nnforce.cli import main

    not_a_dir = tmp_path / "file.txt"
    not_a_dir.write_text("x")
    assert main(["demo", "--small", "--out", str(not_a_dir)]) == 2
    assert "is a file" in capsys.readouterr().err
    assert main(["demo", "--small", "--seed", "-1", "--out", str(tmp_path / "d")]) == 2
    assert "seed" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--help"])
    assert exit_info.value.code == 0
    assert "report.html" in capsys.readouterr().out
