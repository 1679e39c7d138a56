"""Alanine dipeptide simulated with OpenMM (amber14 + GBn2, 4 x 100 ps at 400 K, cached fixture) falls into the
known Ramachandran basins, and the full pipeline (features -> TICA -> k-means -> MSM -> PCCA+) separates them;
the CLI writes a self-contained HTML report."""
import base64
import json
import os
import re

import mdtraj as md
import numpy as np
import pytest

import conftest_analysis as ca
from nnforce.analysis.features import Featurizer, Torsions
from nnforce.analysis.pipeline import analyze, phi_psi_free_energy_png
from nnforce.analysis.stream import featurize

pytestmark = pytest.mark.filterwarnings("ignore:.*netCDF4:UserWarning")
# Ramachandran basin centres of alanine dipeptide (degrees): C7eq/beta/PPII family, alpha_R, alpha_L/C7ax
CENTRES = {"beta": [(-150, 155), (-80, 150), (-83, 73)], "alphaR": [(-70, -40)], "alphaL": [(60, 45), (70, -70)]}


def basin(phi_deg, psi_deg, radius=60.0):
    """Name of the nearest basin within ``radius`` degrees (periodic), else 'none'."""
    out = np.full(len(phi_deg), "none", dtype=object)
    best = np.full(len(phi_deg), np.inf)
    for name, centres in CENTRES.items():
        for c_phi, c_psi in centres:
            dphi = (phi_deg - c_phi + 180) % 360 - 180
            dpsi = (psi_deg - c_psi + 180) % 360 - 180
            d = np.hypot(dphi, dpsi)
            closer = (d < best) & (d < radius)
            out[closer] = name
            best = np.where(closer, d, best)
    return out


@pytest.fixture(scope="module")
def alanine():
    return ca.alanine()


@pytest.fixture(scope="module")
def phi_psi(alanine):
    top, dcds = alanine
    feat = Torsions(("phi", "psi"), sincos=False)
    data = featurize(dcds, top, Featurizer([feat]))
    assert feat.angle_labels == ["phi ALA2", "psi ALA2"]
    return [np.degrees(d) for d in data]


def test_simulation_samples_the_known_basins(alanine, phi_psi):
    top, dcds = alanine
    traj = md.load(dcds[0], top=top)
    assert traj.n_atoms == 22 and [r.name for r in traj.topology.residues] == ["ACE", "ALA", "NME"]
    # independent check of the torsion feature on this file: mdtraj's phi/psi
    _, phi = md.compute_phi(traj)
    assert ca.angle_diff(np.radians(phi_psi[0][:, 0]), phi[:, 0]).max() < 1e-5
    all_angles = np.concatenate(phi_psi)
    names = basin(all_angles[:, 0], all_angles[:, 1])
    fractions = {n: float(np.mean(names == n)) for n in ("beta", "alphaR", "alphaL", "none")}
    assert fractions["none"] < 0.12, fractions  # nearly every frame is in a known basin (the rest: barrier crossings)
    assert fractions["beta"] > 0.5 and fractions["alphaR"] > 0.05, fractions
    # the free-energy minimum is in the C7eq/beta/PPII region (GB solvent at 400 K)
    hist, xe, ye = np.histogram2d(all_angles[:, 0], all_angles[:, 1], bins=36, range=[[-180, 180], [-180, 180]])
    i, j = np.unravel_index(np.argmax(hist), hist.shape)
    assert basin(np.array([(xe[i] + xe[i + 1]) / 2]), np.array([(ye[j] + ye[j + 1]) / 2]), radius=70)[0] == "beta"


def test_pipeline_separates_beta_and_alpha_r(alanine, phi_psi, tmp_path):
    top, dcds = alanine
    result = analyze(dcds, top, str(tmp_path / "out"), features=["phi_psi"], reduce="tica:lag=10,dim=2",
                     cluster="kmeans:k=20", msm="lag=10,n_sets=2,lags=1+5+10+20", seed=0, n_samples=20,
                     temperature_k=400.0)
    sets = result["pcca"]
    state_of_frame = [sets["assignment"][d] for d in result["dtrajs"]]
    angles = np.concatenate(phi_psi)
    states = np.concatenate(state_of_frame)
    names = basin(angles[:, 0], angles[:, 1])
    alpha_set = int(np.argmax([np.sum((states == s) & (names == "alphaR")) for s in range(2)]))
    beta_set = 1 - alpha_set
    # every alpha_R frame is in one metastable set, which is mostly alpha_R; the other set is the beta family
    # (the alpha_R set also takes the frames on the alpha_R side of the barrier, some within 60 deg of C7eq)
    assert np.mean(states[names == "alphaR"] == alpha_set) > 0.95
    assert np.mean(names[states == alpha_set] == "alphaR") > 0.5
    assert np.mean(names[states == beta_set] == "beta") > 0.95
    dominant = {alpha_set: "alphaR", beta_set: "beta"}
    # the slowest TICA process and the slowest MSM process are the beta <-> alphaR exchange: tens of frames or more
    assert result["msm"].timescales(1)[0] > 10
    # PCCA+ state structures were written and their phi/psi mostly fall into that state's basin
    for s, entry in result["files"]["state_structures"].items():
        sample = md.load(entry["samples"])
        assert sample.n_frames == 20
        _, phi = md.compute_phi(sample)
        _, psi = md.compute_psi(sample)
        got = basin(np.degrees(phi[:, 0]), np.degrees(psi[:, 0]))
        assert np.mean(got == dominant[s]) >= (0.85 if dominant[s] == "beta" else 0.4)
    summary = json.load(open(result["files"]["summary"]))
    assert summary["numbers"]["frames"] == 4000 and summary["numbers"]["clusters"] == 20
    # each state's representative PDB is in the report's 3D view; it is the frame nearest the center of the
    # state's most typical cluster, so its basin is the state's
    page = open(result["files"]["html"]).read()
    assert page.count('class="nnf-mol3d"') == 2
    for s, entry in result["files"]["state_structures"].items():
        rep = md.load(entry["representative"])
        _, phi = md.compute_phi(rep)
        _, psi = md.compute_psi(rep)
        assert basin(np.degrees(phi[:, 0]), np.degrees(psi[:, 0]), radius=70)[0] == dominant[s]


