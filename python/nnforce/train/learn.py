"""Active learning (``nnforce learn CONFIG``): train a committee, let it run MD, keep the frames its members
disagree on most, label them (GFN2-xTB via tblite, or a teacher model), add them to the data, retrain, repeat.

Each round ``r`` (in ``OUTPUT/round_<r>/``):

1. train ``members`` ANI-style models (seeds ``seed + 1000 r + m``) on the current data and export them as one
   committee (:func:`nnforce.export.export_committee`); test the committee's mean on the test set and, optionally,
   run the MD check (:func:`nnforce.train.md_stability`; ``stability["seeds"]`` runs, seeds ``seed + k``, the same
   in every round);
2. (all rounds but the last) explore: Langevin MD with the committee through NNForce (seed ``seed + 100 + r``),
   reading the committee's ``uncertainty`` output (the spread of its members' energies, kJ/mol) every
   ``sample_interval`` steps; the run stops early when a covalent bond leaves 0.7..1.6 times its reference length
   (later frames are unphysical; the frames just before the break are the most uncertain ones);
3. select: the frames with the highest uncertainty above ``threshold_kj_mol``, at least ``min_spacing`` samples
   apart, at most ``max_frames``;
4. label them; a frame whose labelling fails (xTB not converging, a non-finite result) is logged and skipped;
5. add them to ``OUTPUT/data.npz`` and record the round in ``OUTPUT/state.json`` and ``OUTPUT/log.jsonl``.

Every file is written atomically and ``state.json`` last (with the data's frame count), so an interrupted run
resumes from the last finished round, dropping frames a cut-off round had already saved. A finished run given
more rounds continues: its former last round explores with the committee it trained (it is not retrained).
``OUTPUT/learning_curve.png`` and ``OUTPUT/rounds.md`` show the test errors and frames added per round.
"""
import copy
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, Optional

import numpy as np

from .._io import atomic_save, atomic_write
from ..units import FS_PER_PS

STATE_NAME = "state.json"
DATA_NAME = "data.npz"
LOG_NAME = "log.jsonl"


@dataclass
class LearnConfig:
    """Settings of an active-learning run (the YAML file of ``nnforce learn``). Units: K, ps, fs, kJ/mol.

    Parameters
    ----------
    data : str
        The initial labelled dataset (.npz, :class:`nnforce.data.Dataset`); its first frame starts the MD.
    output : str
        The run folder.
    label : str
        ``"xtb"`` (GFN2-xTB via tblite) or the path of a teacher TorchScript model.
    test : str, optional
        An independent labelled test set (never trained on).
    rounds : int
        Rounds of exploration and labelling (the committee is trained ``rounds + 1`` times).
    members : int
        Committee size (>= 2).
    model, train : dict
        :func:`nnforce.train.build_model` spec (``type`` must be ``"ani"``) and
        :class:`nnforce.train.TrainConfig` fields.
    explore, select, stability : dict
        See the defaults below; ``stability`` None skips the MD check; its ``seeds`` (default 1) is the number of
        check runs, the other keys go to :func:`nnforce.train.md_stability`.
    validation_fraction : float
        Share of the data held out for early stopping.
    seed : int
        Seeds training, MD and splitting.

    Examples
    --------
    >>> LearnConfig(data="ethanol_300K.npz", output="al", label="xtb", rounds=3).members  # doctest: +SKIP
    3
    """

    data: str
    output: str = "learn"
    label: str = "xtb"
    test: Optional[str] = None
    rounds: int = 3
    members: int = 3
    model: Dict[str, Any] = field(default_factory=lambda: {"type": "ani", "hidden": [64, 32]})
    train: Dict[str, Any] = field(default_factory=lambda: {"epochs": 200, "batch_size": 16, "force_weight": 10.0,
                                                            "early_stopping_patience": 30, "max_time_s": 120})
    explore: Dict[str, Any] = field(default_factory=lambda: {"temperature_k": 500.0, "time_ps": 5.0,
                                                              "timestep_fs": 0.5, "friction_per_ps": 1.0,
                                                              "sample_interval": 20, "platform": "CPU"})
    select: Dict[str, Any] = field(default_factory=lambda: {"max_frames": 50, "threshold_kj_mol": 0.0,
                                                             "min_spacing": 2})
    stability: Optional[Dict[str, Any]] = field(default_factory=lambda: {"temperature_k": 500.0, "time_ps": 5.0})
    validation_fraction: float = 0.1
    seed: int = 0

    def __post_init__(self):
        if int(self.rounds) < 0:
            raise ValueError(f"rounds must be >= 0, got {self.rounds}")
        if int(self.members) < 2:
            raise ValueError(f"a committee needs members >= 2, got {self.members}")
        if dict(self.model).get("type", "ani") != "ani":
            raise ValueError(f"the committee is ANI-style: model type must be 'ani', got {self.model.get('type')!r}")
        if self.label != "xtb" and not os.path.exists(self.label):
            raise FileNotFoundError(f"label must be 'xtb' or a teacher model file; {self.label!r} does not exist")
        for name in ("data", "test"):
            path = getattr(self, name)
            if path is not None and not os.path.exists(path):
                raise FileNotFoundError(f"{name} dataset {path} does not exist")
        if not 0 < float(self.validation_fraction) < 1:
            raise ValueError(f"validation_fraction must be in (0, 1), got {self.validation_fraction}")

    @classmethod
    def from_yaml(cls, path):
        """Read a YAML config; relative data/test/label paths are taken relative to the file."""
        import yaml

        if not os.path.exists(path):
            raise FileNotFoundError(f"config file {path} does not exist")
        with open(path) as handle:
            values = yaml.safe_load(handle) or {}
        if not isinstance(values, dict):
            raise ValueError(f"{path}: expected a mapping of settings")
        unknown = sorted(set(values) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"{path}: unknown settings {unknown}; known: {sorted(cls.__dataclass_fields__)}")
        base = os.path.dirname(os.path.abspath(path))
        for key in ("data", "test", "output", "label"):
            value = values.get(key)
            if isinstance(value, str) and value != "xtb" and not os.path.isabs(value):
                values[key] = os.path.join(base, value)
        defaults = cls.__dataclass_fields__
        for key in ("train", "explore", "select"):  # partial dicts update the defaults
            if isinstance(values.get(key), dict):
                values[key] = {**defaults[key].default_factory(), **values[key]}
        return cls(**values)


