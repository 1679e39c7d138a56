"""``nnforce learn`` end to end on ethanol with a real teacher (the committed GFN2-xTB-trained ethanol model): rounds add the frames the
committee disagrees on, labelled by the teacher; an interrupted run resumes; a failed label is skipped."""
import dataclasses
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


def test_select_with_coverage_prefers_thin_regions_and_spreads():
    # covered: the data sit at (0, 0); samples: three near (0, 0), two near (120, 120) and one at (-120, 60)
    covered = np.array([[0.0, 0.0]])
    angles = np.array([[5.0, 0.0], [120.0, 120.0], [0.0, 5.0], [125.0, 120.0], [-120.0, 60.0], [3.0, 3.0]])
    u = np.array([1.0, 0.9, 1.0, 0.95, 0.5, 1.0])
    # without the coverage term: the most uncertain (ties: first index first)
    assert select(u, 3) == [0, 2, 5]
    # gaps to (0, 0): 5, 169.7, 5, 173.3, 134.2, 4.2 deg; score u * (1 + 1 * min(gap / 20, 3)):
    # 1.25, 3.6, 1.25, 3.8, 2.0, 1.21 -> 3 first; then 1's gap is 5 deg (to 3): 0.9 * 1.25 = 1.125, so 4 (2.0),
    # then 0 (1.25, the first of 0 and 2)
    assert select(u, 3, angles_deg=angles, covered_deg=covered, coverage_weight=1.0) == [0, 3, 4]
    # the threshold still applies to the uncertainty alone
    assert select(u, 6, threshold_kj_mol=0.6, angles_deg=angles, covered_deg=covered, coverage_weight=1.0) == [
        0, 1, 2, 3, 5]
    # periodic: -175 deg is 10 deg from 175
    from nnforce.train.learn import coverage_gaps

    assert coverage_gaps(np.array([[-175.0, 0.0]]), np.array([[175.0, 0.0]]))[0] == pytest.approx(10.0)
    with pytest.raises(ValueError, match="angles_deg"):
        select(u, 2, coverage_weight=1.0)


def test_torsion_angles_equal_mdtraj():
    import mdtraj

    from nnforce.train.learn import torsion_angles

    rng = np.random.default_rng(3)
    frames = rng.normal(0.0, 0.2, (7, 6, 3))
    torsions = [[0, 1, 2, 3], [2, 3, 4, 5], [5, 1, 0, 4]]
    top = mdtraj.Topology()
    residue = top.add_residue("X", top.add_chain())
    for _ in range(6):
        top.add_atom("C", mdtraj.element.carbon, residue)
    expected = np.degrees(mdtraj.compute_dihedrals(mdtraj.Trajectory(frames, top), torsions))
    np.testing.assert_allclose(torsion_angles(frames, torsions), expected, atol=1e-4)


def test_fresh_errors_are_offset_free(tmp_path, teacher):
    from nnforce.train.learn import fresh_errors

    data = ethanol_frames(teacher, 4, seed=5, scale_nm=0.005)
    z = data.frame(0)[0]
    frames = [data.frame(k)[1] for k in range(4)]
    rng = np.random.default_rng(0)
    noise = rng.normal(0.0, 3.0, (4, len(z), 3))
    # the teacher judged against its own labels shifted by a constant and with perturbed forces
    out = fresh_errors(teacher, z, frames, data.energies_kj_mol + 7.5 + np.array([0.0, 1.0, -1.0, 2.0]),
                       [data.frame(k)[3] + noise[k] for k in range(4)])
    assert out["fresh_frames"] == 4
    assert out["fresh_energy_mae_kj_mol"] == pytest.approx(np.abs(np.array([0, 1, -1, 2]) - 0.5).mean(), abs=1e-6)
    assert out["fresh_force_mae_kj_mol_nm"] == pytest.approx(np.abs(noise).mean(), rel=1e-6)


