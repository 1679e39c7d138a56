"""Export a trained model as a TorchScript file that NNForce runs, after checking it against the model contract.

Checks (each raises ValueError with what failed):

* scripting: ``torch.jit.script`` succeeds and the scripted energy equals the eager one;
* forces: autograd forces match central finite differences (float64 copy);
* precision: float32 and float64 energies agree (relative to the energy's magnitude);
* periodic behaviour: the energy of an isolated molecule is unchanged when a large box is given, when the molecule
  is translated by a lattice vector, and when the pairs come as a plugin-style neighbor list with shifts;
* element coverage: every element in the metadata is known to the model and gives finite energies; an unknown
  atomic number raises.

Metadata (elements, cutoff_nm, units, data hash, metrics, model spec, versions; built by
:func:`nnforce.contract.model_metadata`) is stored as the TorchScript extra file
:data:`nnforce.contract.METADATA_FILE`; read it back with :func:`read_metadata`. The file is written atomically.
``nnforce export`` (:mod:`nnforce.cli.export`) exports a training checkpoint through
:func:`nnforce.train.pipeline.export_checkpoint`.
"""
import copy
import os
import shutil

import numpy as np
import torch

from ._io import atomic_save
from ._pt2 import compile_pt2
from ._pt2_checks import check_package
from ._pt2_package import is_pt2, read_pt2_metadata  # noqa: F401  (.pt2 AOTInductor packages)
from .contract import METADATA_FILE, metadata_extra_files, model_metadata, read_metadata  # noqa: F401


def sample_structure(elements, cutoff_nm):
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
    """Run the contract checks on ``model`` (eager module); returns a dict of the measured deviations.

    Parameters
    ----------
    model : torch.nn.Module
        Eager model following the contract.
    elements : sequence of int
        The elements the metadata will declare.
    cutoff_nm : float
    structure : tuple, optional
        ``(atomic_numbers, positions_nm)`` to check on (default: a built-in test cluster).
    fd_step_nm, rtol : float

    Returns
    -------
    dict
        The measured deviations (``force_fd_max_error_kj_mol_nm``, ``float32_vs_float64_kj_mol``, ...).

    Examples
    --------
    >>> from nnforce.models import RadialMLP
    >>> report = check_model(RadialMLP(elements=[1, 8], seed=0), [1, 8], 0.5)  # doctest: +SKIP
    """
    scripted = torch.jit.script(model)
    arguments = [a.name for a in scripted.forward.schema.arguments[1:]]
    if "atomic_numbers" not in arguments:
        raise ValueError(f"export_model checks models of the contract forward(positions, atomic_numbers[, neighbors, shifts, "
                         f"box]); this model's forward({', '.join(arguments)}) takes no atomic_numbers. Give forward() an "
                         "atomic_numbers argument, or save the model with torch.jit.save (NNForce runs it as it is)")
    if structure is None:
        z, x = sample_structure(elements, cutoff_nm)
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
    report["force_fd_max_error_kj_mol_nm"] = _check_forces(script64, x64, e64, z_t, fd_step_nm)
    with torch.no_grad():
        e32 = float(_energy(script32, torch.tensor(x, dtype=torch.float32), z_t))
    e64 = e64.detach()
    report["float32_vs_float64_kj_mol"] = abs(e32 - float(e64))
    if report["float32_vs_float64_kj_mol"] > rtol * scale + 1e-3:
        raise ValueError(f"float32 and float64 energies differ by {report['float32_vs_float64_kj_mol']:.3g} kJ/mol")
    report.update(_check_periodic(script64, x64.detach(), z_t, float(e64), scale, cutoff_nm))
    report["unknown_element_rejected"] = _check_elements(model, script64, x64.detach(), z_t, elements)
    return report


def _check_forces(script64, x64, e64, z_t, fd_step_nm):
    """Autograd forces against central finite differences of the energy; returns the largest deviation."""
    (gradient,) = torch.autograd.grad(e64, x64)
    forces = -gradient.numpy()
    fd = np.zeros_like(forces)
    with torch.no_grad():
        for a in range(x64.shape[0]):
            for d in range(3):
                plus = x64.detach().clone()
                minus = x64.detach().clone()
                plus[a, d] += fd_step_nm
                minus[a, d] -= fd_step_nm
                fd[a, d] = -(float(_energy(script64, plus, z_t)) - float(_energy(script64, minus, z_t))) / (
                    2 * fd_step_nm)
    force_scale = max(1.0, float(np.abs(forces).max()))
    error = float(np.abs(forces - fd).max())
    if error > 1e-4 * force_scale + 1e-3:
        raise ValueError(f"autograd forces differ from finite differences by up to "
                         f"{error:.3g} kJ/mol/nm (largest force {force_scale:.3g})")
    return error