def train_committee(data, config, round_dir, seed):
    """Train ``config.members`` ANI-style models on ``data``; returns the eager members."""
    from ..data import split
    from .config import TrainConfig, build_model
    from .fit import fit

    n_val = max(1, int(round(config.validation_fraction * len(data))))
    members = []
    for m in range(int(config.members)):
        train_set, val_set = split(data, (len(data) - n_val, n_val), seed=seed + 101 * m)
        spec = {**config.model, "elements": list(config.model.get("elements") or data.elements), "seed": seed + m}
        settings = {**config.train, "seed": seed + m, "log_dir": os.path.join(round_dir, f"member{m}"),
                    "progress": False, "tensorboard": False}
        members.append(fit(build_model(spec), train_set, val_set, TrainConfig.from_dict(settings),
                           model_spec=spec).model)
    return members


def explore(model_path, atomic_numbers, positions_nm, settings, seed):
    """Langevin MD with the committee; returns (positions [F, N, 3] nm, uncertainties [F] kJ/mol, stopped_early)."""
    import openmm
    from openmm import unit

    from .stability import covalent_bonds, molecule_context

    dt_fs = float(settings.get("timestep_fs", 0.5))
    integrator = openmm.LangevinMiddleIntegrator(float(settings.get("temperature_k", 500.0)) * unit.kelvin,
                                                 float(settings.get("friction_per_ps", 1.0)) / unit.picosecond,
                                                 dt_fs / FS_PER_PS * unit.picoseconds)
    integrator.setRandomNumberSeed(int(seed) + 1)
    context = molecule_context(model_path, atomic_numbers, integrator, settings.get("platform", "CPU"))
    import nnforce

    force = nnforce.NNForce.cast(context.getSystem().getForce(0))
    pairs, reference = covalent_bonds(atomic_numbers, positions_nm)
    context.setPositions(np.asarray(positions_nm) * unit.nanometer)
    context.setVelocitiesToTemperature(float(settings.get("temperature_k", 500.0)) * unit.kelvin, int(seed))
    interval = int(settings.get("sample_interval", 20))
    samples = int(round(float(settings.get("time_ps", 5.0)) * FS_PER_PS / dt_fs)) // interval
    frames, values = [], []
    for _ in range(samples):
        try:
            integrator.step(interval)
            x = context.getState(getPositions=True, getEnergy=True).getPositions(asNumpy=True).value_in_unit(
                unit.nanometer)
        except openmm.OpenMMException:
            return np.array(frames), np.array(values), True
        ratio = np.linalg.norm(x[pairs[:, 0]] - x[pairs[:, 1]], axis=1) / reference
        if not np.all((ratio > 0.7) & (ratio < 1.6)):
            return np.array(frames), np.array(values), True
        frames.append(np.array(x))
        values.append(float(force.getOutput(context, "uncertainty")))
    return np.array(frames), np.array(values), False


