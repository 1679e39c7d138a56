"""Old home of the analysis pipeline, kept so ``nnforce.analysis.report`` imports keep working: see
:mod:`nnforce.analysis.pipeline`."""
from .pipeline import analyze, phi_psi_free_energy_png, write_html  # noqa: F401

__all__ = ["analyze", "phi_psi_free_energy_png", "write_html"]
