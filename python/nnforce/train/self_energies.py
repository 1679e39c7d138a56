"""Per-element self energies: fitted by least squares on element counts, and summed per frame in float64."""
import numpy as np
import torch


def fit_self_energies(model, dataset, rcond=None):
    """Least-squares per-element energies (kJ/mol) from element counts; stored in ``model.self_energies``.

    Parameters
    ----------
    model : torch.nn.Module
        Has ``elements`` and a ``self_energies`` buffer.
    dataset : Dataset
    rcond : float, optional
        For ``numpy.linalg.lstsq``.

    Returns
    -------
    numpy.ndarray
        The fitted energies, one per element.

    Examples
    --------
    >>> fit_self_energies(model, train_set)  # doctest: +SKIP
    """
    if dataset.energies_kj_mol is None:
        raise ValueError(f"{dataset.name}: no energy labels to fit self energies")
    counts = dataset.composition(model.elements).astype(np.float64)
    solution, *_ = np.linalg.lstsq(counts, dataset.energies_kj_mol, rcond=rcond)
    # elements absent from the data get 0 (lstsq gives the minimum-norm solution there already)
    with torch.no_grad():
        model.self_energies.copy_(torch.as_tensor(solution, dtype=model.self_energies.dtype))
    return solution


def self_energy_sum(model, dataset):
    """Sum of the model's self energies per frame, float64 [F] (kJ/mol), computed in numpy (exact).

    Parameters
    ----------
    model : torch.nn.Module
    dataset : Dataset

    Returns
    -------
    numpy.ndarray, shape (F,)

    Examples
    --------
    >>> residual = train_set.energies_kj_mol - self_energy_sum(model, train_set)  # doctest: +SKIP
    """
    counts = dataset.composition(model.elements).astype(np.float64)
    return counts @ model.self_energies.detach().double().numpy()
