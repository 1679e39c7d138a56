"""A whole training run from one spec: read and split the data, build and fit the model, test it, optionally
export it; and exporting the model of a finished run's checkpoint. ``nnforce train`` and ``nnforce export`` call
these (the dependency goes one way: ``train`` uses ``export``, never the reverse)."""
import json
import os

from .._io import atomic_write

# TrainConfig fields a command-line flag can override: flag name -> config key
TRAIN_FLAGS = (("epochs", "epochs"), ("batch_size", "batch_size"), ("lr", "lr"), ("optimizer", "optimizer"),
               ("weight_decay", "weight_decay"), ("schedule", "schedule"), ("force_weight", "force_weight"),
               ("energy_weight", "energy_weight"), ("patience", "early_stopping_patience"),
               ("max_time", "max_time_s"), ("max_cpu", "max_cpu_s"), ("seed", "seed"))


def merge_run_config(values, data=None, energy_unit=None, length_unit=None, model=None, split=None, output=None,
                     export=None, train=None):
    """Combine a YAML run config (``values``) with overrides into ``(data, model, train, split, output, export)``.

    Parameters
    ----------
    values : dict
        The YAML config (``data``, ``model``, ``train``, ``split``, ``output``, ``export``); may be empty.
    data, energy_unit, length_unit, model, output, export : str, optional
        Overrides (None keeps the config's value).
    split : str, optional
        ``"950,50,1000"`` (counts) or ``"0.8,0.1,0.1"`` (fractions).
    train : dict, optional
        :class:`~nnforce.train.TrainConfig` fields to override.

    Returns
    -------
    tuple
        ``(data_spec dict with "path", model_spec dict with "type", train dict, split list, output str,
        export path or None)``.

    Examples
    --------
    >>> merge_run_config({"data": "a.npz"}, model="ani", split="8,1,1")[:2]
    ({'path': 'a.npz'}, {'type': 'ani'})
    """
    data_spec = dict(values.get("data") or {}) if not isinstance(values.get("data"), str) else {"path": values["data"]}
    for key, value in (("path", data), ("energy_unit", energy_unit), ("length_unit", length_unit)):
        if value:
            data_spec[key] = value
    if "path" not in data_spec:
        raise ValueError("no data: give --data PATH or `data: {path: ...}` in the config")
    model_spec = dict(values.get("model") or {})
    if model:
        model_spec["type"] = model
    model_spec.setdefault("type", "schnet")
    train_values = dict(values.get("train") or {})
    train_values.update({k: v for k, v in (train or {}).items() if v is not None})
    sizes = values.get("split", [0.8, 0.1, 0.1])
    if split:
        sizes = [float(s) if "." in s else int(s) for s in split.split(",")]
    return data_spec, model_spec, train_values, sizes, output or values.get("output") or "run", \
        export or values.get("export")


def run_training(data_spec, model_spec, train_values, sizes, output, export=None, resume=None, progress=True):
    """Train, test and (optionally) export: the whole of ``nnforce train``.

    Parameters
    ----------
    data_spec : dict
        ``path`` plus :func:`nnforce.data.read_dataset` options (``energy_unit``, ``length_unit``).
    model_spec : dict
        For :func:`nnforce.train.build_model`; ``elements`` defaults to the dataset's.
    train_values : dict
        :class:`~nnforce.train.TrainConfig` fields (``force_weight`` defaults to 10 with force labels).
    sizes : sequence
        Train, validation and test sizes (counts or fractions).
    output : str
        Run directory (checkpoints, ``history.csv``, ``tensorboard/``, ``metrics.json``).
    export : str, optional
        Also export the best model to this TorchScript file.
    resume : str, optional
        ``last.ckpt`` of an interrupted run.
    progress : bool
        Show a progress bar.

    Returns
    -------
    dict
        ``metrics`` (test metrics, see :func:`nnforce.train.evaluate`), ``result`` (the
        :class:`~nnforce.train.FitResult`) and ``export`` (the path or None).

    Examples
    --------
    >>> run_training({"path": "ethanol.npz"}, {"type": "ani"}, {"epochs": 5}, [80, 10, 10], "run")  # doctest: +SKIP
    """
    from ..data import read_dataset, split as split_data
    from .config import TrainConfig, build_model
    from .fit import evaluate, fit

    data_spec, model_spec, train_values = dict(data_spec), dict(model_spec), dict(train_values)
    path = data_spec.pop("path")
    dataset = read_dataset(path, **data_spec)
    if len(sizes) != 3:
        raise ValueError(f"split needs three sizes (train, validation, test), got {sizes}")
    train_set, val_set, test_set = split_data(dataset, sizes, seed=int(train_values.get("seed", 0)))
    model_spec.setdefault("elements", dataset.elements)
    if "force_weight" not in train_values and dataset.has_forces:
        train_values["force_weight"] = 10.0
    md_options = train_values.pop("md_check", None)
    train_values["log_dir"] = output
    train_values.setdefault("progress", progress)
    config = TrainConfig.from_dict(train_values)
    model = build_model(model_spec)
    metadata = {"data_hash": dataset.content_hash(), "data_path": os.path.abspath(path), "split": list(sizes),
                "n_train": len(train_set), "n_validation": len(val_set), "n_test": len(test_set)}
    result = fit(model, train_set, val_set, config, resume=resume,
                 model_spec=model_spec, metadata=metadata)
    metrics = evaluate(result.model, test_set)
    metadata["test_metrics"] = metrics
    with atomic_write(os.path.join(output, "metrics.json"), "w") as handle:
        json.dump({"test": metrics, "best_epoch": result.best_epoch, "epochs": len(result.history),
                   "stopped_early": result.stopped_early}, handle, indent=1)
    stability = None
    if md_options:
        stability = md_check(result.model, test_set.frame(0)[:2], md_options, output, reference=train_set)
        metadata["md_check"] = stability
    if export:
        from ..export import export_model

        export_model(result.model, export, {**metadata, "model_spec": model_spec}, structure=test_set.frame(0)[:2])
    return {"metrics": metrics, "result": result, "export": export, "md_check": stability}


