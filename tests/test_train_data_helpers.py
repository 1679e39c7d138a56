"""Small real datasets for the training/export tests, cached under .cache/ (regenerated from a cold cache)."""
import os

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.path.join(ROOT, ".cache", "tests_train")

ETHANOL_Z = np.array([6, 6, 8, 1, 1, 1, 1, 1, 1])
ETHANOL_NM = 0.1 * np.array([
    [1.168181, -0.400382, 0.0], [0.0, 0.553135, 0.0], [-1.190742, -0.252290, 0.0],
    [-1.960502, 0.330205, 0.0], [2.122580, 0.129301, 0.0], [1.137658, -1.043613, 0.884707],
    [1.137658, -1.043613, -0.884707], [0.048168, 1.204880, 0.878597], [0.048168, 1.204880, -0.878597]])


def ethanol_xtb(n_frames=120):
    """GFN2-xTB Langevin MD of ethanol at 500 K (tblite), n_frames frames 5 fs apart; ~2 s cold."""
    from nnforce.data import Dataset
    from nnforce.data.label import xtb_md

    path = os.path.join(CACHE, f"ethanol_xtb_500K_{n_frames}_v1.npz")
    if os.path.exists(path):
        return Dataset.load(path)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    data = xtb_md(ETHANOL_Z, ETHANOL_NM, n_frames, interval=10, temperature_K=500.0, timestep_fs=0.5,
                  equilibration_steps=200, seed=0)
    data.save(path)
    return data


def qm9_small(n=300):
    from nnforce.data import read_qm9

    return read_qm9("U0", max_molecules=n, cache_dir=CACHE)
