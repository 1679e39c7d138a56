"""Featurizers against independent computations (numpy geometry, MDAnalysis) on real trajectories."""
import mdtraj as md
import numpy as np
import pytest

import conftest_analysis as ca
from nnforce.analysis import _geometry
from nnforce.analysis.features import (DSSP, RMSD, Angles, Contacts, Coordinates, Custom, Distances, Featurizer,
                                       ResidueDistances, Torsions, parse_features)

pytestmark = pytest.mark.filterwarnings("ignore:.*netCDF4:UserWarning")
D = ca.data()


@pytest.fixture(scope="module")
def tripeptide():
    """VAL-GLU-VAL in water, orthorhombic box (Amber NetCDF, 30 frames)."""
    return md.load(D.NCDF, top=D.PRMncdf)


@pytest.fixture(scope="module")
def adk_boxed():
    """Adenylate kinase in water (GROMACS xtc, cubic 8 nm box, 10 frames); the protein crosses the box."""
    traj = md.load(D.XTC, top=D.GRO)
    return traj.atom_slice(traj.topology.select("protein"))


def test_torsions_match_numpy_and_mdanalysis(tripeptide):
    feat = Torsions(("phi", "psi", "chi1"), sincos=False)
    ours = Featurizer([feat]).transform(tripeptide)
    xyz = tripeptide.xyz.astype(np.float64)
    for k, quad in enumerate(feat.quads):
        expected = ca.numpy_dihedral(*(xyz[:, i] for i in quad))
        assert ca.angle_diff(ours[:, k], expected).max() < 1e-5
    from MDAnalysis.lib.distances import calc_dihedrals

    dims = np.hstack([tripeptide.unitcell_lengths * 10, tripeptide.unitcell_angles]).astype(np.float32)
    for f in range(0, tripeptide.n_frames, 7):
        p = tripeptide.xyz[f] * 10
        mda = calc_dihedrals(*(p[feat.quads[:, c]] for c in range(4)), box=dims[f])
        assert ca.angle_diff(ours[f], mda).max() < 1e-4
    # labels: phi of residue i uses C(i-1), N, CA, C of i
    assert feat.angle_labels[0] == "phi GLU1" and feat.angle_labels[2] == "psi VAL0"
    sincos = Featurizer([Torsions(("phi", "psi", "chi1"))]).transform(tripeptide)
    np.testing.assert_allclose(sincos[:, 0::2], np.sin(ours), atol=1e-6)
    np.testing.assert_allclose(sincos[:, 1::2], np.cos(ours), atol=1e-6)


