"""Force training on stored AEVs and their term slopes against recomputing the AEV every batch (nnforce.train.fit,
``feature_cache``): the cost per training frame of an epoch, side by side.

The data is a finished demo run's distillation set (``demo-output/distil/data.npz``: alanine dipeptide frames with
ANI-1x energies and forces) and the model the demo's ANI-style student architecture (``nnforce.demo.settings``),
seeded. Each round trains one epoch on each path from the same weights (interleaved: the machine is shared), one
thread, batches of 16, energy + force loss; both paths' losses are printed so the reader sees they agree. The cache
build (features and term slopes of every frame) is timed once. Writes ``bench/results/train_force_cache.md``.

Usage: python bench/train_force_cache.py [--data demo-output/distil/data.npz] [--frames 800] [--rounds 3]
"""
import argparse
import copy
import os
import sys
import time

from _common import RESULTS, write_table  # (sets one torch thread)

import numpy as np  # noqa: E402
import torch  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.path.join(os.path.dirname(RESULTS), "..", "demo-output", "distil",
                                                       "data.npz"))
    parser.add_argument("--frames", type=int, default=800)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not os.path.isfile(args.data):
        raise SystemExit(f"train_force_cache: error: no data {args.data} (run `nnforce demo` first or pass --data)")
    from nnforce.data import Dataset
    from nnforce.demo.settings import SETTINGS
    from nnforce.train import TrainConfig
    from nnforce.train.config import build_model
    from nnforce.train.feature_cache import FeatureCache
    from nnforce.train.fit import _normalisers, _prepare, _train_epoch, _Labels

    data = Dataset.load(args.data)
    data = data.subset(np.arange(min(args.frames, len(data))))
    spec = dict(SETTINGS["full"]["model"], seed=0)
    config = TrainConfig(batch_size=16, lr=1e-3, energy_weight=10.0, force_weight=100.0, seed=0)
    model = build_model(spec)
    _prepare(model, data, config)
    var_e, mean_f2 = _normalisers(data, model)
    residual = _Labels(model, data).residual
    started = time.perf_counter()
    cache = FeatureCache(model, data, torch.float32, forces=True)
    build_s = time.perf_counter() - started
    load = os.getloadavg()
    times = {"recomputed": [], "stored": []}
    losses = {"recomputed": [], "stored": []}
    for k in range(args.rounds):
        for name, use in (("recomputed", None), ("stored", cache)):
            trained = copy.deepcopy(model).train()
            optimizer = torch.optim.Adam(trained.parameters(), lr=config.lr)
            wall, cpu = time.perf_counter(), time.process_time()
            sums = _train_epoch(trained, optimizer, data, residual, config, var_e, mean_f2, torch.float32, k, False,
                                use)
            times[name].append(((time.perf_counter() - wall) * 1e3 / len(data),
                                (time.process_time() - cpu) * 1e3 / len(data)))
            losses[name].append(sums["loss"] / len(data))
    median = {name: np.median(np.array(values), axis=0) for name, values in times.items()}
    rows = [[name, f"{median[name][0]:.3f}", f"{median[name][1]:.3f}", ", ".join(f"{v:.6g}" for v in losses[name])]
            for name in times]
    stored_gib = cache.bytes() / 2 ** 30
    dense_gib = int(data.offsets[-1]) * model.aev.length * 3 * int(data.n_atoms.max()) * 4 / 2 ** 30
    notes = [f"{len(data)} frames of `{os.path.relpath(args.data)}` ({int(data.n_atoms.max())} atoms), the demo's "
             f"student architecture (hidden {spec['hidden']}, {model.aev.length} AEV features, float32), batches of "
             f"16, energy + force loss, one thread, {args.rounds} interleaved rounds of one epoch per path from the "
             f"same weights. Cache build (features and term slopes of every frame): {build_s:.1f} s "
             f"({build_s * 1e3 / len(data):.2f} ms per frame), {stored_gib:.2f} GiB stored (a dense Jacobian "
             f"[atoms, features, 3 x atoms] would take {dense_gib:.2f} GiB). Load average before: {load[0]:.1f}.", "",
             f"Stored / recomputed, per frame: {median['recomputed'][0] / median['stored'][0]:.1f}x faster (wall), "
             f"{median['recomputed'][1] / median['stored'][1]:.1f}x (CPU)."]
    write_table("train_force_cache.md", "Force training on stored AEVs and term slopes against recomputing the AEV",
                ["path", "ms per training frame (wall, median)", "ms per frame (CPU received)",
                 "epoch loss, per round"], rows, notes)


if __name__ == "__main__":
    sys.exit(main())
