"""``MLPotential``: openmm-ml's interface and extension API, with Systems whose ML part is an NNForce.

openmm-ml's names, argument names, defaults and meanings (``MLPotential(name, **args)``, ``createSystem``,
``createMixedSystem(..., removeConstraints=True, forceGroup=0, interpolate=False, embedding='mechanical')``,
``getSupportedEmbeddings``, ``registerImplFactory``, the ``MLPotentialImplFactory``/``MLPotentialImpl`` base classes
and the ``openmmml.potentials`` entry-point group), so a package that registers a potential for openmm-ml works
unchanged. nnforce's own families are registered under openmm-ml's model names; each is a class with

* ``supports_periodic`` / ``supports_charge`` (bool), ``elements`` (atomic numbers it knows, or None),
* ``cutoff_nm`` (the plugin neighbor list it wants, or None for a model that finds its own pairs),
* ``module(atomic_numbers, charge=..., precision=..., **options)`` -> a TorchScript module following the contract,

and runs in C++ inside NNForce (no Python in the step). Everything that can be wrong with the request (wrong file,
unknown element, a charge the model cannot take, periodic boxes it cannot do) is a ValueError raised before any
Context exists; an unknown potential name is a KeyError, as in openmm-ml.
"""
import importlib
import inspect

import openmm
import openmm.unit as unit

#: name -> (module, class) of nnforce's own families; the names follow openmm-ml 1.7/1.8 where the family exists
_FAMILIES = {
    "mace": ("mace", "MACEPotential"),
    "ani1x": ("ani", "TorchANIPotential"),
    "ani2x": ("ani", "TorchANIPotential"),
    "ani1ccx": ("ani", "TorchANIPotential"),
    "torchani": ("ani", "TorchANIPotential"),
    "nnforce-ani1x": ("native", "NNForceANI1xPotential"),
    "torchmdnet": ("torchmdnet", "TorchMDNetPotential"),
    "nequip": ("nequip", "NequIPPotential"),
    "allegro": ("nequip", "NequIPPotential"),
    "nnforce": ("native", "NativePotential"),
    "ase": ("ase", "ASEPotential"),
}
for _name in ("mace-off23-small", "mace-off23-medium", "mace-off23-large", "mace-off24-medium", "mace-mpa-0-medium",
              "mace-omat-0-small", "mace-omat-0-medium", "mace-omol-0-extra-large", "mace-les-off-small"):
    _FAMILIES[_name] = ("mace", "MACEPotential")
for _name in ("aceff-1.0", "aceff-1.1", "aceff-2.0"):
    _FAMILIES[_name] = ("torchmdnet", "TorchMDNetPotential")
for _name in ("aimnet", "aimnet2", "aimnet2-2025", "aimnet2-nse", "aimnet2-pd", "aimnet2-rxn"):
    _FAMILIES[_name] = ("aimnet", "AIMNet2Potential")
for _name in ("fennix", "fennix-bio1-small", "fennix-bio1-medium", "fennix-bio1-small-finetune-ions",
              "fennix-bio1-medium-finetune-ions"):
    _FAMILIES[_name] = ("external", "FeNNixPotential")
for _name in ("orb-v3-conservative-inf-omat", "orb-v3-conservative-omol"):
    _FAMILIES[_name] = ("external", "OrbPotential")
_FAMILIES["deepmd"] = ("external", "DeePMDPotential")

#: createSystem/createMixedSystem arguments every nnforce family takes (the rest go to the family's ``module``)
_COMMON_ARGS = ("charge", "precision", "platformProperties", "device", "mlLongRange", "modelFormat")


class UnknownPotentialError(KeyError, ValueError):
    """An unknown potential name: a KeyError as in openmm-ml, and a ValueError as every other bad request here."""

    def __str__(self):
        return str(self.args[0]) if self.args else ""


