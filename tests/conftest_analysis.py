"""Shared helpers for the analysis tests (imported by tests/test_analysis_*.py; not a pytest conftest).

Real data only: MDAnalysisTests' trajectories (adenylate kinase, a solvated VAL-GLU-VAL tripeptide with a
box, TIP3P water in a triclinic box) and the OpenMM alanine-dipeptide fixture (tests/fixtures/make_alanine.py).
"""
import os
import sys
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "fixtures"))
warnings.filterwarnings("ignore", message=".*netCDF4.*")
warnings.filterwarnings("ignore", message=".*(Unlikely unit cell|unitcell).*")


def data():
    import MDAnalysisTests.datafiles as d

    return d


def numpy_dihedral(p0, p1, p2, p3):
    """Independent dihedral (radians) from projections onto the plane normal to the central bond."""
    b0 = p0 - p1
    b1 = p2 - p1
    b2 = p3 - p2
    b1 = b1 / np.linalg.norm(b1, axis=-1, keepdims=True)
    v = b0 - np.sum(b0 * b1, axis=-1, keepdims=True) * b1
    w = b2 - np.sum(b2 * b1, axis=-1, keepdims=True) * b1
    x = np.sum(v * w, axis=-1)
    y = np.sum(np.cross(b1, v) * w, axis=-1)
    return np.arctan2(y, x)


def kabsch_rmsd(a, b):
    """RMSD of two (n, 3) coordinate sets after optimal superposition (SVD), in the input units."""
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    u, s, vt = np.linalg.svd(a.T @ b)
    d = np.sign(np.linalg.det(u @ vt))
    s[-1] *= d
    e = (np.sum(a * a) + np.sum(b * b) - 2 * s.sum()) / len(a)
    return np.sqrt(max(e, 0.0))


def angle_diff(a, b):
    return np.abs(np.angle(np.exp(1j * (np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)))))


def alanine():
    """(pdb, [dcd, ...]) of the cached OpenMM alanine-dipeptide simulation (made on first use, ~45 s)."""
    import make_alanine

    return make_alanine.simulate()
