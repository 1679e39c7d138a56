"""Export a trained model as a TorchScript file that NNForce runs, after checking it against the model contract.

Checks (each raises ValueError with what failed):

* scripting: ``torch.jit.script`` succeeds and the scripted energy equals the eager one;
* forces: autograd forces match central finite differences (float64 copy);
* precision: float32 and float64 energies agree (relative to the energy's magnitude);
* periodic behaviour: the energy of an isolated molecule is unchanged when a large box is given, when the molecule
  is translated by a lattice vector, and when the pairs come as a plugin-style neighbor list with shifts;
* element coverage: every element in the metadata is known to the model and gives finite energies; an unknown
  atomic number raises.

Metadata (elements, cutoff_nm, units, data hash, metrics, model spec, versions) is stored as the TorchScript
extra file ``nnforce_metadata.json``; read it back with :func:`read_metadata`. The file is written atomically.
"""
import argparse
import copy
import datetime
import json
import os

import numpy as np
import torch

from ._io import atomic_save
from ._pt2 import is_pt2, read_pt2_metadata, to_pt2  # noqa: F401  (.pt2 AOTInductor packages, nnforce._pt2)

METADATA_FILE = "nnforce_metadata.json"

EXAMPLES = """examples:
  nnforce export run/best.ckpt -o ethanol.pt                script, check and write the model of a training run
  nnforce export run/best.ckpt -o ethanol.pt --data data.npz   check on real frames (default: a built-in test molecule)
  nnforce export model.pt --info                            print the metadata of an exported model"""


def _sample_structure(elements, cutoff_nm):
    """A compact, non-symmetric test cluster containing every element (deterministic)."""
    rng = np.random.default_rng(1234)
    elements = list(elements)
    z = [elements[k % len(elements)] for k in range(max(len(elements), 6))]
    positions = []
    spacing = 0.12
    while len(positions) < len(z):
        candidate = rng.uniform(-0.18, 0.18, size=3)
        if all(np.linalg.norm(candidate - p) > spacing for p in positions):
            positions.append(candidate)
    return np.array(z, dtype=np.int64), np.array(positions)


def _energy(model, positions, atomic_numbers, **kwargs):
    return model(positions=positions, atomic_numbers=atomic_numbers, **kwargs)


def check_model(model, elements, cutoff_nm, structure=None, fd_step_nm=1e-5, rtol=1e-5):
    """Run the contract checks on ``model`` (eager module); returns a dict of the measured deviations."""
    scripted = torch.jit.script(model)
    if structure is None:
        z, x = _sample_structure(elements, cutoff_nm)
    else:
        z, x = structure
    z_t = torch.as_tensor(np.asarray(z), dtype=torch.long)
    report = {}
    model64 = copy.deepcopy(model).double().eval()
    script64 = torch.jit.script(model64)
    model32 = copy.deepcopy(model).float().eval()
    script32 = torch.jit.script(model32)
    x64 = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    e64 = _energy(script64, x64, z_t)
    if not torch.isfinite(e64):
        raise ValueError(f"the model gives a non-finite energy ({float(e64)}) for the test structure")
    scale = max(1.0, abs(float(e64.detach())))
    with torch.no_grad():
        eager = float(_energy(model64, x64.detach(), z_t))
    report["script_vs_eager_kj_mol"] = abs(eager - float(e64.detach()))
    if report["script_vs_eager_kj_mol"] > 1e-9 * scale + 1e-9:
        raise ValueError(f"scripted and eager energies differ by {report['script_vs_eager_kj_mol']} kJ/mol")
    (gradient,) = torch.autograd.grad(e64, x64)
    forces = -gradient.numpy()
    fd = np.zeros_like(forces)
    with torch.no_grad():
        for a in range(x.shape[0]):
            for d in range(3):
                plus = x64.detach().clone()
                minus = x64.detach().clone()
                plus[a, d] += fd_step_nm
                minus[a, d] -= fd_step_nm
                fd[a, d] = -(float(_energy(script64, plus, z_t)) - float(_energy(script64, minus, z_t))) / (
                    2 * fd_step_nm)
    force_scale = max(1.0, float(np.abs(forces).max()))
    report["force_fd_max_error_kj_mol_nm"] = float(np.abs(forces - fd).max())
    if report["force_fd_max_error_kj_mol_nm"] > 1e-4 * force_scale + 1e-3:
        raise ValueError(f"autograd forces differ from finite differences by up to "
                         f"{report['force_fd_max_error_kj_mol_nm']:.3g} kJ/mol/nm (largest force {force_scale:.3g})")
    with torch.no_grad():
        e32 = float(_energy(script32, torch.tensor(x, dtype=torch.float32), z_t))
    e64 = e64.detach()
    report["float32_vs_float64_kj_mol"] = abs(e32 - float(e64))
    if report["float32_vs_float64_kj_mol"] > rtol * scale + 1e-3:
        raise ValueError(f"float32 and float64 energies differ by {report['float32_vs_float64_kj_mol']:.3g} kJ/mol")
    # periodic behaviour: a box much larger than the molecule plus the cutoff changes nothing
    with torch.no_grad():
        x0 = x64.detach()
        extent = float((x0.max(0).values - x0.min(0).values).max())
        side = 2.0 * (extent + cutoff_nm) + 1.0
        box = torch.diag(torch.full((3,), side, dtype=torch.float64))
        e_box = float(_energy(script64, x0, z_t, box=box))
        e_shift = float(_energy(script64, x0 + box[0] - box[1] + 2 * box[2], z_t, box=box))
        n = x0.shape[0]
        ij = torch.triu_indices(n, n, 1)
        # plugin-style list: atom j seen through a periodic image, the shift bringing it back
        image = torch.tensor([k % 2 for k in range(n)], dtype=torch.float64)  # every other atom one box over
        moved = x0 + image.unsqueeze(1) * box[1]
        shifts = (image[ij[0]] - image[ij[1]]).unsqueeze(1) * box[1]
        e_list = float(_energy(script64, moved, z_t, neighbors=ij, shifts=shifts))
    for name, value in (("box", e_box), ("lattice_translation", e_shift), ("neighbor_list_shifts", e_list)):
        deviation = abs(value - float(e64))
        report[f"periodic_{name}_kj_mol"] = deviation
        if deviation > 1e-8 * scale + 1e-8:
            raise ValueError(f"periodic check '{name}' changed the energy by {deviation:.3g} kJ/mol")
    # element coverage
    known = set(int(v) for v in model.elements)
    missing = sorted(set(int(e) for e in elements) - known)
    if missing:
        raise ValueError(f"metadata elements {missing} are not known to the model (it knows {sorted(known)})")
    unknown = next(v for v in range(1, 119) if v not in known)
    try:
        _energy(script64, x0, torch.full_like(z_t, unknown))
    except Exception:  # TorchScript re-raises model errors as torch.jit.Error
        report["unknown_element_rejected"] = True
    else:
        raise ValueError(f"the model accepted atomic number {unknown}, which it was not trained on")
    return report


