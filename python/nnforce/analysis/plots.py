"""Matplotlib figures (Agg backend, written atomically as PNG): free-energy surfaces, implied timescales,
populations, feature time series, CK test."""
import numpy as np

from .._png import pyplot as _pyplot, save_figure
from ..units import KB_KJ_MOL_K

__all__ = ["free_energy", "plot_free_energy", "plot_phi_psi", "plot_timescales", "plot_populations",
           "plot_time_series", "plot_ck_test", "KB_KJ_MOL_K"]


def _save(fig, path, dpi=110):
    return save_figure(fig, path, dpi)


def free_energy(x, y, bins=60, temperature_k=300.0, weights=None, range_=None):
    """-kT ln p on a 2-D histogram (kJ/mol), shifted so the minimum is 0; empty bins are NaN.
    Returns (F, x_edges, y_edges).

    Parameters
    ----------
    x, y : array
    bins : int
    temperature_k : float
    weights : array, optional
    range_ : [[xmin, xmax], [ymin, ymax]], optional

    Examples
    --------
    >>> import numpy as np
    >>> energy, xe, ye = free_energy(np.random.default_rng(0).normal(size=1000), np.zeros(1000) + 0.5, bins=5)
    >>> float(np.nanmin(energy))
    0.0
    """
    x, y = np.asarray(x, dtype=np.float64).ravel(), np.asarray(y, dtype=np.float64).ravel()
    if len(x) != len(y) or len(x) == 0:
        raise ValueError("free energy: x and y must be non-empty and of equal length")
    hist, xe, ye = np.histogram2d(x, y, bins=bins, weights=weights, range=range_, density=True)
    with np.errstate(divide="ignore"):
        energy = -KB_KJ_MOL_K * temperature_k * np.log(hist)
    energy[~np.isfinite(energy)] = np.nan
    energy -= np.nanmin(energy)
    return energy, xe, ye


def plot_free_energy(path, x, y, xlabel="x", ylabel="y", title=None, bins=60, temperature_k=300.0, weights=None,
                     range_=None, vmax_kj_mol=None, points=None):
    """Free-energy surface -kT ln p(x, y) as a filled contour plot; ``points`` (n, 2) are overlaid (centers).

    Parameters
    ----------
    path : str
    x, y : array
    xlabel, ylabel, title : str
    bins : int
    temperature_k : float
    weights, range_ : optional
        As for :func:`free_energy`.
    vmax_kj_mol : float, optional
    points : array, shape (n, 2), optional

    Returns
    -------
    str
        ``path``.

    Examples
    --------
    >>> plot_free_energy("fes.png", tic[:, 0], tic[:, 1], xlabel="TIC 1", ylabel="TIC 2")  # doctest: +SKIP
    """
    plt = _pyplot()
    energy, xe, ye = free_energy(x, y, bins, temperature_k, weights, range_)
    fig, ax = plt.subplots(figsize=(5.2, 4.2))
    xc, yc = (xe[:-1] + xe[1:]) / 2, (ye[:-1] + ye[1:]) / 2
    vmax = float(vmax_kj_mol or np.ceil(np.nanpercentile(energy, 99)) or 1.0)
    shown = np.minimum(energy, vmax)  # empty bins stay NaN and are left blank
    cs = ax.contourf(xc, yc, shown.T, levels=np.linspace(0, vmax, 21), cmap="viridis")
    ax.contour(xc, yc, shown.T, levels=np.linspace(0, vmax, 11), colors="k", linewidths=0.3, alpha=0.5)
    ax.set_xlim(xe[0], xe[-1])
    ax.set_ylim(ye[0], ye[-1])
    fig.colorbar(cs, ax=ax, label="free energy (kJ/mol)")
    if points is not None and len(points):
        points = np.asarray(points)
        ax.scatter(points[:, 0], points[:, 1], s=8, c="white", edgecolors="k", linewidths=0.4)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title or f"-kT ln p, T = {temperature_k:g} K")
    return _save(fig, path)


def plot_phi_psi(path, phi_rad, psi_rad, temperature_k=300.0, bins=72, title=None):
    """Ramachandran free-energy surface from phi/psi in radians (plotted in degrees, -180..180).

    Parameters
    ----------
    path : str
    phi_rad, psi_rad : array
    temperature_k : float
    bins : int
    title : str, optional

    Returns
    -------
    str
        ``path``.

    Examples
    --------
    >>> plot_phi_psi("phi_psi.png", phi, psi, temperature_k=300)  # doctest: +SKIP
    """
    return plot_free_energy(path, np.degrees(phi_rad), np.degrees(psi_rad), xlabel="phi (deg)", ylabel="psi (deg)",
                            title=title or f"phi/psi free energy, T = {temperature_k:g} K", bins=bins,
                            temperature_k=temperature_k, range_=[[-180, 180], [-180, 180]])


