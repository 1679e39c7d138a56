"""Fit a Lennard-Jones pair potential to reference energies and forces, then export it for NNForce.

The seeds' first exercise: regress epsilon and sigma of argon from labelled clusters. Reference labels come from
nnforce.models.LennardJones (epsilon 0.996 kJ/mol, sigma 0.34 nm); the learned PairPotential starts elsewhere and
should recover them. Run:  PYTHONPATH=python python examples/lj_regression.py [--export lj.pt]
"""
import argparse

import numpy as np
import torch

from nnforce.data import Dataset, split
from nnforce.models import LennardJones, PairPotential
from nnforce.train import TrainConfig, evaluate, fit


def argon_clusters(n_frames=200, n_atoms=12, seed=0):
    reference = LennardJones(epsilon=0.996, sigma=0.34, cutoff=0.85).double()
    rng = np.random.default_rng(seed)
    frames, energies, forces = [], [], []
    for _ in range(n_frames):
        points = []
        while len(points) < n_atoms:
            p = rng.uniform(0.0, 1.0, size=3)
            if all(np.linalg.norm(p - q) > 0.33 for q in points):
                points.append(p)
        x = torch.tensor(np.array(points), requires_grad=True)
        energy = reference(x)
        (gradient,) = torch.autograd.grad(energy, x)
        frames.append(x.detach().numpy())
        energies.append(float(energy.detach()))
        forces.append(-gradient.numpy())
    return Dataset.from_frames(np.full(n_atoms, 18), frames, energies, forces, name="argon-lj")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--export", help="write the fitted model (TorchScript) here")
    args = parser.parse_args()
    train, val, test = split(argon_clusters(), (150, 25, 25), seed=0)
    model = PairPotential([18], epsilon=0.5, sigma=0.3, cutoff=0.85).double()
    result = fit(model, train, val, TrainConfig(epochs=80, batch_size=10, lr=0.03, force_weight=1.0,
                                                schedule="none", early_stopping_patience=80, progress=True))
    epsilon, sigma = (float(v[0].detach()) for v in model.parameters_kj_nm())
    print(f"fitted epsilon = {epsilon:.4f} kJ/mol (true 0.996), sigma = {sigma:.4f} nm (true 0.34)")
    metrics = evaluate(result.model, test)
    print(f"test energy MAE {metrics['energy_mae_kj_mol']:.2e} kJ/mol, force MAE "
          f"{metrics['force_mae_kj_mol_nm']:.2e} kJ/mol/nm")
    if args.export:
        from nnforce.export import export_model

        export_model(result.model, args.export, {"data_hash": train.content_hash(), "test_metrics": metrics})
        print(f"wrote {args.export}")


if __name__ == "__main__":
    main()
