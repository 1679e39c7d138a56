"""Normal modes of small molecules with ANI-1x: optimise, build the Hessian by autograd, diagonalise.

The ANI-1x ensemble is parsed by nnforce from the NeuroChem files of the torchani 2.1.1 wheel
(`pip install --no-deps torchani==2.1.1` installs them). Positions are in nm and energies in kJ/mol
throughout; the mass-weighted Hessian is converted to wavenumbers with named constants below.

    python examples/ani1x_hessian.py            # water, methane and formaldehyde, autograd + finite differences
    python examples/ani1x_hessian.py --smoke    # water only (a few seconds)

ANI-1x was fitted to wB97x/6-31G(d) energies, so its frequencies are harmonic DFT-like: expect them a few
percent above the experimental fundamentals (which include anharmonicity) and close to harmonic values.
"""
import argparse
import math
import sys

import numpy as np
import torch

from nnforce.models.ani1x import ani1x

SPEED_OF_LIGHT_CM_PER_S = 2.99792458e10
# kJ/mol/nm^2 per g/mol = 1e3 J / (1e-18 m^2 * 1e-3 kg) = 1e24 s^-2
MASS_WEIGHTED_HESSIAN_TO_PER_S2 = 1.0e24
MASSES_G_PER_MOL = {1: 1.00784, 6: 12.0107, 7: 14.0067, 8: 15.9994}

# starting geometries (nm) and reference wavenumbers (cm^-1): experimental fundamentals and, for water,
# the experimental harmonic frequencies (NIST CCCBDB)
MOLECULES = {
    "water": {
        "numbers": [8, 1, 1],
        "positions": [[0.0, 0.0, 0.0119], [0.0, 0.0763, -0.0477], [0.0, -0.0763, -0.0477]],
        "fundamental": [1595, 3657, 3756],
        "harmonic": [1648, 3832, 3943],
    },
    "methane": {
        "numbers": [6, 1, 1, 1, 1],
        "positions": [[0.0, 0.0, 0.0], [0.0629, 0.0629, 0.0629], [-0.0629, -0.0629, 0.0629],
                      [-0.0629, 0.0629, -0.0629], [0.0629, -0.0629, -0.0629]],
        "fundamental": [1306, 1306, 1306, 1534, 1534, 2917, 3019, 3019, 3019],
    },
    "formaldehyde": {
        "numbers": [6, 8, 1, 1],
        "positions": [[0.0, 0.0, -0.0530], [0.0, 0.0, 0.0678], [0.0, 0.0938, -0.1120], [0.0, -0.0938, -0.1120]],
        "fundamental": [1167, 1249, 1500, 1746, 2783, 2843],
    },
}


def energy_function(model, numbers):
    z = torch.tensor(numbers)

    def energy(flat_positions):
        return model(flat_positions.view(-1, 3), z)
    return energy


def optimise(energy, positions, gradient_tolerance=1e-4, max_steps=500):
    """Newton steps with the exact (autograd) Hessian, restricted to its positive-curvature directions."""
    x = torch.tensor(positions, dtype=torch.float64).flatten()
    for _ in range(max_steps):
        xg = x.clone().requires_grad_()
        gradient = torch.autograd.grad(energy(xg), xg)[0]
        if gradient.abs().max() < gradient_tolerance:
            break
        hessian = torch.autograd.functional.hessian(energy, x)
        values, vectors = torch.linalg.eigh(hessian)
        keep = values > 1.0  # kJ/mol/nm^2: skip translations/rotations (and any negative curvature)
        step = -(vectors[:, keep] @ ((vectors[:, keep].T @ gradient) / values[keep]))
        largest = step.abs().max()
        if largest > 0.01:  # never move an atom more than 0.01 nm in one step
            step = step * (0.01 / largest)
        x = x + step
    else:
        raise RuntimeError("the geometry optimisation did not converge")
    return x, float(gradient.abs().max())


def autograd_hessian(energy, x):
    return torch.autograd.functional.hessian(energy, x).numpy()