def _check_periodic(script64, x0, z_t, e64, scale, cutoff_nm):
    """A box much larger than the molecule plus the cutoff, a lattice translation and a plugin-style neighbor list
    with shifts change nothing; returns the deviations."""
    with torch.no_grad():
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
    report = {}
    for name, value in (("box", e_box), ("lattice_translation", e_shift), ("neighbor_list_shifts", e_list)):
        deviation = abs(value - e64)
        report[f"periodic_{name}_kj_mol"] = deviation
        if deviation > 1e-8 * scale + 1e-8:
            raise ValueError(f"periodic check '{name}' changed the energy by {deviation:.3g} kJ/mol")
    return report


def _check_elements(model, script64, x0, z_t, elements):
    """Every declared element is known to the model, and an unknown atomic number raises; returns True."""
    known = set(int(v) for v in model.elements)
    missing = sorted(set(int(e) for e in elements) - known)
    if missing:
        raise ValueError(f"metadata elements {missing} are not known to the model (it knows {sorted(known)})")
    unknown = next(v for v in range(1, 119) if v not in known)
    try:
        _energy(script64, x0, torch.full_like(z_t, unknown))
    except Exception:  # TorchScript re-raises model errors as torch.jit.Error
        return True
    raise ValueError(f"the model accepted atomic number {unknown}, which it was not trained on")


def export_model(model, path, metadata=None, check=True, structure=None):
    """Script ``model``, check it (see the module docstring), and write it with metadata to ``path`` atomically.

    Parameters
    ----------
    model : torch.nn.Module
        An eager model that follows the contract (``elements`` and ``cutoff`` attributes are recorded).
    path : str
        TorchScript file to write.
    metadata : dict, optional
        Extra JSON-able entries (e.g. ``data_hash``, ``metrics``, ``model_spec``).
    check : bool
        Run :func:`check_model` first (its deviations are stored under ``checks``).
    structure : tuple, optional
        ``(atomic_numbers, positions_nm)`` for the checks (default: a built-in test cluster).

    Returns
    -------
    dict
        The metadata written.

    Examples
    --------
    >>> from nnforce.models import RadialMLP
    >>> info = export_model(RadialMLP(elements=[1, 8], seed=0), "water.pt")  # doctest: +SKIP
    """
    folder = os.path.dirname(os.path.abspath(os.fspath(path)))
    if not os.path.isdir(folder):  # before the checks (minutes for a big model), not after them
        raise FileNotFoundError(f"cannot write {path}: the folder {folder} does not exist (create it first)")
    model = copy.deepcopy(model).eval()
    info = model_metadata(model, metadata)
    if check:  # the model's own elements and cutoff, whatever ``metadata`` says
        own = model_metadata(model)
        info["checks"] = check_model(model, own["elements"], own["cutoff_nm"], structure)
    scripted = torch.jit.script(model.float())
    atomic_save(path, lambda tmp: torch.jit.save(scripted, tmp, _extra_files=metadata_extra_files(info)))
    return info


