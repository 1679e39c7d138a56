"""`nnforce demo` in its small mode: the whole flow (amber14 sampling -> ANI-1x labels -> distillation by active
learning (nnforce.train.learn) -> export -> issue 25's protocol: metadynamics, then replicas under the bias held
fixed in one Context -> reweighted FES and basins vs the teacher, TICA, k-means, MSM, PCCA+, CK test ->
report.html), checked against independent computations, plus the report opened in headless Chromium. One demo
run is shared by the tests of this module.
"""
import base64
import io
import json
import math
import os
import re

import numpy as np
import pytest
import torch

from plugin_helpers import context_for, energy_forces, make_system
from report_checks import card_states, check_self_contained, chromium, open_in_chromium


def _plugin_available():
    try:
        import nnforce

        nnforce.NNForce
        return True
    except ImportError:
        return False


pytestmark = pytest.mark.skipif(not _plugin_available(), reason="nnforce's compiled plugin is not built")

SECTIONS = ("training", "ensemble", "phi-psi", "msm", "states", "populations", "not-converged", "tica", "run")
BASIN_NAMES = ("C7eq / C5 / beta / PPII", "alpha_R", "C7ax", "alpha_L")


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


def _basin_of(phi_deg, psi_deg):
    """The demo's four regions, written out again independently of nnforce.demo.measure."""
    out = []
    for phi, psi in zip(np.atleast_1d(phi_deg), np.atleast_1d(psi_deg)):
        if phi > 0:
            out.append("C7ax" if psi < 0 else "alpha_L")
        else:
            out.append("alpha_R" if -125.0 < psi < 15.0 else "C7eq / C5 / beta / PPII")
    return np.array(out)


def _mdtraj_phi_psi(paths, top):
    """phi/psi (degrees) of every frame of the trajectories, with mdtraj, one array per trajectory."""
    import mdtraj

    out = []
    for path in paths:
        traj = mdtraj.load(path, top=top)
        out.append((np.degrees(mdtraj.compute_phi(traj)[1][:, 0]), np.degrees(mdtraj.compute_psi(traj)[1][:, 0])))
    return out


# ------------------------------------------------------------------------------------------------ the report

