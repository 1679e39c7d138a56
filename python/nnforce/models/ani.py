"""ANI-style model: Behler-Parrinello/ANI atomic environment vectors (AEVs) + per-element MLPs + self energies.

AEV of atom i (all lengths in nm; defaults are ANI-1x's parameters converted from Angstrom):

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
import math
from typing import List, Optional, Tuple

import torch
from torch import Tensor

from ._atomistic import AtomisticModel, element_lookup, init_seeded, mlp, species_of
from ._geometry import cosine_cutoff, pair_vectors


class AEVComputer(torch.nn.Module):
    """Radial + angular AEVs for concatenated atoms from a pair list ``(i, j, r_ij)`` (each pair once)."""

    def __init__(self, num_elements: int, radial_cutoff: float = 0.52, angular_cutoff: float = 0.35,
                 radial_eta: float = 1600.0, radial_shifts: Optional[List[float]] = None,
                 angular_eta: float = 800.0, angular_shifts: Optional[List[float]] = None, zeta: float = 32.0,
                 num_angle_sections: int = 8):
        super().__init__()
        if angular_cutoff > radial_cutoff:
            raise ValueError("angular_cutoff must not exceed radial_cutoff")
        if radial_shifts is None:
            radial_shifts = [0.09 + 0.026875 * k for k in range(16)]
        if angular_shifts is None:
            angular_shifts = [0.09 + 0.065 * k for k in range(4)]
        self.num_elements = int(num_elements)
        self.radial_cutoff = float(radial_cutoff)
        self.angular_cutoff = float(angular_cutoff)
        self.radial_eta = float(radial_eta)
        self.angular_eta = float(angular_eta)
        self.zeta = float(zeta)
        self.register_buffer("radial_shifts", torch.tensor(radial_shifts, dtype=torch.float64))
        self.register_buffer("angular_shifts", torch.tensor(angular_shifts, dtype=torch.float64))
        sections = [(2 * k + 1) * math.pi / (2 * num_angle_sections) for k in range(num_angle_sections)]
        self.register_buffer("angle_sections", torch.tensor(sections, dtype=torch.float64))
        self.num_radial = len(radial_shifts)
        self.num_angular = num_angle_sections * len(angular_shifts)
        self.num_pairs = self.num_elements * (self.num_elements + 1) // 2
        pair_index = torch.zeros(self.num_elements, self.num_elements, dtype=torch.long)
        p = 0
        for a in range(self.num_elements):
            for b in range(a, self.num_elements):
                pair_index[a, b] = p
                pair_index[b, a] = p
                p += 1
        self.register_buffer("pair_index", pair_index)
        self.radial_length = self.num_elements * self.num_radial
        self.angular_length = self.num_pairs * self.num_angular
        self.length = self.radial_length + self.angular_length

    def forward(self, species: Tensor, i: Tensor, j: Tensor, vectors: Tensor) -> Tensor:
        n = species.shape[0]
        dtype = vectors.dtype
        distances = torch.sqrt((vectors * vectors).sum(dim=1) + 1e-30)
        keep = distances < self.radial_cutoff
        i = i[keep]
        j = j[keep]
        vectors = vectors[keep]
        distances = distances[keep]
        radial = self._radial(species, i, j, distances, n, dtype)
        near = distances < self.angular_cutoff
        angular = self._angular(species, i[near], j[near], vectors[near], distances[near], n, dtype)
        return torch.cat([radial, angular], dim=1)

    def _radial(self, species: Tensor, i: Tensor, j: Tensor, r: Tensor, n: int, dtype: torch.dtype) -> Tensor:
        shifts = self.radial_shifts.to(dtype)
        fc = cosine_cutoff(r, self.radial_cutoff)
        terms = 0.25 * torch.exp(-self.radial_eta * (r.unsqueeze(1) - shifts.unsqueeze(0)) ** 2) * fc.unsqueeze(1)
        width = self.radial_length
        columns = torch.arange(self.num_radial, device=r.device)
        col_i = (species.index_select(0, j) * self.num_radial).unsqueeze(1) + columns
        col_j = (species.index_select(0, i) * self.num_radial).unsqueeze(1) + columns
        flat = torch.zeros(n * width, dtype=dtype, device=r.device)
        flat = flat.index_add(0, (i.unsqueeze(1) * width + col_i).reshape(-1), terms.reshape(-1))
        flat = flat.index_add(0, (j.unsqueeze(1) * width + col_j).reshape(-1), terms.reshape(-1))
        return flat.view(n, width)

    def _angular(self, species: Tensor, i: Tensor, j: Tensor, vectors: Tensor, r: Tensor, n: int,
                 dtype: torch.dtype) -> Tensor:
        width = self.angular_length
        # directed pairs: centre c sees neighbour o along v
        centre = torch.cat([i, j])
        other = torch.cat([j, i])
        v = torch.cat([vectors, -vectors])
        d = torch.cat([r, r])
        centres, first, second = triplets(centre, n)
        if centres.shape[0] == 0:
            return torch.zeros(n, width, dtype=dtype, device=vectors.device)
        v1 = v.index_select(0, first)
        v2 = v.index_select(0, second)
        r1 = d.index_select(0, first)
        r2 = d.index_select(0, second)
        cos = 0.95 * (v1 * v2).sum(dim=1) / (r1 * r2)
        theta = torch.acos(cos)
        sections = self.angle_sections.to(dtype)
        shifts = self.angular_shifts.to(dtype)
        angle_part = 2.0 * ((1.0 + torch.cos(theta.unsqueeze(1) - sections.unsqueeze(0))) * 0.5) ** self.zeta
        mean_r = 0.5 * (r1 + r2)
        radial_part = torch.exp(-self.angular_eta * (mean_r.unsqueeze(1) - shifts.unsqueeze(0)) ** 2)
        fc = cosine_cutoff(r1, self.angular_cutoff) * cosine_cutoff(r2, self.angular_cutoff)
        terms = (angle_part.unsqueeze(2) * radial_part.unsqueeze(1)).reshape(-1, self.num_angular) * fc.unsqueeze(1)
        pair = self.pair_index[species.index_select(0, other.index_select(0, first)),
                               species.index_select(0, other.index_select(0, second))]
        columns = torch.arange(self.num_angular, device=vectors.device)
        index = (centres.unsqueeze(1) * width + (pair * self.num_angular).unsqueeze(1) + columns).reshape(-1)
        flat = torch.zeros(n * width, dtype=dtype, device=vectors.device)
        flat = flat.index_add(0, index, terms.reshape(-1))
        return flat.view(n, width)


def triplets(centre: Tensor, n: int) -> Tuple[Tensor, Tensor, Tensor]:
    """For directed pairs with centres ``centre``, all unordered pairs of pairs that share a centre:
    returns (centre atom, index of first pair, index of second pair). Vectorised via a padded [n, max] table."""
    count = centre.shape[0]
    if count == 0:
        empty = torch.zeros(0, dtype=torch.long, device=centre.device)
        return empty, empty, empty
    order = torch.argsort(centre, stable=True)
    sorted_centre = centre.index_select(0, order)
    counts = torch.bincount(sorted_centre, minlength=n)
    width = int(counts.max())
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(count, device=centre.device) - starts.index_select(0, sorted_centre)
    table = torch.full((n, width), -1, dtype=torch.long, device=centre.device)
    table[sorted_centre, rank] = order
    tri = torch.triu_indices(width, width, 1, device=centre.device)
    a = table[:, tri[0]]
    b = table[:, tri[1]]
    valid = (a >= 0) & (b >= 0)
    atoms = torch.arange(n, device=centre.device).unsqueeze(1).expand(n, tri.shape[1])
    return atoms[valid], a[valid], b[valid]


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
            if index.shape[0] > 0:
                out = out.index_put((index,), net(features.index_select(0, index)).squeeze(1))
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
        total = torch.zeros(positions.shape[0], dtype=positions.dtype, device=positions.device)
        for member in self.members:
            total = total + member(aev, species)
        energies = total * (self.energy_scale / len(self.members))
        if include_self:
            energies = energies + self.self_energies.index_select(0, species)
        return energies


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
