"""Training on real data (GFN2-xTB ethanol MD, QM9): losses fall, resume reproduces the run, early stopping restores
the best weights, LJ regression recovers its parameters, the uncertainty-weighted loss, curves, search and CLI."""
import csv
import json
import math
import os

import numpy as np
import pytest
import torch

from nnforce.data import Dataset, split
from nnforce.models import ANIEncoder, ANIModel, LennardJones, PairPotential, SchNetModel, uncertainty_weighted_loss
from nnforce.train import (TrainConfig, evaluate, fit, learning_curve, load_checkpoint, plot_learning_curve,
                           random_search)
from nnforce.train.feature_cache import can_cache
from nnforce.train.fit import _Labels, _normalisers, _validate
from test_train_data_helpers import ethanol_xtb, qm9_small

torch.set_num_threads(1)
pytestmark = pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad")


@pytest.fixture(scope="module")
def ethanol():
    pytest.importorskip("tblite")
    return split(ethanol_xtb(120), (80, 20, 20), seed=0)


@pytest.fixture(scope="module")
def qm9():
    return split(qm9_small(300), (200, 50, 50), seed=0)


@pytest.mark.parametrize("kind", ["schnet", "ani"])
def test_force_training_on_xtb_ethanol_loss_falls(ethanol, kind):
    train, val, test = ethanol
    if kind == "schnet":
        model = SchNetModel([1, 6, 8], features=32, interactions=2, num_gaussians=25, seed=0)
    else:
        model = ANIModel([1, 6, 8], hidden=[32, 16], seed=0)
    result = fit(model, train, val, TrainConfig(epochs=6, batch_size=4, lr=3e-3, force_weight=10.0, seed=0))
    losses = [h["train_loss"] for h in result.history]
    assert losses[-1] < 0.6 * losses[0]
    val_force = [h["val_force_mae_kj_mol_nm"] for h in result.history]
    assert min(val_force) < 0.75 * val_force[0]
    metrics = evaluate(result.model, test)
    # better than predicting zero force (mean |F| of the test labels)
    assert metrics["force_mae_kj_mol_nm"] < 0.75 * np.abs(test.forces_kj_mol_nm).mean()
    assert metrics["energy_mae_kcal_mol"] == pytest.approx(metrics["energy_mae_kj_mol"] / 4.184)
    assert metrics["force_mae_kcal_mol_a"] == pytest.approx(metrics["force_mae_kj_mol_nm"] / 41.84)


def test_ani_on_qm9_energy_loss_falls(qm9):
    train, val, test = qm9
    model = ANIModel([1, 6, 7, 8, 9], hidden=[32, 16], seed=0)
    result = fit(model, train, val, TrainConfig(epochs=6, batch_size=16, lr=2e-3, seed=0))
    assert result.history[-1]["train_loss"] < 0.5 * result.history[0]["train_loss"]
    # the fitted self energies alone leave a residual; the trained model must beat that baseline on the test set
    baseline = np.abs(_Labels(model, test).residual - 0.0).mean()
    assert evaluate(result.model, test)["energy_mae_kj_mol"] < baseline


def test_feature_cache_trains_like_recomputing_the_features(qm9):
    """Energy-only ANI training on stored AEVs (the default) follows the same loss trajectory as recomputing them."""
    train, val, test = qm9
    config = dict(epochs=3, batch_size=16, lr=2e-3, seed=0, schedule="none")
    stored = fit(ANIModel([1, 6, 7, 8, 9], hidden=[16], seed=4), train, val, config)
    recomputed = fit(ANIModel([1, 6, 7, 8, 9], hidden=[16], seed=4), train, val, {**config, "feature_cache": "off"})
    assert stored.feature_cache and not recomputed.feature_cache
    for key in ("train_loss", "val_loss", "val_energy_mae_kj_mol"):
        np.testing.assert_allclose([h[key] for h in stored.history], [h[key] for h in recomputed.history], rtol=1e-5)
    assert stored.history[-1]["train_loss"] < 0.8 * stored.history[0]["train_loss"]  # it trains at all
    np.testing.assert_allclose(evaluate(stored.model, test)["energy_mae_kj_mol"],
                               evaluate(recomputed.model, test)["energy_mae_kj_mol"], rtol=1e-5)
    # models without fixed features (SchNet learns its own) never use the cache
    assert not fit(SchNetModel([1, 6, 7, 8, 9], features=8, interactions=1, num_gaussians=8, seed=0), train, val,
                   {**config, "epochs": 1}).feature_cache
    with pytest.raises(ValueError, match="feature_cache must be auto or off"):
        TrainConfig(feature_cache="on")