def test_report_has_every_section_and_is_self_contained(demo):
    from PIL import Image

    path = demo["report"]
    assert os.path.isfile(path)
    with open(path, encoding="utf-8") as handle:
        page = handle.read()
    for section in SECTIONS:
        assert f'<section id="{section}">' in page
    for text in ("training curve", "ensemble trace", "phi/psi free energy", "implied timescales", "basin populations",
                 "Metastable states (PCCA+)", "What is not converged", "What was run", "TICA free energy",
                 "Timings (s)", "Versions"):
        assert text in page, text
    # nothing is loaded from elsewhere: every src/href is a data: URI, the only script library is the viewer's
    # own file embedded byte for byte, and no http(s) URL is anywhere outside it
    cards = check_self_contained(page)
    assert cards == len(demo["analysis"]["states"]) >= 2  # one 3D view per metastable state
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) >= 8
    for encoded in images:
        with Image.open(io.BytesIO(base64.b64decode(encoded))) as image:
            image.verify()
            assert image.format == "PNG" and min(image.size) > 100
    # the table of what was run names the versions actually used and every timed step
    assert torch.__version__ in page
    for step in ("molecule", "reference_data", "distil", "export", "production", "analyze"):
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

    files = demo["files"]
    # the test split was held out of the active learning; the student trained on the distilled data
    test = Dataset.load(os.path.join(files["distil"], "test.npz"))
    data = Dataset.load(files["distilled_data"])
    _, held = split(Dataset.load(files["dataset"]), (sum(demo["settings"]["split"][:2]), demo["settings"]["split"][2]),
                    seed=demo["seed"])
    np.testing.assert_array_equal(held.positions_nm, test.positions_nm)
    n_val = max(1, int(round(demo["settings"]["distil"]["validation_fraction"] * len(data))))
    train, _ = split(data, (len(data) - n_val, n_val), seed=demo["seed"])
    model = torch.jit.load(files["model"]).double()  # the exported file, evaluated independently
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
    assert energy_mae < baseline_energy, (energy_mae, baseline_energy)
    assert force_mae < 0.8 * baseline_force, (force_mae, baseline_force)
    # the demo's own numbers are these (same weights; the file stores them in float32)
    reported = demo["metrics"]["test"]
    assert reported["energy_mae_kj_mol"] == pytest.approx(energy_mae, rel=1e-5)
    assert reported["force_mae_kj_mol_nm"] == pytest.approx(force_mae, rel=1e-5)
    assert demo["metrics"]["baseline"]["energy_mae_kj_mol"] == pytest.approx(baseline_energy, rel=1e-12)
    history = demo["training"]["history"]
    assert history[-1]["train_loss"] < history[0]["train_loss"] * 1.5  # fine-tuned from a trained member
    # the distilled data: the initial frames, then the frames the active learning added (ANI-1x labels)
    rounds = demo["distillation"]["rounds"]
    assert len(data) == demo["distillation"]["final_frames"] == rounds[-1]["frames"] + rounds[-1].get("added", 0)
    walls = demo["distillation"]["stretched_bond_frames"] + demo["distillation"]["close_contact_frames"]
    assert walls == demo["settings"]["stretched_bonds"]["frames"] + demo["settings"]["close_contacts"]["frames"] > 0
    assert demo["distillation"]["initial_amber_frames"] == sum(demo["settings"]["split"][:2])
    assert rounds[0]["frames"] == demo["distillation"]["initial_frames"] == sum(demo["settings"]["split"][:2]) + walls
    from nnforce.data.label import teacher_label
    from nnforce.models import ani1x

    wall = data.subset([demo["distillation"]["initial_amber_frames"]])  # the first wall frame: ANI-1x's label
    assert teacher_label(wall, ani1x()).energies_kj_mol[0] == pytest.approx(wall.energies_kj_mol[0], abs=1e-6)
    if len(data) > rounds[0]["frames"]:
        last = data.subset([len(data) - 1])
        assert teacher_label(last, ani1x()).energies_kj_mol[0] == pytest.approx(last.energies_kj_mol[0], abs=1e-6)


def test_exported_model_in_nnforce_gives_the_python_energy(demo):
    from openmm import app

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
        plugin_energy, plugin_forces = energy_forces(context_for(make_system(len(z), force)), x)
        assert plugin_energy == pytest.approx(float(energy), abs=tolerance), precision
        scale = float(gradient.abs().max())
        np.testing.assert_allclose(plugin_forces, -gradient.numpy(), atol=(1e-9 if precision == "double" else 1e-3)
                                   * scale)
    assert demo["metrics"]["nnforce_vs_python_kj_mol"] < 1e-6


def test_ensemble_runs_the_pt2_which_matches_python_and_holds_its_bonds_at_500k(demo):
    """The demo compiles its model to a float32 .pt2 and runs the ensemble with it: the package's energy through
    NNForce equals the trained weights' float64 energy to float32 precision, and a short 500 K Langevin run (the
    issue-13 stability check, 1 ps here; 100 ps in bench/md_stability.py --demo) keeps every bond within 0.8-1.3x."""
    from openmm import app, unit

    import nnforce
    from nnforce.data import Dataset
    from nnforce.export import read_metadata
    from nnforce.train import md_stability, model_from_checkpoint

    files = demo["files"]
    assert files["simulation_model"] == files["model_pt2"] and read_metadata(files["model_pt2"])["precision"] == "single"
    model, _ = model_from_checkpoint(files["checkpoint"])
    data = Dataset.load(files["dataset"])
    z, x, _, _ = data.frame(5)
    with torch.no_grad():
        energy = float(model.double()(torch.tensor(x, dtype=torch.float64), torch.as_tensor(z)))
    pdb = app.PDBFile(files["structure"])
    force = nnforce.NNForce(files["model_pt2"])
    force.setAtomicNumbers(z.tolist())
    force.setNeighborList(read_metadata(files["model_pt2"])["cutoff_nm"], 0.0)
    plugin, _ = energy_forces(context_for(make_system(len(z), force), "CPU"), x)
    assert plugin == pytest.approx(energy, abs=2e-6 * abs(energy))
    positions = np.asarray(pdb.getPositions(asNumpy=True).value_in_unit(unit.nanometer))
    report = md_stability(files["model_pt2"], z.tolist(), positions, temperature_k=500.0, time_ps=1.0,
                          timestep_fs=1.0, seed=0, nve_ps=0.0, precision=None,
                          reference_positions_nm=data.positions_nm.reshape(len(data), -1, 3))
    assert report["stable"], report
    assert report["simulated_ps"] == pytest.approx(1.0) and 0.8 < report["min_ratio"] < report["max_ratio"] < 1.3


