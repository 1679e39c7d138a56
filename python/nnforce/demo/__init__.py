"""``nnforce demo``: the whole flow on alanine dipeptide in vacuum, end to end, into one HTML report.

1. **molecule**: ACE-ALA-NME from the checked-in ``alanine_dipeptide.pdb`` (:mod:`~nnforce.demo.molecule`),
   written as ``alanine_dipeptide.pdb``.
2. **reference data**: Langevin MD with amber14 in vacuum at a high temperature from several starting
   (phi, psi) so the Ramachandran plane is covered; every sampled frame is labelled with energies and forces of
   the ANI-1x ensemble (``nnforce.models.ani1x()``, float64; the teacher) by
   :func:`nnforce.data.label.label_frames`. Saved as ``data/ani1x_labels.npz``.
3. **distil**: distillation by active learning through the library (:func:`nnforce.train.learn.learn`): a
   committee of small ANI-style models explores with well-tempered metadynamics on phi/psi, the frames its members
   disagree on (raised where the data's phi/psi coverage is thin) get ANI-1x labels, retrain, until the error on
   fresh exploration frames is close to the test error; the student is member 0 of the last committee, trained on.
4. **export**: ``nnforce.export.export_model`` (TorchScript + metadata, contract checks on a real frame) and the
   float32 ``.pt2`` production runs.
5. **production**: issue 25's sampling protocol (:mod:`nnforce.simulate.metadynamics`): metadynamics on phi/psi
   builds a bias, then replicas under it held fixed, batched in one Context (DCDs in ``ensemble/``).
6. **analyze**: the reweighted phi/psi free energy and the four basins' populations against the teacher's
   reference (:mod:`~nnforce.demo.teacher`), TICA -> k-means -> MSM of the biased dynamics with its stationary
   distribution reweighted (:mod:`~nnforce.demo.conformations`); 200 random production frames re-labelled with
   ANI-1x.
7. **report**: ``report.html``, self-contained (PNG figures as base64, the states' structures in an embedded 3D
   viewer with static pictures as fallback, nothing loaded from elsewhere) and ``summary.json``.

The rooms: :mod:`~nnforce.demo.settings` (what shapes a run), :mod:`~nnforce.demo.molecule`,
:mod:`~nnforce.demo.stages` (stages 1-4 and 7, one function each), :mod:`~nnforce.demo.sampling` (stages 5 and
6), :mod:`~nnforce.demo.teacher`,
:mod:`~nnforce.demo.conformations`, :mod:`~nnforce.demo.measure`, :mod:`~nnforce.demo.figures`,
:mod:`~nnforce.demo.report`.
``run_demo(out_dir, small=False, seed=0)`` returns a dict of what was run and measured; ``small=True`` is the
fast mode the test uses (same code path, fewer frames/epochs/steps). Everything is seeded; all files are written
atomically. See docs/demo.md.
"""
import os
import time

from .._io import make_output_dir
from ..data.label import label_frames
from . import sampling, stages
from .molecule import ALANINE_PDB, alanine_dipeptide, atomic_numbers, set_backbone  # noqa: F401
from .settings import ELEMENTS, SETTINGS  # noqa: F401
from .measure import (BASINS, basin, basin_populations, nnforce_energy, nnforce_ms_per_step,  # noqa: F401
                      phi_psi_of, predict)
from .molecule import sample_configurations  # noqa: F401


def label_with_ani1x(model, numbers, frames_nm, batch_frames=64):
    """ANI-1x energies (kJ/mol, [F]) and forces (kJ/mol/nm, [F, N, 3]) for frames of one molecule, in batches.

    The old name of :func:`nnforce.data.label.label_frames` (which works for any model with per-atom energies).

    Examples
    --------
    >>> from nnforce.models import ani1x
    >>> energies, forces = label_with_ani1x(ani1x(), numbers, frames)  # doctest: +SKIP

    Parameters
    ----------
    model : torch.nn.Module
    numbers : array of int
    frames_nm : array, shape (F, N, 3)
    batch_frames : int

    Returns
    -------
    tuple
        ``(energies [F] kJ/mol, forces [F, N, 3] kJ/mol/nm)``.
    """
    return label_frames(model, numbers, frames_nm, batch_frames)


def versions():
    """Versions of Python and the packages the demo ran with.

    Returns
    -------
    dict
        Package name -> version string.

    Examples
    --------
    >>> "torch" in versions()
    True
    """
    import importlib.metadata
    import platform

    found = {"python": platform.python_version()}
    for name in ("nnforce", "torch", "openmm", "numpy", "mdtraj", "deeptime", "scikit-learn", "matplotlib"):
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            if name == "nnforce":
                from .._version import __version__

                found[name] = f"{__version__} (source tree)"
            elif name == "openmm":
                import openmm

                found[name] = openmm.__version__
            else:
                found[name] = "not installed"
    return found


def run_demo(out_dir="demo-output", small=False, seed=0):
    """Run the whole flow into ``out_dir`` and write ``out_dir/report.html``.

    Parameters
    ----------
    out_dir : str
        Output folder (created if missing).
    small : bool
        The fast mode the tests run (same code path, fewer frames, epochs and steps).
    seed : int
        Seeds sampling, splitting, training, k-means and MD (0..100000).

    Returns
    -------
    dict
        ``report``, ``files`` (paths), ``timings_s`` (per step), ``total_time_s``, ``settings``, ``metrics``
        (``test``: energy/force MAE and RMSE of the trained model on the test split; ``baseline``: mean-energy and
        zero-force predictions on the same frames; ``trajectory_vs_teacher``: the model against ANI-1x on frames
        of its ensemble; ``nnforce_vs_python_kj_mol``), ``ensemble`` (replicas, steps, speed, mean temperature,
        start basins and sources), ``analysis`` (``phi_rad``/``psi_rad`` of every frame, replica after replica;
        ``populations`` per basin; ``states`` (PCCA+); ``slowest_timescale_ps`` and its interval;
        ``implied_timescales_ps``; ``clusters``; ``replicas``; ``not_converged``), ``training`` (history, best
        epoch), ``versions``.

    Examples
    --------
    >>> info = run_demo("/tmp/demo", small=True)  # doctest: +SKIP
    >>> info["report"]  # doctest: +SKIP
    '/tmp/demo/report.html'
    """
    import torch

    out_dir = os.fspath(out_dir)
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ValueError(f"--out {out_dir} is a file; give a directory (it is created if missing)")
    if int(seed) < 0 or int(seed) > 100000:
        raise ValueError(f"seed must be in 0..100000, got {seed}")
    make_output_dir(out_dir)
    run = stages.DemoRun(out_dir, small, int(seed), SETTINGS["small" if small else "full"])
    previous_threads = torch.get_num_threads()
    # small molecules: torch's intra-op threads only add overhead (20x slower measured here with 2 threads)
    torch.set_num_threads(1)
    try:
        for stage in (stages.molecule, stages.reference_data, stages.distil, stages.export, sampling.production,
                      sampling.analyze):
            stage(run)
        stages.report(run, versions())
    finally:
        torch.set_num_threads(previous_threads)
    info = run.info
    info["total_time_s"] = time.perf_counter() - run.started
    info["report"] = run.files["report"]
    stages.log(f"report: {info['report']} (total {info['total_time_s']:.0f} s)")
    return info
