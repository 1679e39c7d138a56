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
   (later frames are unphysical; the frames just before the break are the most uncertain ones). With
   ``explore["metadynamics"]`` the MD is biased: well-tempered metadynamics (``openmm.app.Metadynamics``) on the
   config's ``torsions`` pushes the committee over the barriers into every basin (:func:`explore`);
3. (optional, ``check_frames`` > 0) the error on fresh frames: that many explored frames drawn at random (seeded)
   are labelled and the committee's mean is compared with them; when both the energy MAE (offset-free) and the
   force MAE are at most ``stop_ratio`` times the test set's, the committee is converged and the loop stops after
   this round -- once at least ``min_rounds`` rounds have explored (the checked frames are added to the data
   either way);
4. select: the frames with the highest score above ``threshold_kj_mol`` of uncertainty, at least ``min_spacing``
   samples apart, at most ``max_frames``; the score is the uncertainty, raised where the data's coverage of the
   ``torsions`` is thin when ``select["coverage_weight"]`` > 0 (:func:`select`);
5. label them; a frame whose labelling fails (xTB not converging, a non-finite result) is logged and skipped;
6. add them to ``OUTPUT/data.npz`` and record the round in ``OUTPUT/state.json`` and ``OUTPUT/log.jsonl``.

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
from typing import Any, Dict, List, Optional

import numpy as np

from .._io import atomic_save, atomic_write
from ..units import FS_PER_PS
from .committee import train_committee  # noqa: F401  (nnforce.train.learn.train_committee, as before)
from .exploration import (METADYNAMICS_DEFAULTS, coverage_gaps, explore, fresh_errors, label_frames,  # noqa: F401
                          select, torsion_angles, torsion_distance)

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
        check runs, the other keys go to :func:`nnforce.train.md_stability`. ``explore["metadynamics"]`` (a dict of
        :func:`explore`'s bias settings) biases the exploration along ``torsions``; ``select["coverage_weight"]``
        and ``select["coverage_scale_deg"]`` favour frames far (in ``torsions``) from every training frame.
    torsions : list of [i, j, k, l], optional
        Atom indices (0-based) of the torsions that describe the molecule's conformations (alanine dipeptide: phi
        and psi): the collective variables of biased exploration and of the coverage term of the selection.
    check_frames : int
        Explored frames (drawn at random, seeded) labelled each round to measure the committee's error on fresh
        frames (0: no check).
    stop_ratio : float, optional
        Stop when the fresh frames' energy (offset-free) and force MAE are both at most this multiple of the test
        set's (needs ``test`` and ``check_frames``).
    min_rounds : int
        Rounds of exploration that run whatever the stop rule says (default 1: the rule may stop the loop after the
        first). A relative rule can fire early by chance -- 30 fresh frames against a weak committee's large test
        error -- leaving regions unexplored; ``min_rounds`` makes a floor (``rounds`` still caps the loop).
    warm_start : bool
        Each round's members continue from the previous round's (their best weights, self energies and energy
        scale) on the grown data instead of starting from fresh weights: the committee keeps what it learned and
        every round adds to it (the ``train`` budget then buys more than a retraining from scratch).
    workers : int
        Train the members in this many processes at once (``spawn``; each with ``train["threads"]`` threads,
        default 1): on a machine with that many free cores a round's training takes the time of one member.
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
    torsions: Optional[List[List[int]]] = None
    check_frames: int = 0
    stop_ratio: Optional[float] = None
    min_rounds: int = 1
    warm_start: bool = False
    workers: int = 1

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
        if self.torsions is not None:
            self.torsions = [[int(i) for i in t] for t in self.torsions]
            if not self.torsions or any(len(t) != 4 or len(set(t)) != 4 or min(t) < 0 for t in self.torsions):
                raise ValueError(f"torsions must be a list of [i, j, k, l] with four distinct atom indices >= 0, "
                                 f"got {self.torsions}")
        if (self.explore or {}).get("metadynamics") and not self.torsions:
            raise ValueError("explore.metadynamics biases the torsions: set torsions (atom indices [[i, j, k, l], ...])")
        if float((self.select or {}).get("coverage_weight", 0.0)) > 0 and not self.torsions:
            raise ValueError("select.coverage_weight measures coverage in the torsions: set torsions "
                             "(atom indices [[i, j, k, l], ...]) or coverage_weight: 0")
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 1:
            raise ValueError(f"workers must be a whole number >= 1, got {self.workers!r}")
        if int(self.check_frames) < 0:
            raise ValueError(f"check_frames must be >= 0, got {self.check_frames}")
        if isinstance(self.min_rounds, bool) or not isinstance(self.min_rounds, int) or self.min_rounds < 0:
            raise ValueError(f"min_rounds must be a whole number >= 0, got {self.min_rounds!r}")
        if self.stop_ratio is not None and (float(self.stop_ratio) <= 0 or not self.check_frames or not self.test):
            raise ValueError(f"stop_ratio ({self.stop_ratio}) must be > 0 and needs check_frames > 0 and a test set")

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
    previous = os.path.join(config.output, f"round_{r - 1}") if r > 0 else None
    members = train_committee(data, config, round_dir, config.seed + 1000 * r, previous)
    committee_path = os.path.join(round_dir, "committee.pt")
    # the contract checks (finite differences, periodic images, ...) once: later rounds train the same model class
    export_committee(members, committee_path, {"round": r, "n_train_frames": len(data)},
                     structure=(start[0], start[1]), check=r == 0)
    row = {"round": r, "frames": len(data), "train_s": time.time() - started}
    if test is not None:
        metrics = evaluate(ani_ensemble(copy.deepcopy(members)), test)
        row.update({"test_energy_mae_kcal_mol": metrics["energy_mae_kcal_mol"],
                    "test_force_mae_kcal_mol_a": metrics["force_mae_kcal_mol_a"],
                    "test_energy_mae_kj_mol": metrics["energy_mae_kj_mol"],
                    "test_force_mae_kj_mol_nm": metrics["force_mae_kj_mol_nm"]})
    if config.stability:
        row.update(stability_check(committee_path, start, _reference_frames(data, start[0]), config))
    added = None
    if not last:
        fields, added = explore_and_label(config, committee_path, start, r, data, row)
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