def select(uncertainties, max_frames, threshold_kj_mol=0.0, min_spacing=1):
    """Indices of the most uncertain samples: above the threshold, ``min_spacing`` apart, at most ``max_frames``.

    Examples
    --------
    >>> select(np.array([0.1, 0.9, 0.8, 0.2, 0.7]), 2, min_spacing=2)
    [1, 4]
    """
    chosen = []
    for k in np.argsort(-np.asarray(uncertainties), kind="stable"):
        if len(chosen) >= int(max_frames) or not uncertainties[k] > threshold_kj_mol:
            break
        if all(abs(int(k) - c) >= int(min_spacing) for c in chosen):
            chosen.append(int(k))
    return sorted(chosen)


def label_frames(atomic_numbers, frames, label):
    """Label each frame; returns (energies, forces, kept indices, failures [(index, reason)])."""
    from ..data.label import frame_label, xtb_single_point

    energies, forces, kept, failures = [], [], [], []
    teacher = None
    if label != "xtb":
        import torch

        teacher = torch.jit.load(label, map_location="cpu").double().eval()
    for k, x in enumerate(frames):
        try:
            if teacher is None:
                e, f = xtb_single_point(atomic_numbers, x)
            else:
                e, f = frame_label(teacher, np.asarray(atomic_numbers), x)
            if not (np.isfinite(e) and np.all(np.isfinite(f))):
                raise ValueError("non-finite energy or forces")
        except Exception as error:  # a failed label (SCF not converged, ...) skips the frame, never the loop
            failures.append((k, f"{type(error).__name__}: {error}"))
            continue
        energies.append(e)
        forces.append(f)
        kept.append(k)
    return energies, forces, kept, failures


def _write_json(path, values):
    with atomic_write(path, "w") as handle:
        json.dump(values, handle, indent=1, default=float)
        handle.write("\n")


def run_round(config, data, test, start, r, last):
    """One round: train + test (+ MD check); unless ``last``, explore, select and label. Returns (row, new frames)."""
    from ..export import export_committee
    from ..models import ani_ensemble
    from .fit import evaluate

    round_dir = os.path.join(config.output, f"round_{r}")
    os.makedirs(round_dir, exist_ok=True)
    started, cpu = time.time(), time.process_time()
    members = train_committee(data, config, round_dir, config.seed + 1000 * r)
    committee_path = os.path.join(round_dir, "committee.pt")
    # the contract checks (finite differences, periodic images, ...) once: later rounds train the same model class
    export_committee(members, committee_path, {"round": r, "n_train_frames": len(data)},
                     structure=(start[0], start[1]), check=r == 0)
    row = {"round": r, "frames": len(data), "train_s": time.time() - started}
    if test is not None:
        metrics = evaluate(ani_ensemble(copy.deepcopy(members)), test)
        row.update({"test_energy_mae_kcal_mol": metrics["energy_mae_kcal_mol"],
                    "test_force_mae_kcal_mol_a": metrics["force_mae_kcal_mol_a"]})
    if config.stability:
        row.update(stability_check(committee_path, start, _reference_frames(data, start[0]), config))
    added = None
    if not last:
        fields, added = explore_and_label(config, committee_path, start, r)
        row.update(fields)
    row["cpu_s"] = time.process_time() - cpu
    row["wall_s"] = time.time() - started
    return row, added


