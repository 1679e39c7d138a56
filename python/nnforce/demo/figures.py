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


def plot_production(path, bias, produced, temperature_k):
    """Phase 1 (the metadynamics walker's phi and psi against time: it must visit every basin) and phase 2 (the
    replicas' kinetic temperature against time).

    Parameters
    ----------
    path : str
    bias : nnforce.simulate.metadynamics.BiasResult
    produced : nnforce.simulate.metadynamics.ProductionResult
    temperature_k : float
        The thermostat's.

    Returns
    -------
    str
        ``path``.

    Examples
    --------
    >>> plot_production("production.png", bias, produced, 300.0)  # doctest: +SKIP
    """
    plt = _pyplot()
    fig, axes = plt.subplots(2, 1, figsize=(9.5, 5.0))
    interval_ps = produced.frame_interval_ps
    walker_ps = (np.arange(len(bias.phi_rad)) + 1) * interval_ps
    axes[0].plot(walker_ps, np.degrees(bias.phi_rad), ".", ms=1.5, label="phi")
    axes[0].plot(walker_ps, np.degrees(bias.psi_rad), ".", ms=1.5, label="psi")
    axes[0].set_ylim(-180, 180)
    axes[0].set_ylabel("angle (deg)")
    axes[0].set_xlabel("metadynamics time (ps)")
    axes[0].legend(fontsize=7, loc="upper right", markerscale=5)
    axes[0].set_title("phase 1: the metadynamics walker", fontsize=10)
    temperatures = np.asarray(produced.temperature_k)
    axes[1].plot((np.arange(len(temperatures)) + 1) * interval_ps, temperatures, lw=0.8, color="tab:red",
                 label="all replicas")
    axes[1].axhline(temperature_k, color="0.4", ls="--", lw=0.8, label=f"thermostat {temperature_k:g} K")
    axes[1].set_ylabel("temperature (K)")
    axes[1].set_xlabel("production time (ps)")
    axes[1].legend(fontsize=7, loc="upper right")
    axes[1].set_title(f"phase 2: {produced.phi_rad.shape[0]} replicas under the bias held fixed, one Context",
                      fontsize=10)
    fig.tight_layout()
    return _save_figure(fig, path)


def plot_fes_comparison(path, student, teacher=None, within_kt=4.0):
    """The reweighted phi/psi free energies (kT) of the student and the teacher side by side, and their difference
    (student - teacher, the mean difference over the bins within ``within_kt`` of either minimum removed).

    Parameters
    ----------
    path : str
    student, teacher : dict
        :func:`nnforce.simulate.metadynamics.reweighted_fes` results on the same bins (teacher optional).
    within_kt : float

    Returns
    -------
    str
        ``path``.

    Examples
    --------
    >>> plot_fes_comparison("fes.png", fes, teacher_fes)  # doctest: +SKIP
    """
    plt = _pyplot()
    panels = [("student (reweighted)", student["fes_kt"])]
    if teacher is not None:
        panels.append(("teacher ANI-1x (reweighted)", teacher["fes_kt"]))
    fig, axes = plt.subplots(1, len(panels) + (teacher is not None), figsize=(5.0 * (2 * len(panels) - 1), 4.4))
    axes = np.atleast_1d(axes)
    edges = np.degrees(student["edges_rad"])
    vmax = 12.0
    for ax, (title, grid) in zip(axes, panels):
        mesh = ax.pcolormesh(edges, edges, np.minimum(grid, vmax).T, cmap="viridis", vmin=0, vmax=vmax)
        fig.colorbar(mesh, ax=ax, label="free energy (kT)")
        ax.set_title(title, fontsize=10)
    if teacher is not None:
        a, b = student["fes_kt"], teacher["fes_kt"]
        mask = np.isfinite(a) & np.isfinite(b) & ((a <= within_kt) | (b <= within_kt))
        difference = np.where(np.isfinite(a) & np.isfinite(b), a - b, np.nan)
        if mask.any():
            difference = difference - np.nanmean(difference[mask])
        mesh = axes[-1].pcolormesh(edges, edges, np.where(mask, difference, np.nan).T, cmap="RdBu_r", vmin=-3,
                                   vmax=3)
        fig.colorbar(mesh, ax=axes[-1], label="student - teacher (kT)")
        axes[-1].set_title(f"difference (bins within {within_kt:g} kT)", fontsize=10)
    for ax in axes:
        ax.set_xlim(-180, 180)
        ax.set_ylim(-180, 180)
        ax.set_xlabel("phi (deg)")
        ax.set_ylabel("psi (deg)")
    fig.tight_layout()
    return _save_figure(fig, path)


def plot_teacher_populations(path, student, teacher=None):
    """The four basins' populations with 95% intervals, student against teacher.

    Parameters
    ----------
    path : str
    student, teacher : dict
        basin -> (population, low, high) (:func:`nnforce.simulate.metadynamics.basin_populations`).

    Returns
    -------
    str
        ``path``.
    """
    from .measure import BASINS

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8.0, 3.6))
    x = np.arange(len(BASINS))
    series = [("student", student, "tab:blue")] + ([("teacher ANI-1x", teacher, "tab:orange")] if teacher else [])
    width = 0.8 / len(series)
    for i, (label, values, colour) in enumerate(series):
        v = np.array([values[b][0] for b in BASINS])
        low = np.array([values[b][1] for b in BASINS])
        high = np.array([values[b][2] for b in BASINS])
        ax.bar(x + (i - (len(series) - 1) / 2) * width, v, width, yerr=np.vstack([v - low, high - v]).clip(min=0),
               capsize=3, label=label, color=colour, edgecolor="0.3", linewidth=0.4)
    ax.set_xticks(x)
    ax.set_xticklabels(BASINS, fontsize=8)
    ax.set_ylabel("population")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=8)
    ax.set_title("basin populations, reweighted (error bars: 95% bootstrap over replicas)", fontsize=10)
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
    weights = np.concatenate(conf["frame_weights"])
    fig, axes = plt.subplots(1, 2, figsize=(11.0, 4.6))
    box = [[-180, 180], [-180, 180]]
    vmax = 25.0
    for ax, w, title in ((axes[0], None, "production frames (as sampled, biased)"),
                         (axes[1], weights, "reweighted by the MSM and the bias")):
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
    ax.scatter(np.degrees(phi_ref), np.degrees(psi_ref), s=3, c="0.65", label="training data (amber14 500 K + active learning)")
    ax.scatter(np.degrees(phi_sim), np.degrees(psi_sim), s=3, c="tab:blue", label="production (student)")
    ax.set_xlim(-180, 180)
    ax.set_ylim(-180, 180)
    ax.set_xlabel("phi (deg)")
    ax.set_ylabel("psi (deg)")
    ax.legend(fontsize=7, loc="lower right", markerscale=3)
    ax.set_title("phi/psi coverage")
    return _save_figure(fig, path)
