"""Pair potentials in torch: :class:`LennardJones` (fixed parameters, the reference pair model of the library) and
:class:`PairPotential` (trainable: the LJ regression of the seeds, in the model contract).

``LennardJones`` serves both the neighbor-list path (the plugin hands in ``neighbors``/``shifts``) and the all-pairs
twin (no neighbor list: every pair is formed in torch, O(N^2)).

``PairPotential``: per element e, epsilon_e (kJ/mol) and sigma_e (nm), learned as logarithms so they stay positive;
pairs combine by Lorentz-Berthelot (sigma_ab = (sigma_a + sigma_b)/2, epsilon_ab = sqrt(epsilon_a epsilon_b)). The
energy is truncated and shifted at ``cutoff`` (nm) like ``LennardJones``, and each pair's energy is split equally
between its two atoms for ``atomic_energies``.
"""
import math
from typing import List, Optional

import torch
from torch import Tensor

from ._atomistic import AtomisticModel, element_lookup, species_of
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


class PairPotential(AtomisticModel):
    """Trainable Lennard-Jones per element (see the module docstring): ``log_epsilon``/``log_sigma`` per element,
    Lorentz-Berthelot combination, truncated and shifted at ``cutoff`` nm; follows the model contract."""

    def __init__(self, elements: List[int], epsilon: float = 0.5, sigma: float = 0.3, cutoff: float = 0.85):
        super().__init__()
        if epsilon <= 0 or sigma <= 0 or cutoff <= 0:
            raise ValueError("epsilon (kJ/mol), sigma (nm) and cutoff (nm) must be positive")
        self.elements = [int(z) for z in elements]
        self.register_buffer("element_index", element_lookup(self.elements))
        self.num_elements = len(self.elements)
        self.cutoff = float(cutoff)
        self.log_epsilon = torch.nn.Parameter(torch.full((self.num_elements,), math.log(epsilon)))
        self.log_sigma = torch.nn.Parameter(torch.full((self.num_elements,), math.log(sigma)))
        self.register_buffer("self_energies", torch.zeros(self.num_elements, dtype=torch.float64))
        self.register_buffer("energy_scale", torch.tensor(1.0))

    @torch.jit.export
    def parameters_kj_nm(self):
        """(epsilon kJ/mol, sigma nm) per element."""
        return torch.exp(self.log_epsilon), torch.exp(self.log_sigma)

    @torch.jit.export
    def atomic_energies(self, positions: Tensor, atomic_numbers: Optional[Tensor] = None,
                        neighbors: Optional[Tensor] = None, shifts: Optional[Tensor] = None,
                        box: Optional[Tensor] = None, include_self: bool = True) -> Tensor:
        positions = positions.to(self.energy_scale.dtype)
        n = positions.shape[0]
        species = species_of(self.element_index, atomic_numbers, n, self.num_elements, positions.device)
        i, j, vectors = pair_vectors(positions, neighbors, shifts, box)
        si = species.index_select(0, i)
        sj = species.index_select(0, j)
        epsilon = torch.sqrt(torch.exp(self.log_epsilon.index_select(0, si) + self.log_epsilon.index_select(0, sj)))
        sigma = 0.5 * (torch.exp(self.log_sigma).index_select(0, si) + torch.exp(self.log_sigma).index_select(0, sj))
        r2 = (vectors * vectors).sum(dim=1)
        inside = r2 < self.cutoff * self.cutoff
        safe_r2 = torch.where(inside, r2, torch.ones_like(r2))
        sr6 = (sigma * sigma / safe_r2) ** 3
        src6 = (sigma / self.cutoff) ** 6
        pair = 4.0 * epsilon * ((sr6 * sr6 - sr6) - (src6 * src6 - src6))
        pair = torch.where(inside, pair, torch.zeros_like(pair)) * 0.5
        energies = torch.zeros(n, dtype=positions.dtype, device=positions.device)
        energies = energies.index_add(0, i, pair).index_add(0, j, pair) * self.energy_scale
        if include_self:
            energies = energies + self.self_energies.index_select(0, species)
        return energies
