"""ANI-style model: Behler-Parrinello/ANI atomic environment vectors (AEVs) + per-element MLPs + self energies.

AEV of atom i (:mod:`nnforce.models.aev`, shared with ANI-1x; all lengths in nm; defaults are ANI-1x's parameters
converted from Angstrom):

* radial, per neighbour element e and shell k:
  ``G_R[e,k] = sum_{j in e} 0.25 exp(-eta_R (r_ij - R_k)^2) f_c(r_ij; Rc_R)``
* angular, per unordered neighbour-element pair (e1, e2), angle section z and radial shell a:
  ``G_A = sum_{j<k} 2 ((1 + cos(theta_ijk - theta_z)) / 2)^zeta exp(-eta_A ((r_ij + r_ik)/2 - R_a)^2)
  f_c(r_ij; Rc_A) f_c(r_ik; Rc_A)`` with ``cos(theta_ijk) = 0.95 (r_ij . r_ik) / (|r_ij| |r_ik|)`` (ANI's damping
  that keeps acos differentiable),
* ``f_c`` Behler's cosine cutoff.

The atomic energy is ``energy_scale * MLP_element(AEV) + self_energy[element]`` (kJ/mol). ``ensemble_size > 1``
averages several independent networks over one shared AEV (build trained members into one model with
:func:`ani_ensemble`; ``member_energies`` gives the spread, a cheap uncertainty).
"""
from typing import List, Optional

import torch
from torch import Tensor

from ._atomistic import AtomisticModel, element_lookup, init_seeded, mlp, species_of
from ._geometry import pair_vectors
from .aev import AEVComputer, triplets  # noqa: F401  (AEVComputer, triplets: public names kept here)


class ElementNetworks(torch.nn.Module):
    """One MLP per element: atomic features [N, F] + species [N] -> network outputs [N]."""

    def __init__(self, num_elements: int, num_features: int, hidden: List[int], activation: str = "celu",
                 seed: int = 0):
        super().__init__()
        self.nets = torch.nn.ModuleList(
            [mlp([num_features] + list(hidden) + [1], activation) for _ in range(num_elements)])
        for k, net in enumerate(self.nets):
            init_seeded(net, seed * 1000 + k)

    def forward(self, features: Tensor, species: Tensor) -> Tensor:
        out = torch.zeros(features.shape[0], dtype=features.dtype, device=features.device)
        for k, net in enumerate(self.nets):
            index = torch.nonzero(species == k).squeeze(1)
            # skip absent elements (TorchScript's backward fails on empty matmuls); no value branch when traced.
            # index_add, not index_put: the same numbers (each atom is written once, onto 0.0), but the backward of
            # index_put writes zeros into the incoming gradient, and when that gradient is the broadcast ones of
            # ``.sum()`` Inductor (torch 2.13, AOTInductor) stores them into the one-element buffer behind the
            # broadcast, zeroing every atom's gradient: .pt2 forces were wrong (bench/aev_pt2_repro.py)
            if torch.compiler.is_compiling() or index.shape[0] > 0:
                out = out.index_add(0, index, net(features.index_select(0, index)).squeeze(1))
        return out


