"""Atoms against a model: element coverage (:func:`check_elements`, :func:`missing_hydrogens_warning`) and ML-atom
selections (:func:`validate_atoms`, :func:`parse_atom_selection`, :func:`atomic_numbers_of`), the checks every caller
makes before a model meets a structure. ``nnforce.export``, ``nnforce.simulate``, ``nnforce.force``,
``nnforce.mlmm`` and ``nnforce.potentials`` use these; the model's own metadata is :mod:`nnforce.contract`'s.
"""
from typing import List


def _element_name(z):
    from openmm.app import Element

    try:
        return f"{Element.getByAtomicNumber(z).symbol} (Z={z})"
    except KeyError:
        return f"Z={z}"


def missing_hydrogens_warning(model_elements, atomic_numbers, what="the structure"):
    """A warning (str) when a model trained with hydrogen is given heavy atoms and no hydrogen at all (a PDB file
    from a crystal structure usually lacks them, and the model then sees radicals); None otherwise.

    Examples
    --------
    >>> missing_hydrogens_warning([1, 6, 8], [6, 8]) is not None
    True
    >>> missing_hydrogens_warning([1, 6, 8], [6, 1, 1, 1, 1]) is None
    True
    """
    numbers = [int(z) for z in atomic_numbers]
    if model_elements is None or 1 not in {int(z) for z in model_elements} or not numbers or 1 in numbers:
        return None
    return (f"{what} has {len(numbers)} atoms and no hydrogen: the model was trained on molecules with their "
            "hydrogens, so its energies here are those of radicals. If the file lacks them (X-ray structures do), "
            "add them first (e.g. openmm.app.Modeller.addHydrogens or pdbfixer).")


def check_elements(model_elements, atomic_numbers, what="the structure"):
    """Raise ValueError if ``atomic_numbers`` contains an element the model was not trained on.

    Parameters
    ----------
    model_elements : sequence of int or None
        The model's elements (None skips the check: nothing is known).
    atomic_numbers : sequence of int
        Those of the atoms the model will see.
    what : str
        How the error message names those atoms.

    Examples
    --------
    >>> check_elements([1, 6, 8], [6, 1, 1, 1, 1])
    >>> check_elements([1, 6, 8], [6, 17])
    Traceback (most recent call last):
    ...
    ValueError: the structure contains Cl (Z=17), which the model does not know ...
    """
    if model_elements is None:
        return
    known = set(int(z) for z in model_elements)
    missing = sorted(set(int(z) for z in atomic_numbers) - known)
    if missing:
        raise ValueError(
            f"{what} contains {', '.join(_element_name(z) for z in missing)}, which the model does not know (it "
            f"was trained on {', '.join(_element_name(z) for z in sorted(known))}). Use a model trained on these "
            "elements, or treat those atoms with an MM force field (ML/MM: --forcefield and --ml-atoms).")


def validate_atoms(indices, n_atoms, what="ml_atoms") -> List[int]:
    """Check a list of atom indices for a model region: non-empty, in range, no repeats.

    The one place every caller (``simulate``, ``mlmm``, ``force``) validates ML atoms.

    Parameters
    ----------
    indices : sequence of int
    n_atoms : int
        Atoms in the system.
    what : str
        Name used in the messages.

    Returns
    -------
    list of int
        The indices as ints, in the given order.

    Raises
    ------
    ValueError
        Empty, out of range or repeated indices, saying which.

    Examples
    --------
    >>> validate_atoms([2, 0], 5)
    [2, 0]
    """
    indices = [int(i) for i in indices]
    if not indices:
        raise ValueError(f"{what} is empty: the selection matches no atom; give the atoms the model should describe")
    bad = [i for i in indices if i < 0 or i >= n_atoms]
    if bad:
        raise ValueError(f"{what} has indices outside 0..{n_atoms - 1}: {bad[:5]} (out of range for {n_atoms} atoms)")
    if len(set(indices)) != len(indices):
        raise ValueError(f"{what} lists an atom twice (duplicate indices); list each ML atom once")
    return indices


def parse_atom_selection(selection, topology) -> List[int]:
    """Atom indices from a list, a range string (``"0-21,30"``) or an mdtraj selection (``"resname LIG"``).

    Parameters
    ----------
    selection : str or sequence of int
    topology : openmm.app.Topology

    Returns
    -------
    list of int
        Sorted, validated with :func:`validate_atoms`.

    Examples
    --------
    >>> parse_atom_selection("0-2,4", topology)  # doctest: +SKIP
    [0, 1, 2, 4]
    """
    if isinstance(selection, str):
        text = selection.strip()
        if text and all(part.strip().replace("-", "").isdigit() for part in text.split(",")):
            indices = []
            for part in text.split(","):
                if "-" in part.strip():
                    first, last = part.split("-")
                    indices.extend(range(int(first), int(last) + 1))
                else:
                    indices.append(int(part))
        else:
            import mdtraj

            try:
                indices = mdtraj.Topology.from_openmm(topology).select(text).tolist()
            except Exception as error:
                raise ValueError(f"bad ML atom selection {text!r}: {error}") from None
    else:
        indices = [int(i) for i in selection]
    return sorted(validate_atoms(indices, topology.getNumAtoms(), f"the ML atom selection {selection!r}"))


def atomic_numbers_of(topology, atoms=None) -> List[int]:
    """Atomic numbers of (some of) a topology's atoms; ValueError for an atom without an element.

    Parameters
    ----------
    topology : openmm.app.Topology
    atoms : sequence of int, optional
        Indices; all atoms when omitted.

    Returns
    -------
    list of int

    Examples
    --------
    >>> atomic_numbers_of(topology, [0, 1])  # doctest: +SKIP
    [6, 17]
    """
    chosen = list(topology.atoms())
    if atoms is not None:
        chosen = [chosen[i] for i in atoms]
    numbers = []
    for atom in chosen:
        if atom.element is None:
            raise ValueError(f"atom {atom.index} ({atom.name} in {atom.residue.name}) has no element; fix the "
                             "structure file's element column (virtual sites cannot be ML atoms)")
        numbers.append(atom.element.atomic_number)
    return numbers