def stability_check(committee_path, start, reference, config):
    """The MD check of a round: ``seeds`` runs (default 1) of :func:`nnforce.train.md_stability`, seeds
    ``config.seed + k``, the same in every round (so rounds are compared on the same check); stable when all are."""
    from .stability import md_stability

    settings = dict(config.stability)
    seeds = int(settings.pop("seeds", 1))
    if seeds < 1:
        raise ValueError(f"stability seeds must be >= 1, got {seeds}")
    runs = [md_stability(committee_path, start[0], start[1], seed=config.seed + k, reference_positions_nm=reference,
                         **settings) for k in range(seeds)]
    failed = [run for run in runs if not run["stable"]]
    return {"stable": not failed, "stable_ps": min(run["simulated_ps"] for run in (failed or runs)),
            "stability_runs": [{"seed": run["seed"], "stable": run["stable"], "simulated_ps": run["simulated_ps"],
                                "bond_ratio_range": [run["min_ratio"], run["max_ratio"]],
                                "broken_bond": run["broken_bond"]} for run in runs],
            "bond_ratio_range": [min(run["min_ratio"] for run in runs), max(run["max_ratio"] for run in runs)]}


def explore_and_label(config, committee_path, start, r):
    """Explore with round ``r``'s committee, select and label; returns (row fields, new frames or None)."""
    from ..data import Dataset

    frames, values, stopped = explore(committee_path, start[0], start[1], config.explore,
                                     config.seed + 100 + r)
    chosen = select(values, **config.select) if len(values) else []
    energies, forces, kept, failures = label_frames(start[0], frames[chosen], config.label)
    for k, reason in failures:
        print(f"nnforce learn: round {r}: labelling frame {chosen[k]} failed ({reason}); skipped", file=sys.stderr)
    fields = {"explored_frames": int(len(values)), "explore_stopped_early": bool(stopped),
              "explored_ps": len(values) * int(config.explore.get("sample_interval", 20))
              * float(config.explore.get("timestep_fs", 0.5)) / FS_PER_PS,
              "uncertainty_max_kj_mol": float(values.max()) if len(values) else None,
              "selected": len(chosen), "added": len(kept), "label_failures": len(failures),
              "added_uncertainty_kj_mol": [float(values[chosen[k]]) for k in kept],
              "failures": [{"sample": int(chosen[k]), "reason": reason} for k, reason in failures]}
    added = None
    if kept:
        added = Dataset.from_frames(np.asarray(start[0]), [frames[chosen[k]] for k in kept], energies, forces,
                                    name=f"round{r}")
    return fields, added


def _reference_frames(data, z):
    same = [k for k in range(min(len(data), 500)) if np.array_equal(data.frame(k)[0], np.asarray(z))]
    return np.stack([data.frame(k)[1] for k in same]) if same else None


def learn(config: LearnConfig) -> Dict[str, Any]:
    """Run (or resume) the active-learning loop; returns ``{"rounds": [row per round], "output": folder}``.

    Examples
    --------
    >>> learn(LearnConfig(data="ethanol_300K.npz", output="al", rounds=2))["rounds"][-1]["stable"]  # doctest: +SKIP
    True
    """
    from ..data import Dataset

    os.makedirs(config.output, exist_ok=True)
    state_path = os.path.join(config.output, STATE_NAME)
    state = {"config": asdict(config), "rounds": []}
    if os.path.exists(state_path):
        with open(state_path) as handle:
            state = json.load(handle)
        print(f"nnforce learn: resuming after round {len(state['rounds']) - 1} in {config.output}", file=sys.stderr)
    data = _resumed_data(config, state)
    test = Dataset.load(config.test) if config.test else None
    start = Dataset.load(config.data).frame(0)
    rows = state["rounds"]
    if rows and "added" not in rows[-1] and len(rows) <= int(config.rounds):
        # the run was extended: the former last round explores with the committee it trained, not retrained
        started, cpu = time.time(), time.process_time()
        committee_path = os.path.join(config.output, f"round_{rows[-1]['round']}", "committee.pt")
        fields, added = explore_and_label(config, committee_path, start, rows[-1]["round"])
        rows[-1].update(fields)
        rows[-1]["cpu_s"] += time.process_time() - cpu
        rows[-1]["wall_s"] += time.time() - started
        data = _finish_round(config, state, data, added)
    for r in range(len(rows), int(config.rounds) + 1):
        row, added = run_round(config, data, test, start, r, last=r == int(config.rounds))
        rows.append(row)
        data = _finish_round(config, state, data, added)
    return {"rounds": rows, "output": config.output}