class ANIModel(AtomisticModel):
    """ANI-style potential (see the module docstring).

    ``elements``: atomic numbers the model knows; ``hidden``: per-element MLP widths; ``ensemble_size``: number of
    networks averaged over one shared AEV. Cutoffs in nm. Scriptable; ``forward`` follows the model contract.
    """

    def __init__(self, elements: List[int], hidden: Optional[List[int]] = None, ensemble_size: int = 1,
                 radial_cutoff: float = 0.52, angular_cutoff: float = 0.35, activation: str = "celu",
                 seed: int = 0, **aev_options):
        super().__init__()
        self.elements = [int(z) for z in elements]
        self.register_buffer("element_index", element_lookup(self.elements))
        self.num_elements = len(self.elements)
        self.aev = AEVComputer(self.num_elements, radial_cutoff, angular_cutoff, **aev_options)
        self.cutoff = float(radial_cutoff)
        hidden = [128, 64] if hidden is None else [int(h) for h in hidden]
        if ensemble_size < 1:
            raise ValueError("ensemble_size must be at least 1")
        self.members = torch.nn.ModuleList([
            ElementNetworks(self.num_elements, self.aev.length, hidden, activation, seed + 7919 * m)
            for m in range(ensemble_size)])
        self.register_buffer("self_energies", torch.zeros(self.num_elements, dtype=torch.float64))
        self.register_buffer("energy_scale", torch.tensor(1.0, dtype=torch.float64))
        self.float()

    def features(self, positions: Tensor, species: Tensor, neighbors: Optional[Tensor] = None,
                 shifts: Optional[Tensor] = None, box: Optional[Tensor] = None) -> Tensor:
        i, j, vectors = pair_vectors(positions, neighbors, shifts, box)
        return self.aev(species, i, j, vectors)

    @torch.jit.export
    def member_energies(self, positions: Tensor, atomic_numbers: Optional[Tensor] = None,
                        neighbors: Optional[Tensor] = None, shifts: Optional[Tensor] = None,
                        box: Optional[Tensor] = None) -> Tensor:
        """Per-ensemble-member total energies, Tensor[M] (kJ/mol)."""
        positions = positions.to(self.energy_scale.dtype)
        species = species_of(self.element_index, atomic_numbers, positions.shape[0], self.num_elements,
                             positions.device)
        aev = self.features(positions, species, neighbors, shifts, box)
        base = self.self_energies.index_select(0, species).sum()
        out: List[Tensor] = []
        for member in self.members:
            out.append(member(aev, species).sum() * self.energy_scale + base)
        return torch.stack(out)

    @torch.jit.export
    def atomic_energies(self, positions: Tensor, atomic_numbers: Optional[Tensor] = None,
                        neighbors: Optional[Tensor] = None, shifts: Optional[Tensor] = None,
                        box: Optional[Tensor] = None, include_self: bool = True) -> Tensor:
        positions = positions.to(self.energy_scale.dtype)
        species = species_of(self.element_index, atomic_numbers, positions.shape[0], self.num_elements,
                             positions.device)
        aev = self.features(positions, species, neighbors, shifts, box)
        energies = self.energies_from_features(aev, species)
        if include_self:  # explicit cast: TorchScript's autodiff mishandles dtype promotion in the backward
            energies = energies.to(self.self_energies.dtype) + self.self_energies.index_select(0, species)
        return energies

    def energies_from_features(self, aev: Tensor, species: Tensor) -> Tensor:
        """Atomic energies without the self energies, Tensor[N] (kJ/mol), from AEVs [N, F] and species [N].

        The AEV has no trainable parameters, so energy-only training can compute it once per atom and train the
        networks on stored features (:mod:`nnforce.train.feature_cache`); ``atomic_energies`` calls this too.
        """
        total = torch.zeros(aev.shape[0], dtype=aev.dtype, device=aev.device)
        for member in self.members:
            total = total + member(aev, species)
        return total * (self.energy_scale / len(self.members))


def ani_ensemble(models: List[ANIModel]) -> ANIModel:
    """Merge trained ANIModels (same elements and AEV) into one model whose energy is the mean of theirs.

    Each member's own ``energy_scale`` and self energies are folded into its last layer, so the merged model's
    energy equals the average of the members' energies exactly (each network counts once).
    """
    if not models:
        raise ValueError("ani_ensemble needs at least one model")
    import copy

    first = models[0]
    for m in models[1:]:
        if m.elements != first.elements or m.aev.length != first.aev.length:
            raise ValueError("ensemble members must share elements and AEV parameters")
    merged = copy.deepcopy(first)
    scale = float(merged.energy_scale)
    members = []
    for m in models:
        ratio = float(m.energy_scale) / scale
        for member in m.members:
            member = copy.deepcopy(member)
            with torch.no_grad():
                for k, net in enumerate(member.nets):
                    last = net[-1]
                    last.weight.mul_(ratio)
                    last.bias.mul_(ratio)
                    last.bias.add_(float(m.self_energies[k] - merged.self_energies[k]) / scale)
            members.append(member)
    merged.members = torch.nn.ModuleList(members)
    return merged