def test_force_training_on_stored_features_and_term_slopes_trains_like_recomputing(ethanol):
    """With forces in the loss the cache also stores the slopes of every AEV term; the forces from them
    (-dE/dG . dG/dx) and so the losses, metrics and trained model follow the run that recomputes the AEV and
    differentiates it twice."""
    train, val, test = ethanol
    config = dict(epochs=3, batch_size=8, lr=2e-3, force_weight=10.0, seed=0, schedule="none")
    assert can_cache(ANIModel([1, 6, 8], hidden=[16], seed=2), TrainConfig(**config))
    stored = fit(ANIModel([1, 6, 8], hidden=[16], seed=2), train, val, config)
    recomputed = fit(ANIModel([1, 6, 8], hidden=[16], seed=2), train, val, {**config, "feature_cache": "off"})
    assert stored.feature_cache and not recomputed.feature_cache
    for key in ("train_loss", "train_loss_force", "val_loss", "val_force_mae_kj_mol_nm"):
        np.testing.assert_allclose([h[key] for h in stored.history], [h[key] for h in recomputed.history], rtol=2e-4)
    assert stored.history[-1]["train_loss"] < 0.8 * stored.history[0]["train_loss"]
    a, b = evaluate(stored.model, test), evaluate(recomputed.model, test)
    np.testing.assert_allclose(a["force_mae_kj_mol_nm"], b["force_mae_kj_mol_nm"], rtol=2e-4)
    # too little room for the stored arrays: the run recomputes instead
    assert not fit(ANIModel([1, 6, 8], hidden=[16], seed=2), train, val,
                   {**config, "epochs": 1, "feature_cache_max_gib": 1e-4}).feature_cache


def test_resume_continues_the_same_loss_trajectory(qm9, tmp_path):
    train, val, _ = qm9
    config = dict(epochs=4, batch_size=32, lr=2e-3, seed=3, schedule="plateau", plateau_patience=0, weight_decay=1e-4,
                  optimizer="adamw")
    straight = fit(ANIModel([1, 6, 7, 8, 9], hidden=[16], seed=1), train, val,
                   {**config, "log_dir": str(tmp_path / "a")})
    first = fit(ANIModel([1, 6, 7, 8, 9], hidden=[16], seed=1), train, val,
                {**config, "epochs": 2, "log_dir": str(tmp_path / "b")})
    assert len(first.history) == 2
    state = load_checkpoint(tmp_path / "b" / "last.ckpt")  # weights_only=True inside
    assert state["epoch"] == 1
    resumed = fit(ANIModel([1, 6, 7, 8, 9], hidden=[16], seed=99), train, val,
                  {**config, "log_dir": str(tmp_path / "b")}, resume=tmp_path / "b" / "last.ckpt")
    a = [h["train_loss"] for h in straight.history]
    b = [h["train_loss"] for h in resumed.history]
    assert len(b) == 4
    np.testing.assert_allclose(b, a, rtol=1e-5)
    np.testing.assert_allclose([h["val_loss"] for h in resumed.history], [h["val_loss"] for h in straight.history],
                               rtol=1e-5)
    with open(tmp_path / "b" / "history.csv") as handle:
        assert [int(r["epoch"]) for r in csv.DictReader(handle)] == [0, 1, 2, 3]
    assert os.listdir(tmp_path / "a" / "tensorboard")


def test_early_stopping_restores_best_weights(qm9):
    train, val, _ = qm9
    config = TrainConfig(epochs=40, batch_size=50, lr=0.05, early_stopping_patience=2, schedule="none", seed=0,
                         threads=2)
    torch.set_num_threads(1)
    result = fit(ANIModel([1, 6, 7, 8, 9], hidden=[8], seed=2), train, val, config)
    assert torch.get_num_threads() == 1  # threads=2 held only while training: the caller's count is back
    assert result.stopped_early and len(result.history) < 40
    assert len(result.history) == result.best_epoch + 1 + 2
    var_e, mean_f2 = _normalisers(train, result.model)
    loss, _ = _validate(result.model, val, _Labels(result.model, val).residual, config, var_e, mean_f2)
    assert loss == pytest.approx(result.best_val_loss, rel=1e-5)
    assert result.best_val_loss == min(h["val_loss"] for h in result.history)