class MLPotentialImplFactory:
    """Creates :class:`MLPotentialImpl` objects (openmm-ml's extension API, same methods and meaning).

    Register an instance with :meth:`MLPotential.registerImplFactory`, or declare it as an entry point in the
    ``openmmml.potentials`` group (name = potential name, value = the factory class).
    """

    def createImpl(self, name, **args):
        """Return the MLPotentialImpl for potential ``name`` (``args``: the MLPotential constructor's keywords)."""
        raise NotImplementedError("Subclasses must implement createImpl()")


class MLPotentialImpl:
    """Implements one potential (openmm-ml's extension API, same methods and meaning)."""

    def addForces(self, topology, system, atoms, forceGroup, **args):
        """Add the Forces of this potential for ``atoms`` (all when None) of ``topology`` to ``system``."""
        raise NotImplementedError("Subclasses must implement addForces()")

    def createMixedSystem(self, topology, system, atoms, forceGroup, interpolate, embedding, **args):
        """A mixed System with an embedding this potential implements itself (see getSupportedEmbeddings)."""
        raise NotImplementedError("Subclasses must implement createMixedSystem()")

    def getSupportedEmbeddings(self):
        """Embedding names this potential implements itself (none by default)."""
        return []

    def getMLLongRange(self):
        """True if the model includes long-range (periodic-image) interactions, False if local, None if unknown."""
        return None


class _FamilyFactory(MLPotentialImplFactory):
    def createImpl(self, name, **args):
        module_name, class_name = _FAMILIES[name]
        module = importlib.import_module(f"{__package__}.{module_name}")
        return NNForcePotentialImpl(name, getattr(module, class_name)(name, **args))


_ENTRY_POINTS_LOADED = []


def _load_entry_points():
    """Register the ``openmmml.potentials`` entry points of installed packages (once), except openm-ml's own and
    names nnforce already implements: those stay nnforce's (C++ NNForce instead of openmm-ml's Python callback)."""
    if _ENTRY_POINTS_LOADED:
        return
    _ENTRY_POINTS_LOADED.append(True)
    from importlib.metadata import entry_points

    for point in entry_points(group="openmmml.potentials"):
        if point.name in MLPotential._implFactories or point.value.startswith("openmmml."):
            continue
        try:
            MLPotential._implFactories[point.name] = point.load()()
        except Exception as error:  # a broken third-party package must not break every MLPotential
            MLPotential._implFactories[point.name] = _BrokenFactory(point, error)


class _BrokenFactory(MLPotentialImplFactory):
    def __init__(self, point, error):
        self.point, self.error = point, error

    def createImpl(self, name, **args):
        raise ImportError(f"the potential {name!r} is registered by the entry point {self.point.value!r} "
                          f"(group openmmml.potentials), which failed to load: {self.error}")