def test_cli_writes_self_contained_report(alanine, tmp_path, capsys):
    from nnforce.cli import main

    top, dcds = alanine
    out = tmp_path / "report"
    code = main(["analyze", *dcds[:2], "--top", top, "--features", "phi_psi", "--reduce", "pca:dim=2",
                 "--cluster", "regspace:dmin=0.5", "--msm", "lag=5", "--stride", "2", "-o", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "report:" in printed and "frames: 1000" in printed
    page = (out / "analysis.html").read_text()
    # self-contained: the one script library is the 3D viewer embedded byte for byte, no URL anywhere else
    from report_checks import check_self_contained

    from nnforce._viewer import MAX_INTERACTIVE

    cards = check_self_contained(page, local_links=True)
    assert 1 <= cards <= MAX_INTERACTIVE  # the most populated clusters' representatives (no PCCA+ asked)
    assert "<link" not in page.lower()
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) >= 4  # phi/psi FES, time series, PCA FES, timescales, populations
    import matplotlib.image

    for blob in images:
        raw = base64.b64decode(blob)
        assert raw[:8] == b"\x89PNG\r\n\x1a\n"
        import io

        assert matplotlib.image.imread(io.BytesIO(raw), format="png").ndim == 3
    assert not [p for p in os.listdir(out) if p.endswith(".tmp") or p.startswith(".")]
    assert (out / "structures").is_dir()


def test_phi_psi_png_and_cli_errors(alanine, tmp_path, capsys):
    from nnforce.cli import main

    top, dcds = alanine
    path, phi, psi = phi_psi_free_energy_png(dcds[:1], top, str(tmp_path / "rama.png"), temperature_k=400.0)
    assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n" and len(phi) == 1000
    # bad input through the CLI: clear messages and exit code 2
    assert main(["analyze", str(tmp_path / "none.dcd"), "--top", top]) == 2
    assert "trajectory file not found" in capsys.readouterr().err
    water = ca.data().NCDF
    assert main(["analyze", water, "--top", top, "-o", str(tmp_path / "x")]) == 2
    assert "the topology has 22" in capsys.readouterr().err
    assert main(["analyze", dcds[0], "--top", top, "--msm", "lag=5000", "-o", str(tmp_path / "y")]) == 2
    assert "not shorter than the longest trajectory" in capsys.readouterr().err
    assert main(["analyze", dcds[0], "--top", top, "--features", "distances:selection=name ZZ",
                 "-o", str(tmp_path / "z")]) == 2
    assert "matches no atoms" in capsys.readouterr().err


def test_help_has_examples(capsys):
    from nnforce.cli import main

    with pytest.raises(SystemExit):
        main(["analyze", "--help"])
    text = capsys.readouterr().out
    assert "examples:" in text and "--reduce tica:lag=10" in text and "kmeans:k=100" in text


def test_report_phi_psi_from_features_matches_direct_torsions(alanine, phi_psi, tmp_path):
    """analyze() reuses the sin/cos phi/psi columns for the Ramachandran plot: same angles as the direct feature."""
    top, dcds = alanine
    result = analyze(dcds[:1], top, str(tmp_path / "r"), features=["phi_psi"], reduce="none", cluster="none",
                     msm="none")
    phi, psi = result["phi_psi"]
    assert ca.angle_diff(phi, np.radians(phi_psi[0][:, 0])).max() < 1e-5
    assert ca.angle_diff(psi, np.radians(phi_psi[0][:, 1])).max() < 1e-5
    assert os.path.exists(result["files"]["phi_psi"]) and os.path.exists(result["files"]["html"])
