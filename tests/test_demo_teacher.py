"""The demo's comparison with the teacher's reference file (nnforce.demo.teacher), fast: a reference written in
bench/teacher_fes.py's format and a demo output's production.npz, both from seeded synthetic frames; the FES RMS
difference and the basin populations recomputed here with numpy."""
import json
import os

import numpy as np
import pytest

BASIN_NAMES = ("C7eq / C5 / beta / PPII", "alpha_R", "C7ax", "alpha_L")
KT_300 = 8.314462618e-3 * 300.0


def _frames(seed, replicas=6, frames=400):
    """phi/psi [R, T] around C7eq, alpha_R and C7ax, and a bias per frame."""
    rng = np.random.default_rng(seed)
    centres = np.radians([(-80.0, 150.0), (-70.0, -40.0), (70.0, -70.0)])
    pick = rng.choice(3, size=(replicas, frames), p=[0.6, 0.3, 0.1])
    phi = centres[pick, 0] + rng.normal(0, 0.3, pick.shape)
    psi = centres[pick, 1] + rng.normal(0, 0.3, pick.shape)
    wrap = lambda a: np.mod(a + np.pi, 2 * np.pi) - np.pi  # noqa: E731
    return wrap(phi), wrap(psi), rng.uniform(0.0, 8.0, pick.shape)


def _surface(phi, psi, weights, bins):
    edges = np.linspace(-np.pi, np.pi, bins + 1)
    p, _, _ = np.histogram2d(np.ravel(phi), np.ravel(psi), bins=[edges, edges], weights=np.ravel(weights))
    with np.errstate(divide="ignore"):
        f = -np.log(p / p.sum())
    f[~np.isfinite(f)] = np.nan
    return f - np.nanmin(f)


def _basin(phi, psi):
    phi, psi = np.degrees(phi), np.degrees(psi)
    return np.where(phi > 0, np.where(psi < 0, 2, 3), np.where((psi > -125) & (psi < 15), 1, 0))


@pytest.fixture
def files(tmp_path):
    from nnforce.simulate.metadynamics import SamplingProtocol

    phi, psi, bias = _frames(1)
    weights = np.exp(bias / KT_300)
    weights /= weights.sum()
    record = {"protocol": SamplingProtocol().as_dict(), "lengths": {"replicas": 6, "production_steps": 20000},
              "ms_per_step": {"single_molecule_wall": 5.0, "single_molecule_cpu": 4.5}, "date": "test"}
    basins = {name: (0.25, 0.2, 0.3) for name in BASIN_NAMES}
    teacher = tmp_path / "teacher_fes.npz"
    np.savez(teacher, fes_kt=np.zeros((36, 36)), counts=np.zeros((36, 36)), edges_rad=np.linspace(-np.pi, np.pi, 37),
             phi_rad=phi, psi_rad=psi, weights=weights, bias_kj_mol_frames=bias, bias_grid_kj_mol=np.zeros((48, 48)),
             basins=np.array(list(basins)), basin_populations=np.array([basins[k] for k in basins]),
             ms_per_step=np.float64(5.0), record=np.array(json.dumps(record)))
    out = tmp_path / "demo"
    os.makedirs(out / "ensemble")
    s_phi, s_psi, s_bias = _frames(2)
    np.savez(out / "ensemble" / "production.npz", phi_rad=s_phi, psi_rad=s_psi, bias_kj_mol=s_bias,
             temperature_k=np.float64(300.0))
    return {"teacher": str(teacher), "out": str(out), "student": (s_phi, s_psi, s_bias), "record": record}


def test_compare_output_recomputed_with_numpy(files):
    from nnforce.demo.teacher import compare_output, load_teacher, same_protocol

    bins = 24
    result = compare_output(files["out"], files["teacher"], bins=bins, n_boot=50, seed=0)
    s_phi, s_psi, s_bias = files["student"]
    student = _surface(s_phi, s_psi, np.exp((s_bias - s_bias.max()) / KT_300), bins)
    reference = np.load(files["teacher"])
    teacher = _surface(reference["phi_rad"], reference["psi_rad"], reference["weights"], bins)
    mask = np.isfinite(student) & np.isfinite(teacher) & ((student <= 4.0) | (teacher <= 4.0))
    d = teacher[mask] - student[mask]
    assert result["bins"] == int(mask.sum()) > 0
    assert result["rms_kt"] == pytest.approx(np.sqrt(np.mean((d - d.mean()) ** 2)), abs=1e-9)
    assert result["offset_kt"] == pytest.approx(d.mean(), abs=1e-9)
    # the student's basins: exp(V/kT) weights summed per basin (the bootstrap interval brackets the value)
    w = np.exp((s_bias - s_bias.max()) / KT_300).ravel()
    index = _basin(s_phi.ravel(), s_psi.ravel())
    for k, name in enumerate(BASIN_NAMES):
        value, low, high = result["student_basins"][name]
        assert value == pytest.approx(w[index == k].sum() / w.sum(), abs=1e-12)
        assert low <= value + 1e-12 and value <= high + 1e-12
    # the teacher's side as the reference file recorded it
    assert result["teacher_basins"][BASIN_NAMES[0]] == (0.25, 0.2, 0.3)
    assert result["teacher_ms_per_step"] == 5.0 and result["teacher_cpu_ms_per_step"] == 4.5
    loaded = load_teacher(files["teacher"], bins)
    np.testing.assert_allclose(loaded["fes"]["fes_kt"], teacher, equal_nan=True, atol=1e-12)
    assert same_protocol(loaded["protocol"], dict(files["record"]["protocol"], replicas=2)) == []
    assert same_protocol(loaded["protocol"], dict(files["record"]["protocol"], bias_factor=3.0)) == ["bias_factor"]


def test_missing_teacher_file_is_reported_not_raised(tmp_path, files):
    from nnforce.demo.teacher import compare_output, load_teacher

    missing = load_teacher(str(tmp_path / "none.npz"))
    assert missing["available"] is False and "bench/teacher_fes.py" in missing["note"]
    with pytest.raises(FileNotFoundError, match="teacher_fes.py"):
        compare_output(files["out"], str(tmp_path / "none.npz"))