def _cosine(lr, min_lr, progress):
    return min_lr + 0.5 * (lr - min_lr) * (1.0 + math.cos(math.pi * progress))


def test_budget_cosine_schedule_and_cpu_time_cap(qm9):
    train, val, _ = qm9
    config = dict(batch_size=50, lr=1e-2, min_lr=1e-4, schedule="budget_cosine", seed=0)
    result = fit(ANIModel([1, 6, 7, 8, 9], hidden=[8], seed=2), train, val, TrainConfig(epochs=4, **config))
    # without a time budget the cosine runs over the epochs: lr(k) = min + (lr - min)(1 + cos(pi k / epochs)) / 2
    np.testing.assert_allclose([h["lr"] for h in result.history], [_cosine(1e-2, 1e-4, k / 4) for k in range(4)],
                               rtol=1e-12)
    cpu = [h["cpu_s"] for h in result.history]
    assert cpu[0] > 0 and all(b > a for a, b in zip(cpu, cpu[1:]))  # the process's CPU time, counted per epoch
    # with a CPU budget the progress is the CPU fraction used: each epoch's lr lies between the cosine at the CPU
    # time recorded after the previous epoch and at the CPU time after its own
    budget = 4 * cpu[0]
    capped = fit(ANIModel([1, 6, 7, 8, 9], hidden=[8], seed=2), train, val,
                 TrainConfig(epochs=1000, max_cpu_s=budget, **config))
    rows = capped.history
    assert rows[-1]["cpu_s"] > budget and rows[-2]["cpu_s"] <= budget  # stopped at the first epoch past the cap
    for before, row in zip(rows, rows[1:]):
        upper = _cosine(1e-2, 1e-4, min(before["cpu_s"] / budget, 1.0))
        lower = _cosine(1e-2, 1e-4, min(row["cpu_s"] / budget, 1.0))
        assert lower <= row["lr"] <= upper
    with pytest.raises(ValueError, match="max_cpu_s must be positive"):
        TrainConfig(max_cpu_s=0)
    with pytest.raises(ValueError, match="budget_cosine"):
        TrainConfig(schedule="cosine_budget")


def test_lj_regression_recovers_epsilon_and_sigma():
    reference = LennardJones(epsilon=0.996, sigma=0.34, cutoff=0.85).double()
    rng = np.random.default_rng(0)
    frames, energies, forces = [], [], []
    for _ in range(60):  # 8-atom argon clusters
        points = []
        while len(points) < 8:
            p = rng.uniform(0, 0.9, size=3)
            if all(np.linalg.norm(p - q) > 0.33 for q in points):
                points.append(p)
        x = torch.tensor(np.array(points), requires_grad=True)
        e = reference(x)
        (g,) = torch.autograd.grad(e, x)
        frames.append(x.detach().numpy())
        energies.append(float(e))
        forces.append(-g.numpy())
    data = Dataset.from_frames(np.full(8, 18), frames, energies, forces)
    train, val = split(data, (50, 10), seed=0)
    model = PairPotential([18], epsilon=0.5, sigma=0.3, cutoff=0.85).double()
    fit(model, train, val, TrainConfig(epochs=60, batch_size=10, lr=0.03, force_weight=1.0, schedule="none",
                                       early_stopping_patience=60, clip_grad_norm=None))
    epsilon, sigma = model.parameters_kj_nm()
    assert float(epsilon[0].detach()) == pytest.approx(0.996, rel=0.02)
    assert float(sigma[0].detach()) == pytest.approx(0.34, rel=0.005)


def test_uncertainty_weighted_loss_formula_and_optimum():
    losses = torch.tensor([0.3, 2.5], dtype=torch.float64)
    log_sigma = torch.tensor([0.1, -0.4], dtype=torch.float64, requires_grad=True)
    sigma = torch.exp(log_sigma.detach())
    expected = sum(float(losses[i]) / (2 * float(sigma[i]) ** 2) + float(torch.log(sigma[i])) for i in range(2))
    assert float(uncertainty_weighted_loss(losses, log_sigma)) == pytest.approx(expected, rel=1e-12)
    optimizer = torch.optim.Adam([log_sigma], lr=0.05)
    for _ in range(600):
        optimizer.zero_grad()
        uncertainty_weighted_loss(losses, log_sigma).backward()
        optimizer.step()
    # the minimum over sigma_i of L_i / (2 sigma_i^2) + log sigma_i is at sigma_i^2 = L_i
    np.testing.assert_allclose(torch.exp(2 * log_sigma).detach().numpy(), losses.numpy(), rtol=1e-3)


