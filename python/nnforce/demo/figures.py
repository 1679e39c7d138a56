"""The demo's own figures (training curve and parity, energy trace, phi/psi coverage); the free-energy and
population figures come from :mod:`nnforce.analysis.plots`. Drawn with the shared engine in
:mod:`nnforce._html` (Agg backend, atomic PNG files)."""
import numpy as np

from .._html import pyplot as _pyplot, save_figure as _save_figure


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


def plot_energy_trace(path, rows, equilibration_steps):
    """Potential/total energy (minus their means) and temperature against simulation time.

    Parameters
    ----------
    path : str
    rows : list of dict
        Rows of ``energies.csv``.
    equilibration_steps : int

    Returns
    -------
    str
        ``path``.

    Examples
    --------
    >>> plot_energy_trace("energy.png", rows, 200)  # doctest: +SKIP
    """
    plt = _pyplot()
    time_ps = np.array([float(r["time_ps"]) for r in rows])
    potential = np.array([float(r["potential_kj_mol"]) for r in rows])
    total = np.array([float(r["total_kj_mol"]) for r in rows])
    temperature = np.array([float(r["temperature_k"]) for r in rows])
    steps = np.array([int(r["step"]) for r in rows])
    fig, axes = plt.subplots(2, 1, figsize=(9.5, 5.0), sharex=True)
    axes[0].plot(time_ps, potential - potential.mean(), lw=0.8, label=f"potential (mean {potential.mean():.1f})")
    axes[0].plot(time_ps, total - total.mean(), lw=0.8, label=f"total (mean {total.mean():.1f})")
    axes[0].set_ylabel("energy - mean (kJ/mol)")
    axes[0].legend(fontsize=8, loc="upper right")
    axes[1].plot(time_ps, temperature, lw=0.8, color="tab:red")
    axes[1].set_ylabel("temperature (K)")
    axes[1].set_xlabel("time (ps)")
    if equilibration_steps and np.any(steps <= equilibration_steps):
        boundary = time_ps[steps <= equilibration_steps][-1]
        for ax in axes:
            ax.axvline(boundary, color="0.5", ls="--", lw=0.8)
        axes[0].set_title("energy trace (dashed: end of equilibration)")
    else:
        axes[0].set_title("energy trace")
    fig.tight_layout()
    return _save_figure(fig, path)


def plot_coverage(path, phi_ref, psi_ref, phi_sim, psi_sim):
    """Where the training data and the NNForce trajectory lie in the phi/psi plane.

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
    ax.scatter(np.degrees(phi_sim), np.degrees(psi_sim), s=3, c="tab:blue", label="NNForce trajectory")
    ax.set_xlim(-180, 180)
    ax.set_ylim(-180, 180)
    ax.set_xlabel("phi (deg)")
    ax.set_ylabel("psi (deg)")
    ax.legend(fontsize=7, loc="lower right", markerscale=3)
    ax.set_title("phi/psi coverage")
    return _save_figure(fig, path)