def finite_difference_hessian(energy, x, step_nm=1e-5):
    """Central differences of autograd gradients (an independent route to the same matrix)."""
    def gradient(y):
        y = y.clone().requires_grad_()
        return torch.autograd.grad(energy(y), y)[0].numpy()

    n = x.numel()
    hessian = np.zeros((n, n))
    for k in range(n):
        shift = torch.zeros(n, dtype=torch.float64)
        shift[k] = step_nm
        hessian[k] = (gradient(x + shift) - gradient(x - shift)) / (2 * step_nm)
    return 0.5 * (hessian + hessian.T)


def rigid_body_basis(positions, masses):
    """Orthonormal mass-weighted translations and rotations (5 for a linear molecule, else 6)."""
    positions = np.asarray(positions).reshape(-1, 3)
    centre = (masses[:, None] * positions).sum(0) / masses.sum()
    relative = positions - centre
    root = np.sqrt(masses)
    vectors = []
    for axis in np.eye(3):
        vectors.append((root[:, None] * axis).ravel())
        vectors.append((root[:, None] * np.cross(axis, relative)).ravel())
    u, s, _ = np.linalg.svd(np.array(vectors).T, full_matrices=False)
    return u[:, s > 1e-6 * s.max()]


def wavenumbers(hessian, positions, numbers):
    """Vibrational wavenumbers (cm^-1; negative = imaginary) from a Cartesian Hessian in kJ/mol/nm^2."""
    masses = np.array([MASSES_G_PER_MOL[z] for z in numbers])
    inverse_root = 1.0 / np.sqrt(np.repeat(masses, 3))
    weighted = hessian * np.outer(inverse_root, inverse_root)
    basis = rigid_body_basis(positions, masses)
    projector = np.eye(len(weighted)) - basis @ basis.T
    values = np.linalg.eigvalsh(projector @ weighted @ projector)
    values = values[np.argsort(np.abs(values))][basis.shape[1]:]  # drop the rigid-body zeros
    per_s = np.sign(values) * np.sqrt(np.abs(values) * MASS_WEIGHTED_HESSIAN_TO_PER_S2)
    return np.sort(per_s / (2 * math.pi * SPEED_OF_LIGHT_CM_PER_S))


def analyse(name, model, check_finite_differences=True):
    spec = MOLECULES[name]
    energy = energy_function(model, spec["numbers"])
    x, residual = optimise(energy, spec["positions"])
    hessian = autograd_hessian(energy, x)
    result = {"name": name, "max_gradient_kj_mol_nm": residual,
              "wavenumbers": wavenumbers(hessian, x.numpy(), spec["numbers"]),
              "fundamental": np.array(spec["fundamental"], dtype=float)}
    if "harmonic" in spec:
        result["harmonic"] = np.array(spec["harmonic"], dtype=float)
    if check_finite_differences:
        fd = finite_difference_hessian(energy, x)
        result["fd_max_relative_difference"] = float(np.abs(fd - hessian).max() / np.abs(hessian).max())
        result["fd_wavenumbers"] = wavenumbers(fd, x.numpy(), spec["numbers"])
    return result


def print_result(result):
    print(f"\n{result['name']}: optimised to max |gradient| {result['max_gradient_kj_mol_nm']:.1e} kJ/mol/nm")
    if "fd_max_relative_difference" in result:
        print(f"  autograd vs finite-difference Hessian: max relative difference "
              f"{result['fd_max_relative_difference']:.1e}")
    header = "  mode   ANI-1x   exp. fundamental   ratio"
    if "harmonic" in result:
        header += "   exp. harmonic   ratio"
    print(header + "   (cm^-1)")
    for k, value in enumerate(result["wavenumbers"]):
        reference = result["fundamental"][k]
        line = f"  {k + 1:4d} {value:8.1f} {reference:14.0f} {value / reference:11.3f}"
        if "harmonic" in result:
            line += f" {result['harmonic'][k]:15.0f} {value / result['harmonic'][k]:7.3f}"
        print(line)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="water only, quick")
    parser.add_argument("--molecules", nargs="+", default=None, choices=sorted(MOLECULES))
    args = parser.parse_args(argv)
    names = args.molecules or (["water"] if args.smoke else ["water", "methane", "formaldehyde"])
    model = ani1x()  # float64: Hessians need the precision
    results = [analyse(name, model) for name in names]
    for result in results:
        print_result(result)
    return results


if __name__ == "__main__":
    main()
    sys.exit(0)
