"""NNForce on OpenMM's CUDA platform against the Reference platform (float64), with and without CUDA graphs.

Every test compares a CUDA Context with a Reference Context built from the same System: energies and forces must agree
to 1e-8 (relative) in double precision and 1e-4 in single/mixed precision. The whole module is skipped, cleanly, when
there is no GPU, no CUDA build of torch, no OpenMM CUDA platform or no nnforce CUDA plugin (the CPU-only CI).
Run on a GPU machine with `bash tests/gpu/run.sh` (builds everything first) or `pytest tests/gpu -q`.
"""
import os
import sys

import numpy as np
import pytest

openmm = pytest.importorskip("openmm")
torch = pytest.importorskip("torch")
from torch import Tensor  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
nnforce = pytest.importorskip("nnforce")
from nnforce.models import LennardJones, RadialMLP  # noqa: E402
from plugin_helpers import energy_forces, make_system, random_positions, rel_err  # noqa: E402


def _why_no_cuda():
    try:
        nnforce.NNForce  # noqa: B018  (raises ImportError when the plugin is not built)
    except ImportError as error:
        return f"nnforce plugin not built: {error}"
    if not torch.cuda.is_available():
        return "no CUDA device visible to torch (CPU-only torch or no GPU)"
    names = [openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())]
    if "CUDA" not in names:
        failures = [f for f in openmm.Platform.getPluginLoadFailures() if "CUDA" in f]
        return "OpenMM has no CUDA platform" + (f" ({failures[0]})" if failures else " (install openmm-cuda-13)")
    plugin_dir = os.path.join(os.path.dirname(nnforce.__file__), "lib", "plugins")
    if not os.path.exists(os.path.join(plugin_dir, "libNNForceCUDA.so")):
        return "nnforce was built without its CUDA plugin (libNNForceCUDA.so)"
    failures = [f for f in openmm.Platform.getPluginLoadFailures() if "NNForceCUDA" in f]
    if failures:
        return "nnforce's CUDA plugin failed to load: " + failures[0]
    return None


_REASON = _why_no_cuda()
pytestmark = pytest.mark.skipif(_REASON is not None, reason=str(_REASON))

PRECISIONS = ["single", "mixed", "double"]
TOLERANCE = {"single": 1e-4, "mixed": 1e-4, "double": 1e-8}
N = 24


def cuda_context(system, precision="mixed", graphs=False, device_index=None):
    properties = {"Precision": precision}
    if device_index is not None:
        properties["DeviceIndex"] = str(device_index)
    for force in system.getForces():
        if isinstance(force, nnforce.NNForce):
            force.setProperty("useCUDAGraphs", "true" if graphs else "false")
            force.setProperty("CUDAGraphWarmupSteps", "2")
    return openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("CUDA"), properties)


def reference_context(system):
    return openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))


def assert_close(cuda, reference, precision):
    (e_cuda, f_cuda), (e_ref, f_ref) = cuda, reference
    tol = TOLERANCE[precision]
    assert e_cuda == pytest.approx(e_ref, rel=tol, abs=tol * 1e-3)
    assert rel_err(f_cuda, f_ref) < tol


def position_sets(base, count=5, seed=0, step=0.002):
    """Nearby configurations: with 2 warm-up steps the first two run eagerly, the third captures, the rest replay."""
    rng = np.random.default_rng(seed)
    return [base + step * k * rng.standard_normal(base.shape) for k in range(count)]


@pytest.fixture(scope="module")
def positions():
    return random_positions(N, 1.6, seed=3, min_distance=0.28)


@pytest.mark.parametrize("graphs", [False, True])
@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("make_model", [lambda: LennardJones(cutoff=10.0), lambda: RadialMLP(elements=[1], cutoff=0.6)],
                         ids=["lj", "radial"])
def test_matches_reference(make_model, precision, graphs, positions):
    system = make_system(N, nnforce.NNForce(torch.jit.script(make_model())))
    reference = reference_context(system)
    cuda = cuda_context(system, precision, graphs)
    for pos in position_sets(positions):  # eager, capture + replay, replays
        assert_close(energy_forces(cuda, pos), energy_forces(reference, pos), precision)


