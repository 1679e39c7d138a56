"""Compile a model into a ``.pt2`` AOTInductor package that NNForce runs from C++ (``nnforce.export.to_pt2``).

The package holds ONE compiled function of tensors: it takes the contract inputs named in the example (positions,
box, neighbors, shifts, atomic_numbers, global parameters, per-atom inputs; in a fixed order recorded in the
metadata) and returns ``(energy, forces, dE/d derivative_1, ...)``. The forces and derivatives are traced into the
graph: a call of the model followed by ``torch.autograd.grad`` is traced with ``make_fx(tracing_mode="symbolic")``,
exported with ``torch.export.export`` with the number of atoms and of pairs dynamic, and compiled with
``torch._inductor.aoti_compile_and_package``. (A plain ``torch.export`` of a module that calls ``autograd.grad``
fails in both strict and non-strict mode.) An energy-only request runs the same function: one compiled graph, the
forces cost about as much as the energy again, and MD asks for forces at every step.

The contract metadata is compiled into the package as flat ``nnforce.*`` strings (AOTInductor's
``aot_inductor.metadata``), which the C++ kernel reads with ``AOTIModelPackageLoader``; the full JSON record is in
``nnforce.metadata_json``. :func:`nnforce._pt2_package.read_pt2_metadata` reads it back without loading the compiled library.
Writing a checked package to a path is :func:`nnforce.export.to_pt2` (this module compiles;
:mod:`nnforce._pt2_checks` checks the compiled package against the eager model).

Compiling takes tens of seconds, so packages are cached by a hash of the model's state, its source code, the example's
names/shapes/dtypes, precision, derivatives, bounds and the torch version, under ``$NNFORCE_CACHE`` or
``~/.cache/nnforce`` (``pt2/<hash>.pt2``).
"""
import contextlib
import copy
import hashlib
import inspect
import io
import json
import os
import shutil
import tempfile

import torch

from ._io import atomic_save
from ._pt2_package import read_pt2_metadata

FORMAT = "nnforce-pt2"
KNOWN_ORDER = ("positions", "box", "neighbors", "shifts", "atomic_numbers")
PAIR_INPUTS = ("neighbors", "shifts")
DEFAULT_MAX_ATOMS = 1_000_000
DEFAULT_MAX_PAIRS = 200_000_000
MIN_ATOMS = 2   # torch.export specializes dimensions of size 0 and 1; NNForce pads pair lists up to MIN_PAIRS
MIN_PAIRS = 2
# Inductor realizes (computes once and stores) intermediate results more eagerly than by default: in the compiled
# energy + forces graph of the AEV, the default thresholds inlined the per-triplet terms into every loop that reads
# them, recomputing them ~10 times. Measured on the ANI-style model (float64, 1 thread, TorchScript / .pt2 step
# time): 2.65x / 1.20x / 1.55x at 22 / 200 / 1000 atoms with the defaults, 2.85x / 2.43x / 2.08x with these.
INDUCTOR_OPTIONS = {"realize_reads_threshold": 2, "realize_cpu_opcount_threshold": 8,
                    "realize_cpu_acc_reads_threshold": 4}