def export_committee(model, path, metadata=None, check=True, structure=None):
    """Export an ANI-style ensemble as a committee whose ``forward`` returns ``{"energy", "uncertainty",
    "member_energies"}`` (:class:`nnforce.models.Committee`): NNForce runs it like any model and
    ``NNForce.getOutput(context, "uncertainty")`` reads the members' energy spread after each evaluation.

    Parameters
    ----------
    model : ANIModel or list of ANIModel
        An ensemble (``ensemble_size >= 2``) or trained members to merge with :func:`nnforce.models.ani_ensemble`.
    path : str
        TorchScript file to write (atomically).
    metadata : dict, optional
        Extra JSON-able entries; ``outputs`` lists the dict's keys.
    check : bool
        Run :func:`check_model` on the ensemble's energy (the committee's ``"energy"`` is that energy) and check
        that the scripted committee's energy equals it.
    structure : tuple, optional
        ``(atomic_numbers, positions_nm)`` for the checks.

    Returns
    -------
    dict
        The metadata written.

    Examples
    --------
    >>> from nnforce.models import ANIModel
    >>> info = export_committee(ANIModel(elements=[1, 8], ensemble_size=4), "committee.pt")  # doctest: +SKIP
    >>> info["outputs"]  # doctest: +SKIP
    ['energy', 'uncertainty', 'member_energies']
    """
    from .models.committee import Committee

    committee = Committee(copy.deepcopy(model) if not isinstance(model, (list, tuple)) else model).eval()
    info = model_metadata(committee, metadata)
    info["outputs"] = ["energy", "uncertainty", "member_energies"]
    if check:
        own = model_metadata(committee)
        info["checks"] = check_model(committee.model, own["elements"], own["cutoff_nm"], structure)
        z, x = sample_structure(own["elements"], own["cutoff_nm"]) if structure is None else structure
        scripted64 = torch.jit.script(copy.deepcopy(committee).double())
        x64 = torch.as_tensor(np.asarray(x), dtype=torch.float64)
        z64 = torch.as_tensor(np.asarray(z), dtype=torch.long)
        with torch.no_grad():
            out = scripted64(x64, z64)
            plain = float(copy.deepcopy(committee.model).double()(x64, z64))
        deviation = abs(float(out["energy"]) - plain)
        if deviation > 1e-9 * max(1.0, abs(plain)):
            raise ValueError(f"the committee's energy differs from the ensemble's by {deviation:.3g} kJ/mol")
        info["checks"]["committee_vs_ensemble_kj_mol"] = deviation
    scripted = torch.jit.script(committee.float())
    atomic_save(path, lambda tmp: torch.jit.save(scripted, tmp, _extra_files=metadata_extra_files(info)))
    return info


def to_pt2(model, path, example, precision="double", derivatives=(), max_atoms=None, max_pairs=None,
           device="cpu", metadata=None, cache=True, check=True):
    """Compile a model-contract module into a ``.pt2`` AOTInductor package for NNForce, written atomically to ``path``.

    Parameters
    ----------
    model : torch.nn.Module
        Follows the model contract: ``forward`` takes inputs by name and returns the energy (kJ/mol).
    path : str or os.PathLike
        The ``.pt2`` file to write.
    example : dict
        Contract inputs by name: ``positions`` ([N, 3] nm) and any of ``box``, ``neighbors``/``shifts``,
        ``atomic_numbers``, global parameters (scalars) and per-atom inputs ([N] or [N, k]). The package takes
        exactly these inputs; the number of atoms and of pairs are dynamic.
    precision : {"double", "single"}
        The dtype the model is compiled in (the energy is accumulated as the model does, float64 for the library's
        models).
    derivatives : sequence of str
        Global parameters whose energy derivative the package returns (for ``addEnergyParameterDerivative``).
    max_atoms, max_pairs : int, optional
        Upper bounds of the dynamic dimensions (defaults 1e6 atoms, 2e8 pairs).
    device : {"cpu", "cuda"}
        The device the package is compiled for and runs on (recorded in its metadata as ``device``): NNForce's
        Reference and CPU platforms need "cpu", its CUDA platform "cuda" (compiling for CUDA needs a CUDA build of torch
        and a GPU; ValueError otherwise). Each platform refuses a package compiled for the other device.
    metadata : dict, optional
        Extra JSON-able entries stored in the package's metadata.
    cache : bool
        Reuse a package compiled before from the same model, example shapes, precision and torch.
    check : bool
        Compare the compiled package with the eager model on the example (energy, forces, derivatives) and its
        forces with finite differences of its energy (float64).

    Returns
    -------
    dict
        The metadata stored in the package (with ``checks`` when ``check`` is true).

    Examples
    --------
    >>> to_pt2(LennardJones(), "lj.pt2", {"positions": x, "neighbors": pairs, "shifts": shifts})  # doctest: +SKIP
    """
    built, record = compile_pt2(model, example, precision, derivatives, max_atoms, max_pairs, device, metadata, cache)
    try:
        if check:
            record = dict(record)
            record["checks"] = check_package(built, model, example, precision, derivatives, device=device)
        atomic_save(os.fspath(path), lambda tmp: shutil.copyfile(built, tmp))
    finally:
        if not cache:
            os.remove(built)
    return record
