"""ML/MM: one ANI-1x water molecule in a box of TIP3P water, run with ``nnforce.simulate``.

The ML water is described by ANI-1x (flexible: its internal energy comes from the model), the other waters by
TIP3P (rigid); the ML-MM interaction is TIP3P's charges and Lennard-Jones (mechanical embedding, built by
``nnforce.mlmm.create_mlmm_system``). The script compares the ML water's mean O-H length and H-O-H angle with
the rigid TIP3P geometry (0.9572 A, 104.52 deg).

    python examples/mlmm_solvated.py            # 2 ps at 0.5 fs
    python examples/mlmm_solvated.py --smoke    # 20 steps

The same run from the command line:
    nnforce simulate box.pdb ani1x.pt --forcefield amber14/tip3p.xml --ml-atoms "resid 0" --timestep-fs 0.5
"""
import argparse
import os
import sys
import tempfile

import numpy as np
import torch


def build_box(path, box_nm):
    from openmm import Vec3, app, unit

    forcefield = app.ForceField("amber14/tip3p.xml")
    modeller = app.Modeller(app.Topology(), [])
    modeller.addSolvent(forcefield, model="tip3p", boxSize=Vec3(box_nm, box_nm, box_nm) * unit.nanometer)
    with open(path, "w") as handle:
        app.PDBFile.writeFile(modeller.topology, modeller.positions, handle)
    return modeller.topology.getNumAtoms()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="20 steps only")
    parser.add_argument("--out", default=None, help="output folder (default: a temporary one)")
    parser.add_argument("--platform", default="CPU")
    args = parser.parse_args(argv)

    from nnforce.models.ani1x import ani1x
    from nnforce.simulate import SimulationConfig, run

    out = args.out or tempfile.mkdtemp(prefix="mlmm_")
    os.makedirs(out, exist_ok=True)
    pdb = os.path.join(out, "water_box.pdb")
    num_atoms = build_box(pdb, 1.8 if args.smoke else 2.4)
    model_file = os.path.join(out, "ani1x.pt")
    torch.jit.script(ani1x(dtype=torch.float32)).save(model_file)  # float32: the CPU platform's precision
    steps = 20 if args.smoke else 4000
    result = run(SimulationConfig(
        model=model_file, pdb=pdb, output_dir=out, forcefield=["amber14/tip3p.xml"], ml_atoms="resid 0",
        mm_cutoff_nm=0.8 if args.smoke else 1.0, steps=steps, equilibration_steps=0 if args.smoke else 400,
        timestep_fs=0.5,
        temperature_k=300.0, friction_per_ps=5.0, platform=args.platform, report_interval=10 if args.smoke else 100,
        trajectory_interval=10 if args.smoke else 40, checkpoint_interval=0, progress=not args.smoke,
        minimize_max_iterations=20 if args.smoke else 200, seed=3))

    import mdtraj

    trajectory = mdtraj.load(result["trajectory"], top=pdb)
    oh = mdtraj.compute_distances(trajectory, [[0, 1], [0, 2]]) * 10.0
    angle = np.degrees(mdtraj.compute_angles(trajectory, [[1, 0, 2]]))
    summary = {"num_atoms": num_atoms, "frames": len(trajectory), "mean_oh_angstrom": float(oh.mean()),
               "mean_hoh_degrees": float(angle.mean()), "temperature_mean_k": result["temperature_mean_k"],
               "ns_per_day": result["ns_per_day"]}
    print(f"{num_atoms} atoms, ML water = atoms 0-2 (ANI-1x), {len(trajectory)} frames")
    print(f"ML water mean O-H {summary['mean_oh_angstrom']:.4f} A (TIP3P rigid 0.9572), "
          f"mean H-O-H {summary['mean_hoh_degrees']:.2f} deg (TIP3P 104.52)")
    print(f"mean temperature {result['temperature_mean_k']:.1f} K, {result['ns_per_day']:.3g} ns/day; "
          f"outputs in {out}")
    return summary


if __name__ == "__main__":
    main()
    sys.exit(0)
