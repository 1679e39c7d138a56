"""Training accuracy benchmark (see docs/training.md); writes bench/results/train_accuracy.md."""
import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "python"))
os.environ.setdefault("OMP_NUM_THREADS", "1")
CACHE = os.path.join(ROOT, ".cache")

ETHANOL_FRAMES = 2000
ETHANOL_INTERVAL = 20  # steps of 0.5 fs between kept frames


def ethanol_dataset():
    """~2,000 frames of 500 K Langevin MD of ethanol on the GFN2-xTB surface, cached under .cache/."""
    from nnforce.data import Dataset
    from nnforce.data.label import xtb_md

    path = os.path.join(CACHE, f"ethanol_gfn2_500K_{ETHANOL_FRAMES}x{ETHANOL_INTERVAL}_seed0.npz")
    if os.path.exists(path):
        return Dataset.load(path)
    from ase.build import molecule

    atoms = molecule("CH3CH2OH")
    data = xtb_md(atoms.get_atomic_numbers(), atoms.get_positions() / 10.0, ETHANOL_FRAMES,
                  interval=ETHANOL_INTERVAL, temperature_K=500.0, timestep_fs=0.5, seed=0, progress=True)
    data.name = "ethanol-gfn2-500K"
    data.save(path)
    return data


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-only", action="store_true")
    args = parser.parse_args()
    if args.data_only:
        print(ethanol_dataset())
