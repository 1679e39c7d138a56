"""The model contract in Python: the metadata a model file carries, how to read and write it, and the checks
every caller makes before a model meets a structure.

One home for what used to be repeated: the metadata file name (:data:`METADATA_FILE`), reading a model's bytes
and metadata (:func:`model_bytes`, :func:`inspect_model`, :func:`read_metadata`), writing it
(:func:`model_metadata`, :func:`metadata_extra_files`) and the neighbor-list cutoff a model binds
(:func:`neighbor_cutoff`). Element coverage and ML-atom selections live in :mod:`nnforce.atoms`. The contract itself (argument names, units, outputs) is documented in docs/model-contract.md.
"""
import datetime
import hashlib
import io
import json
import math
import os
from typing import Any, Dict

from ._model_files import BUILTIN_MODELS, builtin_model_bytes, check_model_archive, verified_force  # noqa: F401

METADATA_FILE = "nnforce_metadata.json"
"""Name of the extra file (TorchScript ``_extra_files``) that holds a model's JSON metadata."""

METADATA_FORMAT = "nnforce-model"
METADATA_VERSION = 1
CONTRACT_UNITS = {"positions": "nm", "energy": "kJ/mol", "forces": "kJ/mol/nm"}
CONTRACT_INPUTS = ["positions", "atomic_numbers", "neighbors", "shifts", "box"]


# ----------------------------------------------------------------------------------------------------------
# reading
# ----------------------------------------------------------------------------------------------------------

def model_bytes(model):
    """The serialized TorchScript bytes of a model given as a path, bytes or ``ScriptModule``.

    Parameters
    ----------
    model : str, os.PathLike, bytes or torch.jit.ScriptModule
        An exported model file, its bytes, or a scripted module.

    Returns
    -------
    bytes

    Raises
    ------
    FileNotFoundError
        If a path does not exist.
    ValueError
        For an eager (not scripted) ``torch.nn.Module``.

    Examples
    --------
    >>> import torch
    >>> from nnforce.models import LennardJones
    >>> data = model_bytes(torch.jit.script(LennardJones()))
    >>> data[:2] == b"PK"  # a TorchScript archive is a zip file
    True
    """
    import torch

    if isinstance(model, (bytes, bytearray)):
        return bytes(model)
    if isinstance(model, torch.jit.ScriptModule):
        buffer = io.BytesIO()
        torch.jit.save(model, buffer)
        return buffer.getvalue()
    if isinstance(model, torch.nn.Module):
        raise ValueError("the model must be TorchScript: pass torch.jit.script(model) or an exported model file "
                         "(`nnforce export`)")
    path = os.fspath(model)
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path} is a directory, not a model file: give the path of the model file inside it")
    if not os.path.isfile(path):
        if path.lower() in BUILTIN_MODELS:
            return builtin_model_bytes(path.lower())
        raise FileNotFoundError(f"model file not found: {path} (export one with `nnforce export`, or name a built-in "
                                f"model: {', '.join(sorted(BUILTIN_MODELS))})")
    with open(path, "rb") as handle:
        return handle.read()


def _parse_metadata(raw):
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except json.JSONDecodeError as error:
        raise ValueError(f"the model's {METADATA_FILE} is not valid JSON: {error}") from None


def inspect_model(model) -> Dict[str, Any]:
    """Describe a TorchScript model or a ``.pt2`` package: input names, metadata, elements, cutoff, format.

    Parameters
    ----------
    model : str, os.PathLike, bytes or torch.jit.ScriptModule
        See :func:`model_bytes`.

    Returns
    -------
    dict
        ``bytes`` (the serialized model), ``arguments`` (``forward``'s argument names, ``self`` excluded),
        ``metadata`` (the :data:`METADATA_FILE` dict, empty if none), ``elements`` (list of atomic numbers or
        None: from the metadata, else the module's ``elements`` attribute), ``cutoff_nm`` (float or None, likewise
        from ``cutoff_nm``), ``sha256`` of the bytes, ``format`` and ``verified_force`` (a list holding the
        ``NNForce`` built from the bytes while verifying them, until :func:`nnforce.force.build_nnforce` takes it;
        empty without the compiled plugin).

    Raises
    ------
    FileNotFoundError
        If a model path does not exist.
    ValueError
        If the bytes are not a TorchScript archive or the metadata is not JSON.

    Examples
    --------
    >>> import torch
    >>> from nnforce.models import LennardJones
    >>> info = inspect_model(torch.jit.script(LennardJones()))
    >>> info["arguments"]
    ['positions', 'neighbors', 'shifts', 'box']
    """
    import torch

    data = model_bytes(model)
    name = f"'{os.fspath(model)}'" if isinstance(model, (str, os.PathLike)) else "the model"
    if data[:4] != b"PK\x03\x04":
        raise ValueError(f"{name} is not a model file (not a zip archive); export models with `nnforce export` "
                         "or torch.jit.save")
    # the one verification: the NNForce's C++ constructor (damaged or oversized archives are refused before torch
    # reads them whole); the force travels in the dict to force.build_nnforce, which adds it to the System
    force = verified_force(data, name)
    verified = [] if force is None else [force]
    from ._pt2_package import package_metadata

    # a .pt2 AOTInductor package: its inputs and metadata come from the archive (its zip directory is read here
    # only when the plugin did not already say it is TorchScript)
    package = None if force is not None and force.getModelFormat() == "torchscript" else package_metadata(data)
    if package is not None:
        return {"bytes": data, "arguments": list(package["inputs"]), "metadata": package,
                "elements": package.get("elements") or None, "cutoff_nm": package.get("cutoff_nm"),
                "sha256": hashlib.sha256(data).hexdigest(), "format": "pt2", "verified_force": verified}
    extra = {METADATA_FILE: ""}
    try:
        module = torch.jit.load(io.BytesIO(data), map_location="cpu", _extra_files=extra)
    except Exception as error:  # torch raises RuntimeError with a long C++ trace
        raise ValueError(f"{name} is not a TorchScript model file ({str(error).splitlines()[0]}); "
                         "export models with `nnforce export` or torch.jit.save") from None
    metadata = _parse_metadata(extra.get(METADATA_FILE) or b"")
    arguments = [a.name for a in module.forward.schema.arguments][1:]
    elements = metadata.get("elements")
    if elements is None and hasattr(module, "elements"):
        elements = list(module.elements)
    cutoff = metadata.get("cutoff_nm")
    if cutoff is None and hasattr(module, "cutoff_nm"):
        cutoff = float(module.cutoff_nm)
    return {"bytes": data, "arguments": arguments, "metadata": metadata,
            "elements": None if elements is None else [int(z) for z in elements],
            "cutoff_nm": None if cutoff is None else float(cutoff), "sha256": hashlib.sha256(data).hexdigest(),
            "format": "torchscript", "verified_force": verified}