# ------------------------------------------------------------------------------------------------ MD + analysis

KT_300 = 8.314462618e-3 * 300.0  # kJ/mol


def _production(demo):
    return np.load(demo["files"]["production_npz"])


def test_production_frames_temperature_and_phi_psi(demo):
    import mdtraj

    s = demo["settings"]
    ens = demo["ensemble"]
    paths = demo["files"]["trajectories"]
    assert len(paths) == ens["replicas"] == s["replicas"] and ens["steps"] == s["production_steps"]
    assert ens["metad_steps"] == s["metad_steps"] and ens["batched"]
    interval = ens["protocol"]["report_interval_steps"]
    angles = _mdtraj_phi_psi(paths, demo["files"]["structure"])
    for path in paths:
        traj = mdtraj.load(path, top=demo["files"]["structure"])
        assert traj.n_frames == s["production_steps"] // interval > 0 and np.all(np.isfinite(traj.xyz))
    # the thermostat holds the replicas near the temperature (a replica whose model blew up would not be)
    assert 0.7 * 300.0 < ens["temperature_mean_k"] < 1.3 * 300.0
    phi, psi = demo["analysis"]["phi_rad"], demo["analysis"]["psi_rad"]
    assert len(phi) == len(psi) == sum(len(a[0]) for a in angles) == demo["analysis"]["frames"]
    wrap = lambda a: (a + np.pi) % (2 * np.pi) - np.pi  # noqa: E731
    np.testing.assert_allclose(wrap(phi - np.radians(np.concatenate([a[0] for a in angles]))), 0.0, atol=1e-4)
    np.testing.assert_allclose(wrap(psi - np.radians(np.concatenate([a[1] for a in angles]))), 0.0, atol=1e-4)
    saved = _production(demo)
    np.testing.assert_allclose(wrap(saved["phi_rad"].ravel() - phi), 0.0, atol=1e-4)


def test_bias_is_the_grid_interpolated_and_reweighting_is_exact(demo):
    """Each production frame's bias equals the saved metadynamics grid at its phi/psi (bilinear interpolation of
    the periodic grid written out here, to the spline's accuracy); the student's basin populations are the frames'
    exp(V/kT) weights summed per basin (basins written out in this test, angles from mdtraj)."""
    saved = _production(demo)
    grid, v = saved["bias_grid_kj_mol"], saved["bias_kj_mol"]
    width = grid.shape[0] - 1  # the last point repeats the first
    angles = _mdtraj_phi_psi(demo["files"]["trajectories"], demo["files"]["structure"])
    phi = np.concatenate([a[0] for a in angles])
    psi = np.concatenate([a[1] for a in angles])
    u = (np.radians(phi) + np.pi) / (2 * np.pi) * width
    w = (np.radians(psi) + np.pi) / (2 * np.pi) * width
    i, j = np.floor(u).astype(int) % width, np.floor(w).astype(int) % width
    fu, fw = u - np.floor(u), w - np.floor(w)
    bilinear = (grid[i, j] * (1 - fu) * (1 - fw) + grid[i + 1, j] * fu * (1 - fw) + grid[i, j + 1] * (1 - fu) * fw
                + grid[i + 1, j + 1] * fu * fw)
    spread = float(np.ptp(grid)) + 1.0
    assert np.abs(bilinear - v.ravel()).max() < 0.1 * spread, np.abs(bilinear - v.ravel()).max()
    weights = np.exp((v.ravel() - v.max()) / KT_300)
    weights /= weights.sum()
    names = _basin_of(phi, psi)
    summary = json.load(open(demo["files"]["summary"]))
    pops = summary["basin_populations"]
    assert pops["basins"] == list(BASIN_NAMES)
    for name in BASIN_NAMES:
        assert pops["student_reweighted"][name] == pytest.approx(weights[names == name].sum(), abs=1e-6)
        low, high = pops["student_reweighted_interval_95"][name]
        assert -1e-9 <= low <= high <= 1 + 1e-9
        assert pops["student_frames_biased"][name] == pytest.approx(np.mean(names == name), abs=1e-12)