def _resumed_data(config, state):
    """The data after the finished rounds: ``data.npz`` cut to the frame count ``state.json`` recorded (frames
    saved by a round that did not finish are dropped), or the initial data."""
    from ..data import Dataset

    if not state["rounds"]:
        return Dataset.load(config.data)
    data = Dataset.load(os.path.join(config.output, DATA_NAME))
    count = int(state.get("data_frames", len(data)))
    return data.subset(list(range(count)), name=data.name) if len(data) > count else data


def _finish_round(config, state, data, added):
    """Add the new frames, then write data, log, report and (last: the round counts as done only then) state."""
    from ..data import concatenate

    if added is not None:
        data = concatenate([data, added], name=data.name)
    data.save(os.path.join(config.output, DATA_NAME))  # atomic
    state["data_frames"] = len(data)
    with atomic_write(os.path.join(config.output, LOG_NAME), "w") as handle:
        handle.write("".join(json.dumps(row, default=float) + "\n" for row in state["rounds"]))
    write_report(state["rounds"], config.output)
    _write_json(os.path.join(config.output, STATE_NAME), state)
    print(_summary(state["rounds"][-1]), flush=True)
    return data


def _summary(row):
    parts = [f"round {row['round']}: {row['frames']} frames"]
    if "test_force_mae_kcal_mol_a" in row:
        parts.append(f"test E/F MAE {row['test_energy_mae_kcal_mol']:.3f} kcal/mol, "
                     f"{row['test_force_mae_kcal_mol_a']:.3f} kcal/mol/A")
    if "stable" in row:
        parts.append(f"MD check: {_check_text(row)}")
    if "added" in row:
        parts.append(f"added {row['added']} of {row['selected']} selected ({row['label_failures']} label failures)")
    return "; ".join(parts)


def write_report(rows, output):
    """``rounds.md`` (a table) and ``learning_curve.png`` (test force MAE and frames per round)."""
    lines = ["| round | training frames | added next | test energy MAE (kcal/mol) | test force MAE (kcal/mol/A) | "
             "MD check | max uncertainty (kJ/mol) | CPU s |", "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        stable = _check_text(row)
        lines.append("| {} | {} | {} | {} | {} | {} | {} | {:.0f} |".format(
            row["round"], row["frames"], row.get("added", "-"), _fmt(row.get("test_energy_mae_kcal_mol")),
            _fmt(row.get("test_force_mae_kcal_mol_a")), stable, _fmt(row.get("uncertainty_max_kj_mol")),
            row["cpu_s"]))
    with atomic_write(os.path.join(output, "rounds.md"), "w") as handle:
        handle.write("\n".join(lines) + "\n")
    if not any("test_force_mae_kcal_mol_a" in row for row in rows):
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rounds = [row["round"] for row in rows]
    figure, axis = plt.subplots(figsize=(5, 3.2))
    axis.plot(rounds, [row.get("test_force_mae_kcal_mol_a", np.nan) for row in rows], "o-", label="force MAE")
    axis.plot(rounds, [row.get("test_energy_mae_kcal_mol", np.nan) for row in rows], "s--", label="energy MAE")
    axis.set_xlabel("round")
    axis.set_ylabel("test MAE (kcal/mol[/A])")
    axis.set_xticks(rounds)
    twin = axis.twinx()
    twin.bar(rounds, [row["frames"] for row in rows], alpha=0.15, color="gray")
    twin.set_ylabel("training frames")
    axis.legend(loc="upper right")
    figure.tight_layout()
    atomic_save(os.path.join(output, "learning_curve.png"), lambda tmp: figure.savefig(tmp, format="png", dpi=120))
    plt.close(figure)


def _check_text(row):
    """The MD check column: "stable" or "broke at X ps", with the count of runs when there were several."""
    if "stable" not in row:
        return ""
    runs = row.get("stability_runs") or []
    if len(runs) < 2:
        return "stable" if row["stable"] else f"broke at {row['stable_ps']:.2f} ps"
    broken = sum(not run["stable"] for run in runs)
    if not broken:
        return f"stable ({len(runs)}/{len(runs)} runs, {row['stable_ps']:g} ps each)"
    return f"broke in {broken}/{len(runs)} runs, first at {row['stable_ps']:.2f} ps"


def _fmt(value):
    return "-" if value is None else f"{value:.3f}"