def test_aniencoder_sigmas_move_toward_task_errors(qm9):
    train, val, _ = qm9
    model = ANIEncoder([1, 6, 7, 8, 9], latent=8, encoder_hidden=[32], head_hidden=[16], seed=0)
    result = fit(model, train, val, TrainConfig(epochs=5, batch_size=20, lr=1e-2, seed=0))
    last = result.history[-1]
    assert "sigma_task" in last and last["train_loss_reconstruction"] > 0
    # start: sigma = 1 for both; the losses are far from 1, so the sigma^2 must have moved toward them (log scale)
    for sigma_key, loss in (("sigma_task", last["train_loss_energy"]),
                            ("sigma_reconstruction", last["train_loss_reconstruction"])):
        assert abs(np.log(last[sigma_key] ** 2) - np.log(loss)) < abs(np.log(loss)) - 0.1, (sigma_key, loss)
    assert result.history[-1]["train_loss_reconstruction"] < result.history[0]["train_loss_reconstruction"]


def test_learning_curve_plot_and_random_search(qm9, tmp_path):
    train, val, test = qm9
    rows = learning_curve(lambda: ANIModel([1, 6, 7, 8, 9], hidden=[16], seed=0), train, val, test, [40, 200],
                          TrainConfig(epochs=3, batch_size=20, lr=3e-3))
    assert [r["size"] for r in rows] == [40, 200] and all(r["n_frames"] == len(test) for r in rows)
    plot_learning_curve(rows, tmp_path / "curve.png")
    with open(tmp_path / "curve.png", "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    trials = random_search(lambda hidden=16: ANIModel([1, 6, 7, 8, 9], hidden=[hidden], seed=0),
                           {"lr": (1e-3, 1e-2, "log"), "hidden": [8, 16]}, train, val, n_trials=2,
                           config=TrainConfig(epochs=2, batch_size=40), seed=0)
    assert len(trials) == 2 and trials[0]["val_loss"] <= trials[1]["val_loss"]
    assert 1e-3 <= trials[0]["params"]["lr"] <= 1e-2 and trials[0]["params"]["hidden"] in (8, 16)


def test_bad_training_input_errors(ethanol, qm9):
    train, val, _ = qm9
    with pytest.raises(ValueError, match="no force labels"):
        fit(ANIModel([1, 6, 7, 8, 9], hidden=[8]), train, val, TrainConfig(epochs=1, force_weight=1.0))
    with pytest.raises(ValueError, match=r"atomic numbers \[7\] are not among"):
        fit(ANIModel([1, 6, 8], hidden=[8]), train, val, TrainConfig(epochs=1))
    with pytest.raises(ValueError, match="optimizer must be"):
        TrainConfig(optimizer="lbfgs")
    with pytest.raises(ValueError, match="unknown training options"):
        TrainConfig.from_dict({"learning_rate": 1e-3})


def test_cli_train_writes_run_directory(ethanol, tmp_path):
    from nnforce.cli import main

    data = ethanol_xtb(120)
    data.save(tmp_path / "ethanol.npz")
    config = tmp_path / "config.yaml"
    config.write_text(f"""data: {{path: {tmp_path / 'ethanol.npz'}}}
split: [60, 20, 40]
model: {{type: schnet, features: 16, interactions: 1, num_gaussians: 8}}
train: {{epochs: 2, batch_size: 10, force_weight: 5}}
output: {tmp_path / 'run'}
""")
    assert main(["train", str(config), "--no-progress", "--lr", "0.002"]) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["epochs"] == 2 and metrics["test"]["n_frames"] == 40
    state = load_checkpoint(tmp_path / "run" / "best.ckpt")
    assert state["model_spec"]["type"] == "schnet" and state["model_spec"]["elements"] == [1, 6, 8]
    assert state["metadata"]["data_hash"] == data.content_hash()
    assert main(["train", "--data", str(tmp_path / "missing.npz"), "-o", str(tmp_path / "x")]) == 2