def test_fes_against_the_teacher_recomputed_independently(demo):
    """summary.json's teacher_comparison.fes_rms_kt: both surfaces histogrammed here with numpy from the frames'
    angles and weights, the RMS over bins within 4 kT of either minimum after removing the mean offset."""
    summary = json.load(open(demo["files"]["summary"]))
    comparison = summary["teacher_comparison"]
    if not comparison["available"]:
        pytest.skip(f"no teacher reference file: {comparison['note']}")
    bins = demo["settings"]["phi_psi_bins"]
    edges = np.linspace(-np.pi, np.pi, bins + 1)

    def surface(phi, psi, weights):
        wrap = lambda a: np.mod(np.ravel(a) + np.pi, 2 * np.pi) - np.pi  # noqa: E731
        p, _, _ = np.histogram2d(wrap(phi), wrap(psi), bins=[edges, edges], weights=np.ravel(weights))
        with np.errstate(divide="ignore"):
            f = -np.log(p / p.sum())
        f[~np.isfinite(f)] = np.nan
        return f - np.nanmin(f)

    saved = _production(demo)
    v = saved["bias_kj_mol"]
    student = surface(saved["phi_rad"], saved["psi_rad"], np.exp((v - v.max()) / KT_300))
    teacher_file = np.load(comparison["teacher_file"])
    teacher = surface(teacher_file["phi_rad"], teacher_file["psi_rad"], teacher_file["weights"])
    mask = np.isfinite(student) & np.isfinite(teacher) & ((student <= 4.0) | (teacher <= 4.0))
    d = teacher[mask] - student[mask]
    assert comparison["bins"] == int(mask.sum())
    assert comparison["fes_rms_kt"] == pytest.approx(np.sqrt(np.mean((d - d.mean()) ** 2)), abs=1e-9)
    assert set(comparison["teacher_basins"]) == set(BASIN_NAMES)
    # the after-the-fact comparison of a finished output gives the same numbers
    from nnforce.demo.teacher import compare_output

    again = compare_output(demo["out_dir"], comparison["teacher_file"], bins=bins,
                           n_boot=2 * demo["settings"]["bootstrap_samples"], seed=demo["seed"])
    assert again["rms_kt"] == pytest.approx(comparison["fes_rms_kt"], abs=1e-12)
    for name in BASIN_NAMES:
        assert again["student_basins"][name] == pytest.approx(comparison["student_basins"][name], abs=1e-12)


