"""to_pt2 on the AEV models with its own checks (package vs eager forces to 1e-10 in float64, finite differences).

Usage: python bench/aev_pt2_check.py [ani] [ani1x] [ani1x8]   (ani1x: one member, ani1x8: the 8-member ensemble)   (each compile takes minutes on a loaded 2-core machine)
"""
import sys
import tempfile
import time

import torch

from nnforce.export import to_pt2
from nnforce.models import ANIModel


def example(n=8, seed=3):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, generator=g, dtype=torch.float64) * 0.35
    ij = torch.triu_indices(n, n, 1)
    return {"positions": x, "neighbors": ij, "shifts": torch.zeros(ij.shape[1], 3, dtype=torch.float64),
            "atomic_numbers": torch.tensor([6, 1, 1, 8, 1, 6, 1, 7][:n])}


def main(which):
    models = {}
    if "ani" in which:
        models["ani"] = lambda: ANIModel([1, 6, 7, 8], hidden=[16], seed=1).double()
    if "ani1x" in which:
        from nnforce.models.ani1x import ani1x
        models["ani1x"] = lambda: ani1x(members=[0])
    if "ani1x8" in which:
        from nnforce.models.ani1x import ani1x
        models["ani1x8"] = lambda: ani1x()
    for name, build in models.items():
        start = time.time()
        with tempfile.TemporaryDirectory() as tmp:
            record = to_pt2(build(), f"{tmp}/{name}.pt2", example(), precision="double", max_atoms=1000, cache=False)
        print(name, f"{time.time() - start:.0f} s", {k: f"{v:.3g}" for k, v in record["checks"].items()}, flush=True)


if __name__ == "__main__":
    main(sys.argv[1:] or ["ani"])
