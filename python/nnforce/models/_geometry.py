"""Pair geometry shared by the models: one code path for a plugin-supplied neighbor list and for all pairs.

Everything here is TorchScript-compatible and follows the model contract (docs/model-contract.md):
positions in nm, ``neighbors`` LongTensor[2, P] (each unordered pair once), ``shifts`` Tensor[P, 3] in nm with
``r_ij = positions[j] - positions[i] + shifts[p]``, ``box`` Tensor[3, 3] whose rows are OpenMM's reduced
periodic box vectors.
"""
from typing import Optional, Tuple

import torch
from torch import Tensor


def minimum_image(vectors: Tensor, box: Tensor) -> Tensor:
    """Wrap difference vectors to the nearest image for a box in OpenMM's reduced (lower-triangular) form.

    Exact whenever the interaction cutoff is at most half the smallest box height, as OpenMM requires.
    """
    vectors = vectors - torch.outer(torch.round(vectors[:, 2] / box[2, 2]), box[2])
    vectors = vectors - torch.outer(torch.round(vectors[:, 1] / box[1, 1]), box[1])
    vectors = vectors - torch.outer(torch.round(vectors[:, 0] / box[0, 0]), box[0])
    return vectors


def pair_vectors(
    positions: Tensor,
    neighbors: Optional[Tensor] = None,
    shifts: Optional[Tensor] = None,
    box: Optional[Tensor] = None,
) -> Tuple[Tensor, Tensor, Tensor]:
    """Return ``(i, j, r_ij)`` for every pair the model must consider.

    With ``neighbors`` (and ``shifts``) from the plugin, those pairs are used as given; padding entries of a
    fixed-capacity list are pairs (0, 0) whose shift puts them far beyond any cutoff, so a model that applies
    its own cutoff needs no mask. Without a neighbor list, all N(N-1)/2 pairs are formed (O(N^2) memory),
    with minimum-image wrapping when ``box`` is given.
    """
    if neighbors is not None:
        i = neighbors[0]
        j = neighbors[1]
        vectors = positions.index_select(0, j) - positions.index_select(0, i)
        if shifts is not None:
            vectors = vectors + shifts.to(positions.dtype)
        return i, j, vectors
    n = positions.shape[0]
    if torch.compiler.is_compiling():  # traced for export: triu_indices would fix the number of atoms
        atoms = torch.arange(n, device=positions.device)
        ij = torch.nonzero(atoms.unsqueeze(1) < atoms.unsqueeze(0)).t()
    else:
        ij = torch.triu_indices(n, n, 1, device=positions.device)
    i = ij[0]
    j = ij[1]
    vectors = positions.index_select(0, j) - positions.index_select(0, i)
    if box is not None:
        vectors = minimum_image(vectors, box.to(positions.dtype))
    return i, j, vectors


def cosine_cutoff(distances: Tensor, cutoff: float) -> Tensor:
    """Behler's cosine cutoff 0.5 (cos(pi r / rc) + 1) for r < rc, exactly 0 beyond (smooth at rc)."""
    inside = distances < cutoff
    safe = torch.where(inside, distances, torch.zeros_like(distances))
    value = 0.5 * (torch.cos(safe * (torch.pi / cutoff)) + 1.0)
    return torch.where(inside, value, torch.zeros_like(distances))