class MLPotential:
    """A machine-learned potential by name, as in openmm-ml: ``MLPotential("mace-off23-small")``.

    Parameters
    ----------
    name : str
        One of :meth:`knownNames`: openmm-ml's names (``"mace"``, ``"mace-off23-small"`` ..., ``"ani2x"``,
        ``"ani1ccx"``, ``"torchmdnet"``, ``"aceff-1.0"`` ..., ``"nequip"``, ``"ase"``, ``"aimnet2"`` ...) and
        nnforce's own (``"ani1x"``, ``"torchani"``, ``"nnforce-ani1x"``, ``"allegro"``, ``"nnforce"``), plus any
        registered with :meth:`registerImplFactory` or the ``openmmml.potentials`` entry points. Unknown: KeyError.
    **args
        Family options, e.g. ``modelPath`` (a model file), ``model`` (a model object), ``lengthScale`` and
        ``energyScale`` (TorchMD-Net, NequIP), ``head`` (MACE). See docs/potentials.md.
    """

    _implFactories = {}
    _embeddings = ("mechanical",)

    def __init__(self, name, **args):
        _load_entry_points()
        if name not in MLPotential._implFactories:
            raise UnknownPotentialError(f"unknown potential name {name!r}; the known names are "
                                        f"{', '.join(self.knownNames())}")
        self.name = name
        self._impl = MLPotential._implFactories[name].createImpl(name, **args)

    @staticmethod
    def knownNames():
        """The potential names MLPotential accepts."""
        _load_entry_points()
        return sorted(MLPotential._implFactories)

    @staticmethod
    def registerImplFactory(name, factory):
        """Register ``factory`` (an :class:`MLPotentialImplFactory`) for potential ``name`` (replaces any)."""
        MLPotential._implFactories[name] = factory

    def getSupportedEmbeddings(self):
        """The embedding names createMixedSystem accepts: ``"mechanical"`` and the potential's own."""
        return sorted(set(MLPotential._embeddings) | set(self._impl.getSupportedEmbeddings()))

    def createSystem(self, topology, removeCMMotion=True, **args):
        """A System in which this potential computes every interaction of ``topology``.

        Parameters
        ----------
        topology : openmm.app.Topology
            Periodic (``topology.getPeriodicBoxVectors()`` set) or not.
        removeCMMotion : bool
            Add a CMMotionRemover.
        **args
            openmm-ml's (``precision``, ``returnEnergyType``, ``charge``, ``multiplicity``, ``modelIndex``,
            ``device``, ...) and nnforce's extras (``forceGroup``, default 0; ``platformProperties``: extra NNForce
            properties).

        Returns
        -------
        openmm.System
        """
        system = openmm.System()
        box = topology.getPeriodicBoxVectors()
        if box is not None:
            system.setDefaultPeriodicBoxVectors(*box)
        for atom in topology.atoms():
            system.addParticle(0.0 if atom.element is None else atom.element.mass)
        forceGroup = args.pop("forceGroup", 0)
        self._impl.addForces(topology, system, None, forceGroup, **args)
        if removeCMMotion:
            system.addForce(openmm.CMMotionRemover())
        return system

    def createMixedSystem(self, topology, system, atoms, removeConstraints=True, forceGroup=0, interpolate=False,
                          embedding="mechanical", returnInfo=False, **args):
        """A copy of ``system`` in which this potential describes the interactions inside ``atoms``.

        ``embedding="mechanical"`` (the default) uses :func:`nnforce.mlmm.create_mlmm_system`: bonded terms and
        nonbonded pairs inside the ML region are removed, everything else stays with the force field. Where the
        region cuts a covalent bond of ``topology``, the model sees it capped with a hydrogen link atom, as in
        openmm-ml 1.8: a massless virtual site on the bond, appended to the System (and, in the returned
        ``topology``, to a copy of the Topology), and the MM angles, torsions and CMAP terms the capped fragment
        accounts for are removed too (see nnforce/potentials/_link_atoms.py). Context positions then need one more
        entry per link atom (any value: OpenMM places virtual sites itself).
        With ``interpolate=True`` the global parameter ``lambda_interpolate`` (1 = ML, 0 = MM) interpolates the
        region's energy, and its exact derivative is available.

        Parameters
        ----------
        topology : openmm.app.Topology
        system : openmm.System
            The force-field System of ``topology`` (not modified).
        atoms : iterable of int
            Indices of the ML atoms.
        removeConstraints : bool
            True (default): drop constraints between two ML atoms; False keeps them (as openmm-ml).
        forceGroup : int
            Force group of the ML force.
        interpolate : bool
            Add ``lambda_interpolate``.
        embedding : str
            One of :meth:`getSupportedEmbeddings`.
        returnInfo : bool
            Return ``dict(system=, topology=, oldToNew=)`` instead of the System, as openmm-ml 1.8: ``topology``
            has the link atoms appended (the given Topology when the region cuts no bond), ``oldToNew`` maps the
            given atoms to the returned Topology's (the identity); a potential's own embedding may return its own
            dict.
        **args
            As for :meth:`createSystem`; ``mlLongRange`` (periodic Systems: does the model include the ML region's
            periodic images? False keeps the MM electrostatics between the region and its images, True removes
            them; models that know, e.g. ANI (local), decide themselves); ``charge`` defaults to the ML region's
            net MM charge, rounded (nnforce families); ``linkAtomDistances`` (mechanical embedding, as openmm-ml
            1.8): ``[(atom1, atom2, distance), ...]`` sets the link atom's distance from the ML atom for those
            bonds (default: the covalent radii of the ML atom and hydrogen, summed).

        Returns
        -------
        openmm.System, or dict when ``returnInfo``
        """
        from .. import mlmm
        from ..atoms import validate_atoms

        atoms = validate_atoms(atoms, system.getNumParticles(), "atoms")  # before any MM force reads an index
        if embedding in self._impl.getSupportedEmbeddings():
            result = self._impl.createMixedSystem(topology, system, atoms, forceGroup, interpolate, embedding,
                                                  returnInfo=returnInfo, **args)
        elif embedding == "mechanical":
            from ._embedding import mechanical_embedding

            result = mechanical_embedding(self._impl, topology, system, atoms, forceGroup, interpolate, **args)
        else:
            raise KeyError(f"unknown embedding {embedding!r}; this potential supports "
                           f"{', '.join(self.getSupportedEmbeddings())}")
        info = result if isinstance(result, dict) else dict(system=result, topology=topology,
                                                             oldToNew=list(range(topology.getNumAtoms())))
        if removeConstraints:
            mlmm.remove_internal_constraints(info["system"], atoms)
        return info if returnInfo else info["system"]

    def createForce(self, topology, atoms=None, **args):
        """The NNForce of an nnforce family for ``atoms`` of ``topology`` (all atoms when None)."""
        if not isinstance(self._impl, NNForcePotentialImpl) or hasattr(self._impl.family, "add_forces"):
            raise ValueError(f"the {self.name!r} potential is not an NNForce family; use createSystem")
        return self._impl.createForce(topology, atoms, **args)


