"""Clustering reproducibility and assignment; MSMs against a known Markov chain; clear errors."""
import mdtraj as md
import numpy as np
import pytest

import conftest_analysis as ca
from nnforce.analysis.cluster import (HDBSCAN, KCenters, KMeans, KMedoidsRMSD, MiniBatchKMeans, RegularSpace,
                                      make_clusterer)
from nnforce.analysis.msm import MSM, ck_test, implied_timescales

D = ca.data()


@pytest.fixture(scope="module")
def blobs():
    """Three trajectories visiting 5 well-separated Gaussian blobs in 3-D."""
    rng = np.random.default_rng(7)
    means = rng.normal(scale=10, size=(5, 3))
    trajs, truth = [], []
    for n in (600, 500, 400):
        z = rng.integers(5, size=n)
        trajs.append(means[z] + rng.normal(scale=0.3, size=(n, 3)))
        truth.append(z)
    return trajs, truth, means


def _same_partition(a, b):
    a, b = np.concatenate(a), np.concatenate(b)
    pairs = set(zip(a.tolist(), b.tolist()))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


@pytest.mark.parametrize("factory", [lambda s: KMeans(5, seed=s), lambda s: MiniBatchKMeans(5, seed=s, batch_size=256),
                                     lambda s: KCenters(5, seed=s), lambda s: RegularSpace(dmin=5.0),
                                     lambda s: HDBSCAN(min_cluster_size=40, seed=s)])
def test_clusterers_recover_blobs_reproducibly(blobs, factory):
    trajs, truth, _ = blobs
    first = factory(1).fit(trajs)
    again = factory(1).fit(trajs)
    for a, b in zip(first.labels, again.labels):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(first.centers, again.centers)
    assert [len(l) for l in first.labels] == [600, 500, 400]
    assert _same_partition(first.labels, truth)
    # predict on the training frames reproduces the labels; new frames go to their blob's cluster
    for x, lab in zip(trajs, first.labels):
        np.testing.assert_array_equal(first.predict(x), lab)


def test_assignment_is_nearest_center(blobs):
    trajs, _, means = blobs
    km = KMeans(8, seed=3).fit(trajs)
    rng = np.random.default_rng(0)
    new = rng.normal(scale=12, size=(300, 3))
    brute = np.argmin(((new[:, None, :] - km.centers[None]) ** 2).sum(-1), axis=1)
    np.testing.assert_array_equal(km.predict(new), brute)
    with pytest.raises(ValueError, match="dimensions"):
        km.predict(new[:, :2])


def test_kcenters_covers_every_frame_within_its_radius(blobs):
    x = np.concatenate(blobs[0])
    kc = KCenters(12, seed=0).fit(x)
    d = np.linalg.norm(x[:, None] - kc.centers[None], axis=2).min(axis=1)
    assert d.max() == pytest.approx(kc.max_radius)
    np.testing.assert_array_equal(kc.centers, x[kc.center_frames])


def test_kmedoids_rmsd_on_adk_is_reproducible():
    traj = md.load(D.DCD, top=D.PSF)[::2]
    km = KMedoidsRMSD(3, selection="name CA", seed=5).fit(traj)
    again = KMedoidsRMSD(3, selection="name CA", seed=5).fit(traj)
    np.testing.assert_array_equal(km.medoid_frames, again.medoid_frames)
    ca_idx = traj.topology.select("name CA")
    # assignment = nearest medoid by Kabsch RMSD computed independently
    for f in range(0, traj.n_frames, 7):
        rmsd = [ca.kabsch_rmsd(traj.xyz[f, ca_idx].astype(float), traj.xyz[m, ca_idx].astype(float))
                for m in km.medoid_frames]
        assert km.labels[0][f] == int(np.argmin(rmsd))
    # DIMS moves ADK from closed to open: frames are ordered, so clusters are contiguous-ish in time
    assert km.labels[0][0] != km.labels[0][-1]


def _markov_chain(P, T, rng, start=0):
    cum = np.cumsum(P, axis=1)
    u = rng.random(T)
    s = np.empty(T, dtype=np.int32)
    s[0] = start
    for t in range(1, T):
        s[t] = min(np.searchsorted(cum[s[t - 1]], u[t]), len(P) - 1)
    return s


@pytest.fixture(scope="module")
def two_wells():
    """Reversible 4-state chain: states {0,1} and {2,3} are two metastable wells."""
    pi = np.array([0.3, 0.2, 0.25, 0.25])
    K = np.array([[0, 20, 1, 0], [20, 0, 0, 1], [1, 0, 0, 20], [0, 1, 20, 0]], float)
    P = 0.02 * K * pi[None, :]  # pi_i P_ij = 0.02 K_ij pi_i pi_j is symmetric: detailed balance w.r.t. pi
    P[np.diag_indices(4)] = 1 - P.sum(axis=1)
    assert np.allclose(pi @ P, pi)
    rng = np.random.default_rng(11)
    return P, [_markov_chain(P, 30000, rng, s) for s in (0, 2)]


def test_msm_recovers_transition_matrix_and_timescales(two_wells):
    P, dtrajs = two_wells
    msm = MSM(dtrajs, lag=1)
    np.testing.assert_allclose(msm.transition_matrix, P, atol=0.01)
    np.testing.assert_allclose(msm.stationary_distribution, [0.3, 0.2, 0.25, 0.25], atol=0.05)
    pi = msm.stationary_distribution
    flux = pi[:, None] * msm.transition_matrix
    np.testing.assert_allclose(flux, flux.T, atol=1e-12)  # reversible MLE: detailed balance
    true_ts = -1 / np.log(np.sort(np.linalg.eigvals(P).real)[::-1][1:])
    np.testing.assert_allclose(msm.timescales(3), true_ts, rtol=0.15)
    lags, its = implied_timescales(dtrajs, [1, 2, 4, 8], n_its=1)
    np.testing.assert_allclose(its[:, 0], true_ts[0], rtol=0.15)  # Markovian: flat in the lag
    sets = msm.pcca(2)
    assert sets["assignment"][0] == sets["assignment"][1] != sets["assignment"][2] == sets["assignment"][3]
    lt, pred, est = ck_test(dtrajs, 2, 2, mlags=4)
    assert pred.shape == est.shape == (4, 2, 2)
    np.testing.assert_allclose(pred, est, atol=0.02)


def test_msm_bad_input(two_wells):
    _, dtrajs = two_wells
    with pytest.raises(ValueError, match="not shorter than the longest trajectory"):
        MSM([d[:50] for d in dtrajs], lag=50)
    with pytest.raises(ValueError, match="negative states"):
        MSM([np.array([0, 1, -1, 0, 1])], lag=1)
    with pytest.raises(ValueError, match="positive integer"):
        MSM(dtrajs, lag=0)
    with pytest.raises(ValueError, match="PCCA"):
        MSM(dtrajs, lag=1).pcca(9)
    with pytest.raises(ValueError, match="unknown clustering"):
        make_clusterer("spectral:k=3")
    with pytest.raises(ValueError, match="must be between 1 and the number of frames"):
        KMeans(50).fit(np.zeros((10, 2)))
    assert make_clusterer("kmeans:k=7", seed=3).k == 7
