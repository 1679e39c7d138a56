"""MLPotential's interface and its refusals: every bad request is a ValueError raised before any Context exists.

Also the ``nnforce`` family (any contract TorchScript file): an exported nnforce model through createSystem equals
the eager model. The families' packages must be installed (requirements-potentials.txt): no skip.
"""
import os

import numpy as np
import openmm
import openmm.app as app
import pytest
import torch

import potentials_systems as ps
from nnforce.potentials import MLPotential


class VacuumOnly(torch.nn.Module):
    """A contract model with no box input (openmm-torch's positional convention): it cannot do periodic systems."""

    def forward(self, positions):
        return (positions * positions).sum()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A MACE file, a TorchMD-Net checkpoint and a contract TorchScript file, each real and small."""
    import mace.modules
    from e3nn import o3
    from torchmdnet.models.model import create_model
    from torchmdnet.scripts.train import get_argparse

    from nnforce.export import export_model
    from nnforce.models import RadialMLP

    folder = tmp_path_factory.mktemp("files")
    torch.manual_seed(1)
    model = mace.modules.MACE(
        r_max=4.0, num_bessel=4, num_polynomial_cutoff=5, max_ell=1,
        interaction_cls=mace.modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
        interaction_cls_first=mace.modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
        num_interactions=1, num_elements=4, hidden_irreps=o3.Irreps("8x0e"), MLP_irreps=o3.Irreps("4x0e"),
        gate=torch.nn.functional.silu, atomic_energies=np.zeros(4), avg_num_neighbors=8.0,
        atomic_numbers=[1, 6, 7, 8], correlation=2)
    torch.save(model, folder / "small.model")
    args = vars(get_argparse().parse_args(["--model", "tensornet", "--embedding-dimension", "16", "--num-layers", "1",
                                           "--num-rbf", "8", "--precision", "64"]))
    tmn = create_model(dict(args))
    torch.save({"hyper_parameters": args, "state_dict": {"model." + k: v for k, v in tmn.state_dict().items()}},
               folder / "small.ckpt")
    export_model(RadialMLP(elements=[1, 6, 7, 8], cutoff=0.5, seed=3), folder / "radial.pt", check=False)
    torch.jit.save(torch.jit.script(VacuumOnly()), folder / "vacuum.pt")
    return {name: str(folder / name) for name in ("small.model", "small.ckpt", "radial.pt", "vacuum.pt")}


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError) as error:
        MLPotential("mace-off24-huge")
    for name in ("mace", "ani1x", "torchmdnet", "nequip", "allegro", "nnforce"):
        assert name in str(error.value)
    assert MLPotential.knownNames() == sorted(MLPotential.knownNames())


@pytest.mark.parametrize("name,file", [("mace", "small.ckpt"), ("mace", "radial.pt"), ("torchmdnet", "small.model"),
                                       ("torchmdnet", "radial.pt"), ("nnforce", "small.model"),
                                       ("nnforce", "small.ckpt"), ("nequip", "small.model")])
def test_wrong_family_file(name, file, files):
    with pytest.raises(ValueError, match="not a|holds a"):
        MLPotential(name, modelPath=files[file])


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        MLPotential("mace", modelPath=str(tmp_path / "nothing.model"))


def sulfur_topology():
    """Methanethiol, CH3SH: sulfur is outside the HCNO models."""
    topology = app.Topology()
    residue = topology.addResidue("MSH", topology.addChain())
    for name, symbol in [("C", "C"), ("S", "S"), ("H1", "H"), ("H2", "H"), ("H3", "H"), ("HS", "H")]:
        topology.addAtom(name, app.Element.getBySymbol(symbol), residue)
    return topology


@pytest.mark.parametrize("name,file", [("mace", "small.model"), ("ani1x", None), ("nnforce-ani1x", None),
                                       ("nnforce", "radial.pt")])
def test_unknown_elements(name, file, files):
    potential = MLPotential(name, **({"modelPath": files[file]} if file else {}))
    with pytest.raises(ValueError, match=r"does not know the element\(s\) S"):
        potential.createSystem(sulfur_topology())


def test_charged_system_for_a_model_without_charge(files):
    potential = MLPotential("mace", modelPath=files["small.model"])
    topology, _ = ps.molecule()
    with pytest.raises(ValueError, match="total charge 1 .*takes no charge input"):
        potential.createSystem(topology, charge=1)
    # createMixedSystem reads the region's net charge from the force field: a lysine carries +1
    pdb = app.PDBFile(os.path.join(os.path.dirname(app.__file__), "data", "test.pdb"))
    modeller = app.Modeller(pdb.topology, pdb.positions)
    modeller.delete([r for r in modeller.topology.residues() if r.name == "HOH"])
    system = app.ForceField("amber14-all.xml", "amber14/tip3p.xml").createSystem(modeller.topology, constraints=None)
    lysine = next(r for r in modeller.topology.residues() if r.name == "LYS")
    atoms = [a.index for a in lysine.atoms()]
    with pytest.raises(ValueError, match="total charge 1 "):
        potential.createMixedSystem(modeller.topology, system, atoms)


def test_periodic_topology_for_a_vacuum_model(files):
    potential = MLPotential("nnforce", modelPath=files["vacuum.pt"])
    topology, _, _, _ = ps.triclinic_box()
    with pytest.raises(ValueError, match="cannot handle periodic"):
        potential.createSystem(topology)


def test_box_smaller_than_twice_the_cutoff(files):
    potential = MLPotential("mace", modelPath=files["small.model"])
    topology, _ = ps.molecule()  # a copy: give it a 0.7 nm cubic box (the model's cutoff is 0.4 nm)
    topology.setPeriodicBoxVectors([openmm.Vec3(0.7, 0, 0), openmm.Vec3(0, 0.7, 0), openmm.Vec3(0, 0, 0.7)])
    with pytest.raises(ValueError, match="more than half the smallest periodic box"):
        potential.createSystem(topology)


def test_nnforce_file_equals_the_eager_model(files, one_torch_thread):
    from nnforce.models import RadialMLP

    topology, positions = ps.molecule()
    system = MLPotential("nnforce", modelPath=files["radial.pt"]).createSystem(topology, precision="double")
    energy, forces = ps.openmm_energy_forces(system, positions)
    model = RadialMLP(elements=[1, 6, 7, 8], cutoff=0.5, seed=3).double()
    pos = torch.tensor(positions, requires_grad=True)
    ref = model(pos, torch.tensor(ps.atomic_numbers(topology)))
    ref_f = -torch.autograd.grad(ref, pos)[0]
    ps.assert_close(energy, forces, ref.item(), ref_f.numpy())
