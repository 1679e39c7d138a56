"""Link atoms for the mechanical embedding (openmm-ml 1.8's behaviour, nnforce's code).

Where the ML region cuts a covalent bond (a Topology bond between an ML atom and an MM atom), the model sees the
region capped with a hydrogen: a virtual site on the ML atom -> MM atom bond, at a fixed distance from the ML atom
(default: the ML atom's covalent radius plus hydrogen's; ``linkAtomDistances=[(i, j, distance), ...]`` sets it per
bond). The cap is a massless particle appended to the System (and an atom, element H, appended to a copy of the
Topology in a chain of its own), with no MM interactions; the force the model puts on it is passed on to the two
atoms of the bond by OpenMM's virtual-site rules. The MM bonded terms the capped fragment accounts for are removed
with the region's own: angles centred on an ML atom, proper torsions about an ML-ML bond, impropers centred on an ML
atom, CMAP pairs about two ML-ML bonds (see :func:`capped_region_rule`).

Default distances: covalent radii of Pyykko and Atsumi (Chem. Eur. J. 15, 2009, 188-197) with metals reduced by 10%,
the DFT-D3 set (simple-dftd3's ``covalent_rad_2009``), in pm.
"""
import copy

import openmm
import openmm.app as app
import openmm.unit as unit

#: covalent radii in pm by atomic number (index 0 unused), Pyykko-Atsumi 2009 with metals -10% (DFT-D3's set)
COVALENT_RADII_PM = (
    0,
    32, 46,
    120, 94, 77, 75, 71, 63, 64, 67,
    140, 125, 113, 104, 110, 102, 99, 96,
    176, 154, 133, 122, 121, 110, 107, 104, 100, 99, 101, 109, 112, 109, 115, 110, 114, 117,
    189, 167, 147, 139, 132, 124, 115, 113, 113, 108, 115, 123, 128, 126, 126, 123, 132, 131,
    209, 176, 162, 147, 158, 157, 156, 155, 151, 152, 151, 150, 149, 149, 148, 153,
    146, 137, 131, 123, 118, 116, 111, 112, 113, 132, 130, 130, 136, 131, 138, 142,
    201, 181, 167, 158, 152, 153, 154, 155, 149, 149, 151, 151, 148, 150, 156, 158,
    145, 141, 134, 129, 127, 121, 116, 115, 109, 122, 136, 143, 146, 158, 148, 157,
)


def find_link_bonds(topology, atoms):
    """The Topology bonds the region ``atoms`` cuts, as ``(ml_atom, mm_atom)`` pairs in the Topology's bond order."""
    inside = set(atoms)
    bonds = []
    for bond in topology.bonds():
        a, b = bond.atom1.index, bond.atom2.index
        if (a in inside) != (b in inside):
            bonds.append((a, b) if a in inside else (b, a))
    return bonds


def _distance_table(link_atom_distances, num_atoms):
    table = {}
    for entry in link_atom_distances or ():
        try:
            i, j, distance = entry
        except (TypeError, ValueError):
            raise ValueError(f"linkAtomDistances entries are (atom1, atom2, distance), got {entry!r}") from None
        value = distance.value_in_unit(unit.nanometer) if unit.is_quantity(distance) else float(distance)
        if not value > 0.0:
            raise ValueError(f"linkAtomDistances: the distance for the bond ({i}, {j}) must be positive, got {distance}")
        if not (0 <= int(i) < num_atoms and 0 <= int(j) < num_atoms):
            raise ValueError(f"linkAtomDistances: atom index out of range in ({i}, {j}); the Topology has "
                             f"{num_atoms} atoms")
        table[(min(int(i), int(j)), max(int(i), int(j)))] = value
    return table


def link_distance_nm(topology_atoms, ml_atom, mm_atom, table):
    """The cap's distance from ``ml_atom`` (nm): from ``table`` if set for this bond, else the radii sum."""
    key = (min(ml_atom, mm_atom), max(ml_atom, mm_atom))
    if key in table:
        return table[key]
    element = topology_atoms[ml_atom].element
    if element is None:
        raise ValueError(f"atom {ml_atom} has no element, so its link atom has no default distance; give it in "
                         "linkAtomDistances")
    return (COVALENT_RADII_PM[element.atomic_number] + COVALENT_RADII_PM[1]) / 1000.0


