"""FeNNix, Orb and DeePMD (issue 23): openmm-ml 1.8's names resolve to nnforce's adapters (Python callbacks through
each package's documented API, nnforce/potentials/external.py); without the package, one ImportError naming it and
the pip line; arguments the adapters need are asked for before any import.

The packages are not installed with nnforce's requirements (see external.py for why), so the package's absence is
made certain here by hiding it from the import system (``sys.modules[name] = None``), whether or not it is installed.
"""
import sys

import pytest

from nnforce.potentials import MLPotential


def _hide(monkeypatch, *modules):
    for module in modules:
        monkeypatch.setitem(sys.modules, module, None)


@pytest.mark.parametrize("name,args,module,pip", [
    ("fennix", {"modelPath": "model.fnx"}, "fennol", "pip install fennol jax"),
    ("fennix-bio1-medium", {"modelPath": "fennix-bio1-medium.fnx"}, "fennol", "pip install fennol jax"),
    ("orb-v3-conservative-omol", {}, "orb_models", "pip install orb-models torch==2.13.0 openmm==8.6.1"),
    ("orb-v3-conservative-inf-omat", {}, "orb_models", "pip install orb-models torch==2.13.0 openmm==8.6.1"),
    ("deepmd", {"model": "graph.pb"}, "deepmd", "pip install deepmd-kit torch==2.13.0 openmm==8.6.1"),
])
def test_missing_package_is_one_import_error(monkeypatch, name, args, module, pip):
    _hide(monkeypatch, module)
    with pytest.raises(ImportError) as caught:
        MLPotential(name, **args)
    message = str(caught.value)
    assert f"need the {module} package" in message and f"`{pip}`" in message


def test_names_are_registered_as_in_openmm_ml():
    names = set(MLPotential.knownNames())
    for name in ("fennix", "fennix-bio1-small", "fennix-bio1-medium", "fennix-bio1-small-finetune-ions",
                 "fennix-bio1-medium-finetune-ions", "orb-v3-conservative-inf-omat", "orb-v3-conservative-omol",
                 "deepmd", "aimnet", "aimnet2", "aimnet2-2025", "aimnet2-nse", "aimnet2-pd", "aimnet2-rxn"):
        assert name in names


def test_arguments_asked_for_first(monkeypatch):
    _hide(monkeypatch, "fennol", "deepmd")
    with pytest.raises(ValueError, match="FeNNol-PMC"):
        MLPotential("fennix-bio1-small")  # nnforce downloads no FeNNix file: it says where to get it
    with pytest.raises(ValueError, match="pass modelPath='model.fnx'"):
        MLPotential("fennix")
    with pytest.raises(ValueError, match="needs model='graph.pb'"):
        MLPotential("deepmd")


def test_aimnet_missing_package(monkeypatch):
    _hide(monkeypatch, "aimnet", "aimnet.calculators")
    with pytest.raises(ImportError, match=r"need the aimnet package.*`pip install aimnet torch==2.13.0 openmm==8.6.1`"):
        MLPotential("aimnet2")

