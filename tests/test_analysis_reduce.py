"""PCA/TICA against plain numpy/scipy eigen-solutions and deeptime; streaming = batch; VAMP-2 vs deeptime."""
import numpy as np
import pytest
import scipy.linalg

import conftest_analysis  # noqa: F401  (warnings filters)
from nnforce.analysis.reduce import PCA, TICA, Covariances, vamp2_score


def _ar_process(rng, T, n=6, offset=3.0):
    """Linear AR(1) process with a few slow directions, mixed and offset (features are not centered)."""
    rates = np.linspace(0.995, 0.3, n)
    mix = rng.normal(size=(n, n))
    x = np.zeros((T, n))
    noise = rng.normal(size=(T, n))
    for t in range(1, T):
        x[t] = rates * x[t - 1] + noise[t]
    return x @ mix + offset


@pytest.fixture(scope="module")
def trajectories():
    rng = np.random.default_rng(42)
    return [_ar_process(rng, 4000), _ar_process(rng, 2500)]


def _reversible_covariances(trajs, lag):
    x = np.concatenate([t[:-lag] for t in trajs])
    y = np.concatenate([t[lag:] for t in trajs])
    mean = (x.mean(0) + y.mean(0)) / 2
    xc, yc = x - mean, y - mean
    c00 = (xc.T @ xc + yc.T @ yc) / (2 * len(x))
    c0t = (xc.T @ yc + yc.T @ xc) / (2 * len(x))
    return mean, c00, c0t


