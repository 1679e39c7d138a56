"""The demo's own figures (training curve and parity, the ensemble's temperature trace, phi/psi free energy with
the metastable states, basin populations, phi/psi coverage); the free energy and implied timescales come from
:mod:`nnforce.analysis.plots`. Drawn with the shared engine in
:mod:`nnforce._html` (Agg backend, atomic PNG files)."""
import numpy as np

from .._png import pyplot as _pyplot, save_figure as _save_figure


def plot_training(path, history, test_reference, test_predicted, baseline):
    """Training curve (train/validation loss per epoch; validation MAEs) and a test-set parity plot.

    Parameters
    ----------
    path : str
    history : list of dict
        :func:`nnforce.train.fit`'s rows.
    test_reference, test_predicted : array
        Test-set energies (kJ/mol).
    baseline : dict
        The trivial baselines' errors.

    Returns
    -------
    str
        ``path``.

    Examples
    --------
    >>> plot_training("training.png", result.history, test_e, predicted, baseline)  # doctest: +SKIP
    """
    plt = _pyplot()
    epochs = [row["epoch"] + 1 for row in history]
    fig, axes = plt.subplots(1, 3, figsize=(13.5, 3.8))
    axes[0].semilogy(epochs, [row["train_loss"] for row in history], label="train")
    axes[0].semilogy(epochs, [row["val_loss"] for row in history], label="validation")
    axes[0].set_xlabel("epoch")
    axes[0].set_ylabel("loss (normalised energy + force MSE)")
    axes[0].legend()
    axes[0].set_title("training curve")
    axes[1].semilogy(epochs, [row["val_energy_mae_kj_mol"] for row in history], color="tab:blue",
                     label="validation energy MAE (kJ/mol)")
    axes[1].axhline(baseline["energy_mae_kj_mol"], color="tab:blue", ls=":", lw=1,
                    label="mean-energy baseline (test)")
    if "val_force_mae_kj_mol_nm" in history[0]:
        axes[1].semilogy(epochs, [row["val_force_mae_kj_mol_nm"] for row in history], color="tab:orange",
                         label="validation force MAE (kJ/mol/nm)")
        axes[1].axhline(baseline["force_mae_kj_mol_nm"], color="tab:orange", ls=":", lw=1,
                        label="zero-force baseline (test)")
    axes[1].set_xlabel("epoch")
    axes[1].legend(fontsize=7)
    axes[1].set_title("validation errors")
    shift = float(np.mean(test_reference))
    ref, pred = np.asarray(test_reference) - shift, np.asarray(test_predicted) - shift
    low, high = float(min(ref.min(), pred.min())), float(max(ref.max(), pred.max()))
    axes[2].plot([low, high], [low, high], color="0.6", lw=1)
    axes[2].scatter(ref, pred, s=8)
    axes[2].set_xlabel("ANI-1x energy - mean (kJ/mol)")
    axes[2].set_ylabel("trained model energy - same shift (kJ/mol)")
    axes[2].set_title("test set parity")
    fig.tight_layout()
    return _save_figure(fig, path)


def plot_ensemble_trace(path, result, temperature_k):
    """The replicas' kinetic temperatures (mean and range over replicas) and the potential energy per replica
    against production time.

    Parameters
    ----------
    path : str
    result : dict
        :func:`nnforce.demo.ensemble.run_nnforce_ensemble`'s result (``temperatures_k`` [frames, R],
        ``potential_per_replica_kj_mol`` [frames], ``frame_interval_ps``).
    temperature_k : float
        The thermostat's.

    Returns
    -------
    str
        ``path``.

    Examples
    --------
    >>> plot_ensemble_trace("ensemble.png", result, 300.0)  # doctest: +SKIP
    """
    plt = _pyplot()
    temperatures = np.asarray(result["temperatures_k"])
    potential = np.asarray(result["potential_per_replica_kj_mol"])
    time_ps = (np.arange(len(temperatures)) + 1) * result["frame_interval_ps"]
    fig, axes = plt.subplots(2, 1, figsize=(9.5, 5.0), sharex=True)
    axes[0].fill_between(time_ps, temperatures.min(axis=1), temperatures.max(axis=1), color="tab:red", alpha=0.2,
                         lw=0, label="range over replicas")
    axes[0].plot(time_ps, temperatures.mean(axis=1), color="tab:red", lw=1.0, label="mean over replicas")
    axes[0].axhline(temperature_k, color="0.4", ls="--", lw=0.8, label=f"thermostat {temperature_k:g} K")
    axes[0].set_ylabel("temperature (K)")
    axes[0].legend(fontsize=7, loc="upper right")
    axes[0].set_title(f"{temperatures.shape[1]} replicas in one Context")
    axes[1].plot(time_ps, potential - potential.mean(), lw=0.8)
    axes[1].set_ylabel("potential / replica - mean\n(kJ/mol)")
    axes[1].set_xlabel("production time (ps)")
    fig.tight_layout()
    return _save_figure(fig, path)