class NNForcePotentialImpl(MLPotentialImpl):
    """An nnforce family as an openmm-ml MLPotentialImpl: ``addForces`` adds one NNForce (runs in C++)."""

    def __init__(self, name, family):
        self.name = name
        self.family = family

    def getMLLongRange(self):
        return getattr(self.family, "ml_long_range", None)

    def addForces(self, topology, system, atoms, forceGroup, **args):
        periodic = topology.getPeriodicBoxVectors() is not None or system.usesPeriodicBoundaryConditions()
        box = system.getDefaultPeriodicBoxVectors() if periodic else None
        if hasattr(self.family, "add_forces"):  # families that are not NNForce models (the ASE callback)
            self.family.add_forces(topology, system, atoms, forceGroup, periodic=periodic, **args)
            return
        system.addForce(self.createForce(topology, atoms, periodic=periodic, box=box, forceGroup=forceGroup, **args))

    def createForce(self, topology, atoms=None, periodic=None, box=None, charge=0, precision=None, forceGroup=0,
                    platformProperties=None, device=None, mlLongRange=None, modelFormat=None, **options):
        """The NNForce for ``atoms`` of ``topology`` (all atoms when None), validated before any Context exists.

        ``modelFormat`` (nnforce's extra): ``"torchscript"`` (the default, except for families that only export,
        AIMNet2: ``"pt2"``) or ``"pt2"`` (the same module compiled AOT with torch.export + AOTInductor, see
        potentials/_formats.py)."""
        from ..force import build_nnforce
        from ._formats import check_format

        impl = self.family
        if modelFormat is None:
            modelFormat = getattr(impl, "default_format", "torchscript")
        if modelFormat == "torchscript" and getattr(impl, "torchscript_refused", None):
            raise ValueError(f"modelFormat='torchscript' is refused for the {self.name!r} potential: "
                             f"{impl.torchscript_refused}")
        if device is not None and str(device).split(":")[0] not in ("cpu", "cuda"):
            raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}; NNForce runs where the Context's "
                             "platform runs (CPU/Reference: cpu, CUDA: cuda)")
        check_format(modelFormat, impl, self.name,
                     bool(periodic) if periodic is not None else topology.getPeriodicBoxVectors() is not None)
        accepted = [p for p in inspect.signature(impl.module).parameters
                    if p not in ("atomic_numbers", "periodic") and not p.startswith("_")]
        unknown = sorted(set(options) - set(accepted))
        if unknown:
            raise ValueError(f"the {self.name!r} potential does not take the argument(s) {', '.join(unknown)}; it "
                             f"takes {', '.join(sorted(set(accepted) | set(_COMMON_ARGS) | {'forceGroup'}))}")
        all_atoms = list(topology.atoms())
        chosen = all_atoms if atoms is None else [all_atoms[a] for a in atoms]
        missing = [a.index for a in chosen if a.element is None]
        if missing:
            raise ValueError(f"atoms {missing[:5]} have no element (virtual sites or unknown residues); an ML "
                             "potential needs an element for every atom it describes")
        numbers = [a.element.atomic_number for a in chosen]
        if periodic is None:
            periodic = topology.getPeriodicBoxVectors() is not None
        if periodic and not impl.supports_periodic:
            raise ValueError(f"the {self.name!r} model cannot handle periodic boundary conditions (it has no box "
                             "input), but the topology/System is periodic; use a vacuum topology "
                             "(topology.setPeriodicBoxVectors(None)) or a model that supports periodic systems")
        charge = _as_charge(charge)
        if charge != 0 and not impl.supports_charge:
            raise ValueError(f"the system has total charge {charge:g} but the {self.name!r} model takes no charge "
                             "input and would treat it as neutral; use a model that takes the total charge, or a "
                             "neutral ML region")
        if box is None and periodic:
            box = topology.getPeriodicBoxVectors()
        cutoff = impl.cutoff_nm
        if periodic and cutoff is not None:
            _check_box(box, cutoff, self.name)
        from . import _common

        with _common.builtin_torch_functions():
            if modelFormat == "pt2":
                options["_eager"] = True
            module = impl.module(numbers, charge=charge, precision=precision, periodic=periodic, **options)
        dtype = _module_dtype(module)
        if modelFormat == "pt2":
            import torch

            from ._formats import compile_family_module

            module = compile_family_module(module, numbers, cutoff, bool(periodic), getattr(torch, dtype))
        properties = {"precision": "double" if dtype == "float64" else "single"}
        properties.update({key: str(value) for key, value in (platformProperties or {}).items()})
        force = build_nnforce(module, topology, atoms, neighbor_cutoff_nm=cutoff, properties=properties,
                              periodic=bool(periodic))
        force.setUsesPeriodicBoundaryConditions(bool(periodic))
        force.setForceGroup(forceGroup)
        force.setName(f"MLPotential {self.name}")
        return force


