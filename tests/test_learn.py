"""``nnforce learn`` end to end on ethanol with a real teacher (the committed GFN2-xTB-trained ethanol model): rounds add the frames the
committee disagrees on, labelled by the teacher; an interrupted run resumes; a failed label is skipped."""
import json
import os

import numpy as np
import pytest
import torch
import yaml
from torch import Tensor

from nnforce.data import Dataset
from nnforce.train.learn import LearnConfig, label_frames, select

pytestmark = pytest.mark.usefixtures("one_torch_thread")


TEACHER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench", "results", "models", "ethanol_ani.pt")


@pytest.fixture(scope="module")
def teacher():
    """A real teacher: the committed ANI-style ethanol model trained on GFN2-xTB labels (bench/train_accuracy.py)."""
    return TEACHER


def ethanol_frames(teacher, n, seed, scale_nm):
    """Seeded random distortions of ethanol labelled by the teacher."""
    from ase.build import molecule

    atoms = molecule("CH3CH2OH")
    z = atoms.get_atomic_numbers()
    rng = np.random.default_rng(seed)
    frames = [atoms.positions / 10.0 + (rng.normal(0, scale_nm, (len(z), 3)) if k else 0) for k in range(n)]
    energies, forces, kept, failures = label_frames(z, frames, teacher)
    assert not failures and kept == list(range(n))
    return Dataset.from_frames(z, frames, energies, forces, name=f"ethanol-{seed}")


def test_select_takes_the_most_uncertain_spaced_frames():
    u = np.array([0.5, 3.0, 2.9, 0.1, 2.0, 0.2, 1.9])
    assert select(u, 3, min_spacing=2) == [1, 4, 6]
    assert select(u, 10, threshold_kj_mol=1.95, min_spacing=1) == [1, 2, 4]


class FlakyTeacher(torch.nn.Module):
    """A teacher whose 'SCF' fails when the first atom sits beyond x = 0 (raises, like a non-converged xTB run)."""

    def forward(self, positions: Tensor, atomic_numbers: Tensor) -> Tensor:
        if bool(positions[0, 0] > 0):
            raise RuntimeError("SCF did not converge")
        return (positions ** 2).sum()


def test_a_failed_label_is_skipped(tmp_path):
    path = str(tmp_path / "flaky.pt")
    torch.jit.script(FlakyTeacher()).save(path)
    frames = [np.full((2, 3), -0.1), np.full((2, 3), 0.1), np.full((2, 3), -0.2)]
    energies, forces, kept, failures = label_frames([1, 1], frames, path)
    assert kept == [0, 2] and [k for k, _ in failures] == [1]
    assert "SCF did not converge" in failures[0][1]
    assert energies == pytest.approx([6 * 0.01, 6 * 0.04])  # sum of squares, from the teacher itself
    np.testing.assert_allclose(forces[1], -2 * frames[2])


def test_learn_runs_end_to_end_and_resumes(tmp_path, teacher):
    from nnforce.cli import main

    ethanol_frames(teacher, 24, seed=0, scale_nm=0.004).save(str(tmp_path / "train.npz"))
    ethanol_frames(teacher, 8, seed=1, scale_nm=0.006).save(str(tmp_path / "test.npz"))
    settings = {"data": "train.npz", "test": "test.npz", "label": teacher, "output": "al", "rounds": 1,
                "members": 2, "model": {"type": "ani", "hidden": [8]},
                "train": {"epochs": 3, "batch_size": 8, "max_time_s": 60},
                "explore": {"temperature_k": 400.0, "time_ps": 0.05, "sample_interval": 5, "platform": "Reference"},
                "select": {"max_frames": 3, "min_spacing": 2},
                "stability": {"temperature_k": 400.0, "time_ps": 0.02, "nve_ps": 0.0, "platform": "Reference",
                              "seeds": 2}}
    config_path = tmp_path / "al.yaml"
    config_path.write_text(yaml.safe_dump(settings))
    assert main(["learn", str(config_path)]) == 0
    out = tmp_path / "al"
    state = json.loads((out / "state.json").read_text())
    first = state["rounds"]
    assert [r["round"] for r in first] == [0, 1]
    added = first[0]["added"]
    assert 1 <= added <= 3 and first[1]["frames"] == 24 + added
    assert len(Dataset.load(str(out / "data.npz"))) == 24 + added
    # the added frames carry the teacher's labels
    data = Dataset.load(str(out / "data.npz"))
    check = label_frames(data.frame(24)[0], [data.frame(24)[1]], teacher)
    assert data.energies_kj_mol[24] == pytest.approx(check[0][0], rel=1e-12)
    assert (out / "learning_curve.png").stat().st_size > 1000
    assert "| 0 | 24 |" in (out / "rounds.md").read_text()
    assert all("test_force_mae_kcal_mol_a" in r and "stable" in r for r in first)
    # the MD check ran twice per round, seeds 0 and 1 in every round; stable means both were
    for row in first:
        assert [run["seed"] for run in row["stability_runs"]] == [0, 1]
        assert row["stable"] == all(run["stable"] for run in row["stability_runs"])
    # a round cut off after saving its frames but before state.json: data.npz holds frames no finished round added
    full = Dataset.load(str(out / "data.npz"))
    from nnforce.data import concatenate

    concatenate([full, full.subset([0, 1])], name=full.name).save(str(out / "data.npz"))
    # resume: two rounds requested, one more is run, the finished ones are kept as they were; the former last
    # round (1) now explores with the committee it trained (not retrained) and round 2 trains on its frames too
    committee_1 = (out / "round_1" / "committee.pt").read_bytes()
    assert main(["learn", str(config_path), "--rounds", "2"]) == 0
    state = json.loads((out / "state.json").read_text())
    rounds = state["rounds"]
    assert [r["round"] for r in rounds] == [0, 1, 2]
    assert rounds[0] == first[0]
    assert {k: rounds[1][k] for k in first[1] if k not in ("cpu_s", "wall_s")} == {
        k: v for k, v in first[1].items() if k not in ("cpu_s", "wall_s")}
    assert (out / "round_1" / "committee.pt").read_bytes() == committee_1
    assert 1 <= rounds[1]["added"] <= 3
    assert rounds[2]["frames"] == first[1]["frames"] + rounds[1]["added"]  # the stray frames were dropped
    assert len(Dataset.load(str(out / "data.npz"))) == rounds[2]["frames"] == state["data_frames"]
    assert [json.loads(line)["round"] for line in open(out / "log.jsonl").read().splitlines()] == [0, 1, 2]
    assert os.path.isfile(out / "round_2" / "committee.pt")


def test_bad_config(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        LearnConfig(data=str(tmp_path / "missing.npz"))
    (tmp_path / "d.npz").write_bytes(b"")
    with pytest.raises(ValueError, match="members >= 2"):
        LearnConfig(data=str(tmp_path / "d.npz"), members=1)
    config = tmp_path / "c.yaml"
    config.write_text("data: d.npz\nround: 3\n")
    with pytest.raises(ValueError, match="unknown settings \\['round'\\]"):
        LearnConfig.from_yaml(str(config))