def cache_dir():
    """The directory holding compiled packages: ``$NNFORCE_CACHE/pt2`` or ``~/.cache/nnforce/pt2``."""
    root = os.environ.get("NNFORCE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "nnforce")
    return os.path.join(root, "pt2")


@contextlib.contextmanager
def exporting():
    """Mark a trace for export: models skip their value checks (``torch.compiler.is_compiling()`` is True), which
    ``to_pt2`` runs eagerly at export time and the plugin runs on the force's inputs instead."""
    previous = torch.compiler._is_compiling_flag
    torch.compiler._is_compiling_flag = True
    try:
        yield
    finally:
        torch.compiler._is_compiling_flag = previous


def _convert_precision(model, dtype):
    """Floating-point parameters and buffers to ``dtype`` (float64 ``self_energies`` buffers stay float64, as in the
    plugin); gradients of the weights off."""
    model = copy.deepcopy(model).eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
        if parameter.is_floating_point():
            parameter.data = parameter.data.to(dtype)
    for module in model.modules():
        for name, buffer in list(module._buffers.items()):
            if buffer is None or not buffer.is_floating_point():
                continue
            if name == "self_energies" and buffer.dtype == torch.float64:
                continue
            module._buffers[name] = buffer.to(dtype)
    model._apply(lambda tensor: tensor)  # lets modules re-derive buffers from converted ones (AEV's section cos/sin)
    return model


def _ordered_inputs(example, dtype):
    """(names, tensors) in the package's input order: the contract names first, then globals/per-atom in given order."""
    if "positions" not in example:
        raise ValueError("example must contain 'positions' (a [N, 3] tensor in nm)")
    names = [n for n in KNOWN_ORDER if n in example] + [n for n in example if n not in KNOWN_ORDER]
    if ("neighbors" in example) != ("shifts" in example):
        raise ValueError("give both 'neighbors' and 'shifts' in the example, or neither (NNForce passes them together)")
    tensors = []
    for name in names:
        value = torch.as_tensor(example[name])
        if name in ("neighbors", "atomic_numbers"):
            value = value.to(torch.long)
        elif value.is_floating_point() or value.dim() == 0:
            value = value.to(dtype)
        tensors.append(value.contiguous())
    positions = tensors[0]
    if positions.dim() != 2 or positions.shape[1] != 3:
        raise ValueError(f"example['positions'] must have shape [N, 3], not {list(positions.shape)}")
    if positions.shape[0] < MIN_ATOMS:
        raise ValueError(f"the example needs at least {MIN_ATOMS} atoms (it has {positions.shape[0]})")
    if "neighbors" in example:
        pairs = tensors[names.index("neighbors")]
        if pairs.dim() != 2 or pairs.shape[0] != 2 or pairs.shape[1] < MIN_PAIRS:
            raise ValueError(f"example['neighbors'] must have shape [2, P] with P >= {MIN_PAIRS}, not {list(pairs.shape)}")
    return names, tensors


def _dynamic_shapes(names, tensors, max_atoms, max_pairs):
    from torch.export import Dim

    atoms = Dim("atoms", min=MIN_ATOMS, max=max_atoms)
    pairs = Dim("pairs", min=MIN_PAIRS, max=max_pairs)
    n = tensors[0].shape[0]
    shapes = []
    for name, tensor in zip(names, tensors):
        if name == "neighbors":
            shapes.append({1: pairs})
        elif name == "shifts":
            shapes.append({0: pairs})
        elif name in ("box",) or tensor.dim() == 0:
            shapes.append(None)
        elif tensor.shape[0] == n:  # positions, atomic_numbers, per-atom inputs
            shapes.append({0: atoms})
        else:
            raise ValueError(f"example[{name!r}] has {tensor.shape[0]} rows but there are {n} atoms: per-atom inputs "
                             f"need one row per atom, global parameters must be scalars")
    return tuple(shapes)


def _extra_outputs(model, names, tensors):
    """The names of the extra outputs of a model whose forward returns a Dict[str, Tensor] ("energy" required; every
    other entry but "forces" is returned by the package after the derivatives), [] for a model returning a tensor."""
    with torch.no_grad():
        output = model(**dict(zip(names, tensors)))
    if not isinstance(output, dict):
        return []
    if "energy" not in output:
        raise ValueError(f"the model returned a dict without 'energy' (its keys: {sorted(output)}); "
                         "a model returning a Dict[str, Tensor] must include the energy as 'energy'")
    if "forces" in output:
        raise ValueError("the model returns its own 'forces': a .pt2 package computes the forces from the energy "
                         "(traced into the graph); export such a model as TorchScript (NNForce.setOutputsForces(True))")
    for key, value in output.items():
        if not isinstance(value, torch.Tensor) or not (value.is_floating_point() or value.dtype == torch.long):
            raise ValueError(f"the model's output {key!r} is not a real tensor; a Dict output holds tensors only")
    return [key for key in output if key != "energy"]


def _energy_and_gradients(model, names, derivatives, extras=()):
    """The traced function: (energy, forces, dE/d each derivative, each extra output) from the inputs in ``names``
    order."""
    wrt = [names.index(d) for d in derivatives]

    def compute(*inputs):
        with torch.enable_grad():
            inputs = list(inputs)
            for k in [0] + wrt:
                inputs[k] = inputs[k].detach().requires_grad_(True)
            output = model(**dict(zip(names, inputs)))
            energy = output["energy"] if isinstance(output, dict) else output
            if energy.numel() != 1:
                raise ValueError(f"the model returned an energy of shape {list(energy.shape)}; sum it to a scalar")
            energy = energy.reshape(())
            gradients = torch.autograd.grad(energy, [inputs[k] for k in [0] + wrt], allow_unused=True)
        outputs = [energy.detach()]
        for k, gradient in zip([0] + wrt, gradients):
            if gradient is None:
                gradient = torch.zeros_like(inputs[k])
            outputs.append(gradient.detach())
        outputs[1] = -outputs[1]
        outputs.extend(output[name].detach() for name in extras)
        return tuple(outputs)

    return compute


def _source_hash(model):
    digest = hashlib.sha256()
    files = set()
    for module in model.modules():
        try:
            files.add(inspect.getsourcefile(type(module)) or "")
        except TypeError:  # a class without a source file: its name and state still enter the key
            files.add("")
    files = sorted(files)
    for name in files + [inspect.getsourcefile(_energy_and_gradients)]:
        if name and os.path.exists(name):
            with open(name, "rb") as handle:
                digest.update(handle.read())
    return digest.hexdigest()


def _cache_key(model, names, tensors, precision, derivatives, bounds, device, metadata=None):
    digest = hashlib.sha256()
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buffer)
    digest.update(buffer.getvalue())
    digest.update(_source_hash(model).encode())
    # plain attributes (a total charge, an energy key...) are compiled in as constants: they are part of the model
    settings = sorted((name, key, repr(value)) for name, module in model.named_modules()
                      for key, value in vars(module).items()
                      if not key.startswith("_") and isinstance(value, (bool, int, float, str)))
    digest.update(json.dumps(settings).encode())
    spec = [type(model).__qualname__, names, [(list(t.shape), str(t.dtype)) for t in tensors], precision,
            list(derivatives), list(bounds), device, torch.__version__, FORMAT, INDUCTOR_OPTIONS,
            json.loads(json.dumps(metadata or {}, sort_keys=True, default=str))]  # compiled into the package
    digest.update(json.dumps(spec).encode())
    return digest.hexdigest()[:32]


