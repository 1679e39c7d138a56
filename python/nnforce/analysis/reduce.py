"""Dimension reduction: PCA, TICA and VAMP-2 scores from streamed covariance matrices.

The one hand-written part is the covariance sums (:class:`Covariances`): accumulated trajectory by trajectory
(``partial_fit``) in float64 with a fixed shift (the first batch's mean) subtracted for numerical stability, the
large products run through torch (BLAS on the CPU, or a GPU with ``device="cuda"``). That is what makes a
1e6 x 100 TICA take seconds rather than deeptime's own estimator's tens of seconds (bench/results/analysis.md).
The sums are then handed to deeptime as a ``CovarianceModel``: TICA is ``deeptime.decomposition.TICA
.fit_from_covariances`` and the VAMP-2 score ``deeptime.decomposition.VAMP.fit_from_covariances``, so the
estimators' maths (whitening, eigenvalue order, signs, kinetic/commute map scaling, var_cutoff) is deeptime's.
PCA (not in deeptime) is the eigendecomposition of the instantaneous covariance.

TICA uses reversible (symmetrized) covariances without Bessel's correction, like deeptime's default.
"""
import numpy as np

__all__ = ["Covariances", "PCA", "TICA", "vamp2_score", "as_trajectory_list"]

_BLOCK_ROWS = 1 << 16


def as_trajectory_list(data):
    """Accept one array (frames, features) or a list of them; return a list of 2-D float arrays.

    Parameters
    ----------
    data : array or list of arrays

    Returns
    -------
    list of numpy.ndarray

    Examples
    --------
    >>> import numpy as np
    >>> [x.shape for x in as_trajectory_list(np.zeros(5))]
    [(5, 1)]
    """
    if isinstance(data, np.ndarray):
        data = [data]
    out = []
    for x in data:
        x = np.asarray(x)
        if x.ndim == 1:
            x = x[:, None]
        if x.ndim != 2:
            raise ValueError(f"expected arrays of shape (frames, features), got {x.shape}")
        if not np.issubdtype(x.dtype, np.floating):
            x = x.astype(np.float64)
        out.append(x)
    if not out:
        raise ValueError("no data: give at least one (frames, features) array")
    n = {x.shape[1] for x in out}
    if len(n) > 1:
        raise ValueError(f"all trajectories must have the same number of features; got {sorted(n)}")
    return out


def _resolve_device(device):
    import torch

    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class Covariances:
    """Streaming sums for instantaneous and time-lagged covariance matrices.

    For lag > 0 every trajectory contributes the pairs (x_t, x_{t+lag}); a trajectory shorter than or equal to
    the lag raises ``ValueError`` (it has no pairs). ``backend="torch"`` (default) or ``"numpy"``.

    Parameters
    ----------
    lag : int
        Frames.
    backend : {"torch", "numpy"}
    device : str
        Torch device for the products.
    dtype : {"float64", "float32"}
        Of the products (sums are always float64).

    Examples
    --------
    >>> import numpy as np
    >>> mean, c00, c0t = Covariances(1).fit(np.arange(10.0)[:, None]).symmetric()
    >>> float(mean[0])
    4.5
    """

    def __init__(self, lag=0, backend="torch", device="cpu", dtype="float64"):
        if int(lag) != lag or lag < 0:
            raise ValueError(f"lag must be a non-negative integer number of frames, got {lag!r}")
        self.lag = int(lag)
        self.backend, self.device, self.dtype = backend, device, dtype
        self.n_pairs = 0
        self._shift = None
        self._sxx = self._syy = self._sxy = None
        self._sx = self._sy = None

    # -- accumulation -------------------------------------------------------------------------------------
    def _gram(self, a, b):
        """a^T b for row blocks, float64 result."""
        if self.backend == "numpy":
            return a.T @ b
        return (a.T @ b).to("cpu", dtype=__import__("torch").float64).numpy()

    def _colsum(self, a):
        if self.backend == "numpy":
            return a.sum(axis=0)
        return a.sum(dim=0, dtype=__import__("torch").float64).cpu().numpy()

    def _prepare(self, block):
        if self.backend == "numpy":
            return block.astype(np.float64) - self._shift
        import torch

        dtype = torch.float64 if self.dtype == "float64" else torch.float32
        tensor = torch.from_numpy(np.ascontiguousarray(block)).to(_resolve_device(self.device), dtype=dtype)
        return tensor - torch.as_tensor(self._shift, dtype=dtype, device=tensor.device)

    def partial_fit(self, x):
        """Add one trajectory (frames, features) of the same process; returns self."""
        x = as_trajectory_list(x)[0]
        T, n = x.shape
        lag = self.lag
        if T <= lag:
            raise ValueError(f"a trajectory of {T} frames is too short for lag {lag}: it needs more than lag frames "
                             "(use a smaller lag, or featurize with a smaller stride)")
        if not np.all(np.isfinite(x)):
            raise ValueError("the features contain NaN or infinite values; check the featurization")
        if self._shift is None:
            self._shift = x[: min(T, 10000)].astype(np.float64).mean(axis=0)
            self._sxx = np.zeros((n, n))
            self._sxy = np.zeros((n, n))
            self._syy = np.zeros((n, n))
            self._sx = np.zeros(n)
            self._sy = np.zeros(n)
        elif n != len(self._shift):
            raise ValueError(f"trajectory has {n} features but earlier ones had {len(self._shift)}")
        n_x = T - lag
        zz = np.zeros((n, n))
        xy = np.zeros((n, n))
        total = np.zeros(n)  # sum of the shifted rows
        for a in range(0, T, _BLOCK_ROWS):
            b = min(a + _BLOCK_ROWS, T)
            w = self._prepare(x[a:min(b + lag, T)])
            own = w[: b - a]
            zz += self._gram(own, own)
            total += self._colsum(own)
            m = min(b, n_x) - a  # x rows in this block that have a partner
            if lag and m > 0:
                xy += self._gram(w[:m], w[lag:lag + m])
        head = (x[:lag].astype(np.float64) - self._shift) if lag else np.zeros((0, n))
        tail = (x[T - lag:].astype(np.float64) - self._shift) if lag else np.zeros((0, n))
        if lag:
            self._sxx += zz - tail.T @ tail
            self._syy += zz - head.T @ head
            self._sxy += xy
            self._sx += total - tail.sum(axis=0)
            self._sy += total - head.sum(axis=0)
        else:
            self._sxx += zz
            self._syy += zz
            self._sxy += zz
            self._sx += total
            self._sy += total
        self.n_pairs += n_x
        return self

    def fit(self, data):
        for x in as_trajectory_list(data):
            self.partial_fit(x)
        return self

    # -- results ----------------------------------------------------------------------------------------
    def _check(self):
        if self.n_pairs == 0:
            raise ValueError("no data: call fit/partial_fit with at least one trajectory first")

    def symmetric(self):
        """(mean, C00, C0t) from time-reversal-symmetrized statistics (deeptime's reversible=True)."""
        self._check()
        n = self.n_pairs
        mx, my = self._sx / n, self._sy / n
        mean = (mx + my) / 2
        c00 = (self._sxx + self._syy) / (2 * n) - np.outer(mean, mean)
        c0t = (self._sxy + self._sxy.T) / (2 * n) - np.outer(mean, mean)
        return mean + self._shift, (c00 + c00.T) / 2, (c0t + c0t.T) / 2

    def plain(self):
        """(mean_0, mean_t, C00, C0t, Ctt) without symmetrization (for VAMP)."""
        self._check()
        n = self.n_pairs
        mx, my = self._sx / n, self._sy / n
        c00 = self._sxx / n - np.outer(mx, mx)
        ctt = self._syy / n - np.outer(my, my)
        c0t = self._sxy / n - np.outer(mx, my)
        return mx + self._shift, my + self._shift, c00, c0t, ctt


