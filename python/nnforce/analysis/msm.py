"""Markov state models on discrete trajectories (deeptime): counts, reversible MLE, implied timescales (with
seeded bootstrap confidence intervals over trajectories), Chapman-Kolmogorov test and PCCA+ metastable sets.

Lags are in frames of the discrete trajectories (multiply by the saved-frame interval, times the
featurization stride, for physical time). The MSM lives on the largest connected set of states; the maps
between cluster ids and MSM states are kept (``active_set``) so results can be reported per cluster.
"""
import warnings

import numpy as np

__all__ = ["MSM", "estimate_msm", "implied_timescales", "bootstrap", "bootstrap_timescales", "ck_test",
           "check_dtrajs"]


def check_dtrajs(dtrajs, lag):
    """Validate discrete trajectories for a lag; return them as a list of int32 arrays.

    Parameters
    ----------
    dtrajs : array or list of arrays of int
    lag : int

    Returns
    -------
    list of numpy.ndarray (int32)

    Examples
    --------
    >>> [d.dtype.name for d in check_dtrajs([[0, 1, 1, 0]], 1)]
    ['int32']
    """
    if isinstance(dtrajs, np.ndarray) and dtrajs.ndim == 1:
        dtrajs = [dtrajs]
    dtrajs = [np.asarray(d, dtype=np.int32) for d in dtrajs]
    if not dtrajs or all(len(d) == 0 for d in dtrajs):
        raise ValueError("no discrete trajectories given")
    if int(lag) != lag or lag < 1:
        raise ValueError(f"MSM lag must be a positive integer number of frames, got {lag!r}")
    longest = max(len(d) for d in dtrajs)
    if lag >= longest:
        raise ValueError(f"MSM lag {lag} frames is not shorter than the longest trajectory ({longest} frames): "
                         "there are no transitions to count; use a lag below the trajectory length")
    if any(d.min() < 0 for d in dtrajs if len(d)):
        raise ValueError("discrete trajectories contain negative states (e.g. HDBSCAN noise, -1); "
                         "drop or reassign those frames before building an MSM")
    return dtrajs