def _metadata(model, names, derivatives, precision, bounds, device, extra, extras=()):
    """The contract record (:func:`nnforce.contract.model_metadata`) with the package's own entries, and its flat
    ``nnforce.*`` strings for the C++ kernel."""
    from .contract import model_metadata

    record = model_metadata(model)
    for module in model.modules():  # a wrapper: elements and cutoff of the first submodule that declares them
        if not record["elements"] and getattr(module, "elements", None):
            record["elements"] = [int(z) for z in module.elements]
        if not record["cutoff_nm"]:
            for attribute in ("cutoff", "cutoff_nm"):  # a number only (torchmd-net's `cutoff` is a module)
                value = getattr(module, attribute, None)
                if (isinstance(value, (int, float)) and not isinstance(value, bool)) or (
                        isinstance(value, torch.Tensor) and value.numel() == 1):
                    record["cutoff_nm"] = float(value)
                    break
    record.pop("created_utc", None)  # the package is cached: nothing time-dependent inside
    record.update({
        "format": FORMAT, "version": 1, "inputs": list(names),
        "outputs": ["energy", "forces"] + [f"dE/d{d}" for d in derivatives] + list(extras),
        "derivatives": list(derivatives), "extra_outputs": list(extras),
        "precision": precision, "device": device, "min_atoms": MIN_ATOMS, "max_atoms": bounds[0],
        "min_pairs": MIN_PAIRS if "neighbors" in names else 0, "max_pairs": bounds[1] if "neighbors" in names else 0,
    })
    record["units"].update({"box": "nm", "shifts": "nm"})
    if extra:
        record.update(json.loads(json.dumps(extra)))
    flat = {f"nnforce.{key}": (",".join(str(v) for v in value) if isinstance(value, list) else str(value))
            for key, value in record.items() if key in (
                "format", "inputs", "derivatives", "extra_outputs", "precision", "device", "torch_version", "min_atoms",
                "max_atoms", "min_pairs", "max_pairs", "elements", "cutoff_nm")}
    flat["nnforce.outputs"] = ",".join(["energy", "forces"] + list(derivatives))
    flat["nnforce.metadata_json"] = json.dumps(record, sort_keys=True)
    return record, flat