def _canonical_signs(vectors):
    idx = np.argmax(np.abs(vectors), axis=0)
    signs = np.sign(vectors[idx, np.arange(vectors.shape[1])])
    signs[signs == 0] = 1
    return vectors * signs


def _choose_dim(weights, dim, var_cutoff):
    if dim is not None and var_cutoff is not None:
        raise ValueError("give dim or var_cutoff, not both")
    if dim is not None:
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        return min(int(dim), len(weights))
    if var_cutoff is not None:
        if not 0 < var_cutoff <= 1:
            raise ValueError(f"var_cutoff must be in (0, 1], got {var_cutoff}")
        cumulative = np.cumsum(weights) / np.sum(weights)
        return int(min(np.searchsorted(cumulative, var_cutoff - 1e-12) + 1, len(weights)))
    return len(weights)


class _Reducer:
    def __init__(self, lag, dim, var_cutoff, backend, device, dtype):
        self.dim, self.var_cutoff = dim, var_cutoff
        self._cov = Covariances(lag, backend=backend, device=device, dtype=dtype)
        self.mean = self.components = None

    def partial_fit(self, x):
        """Add one trajectory's statistics and re-solve (cheap: the eigenproblem is n_features^2)."""
        self._cov.partial_fit(x)
        self._solve()
        return self

    def fit(self, data):
        for x in as_trajectory_list(data):
            self._cov.partial_fit(x)
        self._solve()
        return self

    def transform(self, data):
        """Project (frames, features) or a list of such arrays; returns the same structure."""
        if self.components is None:
            raise ValueError("not fitted: call fit(data) first")
        single = isinstance(data, np.ndarray)
        out = [(np.asarray(x, dtype=np.float64) - self.mean) @ self.components for x in as_trajectory_list(data)]
        if any(x.shape[1] != len(self.mean) for x in as_trajectory_list(data)):
            raise ValueError(f"expected {len(self.mean)} features")
        return out[0] if single else out

    def fit_transform(self, data):
        return self.fit(data).transform(data)