def read_metadata(path):
    """The metadata dict stored in an exported model file.

    Parameters
    ----------
    path : str or os.PathLike
        A model written by :func:`nnforce.export.export_model` (``nnforce export``).

    Returns
    -------
    dict

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file carries no nnforce metadata.

    Examples
    --------
    >>> read_metadata("model.pt")["cutoff_nm"]  # doctest: +SKIP
    0.5
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"model file {path} does not exist")
    metadata = inspect_model(path)["metadata"]
    if not metadata:
        raise ValueError(f"{path} carries no nnforce metadata (not written by nnforce export)")
    return metadata


def neighbor_cutoff(info, requested_nm=None):
    """The neighbor-list cutoff (nm) an NNForce should use for a model, or None for no list.

    Parameters
    ----------
    info : dict
        From :func:`inspect_model`.
    requested_nm : float, optional
        An explicit cutoff; otherwise the model's own ``cutoff_nm``.

    Returns
    -------
    float or None
        None when the model takes no ``neighbors`` argument or no cutoff is known.

    Examples
    --------
    >>> neighbor_cutoff({"arguments": ["positions", "neighbors"], "cutoff_nm": 0.5})
    0.5
    >>> neighbor_cutoff({"arguments": ["positions"], "cutoff_nm": 0.5}) is None
    True
    """
    if "neighbors" not in info["arguments"]:
        if requested_nm is not None:
            raise ValueError(f"a neighbor-list cutoff (--neighbor-cutoff {requested_nm}) was given but the model's forward() "
                             "takes no 'neighbors' argument, so it would be ignored (the model sees every pair): leave it "
                             "out, or use a model that takes neighbors")
        return None
    own = info.get("cutoff_nm")
    if requested_nm is not None:
        requested = float(requested_nm)
        if not math.isfinite(requested) or requested <= 0:
            raise ValueError(f"the neighbor-list cutoff (--neighbor-cutoff) must be a positive distance in nm, got {requested_nm!r}")
        if own and requested < float(own) * (1 - 1e-9):
            raise ValueError(f"the neighbor-list cutoff (--neighbor-cutoff) {requested:g} nm is shorter than the model's own "
                             f"cutoff {float(own):g} nm: the pairs between the two would be missed and the energy would be "
                             f"wrong. Leave it out (the model's cutoff is used) or give {float(own):g} or more.")
    cutoff = requested_nm if requested_nm is not None else own
    return None if cutoff is None else float(cutoff)


# ----------------------------------------------------------------------------------------------------------
# writing
# ----------------------------------------------------------------------------------------------------------

def model_metadata(model, extra=None):
    """The metadata dict an exported model carries: what the model says about itself, plus ``extra``.

    Parameters
    ----------
    model : torch.nn.Module
        The model (its ``elements`` and ``cutoff`` attributes are read).
    extra : dict, optional
        JSON-able entries (``data_hash``, ``metrics``, ``model_spec``, ...); they override the defaults.

    Returns
    -------
    dict
        ``format``, ``version``, ``model_class``, ``elements``, ``cutoff_nm``, ``units``, ``inputs``,
        ``torch_version``, ``nnforce_version``, ``created_utc`` and the entries of ``extra``.

    Examples
    --------
    >>> from nnforce.models import LennardJones
    >>> model_metadata(LennardJones(), {"note": "argon"})["units"]["energy"]
    'kJ/mol'
    """
    import torch

    from ._version import __version__

    info = {
        "format": METADATA_FORMAT, "version": METADATA_VERSION, "model_class": type(model).__name__,
        "elements": [int(z) for z in getattr(model, "elements", [])],
        "cutoff_nm": float(getattr(model, "cutoff", 0.0)),
        "units": dict(CONTRACT_UNITS), "inputs": list(CONTRACT_INPUTS),
        "torch_version": torch.__version__, "nnforce_version": __version__,
        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    if extra:
        info.update(json.loads(json.dumps(extra)))
    return info


def metadata_extra_files(metadata):
    """The ``_extra_files`` mapping that stores ``metadata`` in a TorchScript file (``torch.jit.save``).

    Examples
    --------
    >>> sorted(metadata_extra_files({"elements": [1]}))
    ['nnforce_metadata.json']

    Parameters
    ----------
    metadata : dict

    Returns
    -------
    dict
    """
    return {METADATA_FILE: json.dumps(metadata, indent=1, sort_keys=True)}
