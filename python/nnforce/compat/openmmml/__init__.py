"""openmm-ml 1.8's module layout over nnforce's potentials.

Most openmm-ml code needs only ``from nnforce import MLPotential``. Code that imports openmm-ml's modules
(``openmmml.mlpotential.MLPotentialImpl``, ``openmmml.models.macepotential.MACEPotentialImpl``, ...) runs unchanged
when this package stands in for ``openmmml``, with one line before that code is imported::

    import nnforce.compat.openmmml; nnforce.compat.openmmml.install()

Every class here is nnforce's: the ``*PotentialImpl`` classes build nnforce's family adapters (the model runs in
C++ through NNForce where the family exports), with openmm-ml's constructor arguments, and reject an unknown model
name in ``addForces`` with openmm-ml's ``ValueError("Unsupported <family> model: <name>")``. Names a family does not
have in nnforce (a FeNNix, Orb or DeePMD package not installed) fail as nnforce's adapters do, with the pip line.

Examples
--------
>>> import nnforce.compat.openmmml as openmmml
>>> openmmml.models.macepotential.MACEPotentialImplFactory().createImpl("mace-off23-small").name
'mace-off23-small'
"""
from ...potentials import MLPotential, MLPotentialImpl, MLPotentialImplFactory  # noqa: F401
from . import mlpotential, models  # noqa: F401


def install(name="openmmml"):
    """Make ``import openmmml`` (and its submodules) give this package; refuses if a real openmm-ml is imported.

    Called from the body of a module named ``name`` while it is being imported (a one-line ``openmmml.py`` shim),
    it replaces that module, so the import returns this package.

    Parameters
    ----------
    name : str
        The module name to stand in for.

    Returns
    -------
    module
        This package.
    """
    import sys

    present = sys.modules.get(name)
    importing = getattr(getattr(present, "__spec__", None), "_initializing", False)
    if present is not None and not importing and not getattr(present, "__name__", "").startswith(__name__):
        raise ValueError(f"{name!r} is already imported from {getattr(present, '__file__', present)}; call "
                         "install() before anything imports openmm-ml, or uninstall openmm-ml")
    for module_name, module in list(sys.modules.items()):
        if module_name == __name__ or module_name.startswith(__name__ + "."):
            sys.modules[name + module_name[len(__name__):]] = module
    return sys.modules[__name__]