def plot_timescales(path, lags, timescales, dt=1.0, unit="frames", lower=None, upper=None, label=None):
    """Implied timescales vs lag (log scale) with the lag = timescale line (below it: not resolvable), and
    confidence bands when ``lower``/``upper`` are given (e.g. :func:`nnforce.analysis.msm.bootstrap_timescales`).

    Parameters
    ----------
    path : str
    lags : sequence of int
    timescales : array, shape (len(lags), n)
    dt : float
        Time per frame.
    unit : str
    lower, upper : array, shape (len(lags), n), optional
        Confidence bounds (frames), drawn as shaded bands.
    label : str, optional
        What the bands are (legend), e.g. "95% bootstrap interval".

    Returns
    -------
    str
        ``path``.

    Examples
    --------
    >>> plot_timescales("its.png", *implied_timescales(dtrajs, [1, 2, 5]))  # doctest: +SKIP
    """
    plt = _pyplot()
    lags = np.asarray(lags, dtype=float) * dt
    timescales = np.asarray(timescales, dtype=float)
    fig, ax = plt.subplots(figsize=(5.2, 4.0))
    for k in range(timescales.shape[1]):
        line, = ax.plot(lags, timescales[:, k] * dt, "o-", ms=3, label=f"process {k + 1}")
        if lower is not None and upper is not None:
            ax.fill_between(lags, np.asarray(lower)[:, k] * dt, np.asarray(upper)[:, k] * dt, color=line.get_color(),
                            alpha=0.2, lw=0, label=label if k == 0 and label else None)
    ax.fill_between(lags, 1e-12, lags, color="0.8", label="timescale < lag")
    ax.set_yscale("log")
    if len(lags) > 2 and lags.min() > 0 and lags.max() / lags.min() > 20:
        ax.set_xscale("log")
    ax.set_xlabel(f"lag ({unit})")
    ax.set_ylabel(f"implied timescale ({unit})")
    bounds = [timescales] + ([np.asarray(lower), np.asarray(upper)] if lower is not None and upper is not None else [])
    finite = np.concatenate([b[np.isfinite(b) & (b > 0)] for b in bounds]) * dt
    if finite.size:
        ax.set_ylim(max(min(finite.min(), lags.min()) / 2, 1e-12), finite.max() * 2)
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_populations(path, populations, xlabel="cluster", title="stationary populations", log=False):
    """Bar chart of state populations.

    Parameters
    ----------
    path : str
    populations : array
    xlabel, title : str
    log : bool

    Returns
    -------
    str
        ``path``.

    Examples
    --------
    >>> plot_populations("populations.png", msm.cluster_populations())  # doctest: +SKIP
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(4.0, min(12.0, 0.08 * len(populations) + 3)), 3.4))
    ax.bar(np.arange(len(populations)), populations, color="tab:blue")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("population")
    if log:
        ax.set_yscale("log")
    ax.set_title(title)
    return _save(fig, path)


def plot_time_series(path, series, labels, dt=1.0, unit="frames", max_series=6):
    """Up to ``max_series`` columns of one trajectory's features against time, stacked.

    Parameters
    ----------
    path : str
    series : array, shape (frames, features)
    labels : list of str
    dt : float
    unit : str
    max_series : int

    Returns
    -------
    str
        ``path``.

    Examples
    --------
    >>> plot_time_series("features.png", features[0], labels)  # doctest: +SKIP
    """
    plt = _pyplot()
    series = np.asarray(series)
    n = min(series.shape[1], max_series)
    fig, axes = plt.subplots(n, 1, figsize=(6.5, 1.3 * n + 0.6), sharex=True, squeeze=False)
    t = np.arange(len(series)) * dt
    for k in range(n):
        axes[k, 0].plot(t, series[:, k], lw=0.6)
        axes[k, 0].set_ylabel(labels[k], fontsize=7, rotation=0, ha="right", va="center")
    axes[-1, 0].set_xlabel(f"time ({unit})")
    return _save(fig, path)


def plot_ck_test(path, lagtimes, predictions, estimates, dt=1.0, unit="frames"):
    """Chapman-Kolmogorov test: P(set j | set i) after k*lag, model prediction (line) vs estimate (dots).

    Parameters
    ----------
    path : str
    lagtimes, predictions, estimates : array
        From :func:`nnforce.analysis.msm.ck_test`.
    dt : float
    unit : str

    Returns
    -------
    str
        ``path``.

    Examples
    --------
    >>> plot_ck_test("ck.png", *ck_test(dtrajs, 10, 2))  # doctest: +SKIP
    """
    plt = _pyplot()
    n = predictions.shape[1]
    fig, axes = plt.subplots(n, n, figsize=(2.0 * n + 1, 1.8 * n + 0.6), sharex=True, sharey=True, squeeze=False)
    t = np.asarray(lagtimes) * dt
    for i in range(n):
        for j in range(n):
            axes[i, j].plot(t, predictions[:, i, j], "-", color="tab:blue", label="MSM")
            axes[i, j].plot(t, estimates[:, i, j], "o", ms=3, color="tab:orange", label="estimate")
            axes[i, j].set_ylim(-0.05, 1.05)
            axes[i, j].set_title(f"{i} -> {j}", fontsize=8)
    axes[0, 0].legend(fontsize=6)
    axes[-1, 0].set_xlabel(f"time ({unit})")
    return _save(fig, path)