def test_student_against_ani1x_on_production_frames(demo):
    """metrics.trajectory_vs_teacher recomputed: the frames it names, read back from the DCDs, evaluated by the
    exported student and by ANI-1x one frame at a time (not the batched labeller the demo uses); offset-free energy
    MAE and force MAE."""
    import mdtraj

    from nnforce.data.label import frame_label
    from nnforce.models import ani1x

    check = demo["metrics"]["trajectory_vs_teacher"]
    assert check["n_frames"] == len(check["frames"]) == demo["settings"]["teacher_check_frames"]
    files = demo["files"]
    student = torch.jit.load(files["model"]).double()
    teacher = ani1x()
    z = [a.element.atomic_number for a in mdtraj.load(files["structure"]).topology.atoms]
    diffs, force_errors = [], []
    for replica, frame in check["frames"]:
        x = mdtraj.load_frame(files["trajectories"][replica], frame, top=files["structure"]).xyz[0].astype(np.float64)
        e_s, f_s = frame_label(student, z, x)
        e_t, f_t = frame_label(teacher, z, x)
        diffs.append(e_s - e_t)
        force_errors.append(np.abs(f_s - f_t).ravel())
    diffs = np.array(diffs)
    # DCD keeps float32 positions: the production frames the demo used are float32 too (to ~1e-6 nm)
    assert check["energy_mae_offset_free_kj_mol"] == pytest.approx(np.abs(diffs - diffs.mean()).mean(), rel=1e-3,
                                                                    abs=1e-3)
    assert check["force_mae_kj_mol_nm"] == pytest.approx(np.concatenate(force_errors).mean(), rel=1e-3)
    assert check["energy_ratio_to_test"] == pytest.approx(
        check["energy_mae_offset_free_kj_mol"] / demo["metrics"]["test"]["energy_mae_kj_mol"])


def test_summary_msm_populations_and_timescale_recomputed_independently(demo):
    """summary.json against the trajectories: the MSM's basin populations (stationary distribution reweighted per
    cluster, pi_b,c exp(V/kT) / n_c per frame) and slowest implied timescale recomputed with deeptime directly from
    the saved cluster labels; msm_active_fraction is the active set's share of the transition counts."""
    from deeptime.markov import TransitionCountEstimator
    from deeptime.markov.msm import MaximumLikelihoodMSM

    s = demo["settings"]
    summary = json.load(open(demo["files"]["summary"]))
    pops = summary["basin_populations"]
    angles = _mdtraj_phi_psi(demo["files"]["trajectories"], demo["files"]["structure"])
    names = np.concatenate([_basin_of(phi, psi) for phi, psi in angles])
    saved = np.load(os.path.join(os.path.dirname(demo["files"]["analysis_html"]), "projection.npz"))
    dtrajs = [saved[key].astype(np.int32) for key in sorted(saved.files) if key.startswith("dtraj_")]
    assert [len(d) for d in dtrajs] == [len(a[0]) for a in angles]
    lag = s["msm_lag_frames"]
    counts = TransitionCountEstimator(lag, "sliding", n_states=s["clusters"]).fit_fetch(dtrajs)
    sub = counts.submodel_largest()
    msm = MaximumLikelihoodMSM(reversible=True, lagtime=lag).fit_fetch(sub)
    active = np.asarray(sub.state_symbols)
    assert summary["analysis"]["msm_active_fraction"] == pytest.approx(
        counts.count_matrix[np.ix_(active, active)].sum() / counts.count_matrix.sum(), abs=1e-9)
    pi = np.zeros(s["clusters"])
    pi[active] = msm.stationary_distribution
    labels = np.concatenate(dtrajs)
    frames_per_cluster = np.bincount(labels, minlength=s["clusters"])
    v = _production(demo)["bias_kj_mol"].ravel()
    weight = pi[labels] / frames_per_cluster[labels] * np.exp((v - v.max()) / KT_300)
    for name in BASIN_NAMES:
        assert pops["student_msm"][name] == pytest.approx(weight[names == name].sum() / weight.sum(), abs=1e-6)
        low, high = pops["student_msm_interval_95"][name]
        assert low <= high and -1e-9 <= low and high <= 1 + 1e-9
    dt_ps = demo["ensemble"]["frame_interval_ps"]
    assert dt_ps == pytest.approx(demo["ensemble"]["protocol"]["report_interval_steps"]
                                  * demo["ensemble"]["protocol"]["timestep_fs"] / 1000.0)
    assert summary["slowest_implied_timescale_ps"] == pytest.approx(msm.timescales(1)[0] * dt_ps, rel=1e-6)
    assert summary["msm_lag_ps"] == pytest.approx(lag * dt_ps)
    assert sum(pops["training_data_frames"].values()) == pytest.approx(1.0)


