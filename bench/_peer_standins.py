"""Offline stand-ins for the peers' test suites (bench/peer_suites.py): a pytest plugin, ``-p _peer_standins``.

Only downloads are replaced, identically for both sides (openmm-ml itself and nnforce through the shim):

* torchani's ANI-2x and ANI-1ccx (downloaded by torchani) -> the ANI-1x ensemble that ships in the torchani wheel,
  built with torchani's own constructors (nnforce.potentials.ani.torchani_ani1x);
* MACE's foundation models (``mace_off``, ``mace_mp``, ``mace_omol`` in mace.calculators.foundations_models,
  which download) -> one small ScaleShiftMACE built with mace-torch's own constructor from a fixed seed
  (float64, elements H C N O F Na P S Cl Br I), returned the way the real functions return theirs: the raw model
  for ``return_raw_model=True``, otherwise mace's own MACECalculator on the saved file.

The reference energies in the peers' tests belong to the real weights, so items that compare against them fail on
both sides; the report shows each item for both sides.
"""
import os
import tempfile

_ELEMENTS = (1, 6, 7, 8, 9, 11, 15, 16, 17, 35, 53)
_E0_EV = {1: -13.57, 6: -1029.41, 7: -1484.82, 8: -2041.85, 9: -2713.5, 11: -4419.0, 15: -9283.0, 16: -10831.0,
          17: -12516.0, 35: -70045.0, 53: -193000.0}
_cache = {}


def small_mace():
    """The seeded stand-in MACE (float64) and the path of its torch.save file."""
    if "model" not in _cache:
        import numpy as np
        import torch
        from e3nn import o3
        from mace import modules

        state = torch.random.get_rng_state()
        torch.manual_seed(23)
        default = torch.get_default_dtype()
        torch.set_default_dtype(torch.float64)
        try:
            model = modules.ScaleShiftMACE(
                atomic_inter_scale=0.6, atomic_inter_shift=0.0, r_max=5.0, num_bessel=8, num_polynomial_cutoff=5,
                max_ell=2, interaction_cls=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
                interaction_cls_first=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
                num_interactions=2, num_elements=len(_ELEMENTS), hidden_irreps=o3.Irreps("32x0e"),
                MLP_irreps=o3.Irreps("16x0e"), gate=torch.nn.functional.silu,
                atomic_energies=np.array([_E0_EV[z] for z in _ELEMENTS]), avg_num_neighbors=12.0,
                atomic_numbers=list(_ELEMENTS), correlation=3, radial_type="bessel")
        finally:
            torch.set_default_dtype(default)
            torch.random.set_rng_state(state)
        model = model.eval()
        path = os.path.join(tempfile.mkdtemp(prefix="peer-standin-mace-"), "standin.model")
        torch.save(model, path)
        _cache["model"] = model
        _cache["path"] = path
    return _cache["model"], _cache["path"]


def _foundation(model=None, device="cpu", default_dtype="float64", return_raw_model=False, **kwargs):
    import copy

    raw, path = small_mace()
    if return_raw_model:
        return copy.deepcopy(raw).to(device)
    from mace.calculators import MACECalculator

    return MACECalculator(model_paths=path, device=device, default_dtype=default_dtype)


def _ani1x(*args, **kwargs):
    from nnforce.potentials.ani import torchani_ani1x

    model = torchani_ani1x()
    if not kwargs.get("periodic_table_index", False):
        model.periodic_table_index = False
    return model


def pytest_configure(config):
    try:
        import mace.calculators.foundations_models as foundations
    except ImportError:
        foundations = None
    if foundations is not None:
        for name in ("mace_off", "mace_mp", "mace_omol"):
            setattr(foundations, name, _foundation)
        import mace.calculators as calculators

        for name in ("mace_off", "mace_mp", "mace_omol"):
            if hasattr(calculators, name):
                setattr(calculators, name, _foundation)
    try:
        from nnforce.potentials.ani import import_torchani

        torchani = import_torchani()
    except ImportError:
        torchani = None
    if torchani is not None:
        torchani.models.ANI2x = _ani1x
        torchani.models.ANI1ccx = _ani1x
