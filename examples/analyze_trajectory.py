"""Conformational analysis of a real trajectory: adenylate kinase (MDAnalysisTests' AdK DCD, 98 frames).

Features: distances between the C-alphas of every 10th residue; TICA, k-means,
a Markov model, plots and a self-contained HTML report — the same pipeline `nnforce analyze` runs.

Run:  PYTHONPATH=python python examples/analyze_trajectory.py [--out DIR] [--smoke]
"""
import argparse
import os
import tempfile

from nnforce.analysis import analyze


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=None, help="report directory (default: a temporary one)")
    parser.add_argument("--smoke", action="store_true", help="fewer clusters and lags, for the test suite")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    import MDAnalysisTests.datafiles as data  # real trajectories shipped by the MDAnalysisTests package

    out = args.out or tempfile.mkdtemp(prefix="adk-analysis-")
    every_tenth = " or ".join(f"resid {r}" for r in range(0, 214, 10))  # 22 C-alphas, 231 distances
    result = analyze(
        [data.DCD], data.PSF, out,
        features=[f"distances:selection=name CA and ({every_tenth})"],
        reduce="tica:lag=2,dim=2", cluster="kmeans:k=5" if args.smoke else "kmeans:k=10",
        msm="lag=2,n_sets=2,lags=1+2+4" if args.smoke else "lag=2,n_sets=2,lags=1+2+4+8", seed=args.seed, dt_ps=1.0)
    for key, value in sorted(result["numbers"].items()):
        print(f"{key}: {value}")
    print("report:", os.path.join(out, "analysis.html"))
    return result


if __name__ == "__main__":
    main()