def compile_pt2(model, example, precision="double", derivatives=(), max_atoms=None, max_pairs=None,
                device="cpu", metadata=None, cache=True):
    """Compile ``model`` into a ``.pt2`` package and return ``(path in the cache or a temporary file, metadata)``.

    See :func:`to_pt2` for the parameters.
    """
    if precision not in ("double", "single"):
        raise ValueError(f"precision must be 'double' or 'single', not {precision!r}")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' (NNForce's Reference and CPU platforms) or 'cuda' (its CUDA platform), not {device!r}")
    if device == "cuda" and torch.version.cuda is None:
        raise ValueError(f"device='cuda' needs a CUDA build of torch, but this torch ({torch.__version__}) has no CUDA; install "
                         "PyPI's torch (a CUDA build on Linux) to compile for the CUDA platform, or compile with device='cpu'")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' compiles on a GPU, and torch sees none here (torch.cuda.is_available() is False); compile "
                         "on a machine with a GPU, or with device='cpu'")
    dtype = torch.float64 if precision == "double" else torch.float32
    model = _convert_precision(model, dtype).to(device)
    names, tensors = _ordered_inputs(example, dtype)
    tensors = [t.to(device) for t in tensors]
    derivatives = [str(d) for d in derivatives]
    for d in derivatives:
        if d not in names or tensors[names.index(d)].dim() != 0:
            raise ValueError(f"derivative {d!r} must name a global parameter given in the example as a scalar")
    for name, value, smallest in (("max_atoms", max_atoms, MIN_ATOMS), ("max_pairs", max_pairs, MIN_PAIRS)):
        if value is not None and (isinstance(value, bool) or not float(value).is_integer() or int(value) < smallest):
            raise ValueError(f"{name} must be a whole number >= {smallest} (or None for the default), got {value!r}")
    bounds = (DEFAULT_MAX_ATOMS if max_atoms is None else int(max_atoms),
              DEFAULT_MAX_PAIRS if max_pairs is None else int(max_pairs))
    if tensors[0].shape[0] > bounds[0]:
        raise ValueError(f"the example has {tensors[0].shape[0]} atoms, more than max_atoms={bounds[0]}")
    extras = _extra_outputs(model, names, tensors)
    record, flat = _metadata(model, names, derivatives, precision, bounds, device, metadata, extras)
    key = _cache_key(model, names, tensors, precision, derivatives, bounds, device, flat)  # all compiled-in metadata
    cached = os.path.join(cache_dir(), key + ".pt2")
    if cache and os.path.exists(cached):
        return cached, read_pt2_metadata(cached)
    from torch.fx.experimental.proxy_tensor import make_fx

    compute = _energy_and_gradients(model, names, derivatives, extras)
    with torch.no_grad():
        compute(*tensors)  # eager run first: a model's own checks raise here with their own message
    with exporting():
        graph = make_fx(compute, tracing_mode="symbolic", _allow_non_fake_inputs=True)(*tensors)
    program = torch.export.export(graph, tuple(tensors),
                                  dynamic_shapes=_dynamic_shapes(names, tensors, bounds[0], bounds[1]))
    work = tempfile.mkdtemp(prefix="nnforce-pt2-")
    try:
        target = os.path.join(work, "model.pt2")
        torch._inductor.aoti_compile_and_package(program, package_path=target,
                                                 inductor_configs={"aot_inductor.metadata": flat, **INDUCTOR_OPTIONS})
        if not cache:
            keep = tempfile.NamedTemporaryFile(suffix=".pt2", delete=False)
            keep.close()
            shutil.move(target, keep.name)
            return keep.name, record
        os.makedirs(cache_dir(), exist_ok=True)
        atomic_save(cached, lambda tmp: shutil.copyfile(target, tmp))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return cached, record


def contract_example(atomic_numbers, positions_nm):
    """An example for :func:`to_pt2` in the form NNForce passes a neighbor list: positions, atomic numbers, every
    pair once as ``neighbors`` and zero ``shifts`` (the pair count is dynamic, so the example's count does not matter).

    Parameters
    ----------
    atomic_numbers : array-like of int
    positions_nm : array-like, [N, 3]

    Returns
    -------
    dict
    """
    positions = torch.as_tensor(positions_nm, dtype=torch.float64)
    n = positions.shape[0]
    pairs = torch.triu_indices(n, n, 1)
    return {"positions": positions, "atomic_numbers": torch.as_tensor(atomic_numbers, dtype=torch.long),
            "neighbors": pairs, "shifts": torch.zeros(pairs.shape[1], 3, dtype=torch.float64)}
