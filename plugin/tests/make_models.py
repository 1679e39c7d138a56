"""Write the TorchScript models the C++ tests load (run by ctest as the `make_test_models` fixture)."""
import os
import sys

import torch


class PairLJ(torch.nn.Module):
    """Plain Lennard-Jones over all pairs (eps = 1 kJ/mol, sigma = 0.3 nm), no cutoff: the C++ test recomputes it."""

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        n = positions.shape[0]
        ij = torch.triu_indices(n, n, 1)
        d = positions[ij[1]] - positions[ij[0]]
        r2 = (d * d).sum(1)
        s6 = (0.09 / r2) ** 3
        return (4.0 * (s6 * s6 - s6)).sum()


class ScaledHarmonic(torch.nn.Module):
    """E = k * sum |r|^2 with k a global parameter, passed by name."""

    def forward(self, positions: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        return k * (positions * positions).sum()


class PeriodicBox(torch.nn.Module):
    """E = sum of box entries times the sum of positions: tests that the box reaches the model."""

    def forward(self, positions: torch.Tensor, box: torch.Tensor) -> torch.Tensor:
        return box.sum() * positions.sum()


class NeighborCount(torch.nn.Module):
    """E = number of pairs with r < 0.5 nm (weights 1 each), read from the plugin's neighbor list."""

    def forward(self, positions: torch.Tensor, neighbors: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
        d = positions[neighbors[1]] - positions[neighbors[0]] + shifts
        r = torch.sqrt((d * d).sum(1))
        return (r < 0.5).to(positions.dtype).sum() + 0.0 * positions.sum()


def main(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    for name, module in [("lj", PairLJ()), ("harmonic", ScaledHarmonic()), ("box", PeriodicBox()),
                         ("neighbors", NeighborCount())]:
        torch.jit.script(module).save(os.path.join(out_dir, name + ".pt"))
    with open(os.path.join(out_dir, "not_a_model.pt"), "w") as f:
        f.write("this is not a TorchScript archive\n")
    torch.save({"weights": torch.zeros(3)}, os.path.join(out_dir, "state_dict.pt"))


if __name__ == "__main__":
    main(sys.argv[1])