def md_check(model, structure, options, output=None, reference=None):
    """The MD check after training: :func:`nnforce.train.stability.md_stability` of the trained model.

    Parameters
    ----------
    model : torch.nn.Module
        The trained (eager) model; it is scripted and run through NNForce.
    structure : tuple
        ``(atomic_numbers, positions_nm)``: the starting structure (and reference bond lengths).
    options : dict or True
        :func:`~nnforce.train.stability.md_stability` keyword arguments (``temperature_k``, ``time_ps``, ...);
        ``True`` takes the defaults (500 K, 100 ps).
    output : str, optional
        Run directory: the report goes to ``md_check.json`` there.
    reference : nnforce.data.Dataset, optional
        Frames of the same molecule (same atomic numbers): the reference bond lengths are their means.

    Returns
    -------
    dict
        The stability report.

    Examples
    --------
    >>> md_check(model, (z, x), {"temperature_k": 500, "time_ps": 10})["stable"]  # doctest: +SKIP
    True
    """
    import copy

    import torch

    from .stability import md_stability

    import numpy as np

    options = {} if options is True else dict(options)
    if reference is not None and "reference_positions_nm" not in options:
        z = np.asarray(structure[0])
        same = [k for k in range(min(len(reference), 500)) if np.array_equal(reference.frame(k)[0], z)]
        if same:
            options["reference_positions_nm"] = np.stack([reference.frame(k)[1] for k in same])
    scripted = torch.jit.script(copy.deepcopy(model).eval())
    report = md_stability(scripted, structure[0], structure[1], **options)
    if output:
        os.makedirs(output, exist_ok=True)
        with atomic_write(os.path.join(output, "md_check.json"), "w") as handle:
            json.dump(report, handle, indent=1)
    print("MD check: {} ({:.1f} ps at {:g} K; bond length ratio {:.3f}..{:.3f}; NVE drift {:.3g} kJ/mol/ps/atom)".format(
        "stable" if report["stable"] else f"UNSTABLE at {report['failed_at_ps']:.3f} ps (bond {report['broken_bond']})",
        report["simulated_ps"], report["temperature_k"], report["min_ratio"], report["max_ratio"],
        report["nve_drift_kj_mol_ps_atom"]))
    return report


def export_checkpoint(checkpoint, output, data=None, check=True, format="torchscript", precision="double", device="cpu"):
    """Export the model of a training checkpoint, with the run's metadata and test metrics.

    Parameters
    ----------
    checkpoint : str
        ``best.ckpt`` or ``last.ckpt`` written by :func:`nnforce.train.fit`.
    output : str
        TorchScript file to write.
    data : str, optional
        A dataset (.npz) whose first frame the contract checks use (default: a built-in test cluster).
    check : bool
        Run the contract checks (:func:`nnforce.export.check_model`; for a .pt2 also on the compiled package).
    format : {"torchscript", "pt2"}
        A TorchScript file, or a ``.pt2`` AOTInductor package (:func:`nnforce.export.to_pt2`; its example is the
        check structure with every pair as a neighbor list, so NNForce gives it ``neighbors``/``shifts``).
    precision : {"double", "single"}
        The precision a ``.pt2`` is compiled in (TorchScript files choose theirs when loaded).
    device : {"cpu", "cuda"}
        The device a ``.pt2`` is compiled for (:func:`nnforce.export.to_pt2`); TorchScript files run on any.

    Returns
    -------
    dict
        The metadata written (see :func:`nnforce.export.export_model`).

    Examples
    --------
    >>> export_checkpoint("run/best.ckpt", "model.pt")["elements"]  # doctest: +SKIP
    [1, 6, 8]
    """
    from ..export import export_model
    from .checkpoint import model_from_checkpoint

    model, state = model_from_checkpoint(checkpoint)
    metadata = dict(state.get("metadata") or {})
    metadata["model_spec"] = state["model_spec"]
    metadata["training_epochs"] = len(state.get("history") or [])
    metrics_path = os.path.join(os.path.dirname(os.path.abspath(checkpoint)), "metrics.json")
    if os.path.exists(metrics_path):  # written by `nnforce train` after testing
        with open(metrics_path) as handle:
            metadata["test_metrics"] = json.load(handle).get("test")
    structure = None
    if data:
        from ..data import Dataset

        frame = Dataset.load(data).frame(0)
        structure = (frame[0], frame[1])
    if format == "pt2":
        from .._pt2 import contract_example
        from ..export import check_model, sample_structure, to_pt2

        elements = [int(z) for z in model.elements]
        z, x = structure if structure is not None else sample_structure(elements, float(model.cutoff))
        checks = check_model(model, elements, float(model.cutoff), (z, x)) if check else None
        info = to_pt2(model, output, contract_example(z, x), precision=precision, metadata=metadata, check=check, device=device)
        if checks:
            info.setdefault("checks", {}).update(checks)
        return info
    if format != "torchscript":
        raise ValueError(f"format must be 'torchscript' or 'pt2', not {format!r}")
    return export_model(model, output, metadata, check=check, structure=structure)
