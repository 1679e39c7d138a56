"""The model test_pt2.py compiles, in its own file: the .pt2 compile cache keys on the model's source files, so
editing the tests does not recompile it."""
import torch

from nnforce.models import RadialMLP

CUTOFF = 0.5
ELEMENTS = [1, 6, 8]


class Scaled(torch.nn.Module):
    """A library model plus a global parameter (with a derivative) and a per-atom input, all bound by name."""

    def __init__(self):
        super().__init__()
        self.inner = RadialMLP(ELEMENTS, cutoff=CUTOFF, num_shells=8, hidden=16, seed=3)

    def forward(self, positions: torch.Tensor, atomic_numbers: torch.Tensor, neighbors: torch.Tensor,
                shifts: torch.Tensor, scale: torch.Tensor, charges: torch.Tensor) -> torch.Tensor:
        inner = self.inner(positions, atomic_numbers, neighbors, shifts)
        return scale * inner + (charges * positions[:, 0]).sum()
