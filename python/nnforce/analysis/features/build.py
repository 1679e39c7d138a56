"""Features from spec strings (:func:`parse_features`, ``FEATURE_NAMES``) and the mdtraj-style flat functions
``compute_*``: the top of the features package (it uses the feature kinds and :class:`Featurizer`)."""
from ..specs import parse_spec
from ._base import Featurizer
from .geometric import Angles, Contacts, Distances, ResidueDistances, Torsions
from .structural import DSSP, RMSD, Coordinates


FEATURE_NAMES = {
    "phi_psi": lambda **kw: Torsions(("phi", "psi"), **kw),
    "backbone_torsions": lambda **kw: Torsions(("phi", "psi", "omega"), **kw),
    "chi": lambda **kw: Torsions(("chi1", "chi2", "chi3", "chi4"), **kw),
    "torsions": Torsions,
    "distances": Distances,
    "residue_distances": ResidueDistances,
    "contacts": Contacts,
    "angles": Angles,
    "rmsd": RMSD,
    "dssp": DSSP,
    "xyz": Coordinates,
}


def parse_features(specs, reference=None):
    """Build a Featurizer from spec strings (:mod:`nnforce.analysis.specs` syntax).

    Parameters
    ----------
    specs : str or list of str
        E.g. ``"phi_psi"``, ``"torsions:kinds=phi+psi+chi1"``, ``"distances:selection=name CA"``,
        ``"contacts:cutoff_nm=0.5"``, ``"rmsd:selection=backbone"``, ``"dssp"``.
    reference : str or mdtraj.Trajectory, optional
        Used by ``rmsd`` when the spec gives no ``reference=``.

    Returns
    -------
    Featurizer

    Examples
    --------
    >>> parse_features(["phi_psi", "distances:selection=name CA"]).features[1].selection
    'name CA'
    """
    if isinstance(specs, str):
        specs = [specs]
    features = []
    for spec in specs:
        name, options = parse_spec(spec, "feature")
        if name not in FEATURE_NAMES:
            raise ValueError(f"unknown feature {name!r}; choose from {', '.join(FEATURE_NAMES)}")
        for key in ("kinds", "residues"):  # lists even when one item is given
            if key in options and not isinstance(options[key], (list, str)):
                options[key] = [options[key]]
        if name == "rmsd" and "reference" not in options:
            if reference is None:
                raise ValueError("rmsd feature needs a reference structure: rmsd:reference=ref.pdb (or --top is used)")
            options["reference"] = reference
        _check_option_names(spec, name, options)
        try:
            features.append(FEATURE_NAMES[name](**options))
        except TypeError as error:
            raise ValueError(f"feature {spec!r}: {error}") from None
    return Featurizer(features)


def _check_option_names(spec, name, options):
    """Raise ValueError for an option the feature does not take, listing those it does (and the nearest)."""
    import difflib
    import inspect

    accepted = [p for p in inspect.signature(FEATURE_NAMES[name].__init__).parameters if p != "self"]
    for key in options:
        if key not in accepted:
            near = difflib.get_close_matches(key, accepted, n=1)
            raise ValueError(f"feature {spec!r}: {name} takes no option {key!r}"
                             f"{f' (did you mean {near[0]!r}?)' if near else ''}; its options: {', '.join(accepted) or 'none'}")


# ----------------------------------------------------------------------------------------------------------
# flat functions on trajectories, mdtraj-style
# ----------------------------------------------------------------------------------------------------------

def _flat(feature, traj):
    values = feature.transform(traj)
    return list(feature.labels), values


def compute_torsions(traj, kinds=("phi", "psi"), selection=None, sincos=False, periodic=True):
    """Backbone/side-chain torsions of every frame, like ``mdtraj.compute_phi`` but for several kinds at once.

    Parameters
    ----------
    traj : mdtraj.Trajectory
    kinds : sequence of str
        From ``phi``, ``psi``, ``omega``, ``chi1`` .. ``chi4``.
    selection : str, optional
        Only residues with an atom in this mdtraj selection.
    sincos : bool
        Two columns (sin, cos) per angle instead of the angle in radians.
    periodic : bool
        Use the trajectory's box (minimum image).

    Returns
    -------
    labels : list of str
        ``"phi ALA2"``, ... (with `` sin``/`` cos`` when ``sincos``).
    values : numpy.ndarray, shape (n_frames, n_columns), float32
        Radians in (-pi, pi], or sin/cos.

    Examples
    --------
    >>> import mdtraj
    >>> from nnforce.demo.molecule import ALANINE_PDB
    >>> labels, angles = compute_torsions(mdtraj.load(ALANINE_PDB))
    >>> labels, angles.shape
    (['phi ALA2', 'psi ALA2'], (1, 2))
    """
    return _flat(Torsions(kinds, selection=selection, sincos=sincos, periodic=periodic), traj)


def compute_distances(traj, selection="name CA", selection2=None, pairs=None, periodic=True, exclude_neighbors=0):
    """Atom-pair distances (nm) of every frame; see :class:`Distances` for the options.

    Returns
    -------
    tuple
        ``(labels, values)``: a label per pair and float32 nm distances of shape (n_frames, n_pairs).

    Examples
    --------
    >>> labels, d = compute_distances(traj, "name CA")  # doctest: +SKIP

    Parameters
    ----------
    traj : mdtraj.Trajectory
    selection, selection2, pairs, periodic, exclude_neighbors
        As for :class:`Distances`.
    """
    return _flat(Distances(selection, selection2, pairs, periodic, exclude_neighbors), traj)


def compute_contacts(traj, residues=None, cutoff_nm=0.45, scheme="closest-heavy", exclude_neighbors=2,
                     periodic=True):
    """Residue-residue contacts (1 within ``cutoff_nm``, else 0) of every frame; see :class:`Contacts`.

    Returns
    -------
    labels : list of str
    values : numpy.ndarray, shape (n_frames, n_pairs), float32

    Examples
    --------
    >>> labels, c = compute_contacts(traj, cutoff_nm=0.5)  # doctest: +SKIP

    Parameters
    ----------
    traj : mdtraj.Trajectory
    residues, cutoff_nm, scheme, exclude_neighbors, periodic
        As for :class:`Contacts`.
    """
    return _flat(Contacts(residues, cutoff_nm, scheme, exclude_neighbors, periodic), traj)


def compute_angles(traj, triples=None, selection="backbone", sincos=False, periodic=True):
    """Bond angles (radians, or sin/cos) of every frame; see :class:`Angles`.

    Returns
    -------
    tuple
        ``(labels, values)``: column labels and a float32 array of shape (n_frames, n_columns).

    Examples
    --------
    >>> labels, a = compute_angles(traj, selection="name N CA C")  # doctest: +SKIP

    Parameters
    ----------
    traj : mdtraj.Trajectory
    triples, selection, sincos, periodic
        As for :class:`Angles`.
    """
    return _flat(Angles(triples, selection, sincos, periodic), traj)