def _as_charge(charge):
    value = charge.value_in_unit(unit.elementary_charge) if unit.is_quantity(charge) else charge
    value = float(value)
    if abs(value - round(value)) > 1e-6:
        raise ValueError(f"charge must be a whole number of elementary charges, got {value}")
    return int(round(value))


def _check_box(box, cutoff_nm, name):
    vectors = _box_rows(box)
    heights = (vectors[0][0], vectors[1][1], vectors[2][2])  # OpenMM's reduced (lower-triangular) form
    if 2.0 * cutoff_nm > min(heights):
        raise ValueError(f"the {name!r} model's cutoff {cutoff_nm:g} nm is more than half the smallest periodic box "
                         f"height {min(heights):g} nm; use a larger box")


def _box_rows(box):
    if unit.is_quantity(box):
        box = box.value_in_unit(unit.nanometer)
    rows = []
    for vec in box:
        if unit.is_quantity(vec):
            vec = vec.value_in_unit(unit.nanometer)
        rows.append([float(vec[0]), float(vec[1]), float(vec[2])])
    return rows


def _module_dtype(module):
    for tensor in list(module.parameters()) + list(module.buffers()):
        if tensor.is_floating_point():
            return str(tensor.dtype).replace("torch.", "")
    return "float32"


for _name in _FAMILIES:
    MLPotential._implFactories.setdefault(_name, _FamilyFactory())
