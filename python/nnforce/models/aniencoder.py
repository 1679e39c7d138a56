"""ANIEncoder: one AEV encoder shared by the energy task and an AEV autoencoder, the two losses weighted by
learned homoscedastic uncertainty (Kendall, Gal & Cipolla 2018):

``L = sum_i L_i / (2 sigma_i^2) + log sigma_i``, learned as ``s_i = log sigma_i``.

For fixed task losses the optimum is ``sigma_i^2 = L_i``, so the sigma's track the tasks' errors and a task whose
error is large is down-weighted. Per atom: ``z = Encoder([AEV, onehot(element)])``; energy head
``E_i = energy_scale * Head_element(z) + self_energy``; decoder ``AEV' = Decoder([z, onehot])``; the reconstruction
loss is the mean squared error of AEVs divided by ``aev_scale^2`` (set from the training data). The auxiliary task
only shapes training: ``forward`` is the usual energy model and follows the model contract.
"""
from typing import List, Optional

import torch
from torch import Tensor

from ._atomistic import AtomisticModel, element_lookup, init_seeded, mlp, species_of
from ._geometry import pair_vectors
from .ani import AEVComputer, ElementNetworks


def uncertainty_weighted_loss(losses: Tensor, log_sigma: Tensor) -> Tensor:
    """Kendall et al. 2018: sum_i L_i / (2 exp(2 s_i)) + s_i with s_i = log sigma_i."""
    return (0.5 * losses * torch.exp(-2.0 * log_sigma) + log_sigma).sum()


class ANIEncoder(AtomisticModel):
    def __init__(self, elements: List[int], latent: int = 32, encoder_hidden: Optional[List[int]] = None,
                 head_hidden: Optional[List[int]] = None, radial_cutoff: float = 0.52, angular_cutoff: float = 0.35,
                 activation: str = "celu", seed: int = 0, **aev_options):
        super().__init__()
        self.elements = [int(z) for z in elements]
        self.register_buffer("element_index", element_lookup(self.elements))
        self.num_elements = len(self.elements)
        self.aev = AEVComputer(self.num_elements, radial_cutoff, angular_cutoff, **aev_options)
        self.cutoff = float(radial_cutoff)
        encoder_hidden = [128] if encoder_hidden is None else list(encoder_hidden)
        head_hidden = [32] if head_hidden is None else list(head_hidden)
        width = self.aev.length + self.num_elements
        self.encoder = mlp([width] + encoder_hidden + [latent], activation)
        self.decoder = mlp([latent + self.num_elements] + encoder_hidden[::-1] + [self.aev.length], activation)
        self.head = ElementNetworks(self.num_elements, latent, head_hidden, activation, seed + 17)
        init_seeded(self.encoder, seed)
        init_seeded(self.decoder, seed + 1)
        # s_i = log sigma_i for the tasks (energy+forces, reconstruction)
        self.log_sigma = torch.nn.Parameter(torch.zeros(2))
        self.register_buffer("self_energies", torch.zeros(self.num_elements, dtype=torch.float64))
        self.register_buffer("energy_scale", torch.tensor(1.0, dtype=torch.float64))
        self.register_buffer("aev_scale", torch.tensor(1.0, dtype=torch.float64))
        self.float()

    def _encode(self, positions: Tensor, atomic_numbers: Optional[Tensor], neighbors: Optional[Tensor],
                shifts: Optional[Tensor], box: Optional[Tensor]):
        species = species_of(self.element_index, atomic_numbers, positions.shape[0], self.num_elements,
                             positions.device)
        i, j, vectors = pair_vectors(positions, neighbors, shifts, box)
        aev = self.aev(species, i, j, vectors)
        onehot = torch.nn.functional.one_hot(species, self.num_elements).to(positions.dtype)
        latent = self.encoder(torch.cat([aev, onehot], dim=1))
        return species, aev, onehot, latent

    @torch.jit.export
    def atomic_energies(self, positions: Tensor, atomic_numbers: Optional[Tensor] = None,
                        neighbors: Optional[Tensor] = None, shifts: Optional[Tensor] = None,
                        box: Optional[Tensor] = None, include_self: bool = True) -> Tensor:
        positions = positions.to(self.energy_scale.dtype)
        species, aev, onehot, latent = self._encode(positions, atomic_numbers, neighbors, shifts, box)
        energies = self.head(latent, species) * self.energy_scale
        if include_self:
            energies = energies.to(self.self_energies.dtype) + self.self_energies.index_select(0, species)
        return energies

    @torch.jit.export
    def reconstruction_loss(self, positions: Tensor, atomic_numbers: Optional[Tensor] = None,
                            neighbors: Optional[Tensor] = None, shifts: Optional[Tensor] = None,
                            box: Optional[Tensor] = None) -> Tensor:
        """Mean squared AEV reconstruction error in units of ``aev_scale`` (dimensionless)."""
        positions = positions.to(self.energy_scale.dtype)
        species, aev, onehot, latent = self._encode(positions, atomic_numbers, neighbors, shifts, box)
        rebuilt = self.decoder(torch.cat([latent, onehot], dim=1))
        return (((rebuilt - aev) / self.aev_scale) ** 2).mean()

    def combine_losses(self, losses: Tensor) -> Tensor:
        """Uncertainty-weighted sum of [task loss, reconstruction loss]."""
        return uncertainty_weighted_loss(losses, self.log_sigma)
