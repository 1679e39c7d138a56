"""SchNet-style model: element embeddings refined by continuous-filter convolutions over Gaussian-expanded
distances with a cosine cutoff (Schuett et al. 2017/2018), then an atom-wise MLP to atomic energies.

Interaction block (each unordered pair feeds both atoms):
``W_ij = Dense(ssp(Dense(rbf(r_ij)))) * f_c(r_ij)``, ``m_i = sum_j (Lin h_j) * W_ij``, ``h_i <- h_i + Dense(ssp(Dense(m_i)))``
with ``rbf_k(r) = exp(-gamma (r - mu_k)^2)``, ``mu_k`` evenly spaced on [0, cutoff] and ``ssp`` the shifted softplus.
Atomic energy: ``energy_scale * MLP(h_i) + self_energy[element]`` (kJ/mol). Lengths in nm.
"""
from typing import List, Optional

import torch
from torch import Tensor

from ._atomistic import AtomisticModel, ShiftedSoftplus, element_lookup, init_seeded, species_of
from ._geometry import cosine_cutoff, pair_vectors


class Interaction(torch.nn.Module):
    def __init__(self, features: int, num_gaussians: int):
        super().__init__()
        self.filter = torch.nn.Sequential(torch.nn.Linear(num_gaussians, features), ShiftedSoftplus(),
                                          torch.nn.Linear(features, features))
        self.in2f = torch.nn.Linear(features, features, bias=False)
        self.f2out = torch.nn.Sequential(torch.nn.Linear(features, features), ShiftedSoftplus(),
                                         torch.nn.Linear(features, features))

    def forward(self, h: Tensor, rbf: Tensor, fc: Tensor, i: Tensor, j: Tensor) -> Tensor:
        w = self.filter(rbf) * fc.unsqueeze(1)
        x = self.in2f(h)
        m = torch.zeros_like(x)
        m = m.index_add(0, i, x.index_select(0, j) * w)
        m = m.index_add(0, j, x.index_select(0, i) * w)
        return h + self.f2out(m)


class SchNetModel(AtomisticModel):
    """SchNet-style potential. ``features``: embedding width; ``interactions``: number of blocks;
    ``num_gaussians`` centres on [0, cutoff] nm; ``width_nm`` the Gaussian width (default: the centre spacing)."""

    def __init__(self, elements: List[int], features: int = 64, interactions: int = 3, num_gaussians: int = 25,
                 cutoff: float = 0.5, width_nm: Optional[float] = None, seed: int = 0):
        super().__init__()
        self.elements = [int(z) for z in elements]
        self.register_buffer("element_index", element_lookup(self.elements))
        self.num_elements = len(self.elements)
        self.cutoff = float(cutoff)
        spacing = cutoff / (num_gaussians - 1)
        width = spacing if width_nm is None else float(width_nm)
        self.gamma = 0.5 / (width * width)
        self.register_buffer("centres", torch.linspace(0.0, cutoff, num_gaussians, dtype=torch.float64))
        self.embedding = torch.nn.Embedding(self.num_elements, features)
        self.interactions = torch.nn.ModuleList([Interaction(features, num_gaussians) for _ in range(interactions)])
        self.output = torch.nn.Sequential(torch.nn.Linear(features, features // 2), ShiftedSoftplus(),
                                          torch.nn.Linear(features // 2, 1))
        init_seeded(self, seed)
        with torch.no_grad():
            generator = torch.Generator().manual_seed(seed + 1)
            self.embedding.weight.copy_(torch.randn(self.embedding.weight.shape, generator=generator))
        self.register_buffer("self_energies", torch.zeros(self.num_elements, dtype=torch.float64))
        self.register_buffer("energy_scale", torch.tensor(1.0, dtype=torch.float64))
        self.float()

    @torch.jit.export
    def atomic_energies(self, positions: Tensor, atomic_numbers: Optional[Tensor] = None,
                        neighbors: Optional[Tensor] = None, shifts: Optional[Tensor] = None,
                        box: Optional[Tensor] = None, include_self: bool = True) -> Tensor:
        positions = positions.to(self.energy_scale.dtype)
        species = species_of(self.element_index, atomic_numbers, positions.shape[0], self.num_elements,
                             positions.device)
        i, j, vectors = pair_vectors(positions, neighbors, shifts, box)
        r = torch.sqrt((vectors * vectors).sum(dim=1) + 1e-30)
        keep = r < self.cutoff
        i = i[keep]
        j = j[keep]
        r = r[keep]
        centres = self.centres.to(positions.dtype)
        rbf = torch.exp(-self.gamma * (r.unsqueeze(1) - centres.unsqueeze(0)) ** 2)
        fc = cosine_cutoff(r, self.cutoff)
        h = self.embedding(species)
        for block in self.interactions:
            h = block(h, rbf, fc, i, j)
        energies = self.output(h).squeeze(1) * self.energy_scale
        if include_self:
            energies = energies.to(self.self_energies.dtype) + self.self_energies.index_select(0, species)
        return energies
