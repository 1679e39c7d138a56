"""Module layouts of other packages over nnforce, for code that imports more than their top-level names.

:mod:`nnforce.compat.openmmml`: openmm-ml 1.8's modules (``openmmml.mlpotential``, ``openmmml.models.*potential``).
"""