def explore_and_label(config, committee_path, start, r, data=None, row=None):
    """Explore with round ``r``'s committee, check its error on fresh frames, select and label; returns (row fields,
    new frames or None). ``data`` (the current training data) gives the coverage of the torsions; ``row`` (the
    round's test errors) the reference of the fresh-frame check."""
    from ..data import Dataset

    frames, values, stopped = explore(committee_path, start[0], start[1], config.explore, config.seed + 100 + r,
                                      torsions=config.torsions)
    fields = {"explored_frames": int(len(values)), "explore_stopped_early": bool(stopped),
              "explored_ps": len(values) * int(config.explore.get("sample_interval", 20))
              * float(config.explore.get("timestep_fs", 0.5)) / FS_PER_PS,
              "uncertainty_max_kj_mol": float(values.max()) if len(values) else None}
    angles = covered = None
    if config.torsions and len(values):
        angles = torsion_angles(frames, config.torsions)
        fields["explored_torsion_range_deg"] = [[float(a.min()), float(a.max())] for a in angles.T]
        if data is not None:
            reference = _reference_frames(data, start[0], limit=None)
            covered = (torsion_angles(reference, config.torsions) if reference is not None
                       else np.zeros((0, len(config.torsions))))
            gap = float(config.select.get("coverage_scale_deg", 20.0))
            fields["explored_uncovered_fraction"] = float(np.mean(coverage_gaps(angles, covered) > gap))
    chosen = select(values, **config.select, angles_deg=angles, covered_deg=covered) if len(values) else []
    checked = []
    if int(config.check_frames) and len(values):
        rng = np.random.default_rng(config.seed + 200 + r)
        checked = sorted(int(k) for k in rng.choice(len(values), min(int(config.check_frames), len(values)),
                                                    replace=False))
    wanted = sorted(set(chosen) | set(checked))
    energies, forces, kept, failures = label_frames(start[0], frames[wanted], config.label)
    for k, reason in failures:
        print(f"nnforce learn: round {r}: labelling frame {wanted[k]} failed ({reason}); skipped", file=sys.stderr)
    labelled = {wanted[k]: (e, f) for k, e, f in zip(kept, energies, forces)}
    fields.update({"selected": len(chosen), "added": len(kept), "label_failures": len(failures),
                   "added_uncertainty_kj_mol": [float(values[k]) for k in chosen if k in labelled],
                   "failures": [{"sample": int(wanted[k]), "reason": reason} for k, reason in failures]})
    fresh = [k for k in checked if k in labelled]
    if fresh:
        fields.update(fresh_errors(committee_path, start[0], frames[fresh], [labelled[k][0] for k in fresh],
                                   [labelled[k][1] for k in fresh]))
        if config.stop_ratio is not None and row is not None and "test_force_mae_kj_mol_nm" in row:
            ratio = float(config.stop_ratio)
            fields["converged"] = bool(fields["fresh_energy_mae_kj_mol"] <= ratio * row["test_energy_mae_kj_mol"]
                                       and fields["fresh_force_mae_kj_mol_nm"] <= ratio
                                       * row["test_force_mae_kj_mol_nm"])
    added = None
    if kept:
        order = sorted(labelled)
        added = Dataset.from_frames(np.asarray(start[0]), [frames[k] for k in order],
                                    [labelled[k][0] for k in order], [labelled[k][1] for k in order],
                                    name=f"round{r}")
    return fields, added


def _reference_frames(data, z, limit=500):
    count = len(data) if limit is None else min(len(data), limit)
    same = [k for k in range(count) if np.array_equal(data.frame(k)[0], np.asarray(z))]
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
    if rows and "added" not in rows[-1] and not _stops(config, rows) and len(rows) <= int(config.rounds):
        # the run was extended: the former last round explores with the committee it trained, not retrained
        started, cpu = time.time(), time.process_time()
        committee_path = os.path.join(config.output, f"round_{rows[-1]['round']}", "committee.pt")
        fields, added = explore_and_label(config, committee_path, start, rows[-1]["round"], data, rows[-1])
        rows[-1].update(fields)
        rows[-1]["cpu_s"] += time.process_time() - cpu
        rows[-1]["wall_s"] += time.time() - started
        data = _finish_round(config, state, data, added)
    for r in range(len(rows), int(config.rounds) + 1):
        if _stops(config, rows):
            break  # the error on fresh frames is close to the test error: the last committee is final
        row, added = run_round(config, data, test, start, r, last=r == int(config.rounds))
        rows.append(row)
        data = _finish_round(config, state, data, added)
    return {"rounds": rows, "output": config.output, "data": os.path.join(config.output, DATA_NAME),
            "committee": os.path.join(config.output, f"round_{rows[-1]['round']}", "committee.pt")}


def _stops(config, rows):
    """Whether the loop ends after ``rows``: the last round's committee met the stop rule on fresh frames and at
    least ``config.min_rounds`` rounds have explored."""
    explored = sum(1 for row in rows if "added" in row)
    return bool(rows and rows[-1].get("converged") and explored >= int(config.min_rounds))


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
