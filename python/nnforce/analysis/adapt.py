"""What the analysis adapts to the data it has: lags and cluster counts left out of the specs, histogram bins for
short data, and timescales the data cannot resolve (used by :func:`nnforce.analysis.pipeline.analyze`)."""
from .specs import parse_spec

__all__ = ["adapt_to_data", "flag_timescales", "histogram_bins"]


def histogram_bins(n_points, most=60):
    """Bins per axis for a 2-D free-energy histogram of ``n_points``: about 10 points per occupied bin on a
    diagonal-ish distribution (``sqrt(n / 2)``), between 10 and ``most``, so short data do not leave the panel blank.

    Examples
    --------
    >>> histogram_bins(200), histogram_bins(100000)
    (10, 60)
    """
    return int(min(most, max(10, round((n_points / 2.0) ** 0.5))))


def flag_timescales(timescales, data_length, unit):
    """Timescales as report text, each longer than the data marked: such a process is not resolved by it.

    Parameters
    ----------
    timescales : sequence of float
        In ``unit``.
    data_length : float
        The longest trajectory, in ``unit``.
    unit : str

    Returns
    -------
    str

    Examples
    --------
    >>> flag_timescales([3.0, 250.0], 100.0, "ps")
    '3 ps, 250 ps (longer than the 100 ps of data: not resolved)'
    """
    parts = []
    for t in timescales:
        text = f"{t:.4g} {unit}"
        if t > data_length:
            text += f" (longer than the {data_length:.4g} {unit} of data: not resolved)"
        parts.append(text)
    return ", ".join(parts)


def _positive_int(options, key, what, spec):
    value = options[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} option {key}={value!r} in {spec!r} must be a positive whole number")
    return value


def adapt_to_data(reduce, cluster, msm, lengths):
    """Fill in the TICA lag, the k-means ``k`` and the MSM lag left out of the specs, from trajectories of
    ``lengths`` frames: lags of about 1/20 of the shortest trajectory (1 to 10 frames), ``k`` of about one cluster
    per 20 frames (2 to 50). Values given are kept (the stage that cannot use them says so); values that are not
    positive whole numbers are errors naming the option.

    Parameters
    ----------
    reduce, cluster, msm : str or None
        The specs (``"tica:dim=2"``, ``"kmeans"``, ``"n_sets=3"``, ...).
    lengths : sequence of int
        Frames per trajectory (after striding).

    Returns
    -------
    tuple
        ``(reduce, cluster, msm, chosen)``: the specs with the values filled in, and one sentence per choice.

    Examples
    --------
    >>> adapt_to_data("tica:dim=2", "kmeans", "n_sets=3", [200])[3]
    ['TICA lag 10 frames (default)', 'k-means k 10 for 200 frames (about 20 frames per cluster)', 'MSM lag 10 frames (default)']
    >>> adapt_to_data("tica:lag=abc", "none", "none", [200])
    Traceback (most recent call last):
    ValueError: reduce option lag='abc' in 'tica:lag=abc' must be a positive whole number
    """
    shortest, total, chosen = min(lengths), sum(lengths), []
    auto_lag = max(1, min(10, shortest // 20))

    def lag_for(options, key, what, spec, name):
        if key not in options:
            options[key] = auto_lag
            chosen.append(f"{name} lag {auto_lag} frames" + (" (default)" if auto_lag == 10 else
                                                              f" for a shortest trajectory of {shortest} frames"))
        else:
            _positive_int(options, key, what, spec)
        return options

    def join(name, options):
        text = ",".join(f"{k}={'+'.join(map(str, v)) if isinstance(v, list) else v}" for k, v in options.items())
        return f"{name}:{text}" if name else text

    method, options = parse_spec(reduce or "none", "reduce")
    if method == "tica":
        spec = reduce
        reduce = join("tica", lag_for(options, "lag", "reduce", spec, "TICA"))
        if "dim" in options:
            _positive_int(options, "dim", "reduce", spec)
    name, options = parse_spec(cluster or "none", "cluster")
    if name in ("kmeans", "minibatch", "kcenters"):
        if "k" not in options:
            options["k"] = auto_k = max(2, min(50, total // 20))
            chosen.append(f"k-means k {auto_k} for {total} frames (about 20 frames per cluster)" if auto_k < 50 else
                          "k-means k 50 (default)")
        else:
            _positive_int(options, "k", "cluster", cluster)
        cluster = join(name, options)
    if msm and str(msm).lower() != "none":
        spec = msm
        _, options = parse_spec(msm, "msm")
        msm = join(None, lag_for(options, "lag", "msm", spec, "MSM"))
        for key in ("n_sets", "mlags"):
            if key in options:
                _positive_int(options, key, "msm", spec)
    return reduce, cluster, msm, chosen