def test_learn_biased_exploration_coverage_and_early_stop(tmp_path, teacher):
    """Metadynamics on ethanol's two torsions, the coverage term and the fresh-frame check: with a generous
    stop_ratio the loop stops after round 0 although 3 rounds were asked; the check frames join the data."""
    from nnforce.train.learn import learn, torsion_angles

    ethanol_frames(teacher, 24, seed=0, scale_nm=0.004).save(str(tmp_path / "train.npz"))
    ethanol_frames(teacher, 8, seed=1, scale_nm=0.006).save(str(tmp_path / "test.npz"))
    # ase's ethanol: C0 C1 O2, H3 on O2, H4 H5 on C1, H6-H8 on C0; torsions O2-C1-C0-H6 and C0-C1-O2-H3
    torsions = [[2, 1, 0, 6], [0, 1, 2, 3]]
    config = LearnConfig(data=str(tmp_path / "train.npz"), test=str(tmp_path / "test.npz"), label=teacher,
                         output=str(tmp_path / "al"), rounds=3, members=2, model={"type": "ani", "hidden": [8]},
                         train={"epochs": 2, "batch_size": 8, "max_time_s": 60},
                         explore={"temperature_k": 300.0, "time_ps": 0.05, "timestep_fs": 0.5, "sample_interval": 5,
                                  "platform": "Reference", "hydrogen_mass_amu": 2.0,
                                  "metadynamics": {"height_kj_mol": 2.0, "sigma_deg": 25.0, "frequency_steps": 5}},
                         select={"max_frames": 3, "min_spacing": 1, "coverage_weight": 1.0},
                         stability=None, torsions=torsions, check_frames=4, stop_ratio=1e6)
    out = learn(config)
    rows = out["rounds"]
    assert [row["round"] for row in rows] == [0] and rows[0]["converged"] is True
    row = rows[0]
    # (the 2-epoch committee may break a bond early: exploration then stops with the frames before the break)
    assert 1 <= row["explored_frames"] <= 20 and row["explore_stopped_early"] == (row["explored_frames"] < 20)
    assert row["fresh_frames"] == min(4, row["explored_frames"]) and 1 <= row["selected"] <= 3
    data = Dataset.load(out["data"])
    assert len(data) == 24 + row["added"] and max(row["fresh_frames"], row["selected"]) <= row["added"] <= (
        row["fresh_frames"] + row["selected"])
    # the explored torsion ranges are those of angles in [-180, 180); the added frames' torsions lie in them
    added = data.positions_nm[24 * 9:].reshape(-1, 9, 3)
    angles = torsion_angles(added, torsions)
    for t, (low, high) in enumerate(row["explored_torsion_range_deg"]):
        assert -180 <= low <= angles[:, t].min() and angles[:, t].max() <= high < 180
    # the fresh-frame error is recorded beside the test error it is compared with
    assert row["converged"] == (row["fresh_force_mae_kj_mol_nm"] <= 1e6 * row["test_force_mae_kj_mol_nm"])
    assert os.path.isfile(out["committee"])
    # a finished (converged) run asked for more rounds does nothing more
    assert [r["round"] for r in learn(config)["rounds"]] == [0]
    # min_rounds=2: the same rule met in round 0 does not stop the loop until a second round has explored
    floor = learn(dataclasses.replace(config, output=str(tmp_path / "al2"), min_rounds=2))["rounds"]
    assert [r["round"] for r in floor] == [0, 1] and floor[0]["converged"] and floor[1]["converged"]
    assert all("added" in r for r in floor)
    assert len(Dataset.load(str(tmp_path / "al2" / "data.npz"))) == 24 + floor[0]["added"] + floor[1]["added"]
    with pytest.raises(ValueError, match="set torsions"):
        LearnConfig(data=str(tmp_path / "train.npz"), label=teacher, explore={"metadynamics": {"height_kj_mol": 1.0}})
    with pytest.raises(ValueError, match="needs check_frames"):
        LearnConfig(data=str(tmp_path / "train.npz"), label=teacher, stop_ratio=2.0)
    with pytest.raises(ValueError, match="min_rounds must be a whole number"):
        LearnConfig(data=str(tmp_path / "train.npz"), label=teacher, min_rounds=-1)


def test_hydrogen_mass_repartitioning_keeps_the_total():
    import openmm
    from ase.build import molecule
    from openmm import unit

    from nnforce.train.exploration import _repartition_hydrogen_mass
    from nnforce.train.stability import covalent_bonds

    atoms = molecule("CH3CH2OH")  # C0 (3 H), C1 (2 H), O2 (1 H)
    z = atoms.get_atomic_numbers()
    masses = atoms.get_masses()
    system = openmm.System()
    for m in masses:
        system.addParticle(m * unit.dalton)
    pairs, _ = covalent_bonds(z, atoms.positions / 10.0)
    _repartition_hydrogen_mass(system, z, pairs, 3.0)
    new = np.array([system.getParticleMass(i).value_in_unit(unit.dalton) for i in range(len(z))])
    assert new.sum() == pytest.approx(masses.sum(), rel=1e-12)
    assert np.all(new[z == 1] == 3.0)
    moved = 3.0 - masses[3]
    assert new[:3] == pytest.approx([masses[0] - 3 * moved, masses[1] - 2 * moved, masses[2] - moved], rel=1e-12)


def test_committee_warm_start_and_worker_processes(tmp_path, teacher):
    """warm_start: a round's members continue from the previous round's (with lr ~0 they keep its weights; fresh
    members do not); workers=2 trains the members in two processes with the same result as one after another."""
    from nnforce.train.learn import train_committee

    data = ethanol_frames(teacher, 16, seed=0, scale_nm=0.004)
    base = dict(data=str(tmp_path / "d.npz"), label=teacher, members=2, model={"type": "ani", "hidden": [8]},
                train={"epochs": 2, "batch_size": 8, "threads": 1}, stability=None)
    data.save(base["data"])
    first = train_committee(data, LearnConfig(**base), str(tmp_path / "round_0"), 0)
    parallel = train_committee(data, LearnConfig(**base, workers=2), str(tmp_path / "p_round_0"), 0)
    for a, b in zip(first, parallel):
        for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
            torch.testing.assert_close(x, y, rtol=0, atol=0, msg=name)
    still = dict(base, train=dict(base["train"], lr=1e-12, epochs=1))
    warm = train_committee(data, LearnConfig(**still, warm_start=True), str(tmp_path / "round_1"), 1000,
                           str(tmp_path / "round_0"))
    fresh = train_committee(data, LearnConfig(**still), str(tmp_path / "round_1f"), 1000, str(tmp_path / "round_0"))
    for before, after, new in zip(first, warm, fresh):
        w0, w1, w2 = (dict(m.named_parameters()) for m in (before, after, new))
        weights = [k for k in w0 if "weight" in k]
        assert weights and all(torch.allclose(w0[k], w1[k], atol=1e-8) for k in weights)
        assert all(not torch.allclose(w0[k], w2[k], atol=1e-3) for k in weights)
        torch.testing.assert_close(before.self_energies, after.self_energies)
    with pytest.raises(FileNotFoundError, match="warm_start"):
        train_committee(data, LearnConfig(**still, warm_start=True), str(tmp_path / "round_9"), 9,
                        str(tmp_path / "round_8"))
    with pytest.raises(ValueError, match="workers must be"):
        LearnConfig(**base, workers=0)