def plot_states(path, conf, temperature_k, bins=36):
    """The ensemble's phi/psi free energy: left, -kT ln p of the frames as sampled (biased by where the replicas
    started); right, reweighted by the MSM's stationary distribution, with each metastable state's frames
    outlined and its representative structure marked.

    Parameters
    ----------
    path : str
    conf : dict
        :func:`nnforce.demo.conformations.analyze_ensemble`'s result.
    temperature_k : float
    bins : int

    Returns
    -------
    str
        ``path``.

    Examples
    --------
    >>> plot_states("phi_psi.png", conf, 300.0)  # doctest: +SKIP
    """
    from ..analysis.plots import free_energy

    plt = _pyplot()
    phi, psi = np.degrees(conf["phi_rad"]), np.degrees(conf["psi_rad"])
    weights = np.concatenate(conf["msm"].frame_weights())
    fig, axes = plt.subplots(1, 2, figsize=(11.0, 4.6))
    box = [[-180, 180], [-180, 180]]
    vmax = 25.0
    for ax, w, title in ((axes[0], None, "ensemble frames (as sampled)"),
                         (axes[1], weights, "reweighted by the MSM")):
        if w is not None and w.sum() <= 0:
            continue
        energy, xe, ye = free_energy(phi, psi, bins=bins, temperature_k=temperature_k, weights=w, range_=box)
        xc, yc = (xe[:-1] + xe[1:]) / 2, (ye[:-1] + ye[1:]) / 2
        shown = np.minimum(energy, vmax)
        filled = ax.contourf(xc, yc, shown.T, levels=np.linspace(0, vmax, 26), cmap="viridis")
        ax.set_title(title, fontsize=10)
        ax.set_xlim(-180, 180)
        ax.set_ylim(-180, 180)
        ax.set_xlabel("phi (deg)")
        ax.set_ylabel("psi (deg)")
        fig.colorbar(filled, ax=ax, label="free energy (kJ/mol)")
    colours = plt.get_cmap("tab10")
    for state in conf.get("states", []):
        s = state["state"]
        frames = np.concatenate([d == s for d in conf["state_dtrajs"]])
        axes[1].scatter(phi[frames], psi[frames], s=2, color=colours(s), alpha=0.25)
        if state["phi_deg"] is not None:
            axes[1].scatter([state["phi_deg"]], [state["psi_deg"]], s=120, marker="*", color=colours(s),
                            edgecolors="k", linewidths=0.8, zorder=5)
            axes[1].annotate(f"S{s + 1}", (state["phi_deg"], state["psi_deg"]), xytext=(6, 6),
                             textcoords="offset points", fontsize=10, fontweight="bold", color="w",
                             bbox={"boxstyle": "round,pad=0.15", "fc": colours(s), "ec": "none"})
    fig.tight_layout()
    return _save_figure(fig, path)


def plot_basin_populations(path, populations):
    """Basin populations side by side: NNForce (MSM with its bootstrap interval, and frame counts), amber14 with
    the same protocol (MSM and frames), and the 500 K training sampling.

    Parameters
    ----------
    path : str
    populations : dict
        ``analyze_ensemble(...)["populations"]`` plus ``training_500k``.

    Returns
    -------
    str
        ``path``.

    Examples
    --------
    >>> plot_basin_populations("populations.png", conf["populations"])  # doctest: +SKIP
    """
    from .measure import BASINS

    plt = _pyplot()
    series = [("NNForce, MSM", "nnforce_msm", "tab:blue"), ("NNForce, frames", "nnforce_frames", "lightsteelblue"),
              ("amber14, MSM", "reference_msm", "tab:orange"), ("amber14, frames", "reference_frames", "navajowhite"),
              ("training data (500 K)", "training_500k", "0.7")]
    fig, ax = plt.subplots(figsize=(9.0, 3.8))
    width = 0.8 / len(series)
    x = np.arange(len(BASINS))
    for i, (label, key, colour) in enumerate(series):
        if key not in populations:
            continue
        values = np.array([populations[key][b] for b in BASINS])
        interval = populations.get(key + "_interval")
        error = None
        if interval:
            low = np.array([interval[b][0] for b in BASINS])
            high = np.array([interval[b][1] for b in BASINS])
            error = np.nan_to_num(np.vstack([values - low, high - values]).clip(min=0))
        ax.bar(x + (i - (len(series) - 1) / 2) * width, values, width, yerr=error, capsize=2, label=label,
               color=colour, edgecolor="0.3", linewidth=0.4)
    ax.set_xticks(x)
    ax.set_xticklabels(BASINS, fontsize=8)
    ax.set_ylabel("population")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=7, ncol=3)
    ax.set_title("basin populations (error bars: 95% bootstrap over replicas)", fontsize=10)
    fig.tight_layout()
    return _save_figure(fig, path)


def plot_coverage(path, phi_ref, psi_ref, phi_sim, psi_sim):
    """Where the training data and the NNForce ensemble lie in the phi/psi plane.

    Parameters
    ----------
    path : str
    phi_ref, psi_ref : array
        Training configurations (radians).
    phi_sim, psi_sim : array
        Trajectory frames (radians).

    Returns
    -------
    str
        ``path``.

    Examples
    --------
    >>> plot_coverage("coverage.png", phi_ref, psi_ref, phi, psi)  # doctest: +SKIP
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.8, 4.4))
    ax.scatter(np.degrees(phi_ref), np.degrees(psi_ref), s=3, c="0.65", label="training data (amber14, hot)")
    ax.scatter(np.degrees(phi_sim), np.degrees(psi_sim), s=3, c="tab:blue", label="NNForce ensemble")
    ax.set_xlim(-180, 180)
    ax.set_ylim(-180, 180)
    ax.set_xlabel("phi (deg)")
    ax.set_ylabel("psi (deg)")
    ax.legend(fontsize=7, loc="lower right", markerscale=3)
    ax.set_title("phi/psi coverage")
    return _save_figure(fig, path)