def add_link_atoms(topology, system, link_bonds, link_atom_distances=None):
    """Append one capping hydrogen per link bond to ``system`` (in place) and to a copy of ``topology``.

    Returns ``(new_topology, cap_indices)`` (``(topology, [])`` when there is no link bond). Each cap is a massless ``LocalCoordinatesSite`` on its bond's ML atom,
    pointing to the MM atom; NonbondedForces give it no charge and no Lennard-Jones, CustomNonbondedForces zero
    parameters and an exclusion with every other particle (then NonbondedForces get the same exceptions, so the two
    kinds keep equal exclusion sets).
    """
    atoms = list(topology.atoms())
    table = _distance_table(link_atom_distances, len(atoms))
    capped = set()
    for ml_atom, mm_atom in link_bonds:
        if mm_atom in capped:
            raise ValueError(f"the ML region is bonded twice to MM atom {mm_atom}: its two link atoms would sit on "
                             "top of each other; put that atom in the ML region or take one of its neighbours out")
        capped.add(mm_atom)
    if not link_bonds:
        return topology, []  # nothing to add: the given Topology (never modified)
    new_topology = copy.deepcopy(topology)
    caps = []
    if link_bonds:
        chain = new_topology.addChain()
        for k in range(len(link_bonds)):
            residue = new_topology.addResidue(f"V{k}", chain)
            caps.append(new_topology.addAtom(f"V{k}", app.element.hydrogen, residue).index)
    for (ml_atom, mm_atom), cap in zip(link_bonds, caps):
        distance = link_distance_nm(atoms, ml_atom, mm_atom, table)
        index = system.addParticle(0.0)
        if index != cap:
            raise ValueError(f"the System has {index} particles before the link atoms but the Topology has "
                             f"{cap}; pass the Topology the System was created from")
        # origin on the ML atom, x axis along ML -> MM, the cap at `distance` along x
        system.setVirtualSite(index, openmm.LocalCoordinatesSite([ml_atom, mm_atom], [1.0, 0.0], [-1.0, 1.0],
                                                                 [0.0, 0.0], openmm.Vec3(distance, 0.0, 0.0)))
        custom = [f for f in system.getForces() if isinstance(f, openmm.CustomNonbondedForce)]
        for force in system.getForces():
            if isinstance(force, openmm.NonbondedForce):
                force.addParticle(0.0, 0.0, 0.0)
            elif isinstance(force, openmm.CustomNonbondedForce):
                force.addParticle([0.0] * force.getNumPerParticleParameters())
        if custom:
            for force in system.getForces():
                for other in range(index):
                    if isinstance(force, openmm.NonbondedForce):
                        force.addException(other, index, 0.0, 0.0, 0.0)
                    elif isinstance(force, openmm.CustomNonbondedForce):
                        force.addExclusion(other, index)
    return new_topology, caps


def capped_region_rule(topology, atoms):
    """Which MM bonded terms the capped ML region accounts for (openmm-ml 1.8's rules), as a predicate on a term's
    atom tuple (2: bond, 3: angle, 4: torsion, 8: CMAP).

    With ``S`` the region and ``X`` the region plus the atoms bonded to it: a bond with both atoms in ``S``; an angle
    ``a-b-c`` with ``b`` in ``S`` and ``a``, ``c`` in ``X``; a proper torsion (``a-b``, ``b-c``, ``c-d`` bonded) with
    ``b``, ``c`` in ``S``; an improper (one atom bonded to the three others) whose centre is in ``S``; a CMAP term
    whose two torsions each have their middle atoms in ``S`` and their ends in ``X``. A term whose atoms the
    Topology does not connect (no bonds in the Topology) belongs to the region when all its atoms are in ``S``.
    """
    inside = set(atoms)
    neighbours = {}
    for bond in topology.bonds():
        a, b = bond.atom1.index, bond.atom2.index
        neighbours.setdefault(a, set()).add(b)
        neighbours.setdefault(b, set()).add(a)
    expanded = set(inside)
    for a in inside:
        expanded |= neighbours.get(a, set())

    def bonded(a, b):
        return b in neighbours.get(a, ())

    def torsion(a, b, c, d):
        if bonded(a, b) and bonded(b, c) and bonded(c, d):
            return b in inside and c in inside
        for centre, others in ((a, (b, c, d)), (b, (a, c, d)), (c, (a, b, d)), (d, (a, b, c))):
            if all(bonded(centre, o) for o in others):
                return centre in inside
        return all(x in inside for x in (a, b, c, d))

    def rule(term):
        term = tuple(int(x) for x in term)
        if len(term) == 2:
            return term[0] in inside and term[1] in inside
        if len(term) == 3:
            a, b, c = term
            return b in inside and a in expanded and c in expanded
        if len(term) == 4:
            return torsion(*term)
        if len(term) == 8:
            return all(t[1] in inside and t[2] in inside and t[0] in expanded and t[3] in expanded
                       for t in (term[:4], term[4:]))
        return all(x in inside for x in term)

    return rule
