"""Smoke runs of the examples (each has a --smoke mode), with checks on what they compute."""
import importlib.util
import os
import re
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")






def load_example(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", os.path.join(EXAMPLES, name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module



def test_ani1x_hessian_smoke(one_torch_thread, capsys):
    example = load_example("ani1x_hessian")
    (water,) = example.main(["--smoke"])
    assert "ANI-1x" in capsys.readouterr().out
    bend, symmetric, antisymmetric = water["wavenumbers"]
    # physically sensible: a bend near 1600-1900 cm^-1 and two O-H stretches near 3700-3950 cm^-1
    assert 1500 < bend < 2000 and 3600 < symmetric < antisymmetric < 4000
    # the values torchani 2.1.1 itself gives for its ANI-1x at this geometry (checked once by hand)
    np.testing.assert_allclose(water["wavenumbers"], [1913.34, 3882.70, 3911.47], atol=0.5)
    # an independent finite-difference Hessian gives the same modes (CELU makes ANI only C1: ~0.1 %)
    np.testing.assert_allclose(water["fd_wavenumbers"], water["wavenumbers"], atol=3.0)
    assert water["max_gradient_kj_mol_nm"] < 1e-4


def test_rigid_body_projection_gives_six_zero_modes():
    example = load_example("ani1x_hessian")
    rng = np.random.default_rng(0)
    positions = rng.normal(size=(4, 3))
    masses = np.array([12.0, 16.0, 1.0, 1.0])
    basis = example.rigid_body_basis(positions, masses)
    assert basis.shape == (12, 6)
    np.testing.assert_allclose(basis.T @ basis, np.eye(6), atol=1e-12)
    linear = np.array([[0, 0, 0], [0, 0, 0.116], [0, 0, -0.116]], dtype=float)
    assert example.rigid_body_basis(linear, np.array([12.0, 16.0, 16.0])).shape == (9, 5)


def test_minimal_openmm_smoke():
    env = dict(os.environ, OMP_NUM_THREADS="1")  # the nnforce this test run imports (installed, or PYTHONPATH)
    completed = subprocess.run([sys.executable, os.path.join(EXAMPLES, "minimal_openmm.py"), "--smoke"],
                               capture_output=True, text=True, env=env, timeout=300)
    assert completed.returncode == 0, completed.stderr
    energies = [float(v) for v in re.findall(r"E_pot =\s+(-?[\d.]+)", completed.stdout)]
    assert len(energies) == 2
    # 216 argon atoms near the triple point: about -5 epsilon (epsilon = 0.996 kJ/mol) per atom
    assert all(-7.0 < e / 216 < -3.0 for e in energies)


def test_mlmm_solvated_smoke(tmp_path, one_torch_thread):
    pytest.importorskip("nnforce.mlmm")
    example = load_example("mlmm_solvated")
    summary = example.main(["--smoke", "--out", str(tmp_path), "--platform", "CPU"])
    assert summary["frames"] == 2
    assert 0.9 < summary["mean_oh_angstrom"] < 1.05
    assert 85.0 < summary["mean_hoh_degrees"] < 120.0


def test_schnet_ethanol_md_smoke(one_torch_thread, tmp_path):
    pytest.importorskip("tblite", reason="tblite provides the GFN2-xTB labels (requirements-test.txt installs it)")
    result = load_example("schnet_ethanol_md").main(["--smoke", "--out", str(tmp_path)])
    metrics = result["metrics"]
    assert np.isfinite(metrics["energy_mae_kcal_mol"]) and np.isfinite(metrics["force_mae_kcal_mol_a"])
    # the exported file gives the same energy through NNForce as through torch, and MD with it runs
    # (a smoke-trained model is too rough for bond-length checks: the full run prints them)
    assert result["start_energy_nnforce"] == pytest.approx(result["start_energy_torch"], rel=1e-10)
    assert np.all(np.isfinite(result["cc_nm"])) and np.all(np.isfinite(result["co_nm"]))
    assert os.path.exists(result["model_path"])


def test_analyze_trajectory_smoke(tmp_path):
    result = load_example("analyze_trajectory").main(["--smoke", "--out", str(tmp_path)])
    numbers = result["numbers"]
    assert numbers["frames"] == 98 and numbers["features"] == 231
    assert os.path.exists(os.path.join(tmp_path, "analysis.html"))

