"""Lennard-Jones pair potential in torch: the reference pair model of the library.

One class serves both the neighbor-list path (the plugin hands in ``neighbors``/``shifts``) and the
all-pairs twin (no neighbor list: every pair is formed in torch, O(N^2)).
"""
from typing import Optional

import torch
from torch import Tensor

from ._geometry import pair_vectors


class LennardJones(torch.nn.Module):
    """Truncated and shifted Lennard-Jones: E = sum_{r<rc} 4 eps [(s/r)^12 - (s/r)^6] - E_LJ(rc).

    Parameters are in OpenMM units: ``epsilon`` kJ/mol, ``sigma`` and ``cutoff`` nm. The energy is shifted so
    it is continuous at the cutoff. Use ``LennardJones(...)`` as is for a plugin neighbor list
    (``NNForce.setNeighborList(cutoff)``) or without one for the all-pairs twin.
    """

    def __init__(self, epsilon: float = 0.996, sigma: float = 0.34, cutoff: float = 0.85):
        super().__init__()
        if sigma <= 0 or cutoff <= 0:
            raise ValueError(f"sigma and cutoff must be positive nm values, got sigma={sigma}, cutoff={cutoff}")
        self.epsilon = float(epsilon)
        self.sigma = float(sigma)
        self.cutoff = float(cutoff)
        sr6 = (sigma / cutoff) ** 6
        self.energy_at_cutoff = 4.0 * epsilon * (sr6 * sr6 - sr6)

    def forward(
        self,
        positions: Tensor,
        neighbors: Optional[Tensor] = None,
        shifts: Optional[Tensor] = None,
        box: Optional[Tensor] = None,
    ) -> Tensor:
        _, _, vectors = pair_vectors(positions, neighbors, shifts, box)
        r2 = (vectors * vectors).sum(dim=1)
        inside = r2 < self.cutoff * self.cutoff
        safe_r2 = torch.where(inside, r2, torch.ones_like(r2))
        sr6 = (self.sigma * self.sigma / safe_r2) ** 3
        pair_energy = 4.0 * self.epsilon * (sr6 * sr6 - sr6) - self.energy_at_cutoff
        return torch.where(inside, pair_energy, torch.zeros_like(r2)).sum()
