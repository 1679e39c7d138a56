"""Everything that shapes a demo run, per mode. Lengths nm, times fs/ps as named, temperatures K."""

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
        "train": {"epochs": 400, "batch_size": 16, "lr": 2e-3, "force_weight": 10.0, "schedule": "plateau",
                  "plateau_patience": 4, "early_stopping_patience": 15, "max_time_s": 330.0},
        "sim_temperature_k": 300.0,
        "sim_timestep_fs": 1.0,
        "sim_friction_per_ps": 1.0,
        "sim_equilibration_steps": 2000,
        "sim_steps": 45000,
        "sim_time_budget_s": 240.0,  # fewer production steps (at least sim_min_steps) if NNForce runs slower
        "sim_min_steps": 10000,
        "sim_report_interval": 100,
        "sim_trajectory_interval": 50,
        "teacher_check_frames": 100,
        "tica_lag_frames": 10,
        "clusters": 12,
        "phi_psi_bins": 30,
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
    train={"epochs": 15, "batch_size": 16, "lr": 2e-3, "force_weight": 10.0, "schedule": "plateau",
           "plateau_patience": 4, "early_stopping_patience": 10, "max_time_s": None},
    sim_timestep_fs=0.5,
    sim_friction_per_ps=10.0,  # thermalises within the short run
    sim_equilibration_steps=200,
    sim_steps=2000,
    sim_time_budget_s=None,  # fixed length: the test checks the frame count
    sim_report_interval=20,
    sim_trajectory_interval=20,
    teacher_check_frames=20,
    tica_lag_frames=5,
    clusters=4,
    phi_psi_bins=20,
)