def export_model(model, path, metadata=None, check=True, structure=None):
    """Script ``model``, check it (see the module docstring), and write it with metadata to ``path`` atomically.

    ``metadata``: extra JSON-able entries (e.g. ``data_hash``, ``metrics``, ``model_spec``). Elements, cutoff and
    units are filled in from the model. Returns the metadata written.
    """
    model = copy.deepcopy(model).eval()
    elements = [int(z) for z in getattr(model, "elements", [])]
    cutoff = float(getattr(model, "cutoff", 0.0))
    info = {
        "format": "nnforce-model", "version": 1, "model_class": type(model).__name__,
        "elements": elements, "cutoff_nm": cutoff,
        "units": {"positions": "nm", "energy": "kJ/mol", "forces": "kJ/mol/nm"},
        "inputs": ["positions", "atomic_numbers", "neighbors", "shifts", "box"],
        "torch_version": torch.__version__,
        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    try:
        from . import __version__

        info["nnforce_version"] = __version__
    except ImportError:
        pass
    if metadata:
        info.update(json.loads(json.dumps(metadata)))
    if check:
        info["checks"] = check_model(model, elements, cutoff, structure)
    scripted = torch.jit.script(model.float())
    extra = {METADATA_FILE: json.dumps(info, indent=1, sort_keys=True)}
    atomic_save(path, lambda tmp: torch.jit.save(scripted, tmp, _extra_files=extra))
    return info


def read_metadata(path):
    """The metadata dict stored by :func:`export_model` in a TorchScript file or by :func:`to_pt2` in a .pt2."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"model file {path} does not exist")
    if is_pt2(path):
        return read_pt2_metadata(path)
    extra = {METADATA_FILE: ""}
    torch.jit.load(path, _extra_files=extra)
    if not extra[METADATA_FILE]:
        raise ValueError(f"{path} carries no nnforce metadata (not written by nnforce export)")
    return json.loads(extra[METADATA_FILE])


def register(subparsers):
    parser = subparsers.add_parser(
        "export", help="script, check and write a trained model (TorchScript for NNForce)",
        description="Turn a training checkpoint into a TorchScript model file for NNForce, after checking the "
                    "model contract (finite-difference forces, float32 vs float64, periodic behaviour, element "
                    "coverage). Metadata goes into the file's extra files.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="best.ckpt/last.ckpt from `nnforce train` (or a model .pt with --info)")
    parser.add_argument("-o", "--output", help="TorchScript file to write")
    parser.add_argument("--data", help="check on the first frame of this dataset (.npz) instead of a test cluster")
    parser.add_argument("--no-check", action="store_true", help="skip the contract checks (not recommended)")
    parser.add_argument("--info", action="store_true", help="print the metadata of an exported model and exit")
    parser.set_defaults(func=run)


def run(args):
    if args.info:
        print(json.dumps(read_metadata(args.checkpoint), indent=1, sort_keys=True))
        return 0
    if not args.output:
        raise ValueError("give the output file with -o/--output")
    from .train.fit import model_from_checkpoint

    model, state = model_from_checkpoint(args.checkpoint)
    metadata = dict(state.get("metadata") or {})
    metadata["model_spec"] = state["model_spec"]
    metadata["training_epochs"] = len(state.get("history") or [])
    metrics_path = os.path.join(os.path.dirname(os.path.abspath(args.checkpoint)), "metrics.json")
    if os.path.exists(metrics_path):  # written by `nnforce train` after testing
        with open(metrics_path) as handle:
            metadata["test_metrics"] = json.load(handle).get("test")
    structure = None
    if args.data:
        from .data import Dataset

        frame = Dataset.load(args.data).frame(0)
        structure = (frame[0], frame[1])
    info = export_model(model, args.output, metadata, check=not args.no_check, structure=structure)
    print(f"wrote {args.output} ({info['model_class']}, elements {info['elements']}, cutoff {info['cutoff_nm']} nm)")
    if "checks" in info:
        for key, value in info["checks"].items():
            print(f"  check {key}: {value}")
    return 0
