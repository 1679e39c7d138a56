"""Everything that shapes a demo run, per mode. Lengths nm, times fs/ps as named, temperatures K; MSM lags in saved
frames of the replicas' trajectories."""

ELEMENTS = [1, 6, 7, 8]  # H, C, N, O

SETTINGS = {
    "full": {
        "sample_starts_deg": [(-80.0, 150.0), (-70.0, -40.0), (60.0, 45.0), (-150.0, 60.0)],
        "sample_temperature_k": 500.0,
        "sample_timestep_fs": 1.0,
        "sample_friction_per_ps": 5.0,
        "sample_equilibration_steps": 5000,
        "sample_interval_steps": 100,
        "sample_frames_per_start": 450,
        "split": (1500, 150, 150),
        "model": {"type": "ani", "elements": ELEMENTS, "hidden": [64, 32]},
        # the format the ensemble runs: "pt2" (compiled with to_pt2 in float32, ~2x faster than TorchScript for this
        # model; bench/results/pt2.md) or "torchscript"; the compile time comes out of the ensemble's time budget
        "model_format": "pt2",
        "pt2_precision": "single",
        "ensemble_min_budget_s": 90.0,
        # the ablation's best settings for the ANI-style model (bench/results/train_accuracy.md): lr 3e-3 annealed by a
        # cosine over the time budget, force weight 100; no early stop (the best validation epoch is kept)
        "train": {"epochs": 400, "batch_size": 16, "lr": 3e-3, "force_weight": 100.0, "schedule": "budget_cosine",
                  "min_lr": 1e-5, "plateau_patience": 4, "early_stopping_patience": 400, "max_time_s": 330.0},
        # the ensemble: NNForce replicas seeded across the four basins, batched in one Context
        "ensemble_replicas_per_basin": 4,
        "ensemble_temperature_k": 300.0,
        "ensemble_timestep_fs": 1.0,
        "ensemble_friction_per_ps": 1.0,
        "ensemble_minimize_iterations": 200,
        "ensemble_equilibration_steps": 500,  # after minimization, not saved; also times NNForce for the budget
        "ensemble_equilibration_friction_per_ps": 10.0,  # a minimized start gives half its kinetic energy away
        "ensemble_steps": 10000,  # per replica, at most
        "ensemble_min_steps": 2000,
        "ensemble_time_budget_s": 210.0,  # fewer production steps (at least ensemble_min_steps) if NNForce is slower
        "ensemble_trajectory_interval": 25,
        "teacher_check_frames": 100,
        # conformational analysis (lags in saved frames)
        "tica_lag_frames": 10,
        "tica_dim": 3,
        "clusters": 16,
        "msm_lag_frames": 10,
        "its_lags_frames": [1, 2, 5, 10, 20, 40],
        "its_processes": 3,
        "bootstrap_samples": 100,
        "max_metastable_sets": 4,
        "ck_multiples": 4,
        "phi_psi_bins": 36,
    },
}
# the fast mode the tests run: the same pipeline with fewer frames, epochs and steps
SETTINGS["small"] = dict(
    SETTINGS["full"],
    sample_starts_deg=[(-80.0, 150.0), (-70.0, -40.0), (60.0, 45.0)],
    sample_equilibration_steps=2000,
    sample_frames_per_start=80,
    split=(160, 40, 40),
    model={"type": "ani", "elements": ELEMENTS, "hidden": [32, 16]},
    # lr 3e-3 annealed by a cosine and force weight 100: the settings bench/train_ablation.py found best for the
    # ANI-style model (bench/results/train_accuracy.md); a plateau schedule never lowered the lr in 15 epochs
    train={"epochs": 15, "batch_size": 16, "lr": 3e-3, "force_weight": 100.0, "schedule": "cosine",
           "plateau_patience": 4, "early_stopping_patience": 10, "max_time_s": None},
    ensemble_replicas_per_basin=2,
    ensemble_timestep_fs=0.5,
    ensemble_friction_per_ps=10.0,  # thermalises within the short run
    ensemble_minimize_iterations=50,
    ensemble_equilibration_steps=100,
    ensemble_steps=600,
    ensemble_min_steps=600,
    ensemble_time_budget_s=None,  # fixed length: the test checks the frame count
    ensemble_trajectory_interval=10,
    teacher_check_frames=20,
    tica_lag_frames=2,
    clusters=8,
    msm_lag_frames=2,
    its_lags_frames=[1, 2, 4, 8],
    its_processes=2,
    bootstrap_samples=20,
    phi_psi_bins=20,
)
