"""Streaming featurization = in-memory results; Dask = serial; npz round trip; clear errors for bad input."""
import os

import mdtraj as md
import numpy as np
import pytest

import conftest_analysis as ca
from nnforce.analysis.features import Distances, Featurizer, Torsions, parse_features
from nnforce.analysis.stream import featurize, featurize_dask, featurize_file, load_features, save_features

pytestmark = pytest.mark.filterwarnings("ignore:.*netCDF4:UserWarning")
D = ca.data()


def _featurizer():
    return Featurizer([Torsions(("phi", "psi", "chi1")), Distances("name CA")])


@pytest.mark.parametrize("chunk,stride", [(7, 1), (4, 3), (1000, 2)])
def test_streaming_equals_in_memory_on_boxed_file(chunk, stride):
    streamed = featurize_file(D.NCDF, D.PRMncdf, _featurizer(), chunk=chunk, stride=stride)
    whole = md.load(D.NCDF, top=D.PRMncdf, stride=stride)
    assert whole.unitcell_vectors is not None
    np.testing.assert_array_equal(streamed, _featurizer().transform(whole))
    assert streamed.shape == (len(range(0, 30, stride)), 2 * 7 + 3)


def test_streaming_multiple_files_and_formats():
    feats = parse_features(["backbone_torsions", "residue_distances:scheme=ca;exclude_neighbors=10"])
    out = featurize([D.DCD, D.DCD], D.PSF, feats, chunk=25)
    assert len(out) == 2 and out[0].shape[0] == 98
    expected = feats.transform(md.load(D.DCD, top=D.PSF))
    np.testing.assert_array_equal(out[0], expected)
    np.testing.assert_array_equal(out[1], expected)
    # the C-alpha distance columns are plain numpy distances
    ca_idx = {a.residue.index: a.index for a in md.load_topology(D.PSF).atoms if a.name == "CA"}
    rd = feats.features[1]
    xyz = md.load(D.DCD, top=D.PSF).xyz
    i, j = rd.residue_pairs[5]
    np.testing.assert_allclose(out[0][:, feats.features[0].n_features + 5],
                               np.linalg.norm(xyz[:, ca_idx[i]] - xyz[:, ca_idx[j]], axis=1), atol=1e-5)


def test_dask_equals_serial():
    serial = featurize([D.NCDF, D.NCDF], D.PRMncdf, _featurizer(), chunk=8)
    parallel = featurize_dask([D.NCDF, D.NCDF], D.PRMncdf, _featurizer(), chunk=8, n_workers=2, processes=False)
    assert len(parallel) == 2
    for a, b in zip(serial, parallel):
        np.testing.assert_array_equal(a, b)


def test_npz_round_trip(tmp_path):
    feats = _featurizer()
    data = featurize([D.NCDF, D.NCDF], D.PRMncdf, feats, stride=2)
    path = save_features(tmp_path / "f.npz", data, feats.labels, [D.NCDF, D.NCDF], stride=2)
    back, labels, sources, meta = load_features(path)
    assert labels == feats.labels and sources == [D.NCDF, D.NCDF] and int(meta["stride"]) == 2
    for a, b in zip(data, back):
        np.testing.assert_array_equal(a, b)
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
    with pytest.raises(ValueError, match="does not match"):
        save_features(tmp_path / "g.npz", data, feats.labels[:-1])


def test_bad_input_errors(tmp_path):
    with pytest.raises(ValueError, match="47681 atoms but the topology has 2661"):
        featurize([D.XTC], D.PRMncdf, _featurizer())
    with pytest.raises(FileNotFoundError, match="trajectory file not found"):
        featurize([str(tmp_path / "missing.dcd")], D.PRMncdf, _featurizer())
    with pytest.raises(FileNotFoundError, match="topology file not found"):
        featurize([D.NCDF], str(tmp_path / "missing.pdb"), _featurizer())
    with pytest.raises(ValueError, match="matches no atoms"):
        featurize([D.NCDF], D.PRMncdf, Featurizer([Distances("resname XYZ")]))
    with pytest.raises(ValueError, match="no trajectory files"):
        featurize([], D.PRMncdf, _featurizer())