class PCA(_Reducer):
    """Principal components (eigenvectors of the covariance matrix, by decreasing variance).

    Parameters
    ----------
    dim : int, optional
    var_cutoff : float, optional
        Keep components up to this fraction of the variance.
    backend, device, dtype
        As for :class:`Covariances`.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(200, 3)) * [3.0, 1.0, 0.1]
    >>> PCA(dim=1).fit(x).components.shape
    (3, 1)
    """

    def __init__(self, dim=None, var_cutoff=None, backend="torch", device="cpu", dtype="float64"):
        super().__init__(0, dim, var_cutoff, backend, device, dtype)

    def _solve(self):
        mean, c00, _ = self._cov.symmetric()
        variances, vectors = np.linalg.eigh(c00)
        order = np.argsort(variances)[::-1]
        variances, vectors = np.maximum(variances[order], 0), _canonical_signs(vectors[:, order])
        d = _choose_dim(variances, self.dim, self.var_cutoff)
        self.mean, self.variances, self.components = mean, variances[:d], vectors[:, :d]
        self.explained_variance_ratio = variances[:d] / variances.sum()
        self.covariance = c00


class TICA(_Reducer):
    """Time-lagged independent components: solve C0t v = lambda C00 v with reversible covariances.

    ``lag`` in frames; ``scaling`` None, "kinetic_map" (components times eigenvalue, deeptime's default) or
    "commute_map"; ``dim``/``var_cutoff`` (cumulative kinetic variance, sum of lambda^2) pick the output size.
    ``timescales`` are in frames (multiply by the frame interval for time units).

    Parameters
    ----------
    lag : int
    dim : int, optional
    var_cutoff : float, optional
    scaling : {"kinetic_map", "commute_map", None}
    epsilon : float
    backend, device, dtype
        As for :class:`Covariances`.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(2000, 3)).cumsum(axis=0)
    >>> TICA(lag=10, dim=2).fit(x).transform(x).shape
    (2000, 2)
    """

    def __init__(self, lag, dim=None, var_cutoff=None, scaling="kinetic_map", epsilon=1e-6, backend="torch",
                 device="cpu", dtype="float64"):
        if lag is None or int(lag) != lag or lag < 1:
            raise ValueError(f"TICA lag must be a positive integer number of frames, got {lag!r}")
        if scaling not in (None, "kinetic_map", "km", "commute_map"):
            raise ValueError(f"unknown TICA scaling {scaling!r}: use None, 'kinetic_map' or 'commute_map'")
        super().__init__(int(lag), dim, var_cutoff, backend, device, dtype)
        self.lag, self.scaling, self.epsilon = int(lag), scaling, epsilon

    def _solve(self):
        from deeptime.decomposition import TICA as DeeptimeTICA

        mean, c00, c0t = self._cov.symmetric()
        if self.dim is not None and self.var_cutoff is not None:
            raise ValueError("give dim or var_cutoff, not both")
        scaling = "kinetic_map" if self.scaling == "km" else self.scaling
        estimator = DeeptimeTICA(lagtime=self.lag, epsilon=self.epsilon, dim=self.dim, var_cutoff=self.var_cutoff,
                                 scaling=scaling)
        model = estimator.fit_from_covariances(_covariance_model(mean, mean, c00, c0t, c00, self.lag, True))
        model = model.fetch_model()
        d = model.output_dimension
        self.eigenvalues = np.asarray(model.singular_values[:d])
        self.timescales = np.asarray(model.timescales()[:d])
        self.mean, self.components = mean, np.asarray(model.instantaneous_coefficients[:, :d])
        self.c00, self.c0t = c00, c0t


def _covariance_model(mean_0, mean_t, c00, c0t, ctt, lag, symmetrized):
    """Our covariance sums as deeptime's ``CovarianceModel`` (no Bessel correction, means already removed)."""
    from deeptime.covariance import CovarianceModel

    return CovarianceModel(cov_00=c00, cov_0t=c0t, cov_tt=ctt, mean_0=mean_0, mean_t=mean_t,
                           bessels_correction=False, symmetrized=symmetrized, lagtime=lag, data_mean_removed=True)


def vamp2_score(data, lag, dim=None, epsilon=1e-6, backend="torch", device="cpu"):
    """VAMP-2 score of a feature set at ``lag`` frames (deeptime's VAMP on our covariance sums).

    1 + the sum of the squared singular values of C00^-1/2 C0t Ctt^-1/2 (the top ``dim`` when given). Higher:
    the features resolve more slow dynamics; compare feature sets at the same lag and dim. Scores on the
    training data (no cross-validation).

    Parameters
    ----------
    data : array (frames, features) or list of them
    lag : int
        Frames.
    dim : int, optional
    epsilon : float
        Covariance eigenvalues below this are discarded.
    backend, device : str
        Where the covariance sums run (see :class:`Covariances`).

    Returns
    -------
    float

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(500, 3)).cumsum(axis=0)
    >>> vamp2_score(x, 5, dim=1) > 1.9  # 1 (the constant function) + a slow process near 1
    True
    """
    from deeptime.decomposition import VAMP

    mean_0, mean_t, c00, c0t, ctt = Covariances(lag, backend=backend, device=device).fit(data).plain()
    model = VAMP(lagtime=lag, dim=dim, epsilon=epsilon).fit_from_covariances(
        _covariance_model(mean_0, mean_t, c00, c0t, ctt, lag, False)).fetch_model()
    return float(model.score(2))