def random_box(n, density, seed, triclinic):
    """n uniformly random atoms in a cubic (or reduced triclinic) box at the given number density (nm^-3)."""
    rng = np.random.default_rng(seed)
    edge = (n / density) ** (1 / 3)
    box = np.diag([edge, edge, edge])
    if triclinic:
        box[1, 0], box[2, 0], box[2, 1] = 0.3 * edge, -0.2 * edge, 0.25 * edge
    return rng.random((n, 3)) @ box, box


def jittered_lattice(side, spacing, seed):
    """side^3 atoms on a simple-cubic lattice (nm) with small random displacements, and its cubic box."""
    index = np.stack(np.unravel_index(np.arange(side ** 3), (side,) * 3), axis=1).astype(float)
    rng = np.random.default_rng(seed)
    return (index + 0.5) * spacing + rng.normal(scale=0.01, size=index.shape), np.eye(3) * side * spacing


@pytest.mark.parametrize("graphs", [False, True])
@pytest.mark.parametrize("capacity", [0, 10])
@pytest.mark.parametrize("triclinic", [False, True])
def test_periodic_neighbor_list(triclinic, capacity, graphs):
    n = 96
    pos, box = random_box(n, density=40.0, seed=11, triclinic=triclinic)
    pos[:5] += 3 * box[0] - 2 * box[2]  # atoms outside the primary cell
    numbers = [1] * n
    force = nnforce.NNForce(torch.jit.script(RadialMLP(elements=[1], cutoff=0.5, seed=4)))
    force.setUsesPeriodicBoundaryConditions(True)
    force.setAtomicNumbers(numbers)
    force.setNeighborList(0.5, 0.05, capacity)
    system = make_system(n, force, box=box)
    reference = reference_context(system)
    cuda = cuda_context(system, "double", graphs)
    for pos_k in position_sets(pos, count=5, seed=2, step=0.01):
        assert_close(energy_forces(cuda, pos_k), energy_forces(reference, pos_k), "double")


class Charged(torch.nn.Module):
    """E = sum q_i z_i |r_i|^2 + sum d_i . r_i: reads atomic_numbers and two per-atom inputs."""

    def forward(self, positions: Tensor, atomic_numbers: Tensor, charges: Tensor, dipoles: Tensor) -> Tensor:
        r2 = (positions * positions).sum(1)
        return (charges * atomic_numbers.to(positions.dtype) * r2).sum() + (dipoles * positions).sum()


@pytest.mark.parametrize("graphs", [False, True])
def test_subset_atomic_numbers_and_per_atom_inputs(graphs):
    n = 300  # more particles than one OpenMM tile, so the subset spans reordered blocks
    pos = random_positions(n, 3.0, seed=8)
    atoms = [217, 2, 5, 0, 299, 64]
    force = nnforce.NNForce(torch.jit.script(Charged()))
    force.setAtoms(atoms)
    force.setAtomicNumbers([8, 1, 6, 1, 7, 1])
    force.addPerAtomInput("charges", [0.5, -0.25, 0.1, 0.3, -0.6, 0.2])
    force.addPerAtomInput("dipoles", (np.arange(18, dtype=float) / 10).tolist(), 3)
    system = make_system(n, force)
    reference = reference_context(system)
    cuda = cuda_context(system, "double", graphs)
    for pos_k in position_sets(pos, count=5):
        got, expected = energy_forces(cuda, pos_k), energy_forces(reference, pos_k)
        assert_close(got, expected, "double")
        others = [i for i in range(n) if i not in atoms]
        assert np.all(got[1][others] == 0.0)
    # per-atom inputs changed at run time reach the (captured) model
    force.setPerAtomInput("charges", [-1.0, 0.5, 0.5, 0.0, 0.1, 0.1])
    force.updateParametersInContext(cuda)
    force.updateParametersInContext(reference)
    assert_close(energy_forces(cuda, pos), energy_forces(reference, pos), "double")


class Scaled(torch.nn.Module):
    def forward(self, positions: Tensor, scale: Tensor, offset: Tensor, shift: float) -> Tensor:
        return scale * scale * (positions * positions).sum() + offset + shift


