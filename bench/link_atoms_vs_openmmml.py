"""Link atoms: nnforce's createMixedSystem against openmm-ml 1.8's, side by side in one process (issue 23).

    PYTHONPATH=python OPENMMML_PYTHON_PATH=... python bench/link_atoms_vs_openmmml.py

Needs openmm-ml 1.8 importable (``openmmml``; e.g. run with a venv that has it and sees nnforce's venv). The ML region
is alanine dipeptide's ALA residue (it cuts two peptide bonds), with five waters around, vacuum (amber14, NoCutoff) and
the solvated triclinic box (PME, ``mlLongRange=False``). The same potentials are given to both packages: the ``ase``
potential with ASE's EMT calculator (a real, nonlinear energy of the capped fragment; both packages call it from a
Python callback), and a registered third-party potential (``k |x|^2`` on every atom it is given, which shows where
each cap is). For each case: particles, the caps' positions, total energy and forces, at lambda_interpolate 0, 0.5, 1
when interpolating. Writes bench/results/link_atoms_vs_openmmml.md.
"""
import os
import sys

import numpy as np
import openmm
import openmm.unit as unit

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))


def evaluate(system, positions, parameters=None):
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    extra = system.getNumParticles() - len(positions)
    context.setPositions(np.vstack([positions, np.zeros((extra, 3))]) * unit.nanometer)
    context.computeVirtualSites()
    for name, value in (parameters or {}).items():
        context.setParameter(name, value)
    state = context.getState(getEnergy=True, getForces=True, getPositions=True)
    return (state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole),
            np.array(state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)),
            np.array(state.getPositions(asNumpy=True).value_in_unit(unit.nanometer)))


def spring_classes(base_impl, base_factory):
    class Spring(base_impl):
        def addForces(self, topology, system, atoms, forceGroup, **args):
            force = openmm.CustomExternalForce("2.5*(x*x+y*y+z*z)")
            for atom in (range(topology.getNumAtoms()) if atoms is None else atoms):
                force.addParticle(atom, [])
            force.setForceGroup(forceGroup)
            system.addForce(force)

        def getMLLongRange(self):
            return False

    class Factory(base_factory):
        def createImpl(self, name, **args):
            return Spring()

    return Factory


def main():
    import openmmml
    from ase.calculators.emt import EMT

    import nnforce
    import potentials_systems as ps
    from openmmml.mlpotential import MLPotentialImpl as PeerImpl, MLPotentialImplFactory as PeerFactory

    openmmml.MLPotential.registerImplFactory("bench-spring", spring_classes(PeerImpl, PeerFactory)())
    nnforce.MLPotential.registerImplFactory("bench-spring", spring_classes(nnforce.MLPotentialImpl,
                                                                           nnforce.MLPotentialImplFactory)())
    rows = []
    for system_name, make in (("vacuum", ps.vacuum_peptide), ("triclinic PME", ps.triclinic_box)):
        topology, positions, mm_system, _ = make()
        region = [a.index for a in topology.atoms() if a.residue.name == "ALA"]
        named = {(a.residue.name, a.name): a.index for a in topology.atoms() if a.residue.name == "ACE"}
        cases = [("spring", "bench-spring", {}), ("spring, linkAtomDistances", "bench-spring",
                  {"linkAtomDistances": [(named[("ACE", "C")], region[0], 0.1 * unit.nanometer)]})]
        if system_name == "vacuum":
            cases.append(("ase (EMT)", "ase", {"calculator": EMT()}))
        else:
            cases = [(label, name, dict(args)) for label, name, args in cases]
        for label, name, args in cases:
            for interpolate in (False, True):
                results = []
                for package in (openmmml, nnforce):
                    extra = dict(args)
                    if name == "ase":
                        extra["calculator"] = EMT()
                    info = package.MLPotential(name).createMixedSystem(topology, mm_system, region,
                                                                       interpolate=interpolate, returnInfo=True,
                                                                       **extra)
                    lambdas = (0.0, 0.5, 1.0) if interpolate else (None,)
                    values = [evaluate(info["system"], positions,
                                       None if lam is None else {"lambda_interpolate": lam}) for lam in lambdas]
                    results.append((info, lambdas, values))
                (peer, lambdas, peer_values), (ours, _, our_values) = results
                n = topology.getNumAtoms()
                caps_peer = peer_values[0][2][n:]
                caps_ours = our_values[0][2][n:]
                for lam, (e1, f1, _), (e2, f2, _) in zip(lambdas, peer_values, our_values):
                    rows.append((system_name, label, "-" if lam is None else f"{lam:g}",
                                 f"{peer['system'].getNumParticles()} / {ours['system'].getNumParticles()}",
                                 f"{np.abs(caps_peer - caps_ours).max():.1e}" if len(caps_peer) == len(caps_ours)
                                 else "different counts",
                                 f"{e1:.6f}", f"{e2:.6f}", f"{abs(e1 - e2):.1e}", f"{np.abs(f1 - f2).max():.1e}"))
                    print(" | ".join(rows[-1]), flush=True)
    lines = ["# Link atoms: nnforce vs openmm-ml 1.8 (createMixedSystem, mechanical embedding)", "",
             f"Written by `python bench/link_atoms_vs_openmmml.py` (openmm-ml {getattr(openmmml, '__version__', '1.8')},"
             " Reference platform, float64). ML region: alanine dipeptide's ALA residue (two peptide bonds cut: two "
             "link atoms), with five waters (vacuum, amber14 NoCutoff) or solvated in the triclinic box (amber14 PME, "
             "the spring potential declares mlLongRange False). `spring`: a registered third-party potential, "
             "2.5 |x|^2 on every atom it is given (caps included); `ase (EMT)`: both packages' `ase` potential with "
             "ASE's EMT calculator. Caps: largest difference of the link-atom positions (nm) after "
             "`computeVirtualSites`. Energies kJ/mol; forces: largest component difference, kJ/mol/nm.", "",
             "| system | potential | lambda_interpolate | particles openmm-ml / nnforce | caps | E openmm-ml | "
             "E nnforce | abs. diff. | forces diff. |", "|---|---|---|---|---|---|---|---|---|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    lines += ["", "Where they differ, the constants do: at lambda 0 and 0.5 the removed MM pairs come back through a "
              "CustomBondForce whose Coulomb constant is openmm-ml's 138.935456 and nnforce's "
              "`nnforce.units.COULOMB_KJ_MOL_NM` (1e-8 relative); the `ase` rows convert eV with openmm.unit's eV "
              "(openmm-ml) and CODATA 2018 (nnforce), 1e-8 relative. Topology bonds, caps, removed bonded terms and "
              "the interpolated terms are the same."]
    text = "\n".join(lines) + "\n"
    path = os.path.join(HERE, "results", "link_atoms_vs_openmmml.md")
    with open(path + ".tmp", "w") as handle:
        handle.write(text)
    os.replace(path + ".tmp", path)
    print(text)


if __name__ == "__main__":
    main()