class MSM:
    """A reversible (or not) maximum-likelihood MSM at one lag.

    Attributes: ``lag``, ``transition_matrix`` (active states), ``stationary_distribution``, ``active_set``
    (cluster ids of the active states), ``count_matrix`` (all clusters, sliding window), ``timescales(k)``
    (frames), ``model`` (the deeptime MarkovStateModel).

    Parameters
    ----------
    dtrajs : array or list of arrays of int, optional
        Fit at once (``MSM(dtrajs, lag)``); or call :meth:`fit` later (``MSM(lag=10).fit(dtrajs)``).
    lag : int
        Frames.
    reversible : bool
    n_states : int, optional
        Number of clusters (default: the largest state id + 1).

    Examples
    --------
    >>> msm = MSM(lag=10).fit(km.labels)  # doctest: +SKIP
    >>> msm.timescales(3), msm.pcca(2)["populations"]  # doctest: +SKIP
    """

    def __init__(self, dtrajs=None, lag=None, reversible=True, n_states=None):
        if lag is None:
            raise ValueError("MSM needs a lag: MSM(lag=10).fit(dtrajs), or MSM(dtrajs, 10)")
        self.lag, self.reversible, self.n_states = int(lag), bool(reversible), n_states
        if dtrajs is not None:  # the old one-step form MSM(dtrajs, lag)
            self.fit(dtrajs)

    def fit(self, dtrajs):
        """Estimate the MSM from discrete trajectories (sliding-window counts, largest connected set).

        Parameters
        ----------
        dtrajs : array or list of arrays of int

        Returns
        -------
        MSM
            ``self``, fitted.

        Examples
        --------
        >>> import numpy as np
        >>> msm = MSM(lag=1).fit(np.array([0, 0, 1, 1, 0, 1, 0, 0, 1, 1]))
        >>> msm.transition_matrix.shape
        (2, 2)
        """
        from deeptime.markov import TransitionCountEstimator
        from deeptime.markov.msm import MaximumLikelihoodMSM

        self.dtrajs = check_dtrajs(dtrajs, self.lag)
        n_states = self.n_states or int(max(d.max() for d in self.dtrajs if len(d)) + 1)
        counts = TransitionCountEstimator(self.lag, "sliding", n_states=n_states).fit_fetch(self.dtrajs)
        self.count_matrix = np.asarray(counts.count_matrix)
        sub = counts.submodel_largest()
        self.active_set = np.asarray(sub.state_symbols)
        self.model = MaximumLikelihoodMSM(reversible=self.reversible, lagtime=self.lag).fit_fetch(sub)
        self.transition_matrix = self.model.transition_matrix
        self.stationary_distribution = self.model.stationary_distribution
        self.n_clusters = n_states
        self.active_fraction = float(self.count_matrix[np.ix_(self.active_set, self.active_set)].sum()
                                     / max(self.count_matrix.sum(), 1))
        return self

    def timescales(self, k=None):
        """Implied timescales (frames) of the slowest ``k`` processes (fewer when the MSM has fewer)."""
        if k is not None:
            k = min(int(k), len(self.active_set) - 1)
            if k < 1:
                return np.zeros(0)
        return np.real(np.asarray(self.model.timescales(k)))

    def cluster_populations(self):
        """Stationary probability per cluster id (0 for clusters outside the active set)."""
        pop = np.zeros(self.n_clusters)
        pop[self.active_set] = self.stationary_distribution
        return pop

    def frame_weights(self, dtrajs=None):
        """Per-frame weights that reweight the frames to the MSM's stationary distribution: a frame in active
        cluster c gets pi_c / (frames in c); frames outside the active set get 0. The weights of all frames sum
        to 1.

        Parameters
        ----------
        dtrajs : list of arrays of int, optional
            Default: the trajectories the MSM was fitted on.

        Returns
        -------
        list of numpy.ndarray

        Examples
        --------
        >>> import numpy as np
        >>> msm = MSM(lag=1).fit([np.array([0, 0, 1, 1, 0, 1, 0, 0, 1, 1])])
        >>> round(float(sum(w.sum() for w in msm.frame_weights())), 12)
        1.0
        """
        dtrajs = self.dtrajs if dtrajs is None else [np.asarray(d, dtype=np.int64) for d in dtrajs]
        frames = np.concatenate(dtrajs)
        counts = np.bincount(frames[(frames >= 0) & (frames < self.n_clusters)], minlength=self.n_clusters)
        per_frame = np.zeros(self.n_clusters)
        present = self.active_set[counts[self.active_set] > 0]
        if len(present) == 0:
            raise ValueError("frame_weights: no frame lies in the MSM's active set")
        per_frame[present] = self.cluster_populations()[present] / counts[present]
        per_frame /= float((per_frame * counts).sum())  # active clusters without frames here: renormalised
        return [np.where((d >= 0) & (d < self.n_clusters), per_frame[np.clip(d, 0, self.n_clusters - 1)], 0.0)
                for d in dtrajs]

    def pcca(self, n_sets):
        """PCCA+ into ``n_sets`` metastable sets. Returns a dict with ``memberships`` (active states x sets),
        ``assignment`` (set per cluster id, -1 outside the active set) and ``populations`` (per set)."""
        n_active = len(self.active_set)
        if n_sets < 2 or n_sets > n_active:
            raise ValueError(f"PCCA+ needs 2 <= n_sets <= number of active states ({n_active}); got {n_sets}")
        model = self.model.pcca(n_sets)
        assignment = np.full(self.n_clusters, -1, dtype=np.int32)
        assignment[self.active_set] = model.assignments
        populations = np.array([self.stationary_distribution[model.assignments == s].sum() for s in range(n_sets)])
        return {"memberships": model.memberships, "assignment": assignment, "populations": populations,
                "model": model}


def estimate_msm(dtrajs, lag, reversible=True, n_states=None):
    """An :class:`MSM` estimated from discrete trajectories (function form).

    Parameters
    ----------
    dtrajs, lag, reversible, n_states
        As for :class:`MSM`.

    Returns
    -------
    MSM

    Examples
    --------
    >>> model = estimate_msm(dtrajs, 10)  # doctest: +SKIP
    """
    return MSM(dtrajs, lag, reversible=reversible, n_states=n_states)


def implied_timescales(dtrajs, lags, n_its=5, reversible=True):
    """Implied timescales (frames) for each lag: array (len(lags), n_its), NaN where a model has fewer.

    Parameters
    ----------
    dtrajs : list of arrays of int
    lags : sequence of int
    n_its : int
    reversible : bool

    Returns
    -------
    lags : numpy.ndarray
    timescales : numpy.ndarray, shape (len(lags), n_its)

    Examples
    --------
    >>> lags, its = implied_timescales(dtrajs, [1, 2, 5, 10])  # doctest: +SKIP
    """
    lags = [int(l) for l in lags]
    dtrajs = check_dtrajs(dtrajs, max(lags))
    n_states = int(max(d.max() for d in dtrajs) + 1)
    out = np.full((len(lags), n_its), np.nan)
    for i, lag in enumerate(lags):
        ts = MSM(dtrajs, lag, reversible=reversible, n_states=n_states).timescales(n_its)
        out[i, :len(ts)] = ts
    return np.asarray(lags), out