@pytest.mark.parametrize("graphs", [False, True])
@pytest.mark.parametrize("precision", ["mixed", "double"])
def test_global_parameters_and_derivatives(precision, graphs, positions):
    force = nnforce.NNForce(torch.jit.script(Scaled()))
    force.addGlobalParameter("offset", 1.5)
    force.addGlobalParameter("scale", 2.0)
    force.addGlobalParameter("shift", 0.25)  # a Python float argument: a constant of the captured graph
    force.addEnergyParameterDerivative("scale")
    system = make_system(N, force)
    reference = reference_context(system)
    cuda = cuda_context(system, precision, graphs)
    # eager, eager, capture, replays with new tensor values; a new float value forces a re-capture
    settings = [(2.0, 0.25), (2.0, 0.25), (3.0, 0.25), (3.0, 0.25), (0.5, 0.25), (0.5, -1.0), (0.5, -1.0), (0.5, -1.0), (4.0, -1.0)]
    for scale, shift in settings:
        for context in (cuda, reference):
            context.setParameter("scale", scale)
            context.setParameter("shift", shift)
            context.setPositions(positions)
        got = cuda.getState(getEnergy=True, getForces=True, getParameterDerivatives=True)
        expected = reference.getState(getEnergy=True, getForces=True, getParameterDerivatives=True)
        tol = TOLERANCE[precision]
        assert got.getPotentialEnergy()._value == pytest.approx(expected.getPotentialEnergy()._value, rel=tol)
        d_got = got.getEnergyParameterDerivatives()["scale"]
        d_expected = expected.getEnergyParameterDerivatives()["scale"]
        assert d_expected == pytest.approx(2 * scale * float((positions ** 2).sum()), rel=1e-12)
        assert d_got == pytest.approx(d_expected, rel=tol)
        assert rel_err(got.getForces(asNumpy=True)._value, expected.getForces(asNumpy=True)._value) < tol


class WithForces(torch.nn.Module):
    def forward(self, positions: Tensor):
        energy = (positions ** 4).sum()
        return energy, -4 * positions ** 3


@pytest.mark.parametrize("graphs", [False, True])
def test_outputs_forces(graphs, positions):
    force = nnforce.NNForce(torch.jit.script(WithForces()))
    force.setOutputsForces(True)
    system = make_system(N, force)
    reference = reference_context(system)
    cuda = cuda_context(system, "double", graphs)
    for pos in position_sets(positions):
        assert_close(energy_forces(cuda, pos), energy_forces(reference, pos), "double")


@pytest.mark.parametrize("graphs", [False, True])
def test_energy_only_requests(graphs, positions):
    system = make_system(N, nnforce.NNForce(torch.jit.script(LennardJones(cutoff=10.0))))
    reference, cuda = reference_context(system), cuda_context(system, "double", graphs)
    for pos in position_sets(positions):
        for context in (cuda, reference):
            context.setPositions(pos)
        e_cuda = cuda.getState(getEnergy=True).getPotentialEnergy()._value
        e_ref = reference.getState(getEnergy=True).getPotentialEnergy()._value
        assert e_cuda == pytest.approx(e_ref, rel=1e-8)


@pytest.mark.parametrize("graphs", [False, True])
def test_dynamics_with_neighbor_list_growth(graphs):
    """Dynamics from a small capacity: the list grows (the step is recomputed) and the end state matches Reference."""
    pos, box = jittered_lattice(5, 0.3, seed=5)
    n = len(pos)
    force = nnforce.NNForce(torch.jit.script(LennardJones(cutoff=0.6, sigma=0.25, epsilon=0.5)))
    force.setUsesPeriodicBoundaryConditions(True)
    force.setNeighborList(0.6, 0.05, 16)
    system = make_system(n, force, box=box)
    for i in range(n):
        system.setParticleMass(i, 40.0)
    cuda = cuda_context(system, "double", graphs)
    cuda.setPositions(pos)
    cuda.setVelocitiesToTemperature(300, 1)
    cuda.getIntegrator().step(300)
    state = cuda.getState(getPositions=True, getEnergy=True, getForces=True)
    final = state.getPositions(asNumpy=True)._value
    reference = reference_context(system)
    got = (state.getPotentialEnergy()._value, state.getForces(asNumpy=True)._value)
    assert_close(got, energy_forces(reference, final), "double")
    assert np.abs(final - pos).max() > 1e-3  # the atoms really moved


