"""A small ANI-like model with radial features only: the reference many-body model of the library.

Per atom i and element channel e: G_i[e, k] = sum_{j of element e} exp(-eta (r_ij - R_k)^2) f_c(r_ij),
then an MLP maps each atom's features to an atomic energy; the energy is the sum (kJ/mol). Like
``LennardJones`` it works with the plugin's neighbor list or, without one, over all pairs.
"""
from typing import List, Optional

import torch
from torch import Tensor

from ._geometry import cosine_cutoff, pair_vectors


class RadialMLP(torch.nn.Module):
    """Radial atomic-environment features + one shared MLP.

    ``elements`` lists the atomic numbers the model knows (a feature channel each); when the force gives
    no ``atomic_numbers`` every atom counts as ``elements[0]``. Weights are initialised from ``seed``.
    """

    def __init__(
        self,
        elements: Optional[List[int]] = None,
        cutoff: float = 0.52,
        num_shells: int = 16,
        eta: float = 1600.0,
        hidden: int = 64,
        seed: int = 0,
    ):
        super().__init__()
        elements = [1] if elements is None else list(elements)
        if len(elements) == 0:
            raise ValueError("elements must list at least one atomic number")
        self.elements = [int(z) for z in elements]
        self.cutoff = float(cutoff)
        self.eta = float(eta)
        self.num_elements = len(elements)
        self.num_shells = int(num_shells)
        lookup = torch.full((119,), -1, dtype=torch.long)
        for index, z in enumerate(elements):
            lookup[z] = index
        self.register_buffer("element_index", lookup)
        self.register_buffer("shells", torch.linspace(0.09, cutoff, num_shells, dtype=torch.float64))
        generator = torch.Generator().manual_seed(seed)
        features = self.num_elements * num_shells
        self.net = torch.nn.Sequential(
            torch.nn.Linear(features, hidden), torch.nn.SiLU(), torch.nn.Linear(hidden, hidden), torch.nn.SiLU(),
            torch.nn.Linear(hidden, 1))
        with torch.no_grad():
            for parameter in self.net.parameters():
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)

    def forward(
        self,
        positions: Tensor,
        atomic_numbers: Optional[Tensor] = None,
        neighbors: Optional[Tensor] = None,
        shifts: Optional[Tensor] = None,
        box: Optional[Tensor] = None,
    ) -> Tensor:
        n = positions.shape[0]
        if atomic_numbers is None:
            species = torch.zeros(n, dtype=torch.long, device=positions.device)
        else:
            species = self.element_index.index_select(0, atomic_numbers)
        i, j, vectors = pair_vectors(positions, neighbors, shifts, box)
        r = torch.sqrt((vectors * vectors).sum(dim=1) + 1e-30)
        fc = cosine_cutoff(r, self.cutoff)
        shells = self.shells.to(positions.dtype)
        terms = torch.exp(-self.eta * (r.unsqueeze(1) - shells.unsqueeze(0)) ** 2) * fc.unsqueeze(1)
        width = self.num_elements * self.num_shells
        g = torch.zeros(n, width, dtype=positions.dtype, device=positions.device)
        # each pair feeds both atoms: i sees j's element channel and j sees i's
        columns = torch.arange(self.num_shells, device=positions.device)
        col_i = (species.index_select(0, j) * self.num_shells).unsqueeze(1) + columns
        col_j = (species.index_select(0, i) * self.num_shells).unsqueeze(1) + columns
        g = g.view(-1).index_add(0, (i.unsqueeze(1) * width + col_i).reshape(-1), terms.reshape(-1))
        g = g.index_add(0, (j.unsqueeze(1) * width + col_j).reshape(-1), terms.reshape(-1)).view(n, width)
        return self.net(g).sum()