def bootstrap(dtrajs, statistic, n_samples=100, seed=0):
    """Bootstrap over trajectories: ``statistic`` on ``n_samples`` sets of trajectories drawn with replacement
    (seeded), the usual error bar for many short, independent trajectories (replicas).

    Parameters
    ----------
    dtrajs : list of arrays
    statistic : callable
        ``statistic(list of trajectories) -> array``; a sample whose statistic raises ``ValueError``,
        ``RuntimeError`` or ``LinAlgError`` (e.g. a resample with no transitions) gives NaNs.
    n_samples : int
    seed : int

    Returns
    -------
    numpy.ndarray
        ``[n_samples, ...]``, the statistic of each resample.

    Examples
    --------
    >>> import numpy as np
    >>> samples = bootstrap([np.array([0, 1]), np.array([1, 1])], lambda d: np.mean(np.concatenate(d)), 50, 0)
    >>> samples.shape, bool(0.5 <= samples.mean() <= 1.0)
    ((50,), True)
    """
    if int(n_samples) < 1:
        raise ValueError(f"bootstrap needs n_samples >= 1, got {n_samples}")
    if len(dtrajs) < 1:
        raise ValueError("bootstrap needs at least one trajectory")
    rng = np.random.default_rng(int(seed))
    results, shape = [], None
    for _ in range(int(n_samples)):
        pick = rng.integers(0, len(dtrajs), size=len(dtrajs))
        try:
            value = np.asarray(statistic([dtrajs[i] for i in pick]), dtype=np.float64)
            shape = value.shape
        except (ValueError, RuntimeError, np.linalg.LinAlgError):
            value = None
        results.append(value)
    if shape is None:
        raise ValueError("bootstrap: the statistic failed on every resample")
    return np.stack([np.full(shape, np.nan) if r is None else r for r in results])


def bootstrap_timescales(dtrajs, lags, n_its=3, n_samples=100, seed=0, reversible=True, confidence=0.95):
    """Implied timescales (frames) per lag with bootstrap confidence intervals over trajectories.

    Each resample (trajectories drawn with replacement, seeded) gets its own MSM per lag on the same cluster
    ids; the interval is the central ``confidence`` fraction of the resamples' timescales.

    Parameters
    ----------
    dtrajs : list of arrays of int
    lags : sequence of int
    n_its : int
    n_samples : int
    seed : int
    reversible : bool
    confidence : float

    Returns
    -------
    dict
        ``lags`` [L], ``timescales`` [L, n_its] (from all trajectories), ``lower``/``upper``/``median``
        [L, n_its] (NaN where fewer processes were resolved), ``samples`` [n_samples, L, n_its],
        ``confidence``.

    Examples
    --------
    >>> its = bootstrap_timescales(dtrajs, [1, 2, 5, 10], n_its=2, n_samples=50, seed=1)  # doctest: +SKIP
    >>> its["lower"][:, 0] <= its["timescales"][:, 0]  # doctest: +SKIP
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    lags = [int(l) for l in lags]
    dtrajs = check_dtrajs(dtrajs, max(lags))
    n_states = int(max(d.max() for d in dtrajs if len(d)) + 1)

    def statistic(sample):
        out = np.full((len(lags), n_its), np.nan)
        longest = max(len(d) for d in sample)
        for i, lag in enumerate(lags):
            if lag < longest:
                ts = MSM(sample, lag, reversible=reversible, n_states=n_states).timescales(n_its)
                out[i, :len(ts)] = ts
        return out

    samples = bootstrap(dtrajs, statistic, n_samples, seed)
    tail = (1.0 - confidence) / 2 * 100
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns (a process no resample resolved)
        lower, median, upper = (np.nanpercentile(samples, q, axis=0) for q in (tail, 50.0, 100.0 - tail))
    return {"lags": np.asarray(lags), "timescales": statistic(dtrajs), "lower": lower, "upper": upper,
            "median": median, "samples": samples, "confidence": float(confidence)}


def ck_test(dtrajs, lag, n_sets, mlags=5, reversible=True):
    """Chapman-Kolmogorov test for PCCA+ sets: predictions of the lag-``lag`` model vs models estimated at
    k*lag (k = 1..mlags-1). Returns (lagtimes, predictions, estimates), each (mlags, n_sets, n_sets).

    Parameters
    ----------
    dtrajs : list of arrays of int
    lag, n_sets, mlags : int
    reversible : bool

    Examples
    --------
    >>> lagtimes, predicted, estimated = ck_test(dtrajs, 10, 2)  # doctest: +SKIP
    """
    dtrajs = check_dtrajs(dtrajs, lag * (mlags - 1))
    n_states = int(max(d.max() for d in dtrajs) + 1)
    base = MSM(dtrajs, lag, reversible=reversible, n_states=n_states)
    models = [base.model]
    for k in range(2, mlags):
        m = MSM(dtrajs, lag * k, reversible=reversible, n_states=n_states)
        if not np.array_equal(m.active_set, base.active_set):
            raise ValueError(f"CK test: the active set at lag {lag * k} differs from the one at lag {lag}; "
                             "use fewer clusters, a smaller lag or more data")
        models.append(m.model)
    result = base.model.ck_test(models, n_sets)
    return np.asarray(result.lagtimes), np.real(result.predictions), np.real(result.estimates)