def test_two_contexts_on_one_gpu(positions):
    lj = make_system(N, nnforce.NNForce(torch.jit.script(LennardJones(cutoff=10.0))))
    radial = make_system(N, nnforce.NNForce(torch.jit.script(RadialMLP(elements=[1], cutoff=0.6))))
    a, b = cuda_context(lj, "double", True), cuda_context(radial, "double", False)
    ref_a, ref_b = reference_context(lj), reference_context(radial)
    for pos in position_sets(positions):
        assert_close(energy_forces(a, pos), energy_forces(ref_a, pos), "double")
        assert_close(energy_forces(b, pos), energy_forces(ref_b, pos), "double")


@pytest.mark.parametrize("graphs", [False, True])
def test_no_gpu_memory_growth_over_10000_steps(graphs, positions):
    force = nnforce.NNForce(torch.jit.script(RadialMLP(elements=[1], cutoff=0.6)))
    force.setNeighborList(0.6, 0.05)
    context = cuda_context(make_system(N, force), "mixed", graphs)
    context.setPositions(positions)
    integrator = context.getIntegrator()
    integrator.step(200)
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated(), torch.cuda.memory_reserved()
    integrator.step(10000)
    context.getState(getEnergy=True)
    torch.cuda.synchronize()
    after = torch.cuda.memory_allocated(), torch.cuda.memory_reserved()
    assert after[0] <= before[0]
    assert after[1] <= before[1]


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_device_index_is_honoured(positions):
    system = make_system(N, nnforce.NNForce(torch.jit.script(LennardJones(cutoff=10.0))))
    before = torch.cuda.memory_allocated(1)
    context = cuda_context(system, "double", False, device_index=1)
    assert_close(energy_forces(context, positions), energy_forces(reference_context(system), positions), "double")
    assert torch.cuda.memory_allocated(1) > before


class NaNEnergy(torch.nn.Module):
    def forward(self, positions: Tensor) -> Tensor:
        return positions.sum() * float("nan")


class NaNForce(torch.nn.Module):
    def forward(self, positions: Tensor) -> Tensor:
        return torch.sqrt(positions[3, 0] - positions[3, 0]) + positions.sum()  # d/dx sqrt(0) = inf on atom 3


@pytest.mark.parametrize("graphs", [False, True])
def test_non_finite_outputs_are_reported(graphs, positions):
    context = cuda_context(make_system(N, nnforce.NNForce(torch.jit.script(NaNEnergy()))), "mixed", graphs)
    context.setPositions(positions)
    with pytest.raises(openmm.OpenMMException, match="non-finite energy"):
        context.getState(getEnergy=True, getForces=True)
    context = cuda_context(make_system(N, nnforce.NNForce(torch.jit.script(NaNForce()))), "mixed", graphs)
    context.setPositions(positions)
    with pytest.raises(openmm.OpenMMException, match="non-finite force on atom 3"):
        context.getState(getEnergy=True, getForces=True)


def test_bad_graph_property():
    force = nnforce.NNForce(torch.jit.script(LennardJones(cutoff=10.0)))
    with pytest.raises(Exception, match="useCUDAGraphs|true"):
        force.setProperty("useCUDAGraphs", "maybe")
        openmm.Context(make_system(4, force), openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("CUDA"))


# .pt2 packages on CUDA: the same model compiled with to_pt2(..., device="cuda") and device="cpu"; the CUDA platform runs
# the CUDA package on the Context's device (in the kernel's stream order), Reference runs the CPU package.

