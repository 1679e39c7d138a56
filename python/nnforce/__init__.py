"""nnforce: machine-learned potentials in OpenMM, from training data to trajectory analysis.

``import nnforce`` loads the compiled plugin (NNForce and its Reference/CPU/CUDA kernels) that was built
against the installed torch. The pure-Python toolkit (``nnforce.models``, ``nnforce.analysis``, ...) also
imports from a source tree that has not been built; only ``nnforce.NNForce`` then asks for a build.
"""
import os as _os

from ._version import __version__

_PACKAGE_DIR = _os.path.dirname(_os.path.abspath(__file__))
_PLUGIN_DIR = _os.path.join(_PACKAGE_DIR, "lib", "plugins")
_PLUGIN_NAMES = ("NNForce", "neighbor_pairs")
_load_error = None


def _load_plugin():
    """Load the compiled plugin once: check the torch ABI it was built for, then OpenMM's platform plugins."""
    import torch  # libtorch must be in the process before the plugin libraries that link it
    import openmm

    try:
        from . import _build_info
    except ImportError:
        return ImportError(
            "nnforce's compiled plugin is not built in this copy of the package "
            f"({_PACKAGE_DIR}). Build and install it with `pip install --no-build-isolation .` "
            "from the repository (or `make install`).")
    if torch.__version__ != _build_info.TORCH_VERSION:
        raise ImportError(
            f"nnforce was built against torch {_build_info.TORCH_VERSION} but torch {torch.__version__} is "
            "installed; libtorch's C++ ABI changes between releases. Rebuild nnforce against the installed torch: "
            "`pip install --no-build-isolation --force-reinstall --no-deps .` in the nnforce repository.")
    if openmm.__version__ != _build_info.OPENMM_VERSION:
        raise ImportError(
            f"nnforce was built against OpenMM {_build_info.OPENMM_VERSION} but OpenMM {openmm.__version__} is "
            "installed. Rebuild nnforce: `pip install --no-build-isolation --force-reinstall --no-deps .`.")
    openmm.Platform.loadPluginsFromDirectory(_PLUGIN_DIR)
    ours = [f for f in openmm.Platform.getPluginLoadFailures() if _PLUGIN_DIR in f]
    required = [f for f in ours if "CUDA" not in f]
    if required:
        raise ImportError("nnforce could not load its platform plugins:\n" + "\n".join(required))
    from . import plugin as _plugin

    globals()["NNForce"] = _plugin.NNForce
    globals()["neighbor_pairs"] = _plugin.neighbor_pairs
    return None


_load_error = _load_plugin()

from .potentials._potential import MLPotential, MLPotentialImpl, MLPotentialImplFactory  # noqa: E402 - openmm-ml's


def __getattr__(name):
    if name in _PLUGIN_NAMES and _load_error is not None:
        raise _load_error
    raise AttributeError(f"module 'nnforce' has no attribute {name!r}")