def test_tica_matches_generalized_eigenproblem(trajectories):
    lag = 5
    tica = TICA(lag, scaling=None).fit(trajectories)
    mean, c00, c0t = _reversible_covariances(trajectories, lag)
    evals, evecs = scipy.linalg.eigh(c0t, c00)  # C0t v = l C00 v, v^T C00 v = 1
    order = np.argsort(np.abs(evals))[::-1]
    evals, evecs = evals[order], evecs[:, order]
    np.testing.assert_allclose(tica.eigenvalues, evals, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(tica.mean, mean, rtol=1e-12)
    for k in range(len(evals)):  # same vectors up to sign
        v, w = tica.components[:, k], evecs[:, k]
        np.testing.assert_allclose(v * np.sign(v @ w), w, rtol=1e-6, atol=1e-8)
    y = tica.transform(trajectories[0])
    np.testing.assert_allclose(y, (trajectories[0] - mean) @ tica.components, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(tica.timescales, -lag / np.log(np.abs(evals)), rtol=1e-9)
    # the slowest process of the AR model has rate 0.995 -> timescale ~ 200 frames
    assert 100 < tica.timescales[0] < 400


def test_tica_equals_deeptime_including_kinetic_map(trajectories):
    from deeptime.decomposition import TICA as DeeptimeTICA

    for scaling in ("kinetic_map", None, "commute_map"):
        ours = TICA(10, scaling=scaling, dim=3).fit(trajectories)
        theirs = DeeptimeTICA(lagtime=10, scaling=scaling, dim=3).fit(trajectories).fetch_model()
        np.testing.assert_allclose(ours.transform(trajectories[1]), theirs.transform(trajectories[1]),
                                   rtol=1e-7, atol=1e-9)


def test_negative_eigenvalues_are_ordered_by_magnitude_like_deeptime():
    """White noise plus one slow coordinate: many eigenvalues near 0 of both signs, sorted by |lambda|."""
    from deeptime.decomposition import TICA as DeeptimeTICA

    rng = np.random.default_rng(5)
    x = rng.normal(size=(20000, 12))
    x[:, 0] += np.cumsum(rng.normal(size=20000)) * 0.02
    x[1:, 1] -= 0.3 * x[:-1, 1]  # anti-correlated at lag 1: a negative eigenvalue
    ours = TICA(1, dim=6).fit(x)
    theirs = DeeptimeTICA(lagtime=1, dim=6).fit(x).fetch_model()
    np.testing.assert_allclose(ours.eigenvalues, theirs.singular_values[:6], rtol=1e-8, atol=1e-12)
    assert np.any(ours.eigenvalues < 0)
    np.testing.assert_allclose(ours.transform(x), theirs.transform(x), rtol=1e-6, atol=1e-9)


def test_var_cutoff_counts_kinetic_variance(trajectories):
    full = TICA(5).fit(trajectories)
    cut = TICA(5, var_cutoff=0.8).fit(trajectories)
    kinetic = np.cumsum(full.eigenvalues ** 2) / np.sum(full.eigenvalues ** 2)
    assert cut.components.shape[1] == int(np.searchsorted(kinetic, 0.8) + 1)


def test_streaming_equals_batch_and_backends_agree(trajectories):
    batch = TICA(5).fit(trajectories)
    stream = TICA(5)
    for x in trajectories:
        stream.partial_fit(x)
    np.testing.assert_allclose(stream.components, batch.components, rtol=1e-10)
    numpy_backend = TICA(5, backend="numpy").fit(trajectories)
    np.testing.assert_allclose(numpy_backend.components, batch.components, rtol=1e-9)
    single = TICA(5, dtype="float32").fit(trajectories)  # fast path: float32 products, float64 sums
    # float32 products carry an absolute error of ~1e-5..1e-4 of the leading eigenvalue (~1), so a near-zero
    # eigenvalue (here -0.004) cannot hold a relative 1e-3; every eigenvalue must agree to 2e-4 absolute.
    np.testing.assert_allclose(single.eigenvalues, batch.eigenvalues, rtol=1e-3, atol=2e-4)


def test_covariance_blocks_are_exact_across_block_boundaries(monkeypatch):
    import nnforce.analysis.reduce as reduce

    rng = np.random.default_rng(3)
    x = rng.normal(size=(1000, 4)).cumsum(axis=0)
    expected = Covariances(7).fit(x).symmetric()
    monkeypatch.setattr(reduce, "_BLOCK_ROWS", 64)
    blocked = Covariances(7).fit(x).symmetric()
    for a, b in zip(expected, blocked):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)
    mean, c00, c0t = _reversible_covariances([x], 7)
    np.testing.assert_allclose(blocked[1], c00, rtol=1e-9)
    np.testing.assert_allclose(blocked[2], c0t, rtol=1e-9)


def test_pca_matches_numpy_eigh(trajectories):
    pca = PCA(dim=3).fit(trajectories)
    x = np.concatenate(trajectories)
    evals, evecs = np.linalg.eigh(np.cov(x.T, bias=True))
    order = np.argsort(evals)[::-1]
    np.testing.assert_allclose(pca.variances, evals[order][:3], rtol=1e-9)
    for k in range(3):
        v = pca.components[:, k]
        np.testing.assert_allclose(v * np.sign(v @ evecs[:, order[k]]), evecs[:, order[k]], atol=1e-8)
    y = pca.transform(x)
    np.testing.assert_allclose(y.var(axis=0), evals[order][:3], rtol=1e-9)
    assert PCA(var_cutoff=0.9).fit(trajectories).components.shape[1] == int(
        np.searchsorted(np.cumsum(evals[order]) / evals.sum(), 0.9) + 1)


def test_vamp2_matches_deeptime_and_ranks_feature_sets(trajectories):
    from deeptime.decomposition import VAMP

    for dim in (None, 2):
        ours = vamp2_score(trajectories, 5, dim=dim)
        theirs = VAMP(lagtime=5, dim=dim).fit(trajectories).fetch_model().score(2)
        assert ours == pytest.approx(theirs, rel=1e-9)
    rng = np.random.default_rng(0)
    noise = [rng.normal(size=t.shape) for t in trajectories]
    assert vamp2_score(trajectories, 5, dim=2) > vamp2_score(noise, 5, dim=2) + 0.5


def test_bad_input_errors(trajectories):
    with pytest.raises(ValueError, match="too short for lag 50"):
        TICA(50).fit([trajectories[0][:40]])
    with pytest.raises(ValueError, match="positive integer"):
        TICA(0)
    with pytest.raises(ValueError, match="same number of features"):
        TICA(2).fit([trajectories[0], trajectories[1][:, :3]])
    with pytest.raises(ValueError, match="NaN"):
        TICA(2).fit(np.full((10, 2), np.nan))
    with pytest.raises(ValueError, match="not fitted"):
        TICA(2).transform(trajectories[0])