def _pt2_example(positions, atomic_numbers, charges, cutoff):
    x = torch.tensor(positions)
    i, j = torch.triu_indices(len(x), len(x), 1)
    keep = (x[i] - x[j]).norm(dim=1) < cutoff
    pairs = torch.stack([i[keep], j[keep]])
    return {"positions": x, "atomic_numbers": torch.tensor(atomic_numbers), "neighbors": pairs,
            "shifts": torch.zeros(pairs.shape[1], 3, dtype=torch.float64), "scale": torch.tensor(1.3, dtype=torch.float64),
            "charges": torch.tensor(charges)}


@pytest.fixture(scope="module")
def pt2_packages(tmp_path_factory, positions):
    from nnforce.export import to_pt2
    from pt2_models import CUTOFF, ELEMENTS, Scaled as Pt2Model  # the model of the CPU .pt2 tests (tests/test_pt2.py)

    rng = np.random.default_rng(5)
    atomic_numbers = [int(z) for z in rng.choice(ELEMENTS, N)]
    charges = rng.uniform(-0.5, 0.5, N)
    model = Pt2Model().double().eval()
    example = _pt2_example(positions, atomic_numbers, charges, CUTOFF)
    directory = tmp_path_factory.mktemp("pt2")
    packages = {}
    for device in ("cuda", "cpu"):
        path = str(directory / f"model-{device}.pt2")
        to_pt2(model, path, example, derivatives=["scale"], max_atoms=1000, device=device)
        packages[device] = path
    return packages, atomic_numbers, charges, CUTOFF


def _pt2_force(path, atomic_numbers, charges, cutoff):
    force = nnforce.NNForce(path)
    force.setAtomicNumbers(atomic_numbers)
    force.addPerAtomInput("charges", list(charges))
    force.addGlobalParameter("scale", 1.3)
    force.addEnergyParameterDerivative("scale")
    force.setNeighborList(cutoff, 0.05)
    return force


def _energy_forces_derivative(context, pos, scale):
    context.setParameter("scale", scale)
    context.setPositions(pos)
    state = context.getState(getEnergy=True, getForces=True, getParameterDerivatives=True)
    return (state.getPotentialEnergy()._value, state.getForces(asNumpy=True)._value,
            state.getEnergyParameterDerivatives()["scale"])


def test_pt2_records_its_device(pt2_packages):
    from nnforce.export import read_metadata

    packages = pt2_packages[0]
    assert read_metadata(packages["cuda"])["device"] == "cuda"
    assert read_metadata(packages["cpu"])["device"] == "cpu"


@pytest.mark.parametrize("graphs", [False, True])
def test_pt2_matches_reference(pt2_packages, graphs, positions):
    packages, atomic_numbers, charges, cutoff = pt2_packages
    reference = reference_context(make_system(N, _pt2_force(packages["cpu"], atomic_numbers, charges, cutoff)))
    cuda = cuda_context(make_system(N, _pt2_force(packages["cuda"], atomic_numbers, charges, cutoff)), "double", graphs)
    for k, pos in enumerate(position_sets(positions)):  # eager, capture + replay, replays; a new parameter value
        scale = 1.3 if k < 4 else 0.7
        e_cuda, f_cuda, d_cuda = _energy_forces_derivative(cuda, pos, scale)
        e_ref, f_ref, d_ref = _energy_forces_derivative(reference, pos, scale)
        assert e_cuda == pytest.approx(e_ref, rel=1e-8)
        assert rel_err(f_cuda, f_ref) < 1e-8
        assert d_cuda == pytest.approx(d_ref, rel=1e-8)


def test_pt2_package_for_the_other_device_is_refused(pt2_packages):
    packages, atomic_numbers, charges, cutoff = pt2_packages
    system = make_system(N, _pt2_force(packages["cpu"], atomic_numbers, charges, cutoff))
    with pytest.raises(openmm.OpenMMException) as caught:
        cuda_context(system, "double")
    message = str(caught.value)
    assert "compiled for the device 'cpu' but this platform runs it on 'cuda'" in message
    assert 'device="cuda"' in message and "nnforce export --format pt2 --device cuda" in message
    system = make_system(N, _pt2_force(packages["cuda"], atomic_numbers, charges, cutoff))
    with pytest.raises(openmm.OpenMMException, match="compiled for the device 'cuda' but this platform runs it on 'cpu'"):
        reference_context(system)
