"""The export checks of :mod:`nnforce.export` run on a compiled ``.pt2`` package (see :func:`check_package`)."""
import torch

from ._pt2 import _convert_precision, _energy_and_gradients, _ordered_inputs
from ._pt2_package import read_pt2_metadata


def _relative(a, b):
    scale = max(1.0, float(b.abs().max()))
    return float((a.double() - b.double()).abs().max()) / scale


def check_package(path, model, example, precision, derivatives=(), fd_step_nm=1e-5, fd_atoms=3, device="cpu"):
    """Check a package against the eager model; raises ValueError with what failed, returns the measured deviations.
    The package and the eager model run on ``device`` (the one the package was compiled for).

    * eager: energy, forces and parameter derivatives of the package equal the eager model's in the same precision
      (1e-10 relative in float64, 1e-4 in float32);
    * float32 vs float64: a single-precision package's energy agrees with the eager float64 model (1e-5 relative);
    * finite differences (float64): the package's forces on the first atoms match central differences of its energy;
    * periodic images (when the package takes a box): translating every atom by a lattice vector changes nothing.
    """
    package = torch._inductor.aoti_load_package(str(path))
    dtype = torch.float64 if precision == "double" else torch.float32
    names, tensors = _ordered_inputs(example, dtype)
    tensors = [t.to(device) for t in tensors]
    eager_model = _convert_precision(model, dtype).to(device)
    extras = read_pt2_metadata(path).get("extra_outputs", [])
    expected = _energy_and_gradients(eager_model, names, list(derivatives), extras)(*tensors)
    got = package(*tensors)
    report = {}
    tolerance = 1e-10 if precision == "double" else 1e-4
    labels = ["energy", "forces"] + [f"dE/d{d}" for d in derivatives] + list(extras)
    if len(got) != len(labels):
        raise ValueError(f"the compiled package returned {len(got)} outputs, expected {len(labels)} ({labels})")
    for label, a, b in zip(labels, got, expected):
        deviation = _relative(a, b)
        report[f"pt2_vs_eager_{label}"] = deviation
        if deviation > tolerance:
            raise ValueError(f"the compiled package's {label} differs from the eager model's by {deviation:.3g} (relative)")
    if precision == "single":
        names64, tensors64 = _ordered_inputs(example, torch.float64)
        tensors64 = [t.to(device) for t in tensors64]
        with torch.no_grad():
            e64 = _convert_precision(model, torch.float64).to(device)(**dict(zip(names64, tensors64)))
        if isinstance(e64, dict):
            e64 = e64["energy"]
        deviation = abs(float(got[0]) - float(e64)) / max(1.0, abs(float(e64)))
        report["float32_vs_float64_relative"] = deviation
        if deviation > 1e-5:
            raise ValueError(f"the single-precision package's energy differs from float64 by {deviation:.3g} (relative)")
    else:
        forces = got[1]
        worst = 0.0
        for atom in range(min(fd_atoms, tensors[0].shape[0])):
            for d in range(3):
                energies = []
                for sign in (1.0, -1.0):
                    moved = list(tensors)
                    moved[0] = tensors[0].clone()
                    moved[0][atom, d] += sign * fd_step_nm
                    energies.append(float(package(*moved)[0]))
                fd = -(energies[0] - energies[1]) / (2 * fd_step_nm)
                worst = max(worst, abs(fd - float(forces[atom, d])))
        scale = max(1.0, float(forces.abs().max()))
        report["pt2_force_fd_max_error_kj_mol_nm"] = worst
        if worst > 1e-4 * scale + 1e-3:
            raise ValueError(f"the package's forces differ from finite differences of its energy by {worst:.3g} kJ/mol/nm")
    if "box" in names:
        box = tensors[names.index("box")]
        moved = list(tensors)
        moved[0] = tensors[0] + box[0] - box[1] + box[2]
        deviation = abs(float(package(*moved)[0]) - float(got[0])) / max(1.0, abs(float(got[0])))
        report["pt2_lattice_translation_relative"] = deviation
        if deviation > (1e-9 if precision == "double" else 1e-5):
            raise ValueError(f"translating by a lattice vector changed the package's energy by {deviation:.3g} (relative)")
    return report
