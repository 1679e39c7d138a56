"""The model format an nnforce family runs in: TorchScript (default) or a ``.pt2`` AOTInductor package.

``MLPotential.createSystem(..., modelFormat="pt2")`` compiles the family's adapter module (the same module its
TorchScript path scripts) with :func:`nnforce.export.to_pt2`'s compiler, for the inputs NNForce will pass it
(``positions``, ``atomic_numbers``, ``neighbors``/``shifts`` when the family wants the plugin's neighbor list,
``box`` when periodic). Packages are cached (``nnforce.export.cache_dir``), keyed by the model, its inputs and
precision, so a second System of the same model and inputs compiles nothing.
"""
import inspect

import torch

FORMATS = ("torchscript", "pt2")


def check_format(model_format, family, name, periodic=False):
    """ValueError unless ``model_format`` is known and the family can build an eager module for it."""
    if model_format not in FORMATS:
        raise ValueError(f"modelFormat must be one of {', '.join(FORMATS)}, got {model_format!r}")
    refused = getattr(family, "pt2_refused", None) or (getattr(family, "pt2_refused_periodic", None) if periodic
                                                        else None)
    if model_format == "pt2" and refused:
        raise ValueError(f"modelFormat='pt2' is refused for the {name!r} potential: {refused}; use "
                         "modelFormat='torchscript'")
    if model_format == "pt2" and "_eager" not in inspect.signature(family.module).parameters:
        raise ValueError(f"the {name!r} potential has no .pt2 path (its module is a TorchScript file); use "
                         "modelFormat='torchscript', or compile an nnforce model with `nnforce export --format pt2` "
                         "and load that file")


def example_inputs(atomic_numbers, cutoff_nm, periodic, dtype):
    """Contract inputs for compiling: a small deterministic cluster of the System's elements (the atom and pair
    counts are dynamic in the package, so only the set of inputs and their dtypes matter)."""
    elements = sorted({int(z) for z in atomic_numbers})
    z = [elements[k % len(elements)] for k in range(max(8, len(elements)))]
    grid = torch.tensor([[a, b, c] for a in range(2) for b in range(2) for c in range(3)], dtype=torch.float64)
    positions = 0.5 + 0.14 * grid[: len(z)] + 0.003 * torch.arange(len(z), dtype=torch.float64).unsqueeze(1)
    if len(z) > len(grid):
        raise ValueError("too many elements for the .pt2 example cluster")  # 12 distinct elements at most
    example = {"positions": positions.to(dtype), "atomic_numbers": torch.tensor(z, dtype=torch.long)}
    if periodic:
        example["box"] = torch.eye(3, dtype=dtype) * 3.0
    if cutoff_nm is not None:
        n = len(z)
        pairs = torch.triu_indices(n, n, 1)
        example["neighbors"] = pairs
        example["shifts"] = torch.zeros(pairs.shape[1], 3, dtype=dtype)
    return example


def _second_example(example, cutoff_nm):
    """The example grown to 20 atoms (3 x 3 x 3 grid cut at 20, the same spacing and elements): a package whose
    graph baked in the first example's atom or pair count fails its check on this one."""
    z = example["atomic_numbers"]
    n = 20
    grid = torch.tensor([[a, b, c] for a in range(3) for b in range(3) for c in range(3)], dtype=torch.float64)[:n]
    dtype = example["positions"].dtype
    positions = 0.5 + 0.14 * grid + 0.003 * torch.arange(n, dtype=torch.float64).unsqueeze(1)
    second = {"positions": positions.to(dtype), "atomic_numbers": z.repeat(n // len(z) + 1)[:n].clone()}
    if "box" in example:
        second["box"] = example["box"].clone()
    if cutoff_nm is not None:
        pairs = torch.triu_indices(n, n, 1)
        second["neighbors"] = pairs
        second["shifts"] = torch.zeros(pairs.shape[1], 3, dtype=dtype)
    return second


def compile_family_module(module, atomic_numbers, cutoff_nm, periodic, dtype):
    """The ``.pt2`` package (bytes) of an eager adapter ``module`` in ``dtype`` (float32 or float64), checked as
    ``to_pt2`` checks: energy and forces equal the eager module's on the compiling example and on a larger one
    (a ValueError names what differs)."""
    from .._pt2 import compile_pt2
    from .._pt2_checks import check_package

    precision = "double" if dtype == torch.float64 else "single"
    example = example_inputs(atomic_numbers, cutoff_nm, periodic, dtype)
    path, _ = compile_pt2(module, example, precision=precision, cache=True)
    for inputs in (example, _second_example(example, cutoff_nm)):
        try:
            check_package(path, module, inputs, precision)
        except ValueError as error:
            raise ValueError(f"the .pt2 compiled from this model is wrong on a {inputs['positions'].shape[0]}-atom "
                             f"check ({error}); use modelFormat='torchscript'") from error
    with open(path, "rb") as handle:
        return handle.read()
