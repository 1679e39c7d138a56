"""Trajectory analysis: mdtraj featurization (streamed, Dask-parallel), PCA/TICA, clustering, Markov state
models, free-energy plots and an HTML report. See docs/analysis.md.

Submodules are imported on first use, so ``import nnforce.analysis`` stays light.
"""
import importlib

_EXPORTS = {
    "features": ("Featurizer", "Distances", "ResidueDistances", "Contacts", "Torsions", "Angles", "RMSD", "DSSP",
                 "Coordinates", "Custom", "parse_features", "compute_torsions", "compute_distances", "compute_contacts",
                 "compute_angles"),
    "specs": ("parse_spec",),
    "stream": ("featurize", "featurize_file", "featurize_dask", "save_features", "load_features", "iter_chunks"),
    "reduce": ("PCA", "TICA", "Covariances", "vamp2_score"),
    "cluster": ("KMeans", "MiniBatchKMeans", "RegularSpace", "KCenters", "HDBSCAN", "KMedoidsRMSD", "make_clusterer"),
    "msm": ("MSM", "estimate_msm", "implied_timescales", "bootstrap", "bootstrap_timescales", "ck_test"),
    "structures": ("write_state_structures", "representative_frames", "state_representatives", "sample_frames"),
    "pipeline": ("analyze", "phi_psi_free_energy_png"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name):
    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