def test_metastable_states_ck_test_and_representatives(demo):
    import mdtraj

    a = demo["analysis"]
    states = a["states"]
    assert 2 <= len(states) <= demo["settings"]["max_metastable_sets"] and a["n_sets"] == len(states)
    assert sum(st["population"] for st in states) == pytest.approx(1.0)
    for st in states:
        # the representative PDB is the frame it names, and its torsions are the ones reported
        rep = mdtraj.load(st["representative"])
        where = st["representative_frame"]
        frame = mdtraj.load_frame(demo["files"]["trajectories"][where["replica"]], where["frame"],
                                  top=demo["files"]["structure"])
        np.testing.assert_allclose(rep.xyz, frame.xyz, atol=6e-4)  # PDB keeps 0.001 nm
        phi = np.degrees(mdtraj.compute_phi(frame)[1][0, 0])
        psi = np.degrees(mdtraj.compute_psi(frame)[1][0, 0])
        assert st["phi_deg"] == pytest.approx(phi, abs=1e-3) and st["psi_deg"] == pytest.approx(psi, abs=1e-3)
        assert mdtraj.load(st["samples"]).n_frames >= 1
    # the CK test ran (its figure is in the report) or the report says why not
    if a.get("ck_skipped"):
        assert any("Chapman-Kolmogorov" in note for note in a["not_converged"])
    else:
        assert os.path.isfile(demo["files"]["ck_png"]) and 0.0 <= a["ck_max_deviation"] <= 1.0
    its = a["implied_timescales_ps"]
    assert len(its["lags_ps"]) == len(its["timescales"]) == len(its["lower"])
    assert isinstance(a["not_converged"], list)


def test_cluster_populations_are_frame_fractions(demo):
    a = demo["analysis"]
    k = demo["settings"]["clusters"]
    populations = np.array([c["population"] for c in a["clusters"]])
    assert populations.shape == (k,) and populations.sum() == pytest.approx(1.0)
    frames = np.array([c["frames"] for c in a["clusters"]])
    assert frames.sum() == a["frames"]
    np.testing.assert_allclose(populations, frames / a["frames"])
    assert sum(c["msm_population"] for c in a["clusters"]) == pytest.approx(1.0)
    assert sum(a["basins"].values()) == pytest.approx(1.0)
    # the clusters' MSM populations are the reweighted stationary distribution pi_b,c <exp(V/kT)>_c
    assert a["msm_dynamics"].startswith("biased")
    phi_deg = np.degrees(a["phi_rad"])
    assert a["basins"]["alpha_L"] + a["basins"]["C7ax"] == pytest.approx(np.mean(phi_deg > 0))


# ------------------------------------------------------------------------------------------------ the browser

@pytest.mark.skipif(chromium() is None, reason="no chromium binary (install it: apt-get install -y chromium, "
                                                 "or `make chromium`)")
def test_report_opens_in_headless_chromium_without_console_errors(demo, tmp_path):
    from PIL import Image

    # the detector works: a page that logs an error and throws is caught
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><html><head><link rel="icon" href="data:,"></head><body>'
                   '<script>console.error("demo-probe"); notDefined();</script></body></html>')
    _, console = open_in_chromium(bad, tmp_path / "profile-bad", "--dump-dom")
    assert any("demo-probe" in line for line in console)
    assert any("notDefined" in line for line in console)

    dom, console = open_in_chromium(demo["report"], tmp_path / "profile", "--dump-dom")
    assert console == [], console[:3]
    assert "What was run" in dom and dom.count("<img") >= 8
    # each metastable state's representative is shown in 3D: 3Dmol.js read its 22 atoms (with the viewer
    # library installed; without it the static pictures stay)
    from nnforce._viewer import viewer_library

    expected = ("ready", "22") if viewer_library() is not None else ("picture", None)
    assert card_states(dom) == [expected] * len(demo["analysis"]["states"])
    shot = tmp_path / "report.png"
    _, console = open_in_chromium(demo["report"], tmp_path / "profile-shot", f"--screenshot={shot}",
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
