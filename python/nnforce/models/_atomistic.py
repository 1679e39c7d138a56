"""Helpers shared by the trainable element-aware models (ANI-style, SchNet-style, pair potential, ANIEncoder).

Every such model has the same outer shape:

* ``forward(positions, atomic_numbers=None, neighbors=None, shifts=None, box=None) -> energy`` (kJ/mol; the model
  contract), equal to ``atomic_energies(...).sum()``;
* ``atomic_energies(positions, atomic_numbers, neighbors, shifts, box, include_self)`` (TorchScript-exported), which
  is also what training calls on a *batch* of molecules concatenated with a block-diagonal pair list
  (:func:`nnforce.data.block_pairs`), summing atoms per molecule afterwards;
* buffers ``element_index`` (Z -> channel), ``self_energies`` (kJ/mol per element, fitted by least squares before
  training, see :func:`nnforce.train.fit_self_energies`) and ``energy_scale`` (kJ/mol per unit network output).
"""
from typing import List, Optional

import torch
from torch import Tensor


def element_lookup(elements: List[int]) -> Tensor:
    if len(elements) == 0:
        raise ValueError("elements must list at least one atomic number")
    if len(set(elements)) != len(elements):
        raise ValueError(f"elements {elements} contain duplicates")
    lookup = torch.full((119,), -1, dtype=torch.long)
    for index, z in enumerate(elements):
        if not 1 <= int(z) <= 118:
            raise ValueError(f"atomic number {z} is not in 1..118")
        lookup[int(z)] = index
    return lookup


def species_of(element_index: Tensor, atomic_numbers: Optional[Tensor], n: int, num_elements: int,
               device: torch.device) -> Tensor:
    """Channel of each atom; a model with one element accepts a missing ``atomic_numbers``."""
    if atomic_numbers is None:
        if num_elements != 1:
            raise ValueError("this model knows several elements: pass atomic_numbers "
                             "(NNForce.setAtomicNumbers or the topology helpers)")
        return torch.zeros(n, dtype=torch.long, device=device)
    checking = not torch.compiler.is_compiling()  # a compiled .pt2 is checked at export and by the plugin instead
    if checking:
        if atomic_numbers.shape[0] != n:
            raise ValueError("atomic_numbers must have one entry per atom")
        if bool((atomic_numbers < 0).any()) or bool((atomic_numbers > 118).any()):
            raise ValueError("atomic_numbers must lie in 1..118")
    species = element_index.index_select(0, atomic_numbers.to(torch.long))
    if checking and bool((species < 0).any()):
        raise ValueError("an atomic number is not among the model's elements")
    return species


def mlp(sizes: List[int], activation: str = "celu") -> torch.nn.Sequential:
    """Linear layers with an activation between them (none after the last)."""
    layers: List[torch.nn.Module] = []
    for k in range(len(sizes) - 1):
        layers.append(torch.nn.Linear(sizes[k], sizes[k + 1]))
        if k < len(sizes) - 2:
            layers.append(make_activation(activation))
    return torch.nn.Sequential(*layers)


def make_activation(name: str) -> torch.nn.Module:
    if name == "celu":
        return torch.nn.CELU(0.1)
    if name == "silu":
        return torch.nn.SiLU()
    if name == "ssp":
        return ShiftedSoftplus()
    if name == "tanh":
        return torch.nn.Tanh()
    raise ValueError(f"unknown activation {name!r}; use celu, silu, ssp or tanh")


class ShiftedSoftplus(torch.nn.Module):
    """softplus(x) - log 2 (SchNet's activation: zero at zero)."""

    def forward(self, x: Tensor) -> Tensor:
        return torch.nn.functional.softplus(x) - 0.6931471805599453


def init_seeded(module: torch.nn.Module, seed: int):
    """Deterministic initialisation independent of the global RNG: Xavier-uniform weights, zero biases."""
    generator = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for name, parameter in module.named_parameters():
            if parameter.dim() >= 2:
                fan_out, fan_in = parameter.shape[0], parameter.shape[1]
                bound = (6.0 / (fan_in + fan_out)) ** 0.5
                parameter.copy_((torch.rand(parameter.shape, generator=generator) * 2 - 1) * bound)
            elif name.endswith("bias"):
                parameter.zero_()


class Float64SelfEnergies:
    """Mixin for modules with a ``self_energies`` buffer: it stays float64 through ``.float()``/``.to(dtype)``
    (only its device follows), so the large per-element energies are added exactly whatever the model's precision.
    NNForce keeps float64 ``self_energies`` buffers as they are too (docs/model-contract.md)."""

    def _apply(self, fn, recurse=True):
        kept = self._buffers.get("self_energies")
        super()._apply(fn, recurse)
        if kept is not None and kept.dtype == torch.float64:
            self._buffers["self_energies"] = kept.to(self._buffers["self_energies"].device)
        return self


class AtomisticModel(Float64SelfEnergies, torch.nn.Module):
    """Base of the trainable element-aware models: ``forward`` (the model contract) is the sum of the subclass's
    ``atomic_energies`` with self energies included. The atomic energies are computed in the model's dtype and the
    energy is accumulated (and the float64 self energies added) in float64, which is what ``forward`` returns:
    a float32 model's energy is then exact to float32 precision of the interaction energy, not of the total."""

    def forward(self, positions: Tensor, atomic_numbers: Optional[Tensor] = None,
                neighbors: Optional[Tensor] = None, shifts: Optional[Tensor] = None,
                box: Optional[Tensor] = None) -> Tensor:
        return self.atomic_energies(positions, atomic_numbers, neighbors, shifts, box, True).to(torch.float64).sum()