def test_distances_use_minimum_image_like_mdanalysis(adk_boxed):
    from MDAnalysis.lib.distances import calc_bonds

    feat = Distances("name CA and resid 0 to 60")
    ours = Featurizer([feat]).transform(adk_boxed)
    pairs = feat.atom_pairs
    assert ours.shape == (adk_boxed.n_frames, len(pairs)) == (10, 61 * 60 // 2)
    for f in range(adk_boxed.n_frames):
        box = np.r_[adk_boxed.unitcell_lengths[f] * 10, adk_boxed.unitcell_angles[f]].astype(np.float32)
        p = adk_boxed.xyz[f] * 10
        expected = calc_bonds(p[pairs[:, 0]], p[pairs[:, 1]], box=box) / 10
        np.testing.assert_allclose(ours[f], expected, atol=2e-5)
    # some pairs are farther apart than half the (rhombic dodecahedron) box width: the exact image search matters
    assert ours.max() > 0.5 * 8.0017 * np.sqrt(2) / 2 * 0.5
    # moving atoms by lattice vectors (an equivalent periodic configuration) leaves every distance unchanged
    rng = np.random.default_rng(1)
    moved = adk_boxed.xyz.copy()
    vectors = adk_boxed.unitcell_vectors
    for f in range(len(moved)):
        sel = rng.random(adk_boxed.n_atoms) < 0.5
        moved[f, sel] += rng.integers(-1, 2, 3) @ vectors[f] + vectors[f, 2]
    shifted = md.Trajectory(moved, adk_boxed.topology, unitcell_lengths=adk_boxed.unitcell_lengths,
                            unitcell_angles=adk_boxed.unitcell_angles)
    np.testing.assert_allclose(Featurizer([Distances("name CA and resid 0 to 60")]).transform(shifted), ours, atol=5e-5)
    naive = np.linalg.norm(moved[:, pairs[:, 0]] - moved[:, pairs[:, 1]], axis=-1)
    assert np.abs(naive - ours).max() > 1.0


def test_triclinic_angles_match_mdanalysis(adk_boxed):
    """The ADK box is a rhombic dodecahedron (60, 60, 90 deg): angles with the triclinic minimum image."""
    from MDAnalysis.lib.distances import calc_angles

    assert np.allclose(adk_boxed.unitcell_angles[0], [60, 60, 90])
    feat = Angles(selection="backbone and resid 0 to 40")
    ours = Featurizer([feat]).transform(adk_boxed)
    t = feat.atom_triples
    assert len(t) > 100
    for f in range(adk_boxed.n_frames):
        box = np.r_[adk_boxed.unitcell_lengths[f] * 10, adk_boxed.unitcell_angles[f]].astype(np.float32)
        p = adk_boxed.xyz[f] * 10
        np.testing.assert_allclose(ours[f], calc_angles(p[t[:, 0]], p[t[:, 1]], p[t[:, 2]], box=box), atol=2e-4)


def test_invalid_unit_cell_is_an_error():
    """CHARMM's triclinic DCD header is misread by mdtraj (NaN box vectors): refuse instead of NaN features."""
    traj = md.load(D.DCD_TRICLINIC, top=D.PSF_TRICLINIC)
    with pytest.raises(ValueError, match="unit cell"):
        Featurizer([Distances(pairs=[[0, 1]])]).transform(traj)
    ok = Featurizer([Distances(pairs=[[0, 1]], periodic=False)]).transform(traj)
    assert np.all(np.isfinite(ok))


def test_box_vectors_match_mdtraj(adk_boxed):
    traj = adk_boxed
    ours = _geometry.box_vectors(traj.unitcell_lengths, traj.unitcell_angles)
    np.testing.assert_allclose(ours, traj.unitcell_vectors, atol=1e-5)


def test_residue_distances_and_contacts_match_mdtraj(adk_boxed):
    feats = Featurizer([ResidueDistances(residues="resid 0 to 30"), Contacts(residues="resid 0 to 30", cutoff_nm=0.5),
                        ResidueDistances(residues="resid 0 to 30", scheme="ca")])
    x = feats.transform(adk_boxed)
    rd = feats.features[0]
    n = len(rd.residue_pairs)
    expected, _ = md.compute_contacts(adk_boxed, contacts=rd.residue_pairs, scheme="closest-heavy")
    np.testing.assert_allclose(x[:, :n], expected, atol=2e-5)
    np.testing.assert_array_equal(x[:, n:2 * n], (expected < 0.5).astype(np.float32))
    expected_ca, _ = md.compute_contacts(adk_boxed, contacts=rd.residue_pairs, scheme="ca")
    np.testing.assert_allclose(x[:, 2 * n:], expected_ca, atol=2e-5)
    assert feats.labels[0] == "residue_distances MET1:ILE4" and feats.labels[n].startswith("contact ")


def test_rmsd_matches_kabsch():
    traj = md.load(D.DCD, top=D.PSF)
    ref = traj[0]
    feat = RMSD(ref, selection="name CA")
    ours = Featurizer([feat]).transform(traj[::10])[:, 0]
    ca_idx = traj.topology.select("name CA")
    expected = [ca.kabsch_rmsd(traj.xyz[f, ca_idx].astype(np.float64), ref.xyz[0, ca_idx].astype(np.float64))
                for f in range(0, traj.n_frames, 10)]
    np.testing.assert_allclose(ours, expected, atol=1e-4)
    assert ours[0] < 1e-4 and ours[-1] > 0.3  # the DIMS transition moves ADK far from the start


def test_dssp_one_hot_matches_mdtraj():
    traj = md.load(D.DCD, top=D.PSF)[::20]
    feat = DSSP()
    x = Featurizer([feat]).transform(traj)
    codes = md.compute_dssp(traj, simplified=True)
    assert x.shape == (traj.n_frames, 3 * traj.n_residues)
    np.testing.assert_array_equal(x.reshape(traj.n_frames, -1, 3).sum(axis=2), 1)
    decoded = np.array(["H", "E", "C"])[x.reshape(traj.n_frames, -1, 3).argmax(axis=2)]
    np.testing.assert_array_equal(decoded, codes)
    assert (codes == "H").mean() > 0.3  # ADK is largely helical


def test_composition_labels_are_deterministic(tripeptide):
    def build():
        return parse_features(["phi_psi", "distances:selection=name CA", "angles:selection=name N CA C",
                               "xyz:selection=name CA"])

    a, b = build(), build()
    xa, xb = a.transform(tripeptide), b.transform(tripeptide)
    assert a.labels == b.labels and len(a.labels) == xa.shape[1] == len(set(a.labels))
    np.testing.assert_array_equal(xa, xb)
    # column blocks are the features' own outputs, in the order given
    start = 0
    for feature in a.features:
        single = Featurizer([feature.__class__(**_init_args(feature))]).transform(tripeptide)
        np.testing.assert_array_equal(xa[:, start:start + single.shape[1]], single)
        start += single.shape[1]
    assert a.labels[-1] == "VAL2-CA z"
    np.testing.assert_allclose(xa[:, -3:], tripeptide.xyz[:, tripeptide.topology.select("name CA")[-1]], atol=0)
    combined = Torsions(("phi",)) + Custom(lambda t: t.xyz[:, 0, 0], ["x of atom 0"])
    xc = combined.transform(tripeptide)
    assert combined.labels[-1] == "x of atom 0"
    np.testing.assert_array_equal(xc[:, -1], tripeptide.xyz[:, 0, 0])


def _init_args(feature):
    if isinstance(feature, Torsions):
        return {"kinds": feature.kinds, "selection": feature.selection}
    if isinstance(feature, Distances):
        return {"selection": feature.selection}
    if isinstance(feature, Angles):
        return {"selection": feature.selection}
    if isinstance(feature, Coordinates):
        return {"selection": feature.selection}
    raise AssertionError(feature)


def test_bad_input_errors(tripeptide):
    top = tripeptide.topology
    with pytest.raises(ValueError, match="matches no atoms"):
        Distances("name XYZ").bind(top)
    with pytest.raises(ValueError, match="cannot parse atom selection"):
        Distances("name CA and and").bind(top)
    with pytest.raises(ValueError, match="unknown kind"):
        Torsions(("phi", "zeta"))
    with pytest.raises(ValueError, match="unknown feature"):
        parse_features(["ramachandran"])
    with pytest.raises(ValueError, match="no residue pairs"):
        ResidueDistances().bind(top)  # three residues, all within exclude_neighbors=2
    with pytest.raises(ValueError, match="reference has"):
        RMSD(tripeptide.atom_slice(np.arange(10))).bind(top)
    feats = Featurizer([Torsions(("phi",))]).bind(top)
    with pytest.raises(ValueError, match="bound to a topology with 2661 atoms"):
        feats.transform(tripeptide.atom_slice(np.arange(100)))


def test_frame_blocks_do_not_change_results(tripeptide, adk_boxed, monkeypatch):
    feats = [Featurizer([Torsions(("phi", "psi", "chi1")), Distances("name CA"), Angles(selection="backbone")]),
             Featurizer([Distances("name CA and resid 0 to 30"), Angles(selection="backbone and resid 0 to 10")])]
    whole = [feats[0].transform(tripeptide), feats[1].transform(adk_boxed)]
    monkeypatch.setattr(_geometry, "_BLOCK_FRAMES", 7)
    np.testing.assert_array_equal(feats[0].transform(tripeptide), whole[0])
    np.testing.assert_array_equal(feats[1].transform(adk_boxed), whole[1])


def test_torsion_selection_picks_residues(tripeptide):
    feat = Torsions(("phi", "psi", "chi1"), selection="resid 1", sincos=False).bind(tripeptide.topology)
    assert feat.angle_labels == ["phi GLU1", "psi GLU1", "chi1 GLU1"]
    _, phi = md.compute_phi(tripeptide)
    np.testing.assert_allclose(feat.angles(tripeptide)[:, 0], phi[:, 0], atol=1e-5)
