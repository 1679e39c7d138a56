"""Featurizers on mdtraj trajectories: one column per feature, one label per column, fixed column order.

A feature is declared against atom/residue *selections* and bound to a topology with ``bind(topology)``,
which resolves the atom indices once (and raises a clear ``ValueError`` for an empty selection).
``transform(traj)`` then maps an ``md.Trajectory`` (a whole file or one streamed chunk) to a float32
array (n_frames, n_columns). Geometry runs on the raw coordinate array with the periodic box built once per
chunk (see ``_geometry``), so boxed trajectories cost no per-frame unit-cell penalty.

Compose features with ``Featurizer([...])`` (or ``a + b``); the columns are the features' columns in the
order given, and ``labels`` names each of them (``"phi ALA2 sin"``, ``"dist CA1-CA5"``, ...).

The package has one direction: ``_base`` (Feature, Featurizer, frames, selections) -> the feature kinds
(``geometric``: distances, contacts, torsions, angles; ``structural``: RMSD, DSSP, coordinates, custom) ->
``build`` (``parse_features`` from spec strings, the flat ``compute_*`` functions). Import from here.
"""
from ._base import Feature, Featurizer
from .build import (FEATURE_NAMES, compute_angles, compute_contacts, compute_distances, compute_torsions,
                    parse_features)
from .geometric import TORSION_KINDS, Angles, Contacts, Distances, ResidueDistances, Torsions
from .structural import DSSP, RMSD, Coordinates, Custom

__all__ = ["Feature", "Featurizer", "Distances", "ResidueDistances", "Contacts", "Torsions", "Angles", "RMSD",
           "DSSP", "Coordinates", "Custom", "parse_features", "FEATURE_NAMES", "TORSION_KINDS", "compute_torsions",
           "compute_distances", "compute_contacts", "compute_angles"]
