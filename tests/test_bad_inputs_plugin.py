"""Issue 15, plugin side: inputs that used to pass silently (or fail with a raw error) are now clear errors.

Each test names the defect it covers; on the code before the fix each one fails (a silently wrong energy, a
setting read as something else, a damaged model accepted, an allocator error).
"""
import hashlib
import io
import os
import re
import subprocess
import sys
import textwrap
import zlib

import numpy as np
import openmm
import pytest
import torch
from torch import Tensor

import nnforce
from nnforce import plugin
from plugin_helpers import context_for, make_system
from zip_surgery import add_entry, data_range, declare_size, deflate_zeros

POS = np.array([[0.1, 0.2, 0.3], [0.4, -0.1, 0.0], [-0.3, 0.2, 0.5]])


def energy(force, n=3, box=None):
    context = context_for(make_system(n, force, box=box))
    context.setPositions(POS[:n])
    return context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(openmm.unit.kilojoule_per_mole)


class ThousandAPlusB(torch.nn.Module):
    def forward(self, positions: Tensor, a: Tensor, b: Tensor) -> Tensor:
        return 1000.0 * a + b + 0.0 * positions.sum()


def model_bytes(module):
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(module), buffer)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def small_model():
    return model_bytes(ThousandAPlusB())


# ---- binding by name is strict ----

def test_misspelt_global_parameter_is_an_error_not_a_positional_binding(small_model):
    force = nnforce.NNForce(small_model)
    force.addGlobalParameter("b", 2.0)
    force.addGlobalParameter("A", 7.0)  # a typo for "a": used to give 2007 (b -> a, A -> b by position)
    with pytest.raises(openmm.OpenMMException, match=r"no argument named 'A'.*forward\(\) takes: positions, a, b.*global parameters: b, A"):
        energy(force)


def test_positional_fallback_only_when_no_name_matches_and_said_once_in_the_log(tmp_path):
    """forward(positions, a, b) with globals g1, g2: TorchForce's positional order (g1 -> a, g2 -> b), logged once.
    (Globals 'A', 'B' are now refused as near misses of 'a', 'b' (issue 24): a case typo must not bind by position.)"""
    path = tmp_path / "model.pt"
    path.write_bytes(model_bytes(ThousandAPlusB()))
    script = textwrap.dedent(f"""
        import openmm, nnforce
        for repeat in range(2):
            force = nnforce.NNForce({str(path)!r})
            force.addGlobalParameter("g1", 2.0)
            force.addGlobalParameter("g2", 7.0)
            system = openmm.System()
            system.addParticle(1.0)
            system.addForce(force)
            context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
            context.setPositions([[0.1, 0.2, 0.3]])
            print(context.getState(getEnergy=True).getPotentialEnergy()._value)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert result.returncode == 0, result.stderr
    assert [float(v) for v in result.stdout.split()] == [2007.0, 2007.0]
    assert result.stderr.count("bound by position as openmm-torch's TorchForce does") == 1


class TakesNothingExtra(torch.nn.Module):
    def forward(self, positions: Tensor) -> Tensor:
        return (positions * positions).sum()


def test_global_parameter_the_model_does_not_take_is_an_error():
    force = nnforce.NNForce(torch.jit.script(TakesNothingExtra()))
    force.addGlobalParameter("lambda_ml", 0.5)  # used to be ignored without a word
    with pytest.raises(openmm.OpenMMException, match=r"takes none of the force's global parameters \(lambda_ml\)"):
        energy(force)


def test_per_atom_input_is_never_bound_by_position(small_model):
    force = nnforce.NNForce(small_model)
    force.addGlobalParameter("A", 2.0)
    force.addGlobalParameter("B", 7.0)
    force.addPerAtomInput("charges", [0.1, 0.2, -0.3])  # used to be dropped silently by the positional binding
    with pytest.raises(openmm.OpenMMException, match="takes no argument named 'charges'.*by name only"):
        energy(force)


class BoxFirst(torch.nn.Module):
    def forward(self, box: Tensor, pos: Tensor) -> Tensor:
        return box.sum() + 10.0 * pos.sum()


def test_positional_fallback_refuses_a_contract_name_in_another_slot():
    force = nnforce.NNForce(torch.jit.script(BoxFirst()))
    force.setUsesPeriodicBoundaryConditions(True)  # positional order would hand the positions to 'box'
    with pytest.raises(openmm.OpenMMException, match="its argument 'box' would receive something else"):
        energy(force, box=np.eye(3) * 2.0)


# ---- the XML is read strictly and the model bytes carry a SHA-256 ----

def serialized(small_model):
    force = nnforce.NNForce(small_model)
    force.addGlobalParameter("a", 1.0)
    force.addGlobalParameter("b", 2.0)
    force.setAtoms([2, 0, 1])
    force.setAtomicNumbers([8, 1, 1])
    force.setNeighborList(0.5, 0.1, 100)
    return openmm.XmlSerializer.serialize(force)


@pytest.mark.parametrize("attribute, before, after", [
    ("atoms", 'atoms="2 0 1"', 'atoms="a b c"'),                 # used to mean "all atoms"
    ("atoms", 'atoms="2 0 1"', 'atoms="2 0 1.5"'),
    ("atomicNumbers", 'atomicNumbers="8 1 1"', 'atomicNumbers="8 1 H"'),  # used to be accepted
    ("neighborCapacity", 'neighborCapacity="100"', 'neighborCapacity="4000000000000"'),  # used to be an allocator error
    ("neighborCutoff", 'neighborCutoff=".5"', 'neighborCutoff="half"'),  # used to switch the list off
    ("default", 'default="2"', 'default="2x"'),
    ("usesPeriodic", 'usesPeriodic="0"', 'usesPeriodic="no"'),
])
def test_bad_xml_attribute_is_an_error_naming_it(small_model, attribute, before, after):
    xml = serialized(small_model)
    assert before in xml
    with pytest.raises(openmm.OpenMMException, match=f"attribute '{attribute}'"):
        openmm.XmlSerializer.deserialize(xml.replace(before, after))


def test_xml_carries_the_sha256_of_the_model_and_checks_it(small_model):
    xml = serialized(small_model)
    digest = re.search(r'modelSha256="([0-9a-f]{64})"', xml).group(1)
    assert digest == hashlib.sha256(small_model).hexdigest()
    start = xml.index('model="') + 7 + 300
    damaged = xml[:start] + ("B" if xml[start] == "A" else "A") + xml[start + 1:]
    with pytest.raises(openmm.OpenMMException, match="do not match the SHA-256"):
        openmm.XmlSerializer.deserialize(damaged)
    kept = openmm.XmlSerializer.deserialize(xml)  # owns the C++ object the cast refers to
    restored = nnforce.NNForce.cast(kept)
    assert restored.getModelBytes() == small_model and list(restored.getAtoms()) == [2, 0, 1]


def test_neighbor_capacity_has_a_clear_limit_that_can_be_raised(small_model, monkeypatch):
    force = nnforce.NNForce(small_model)
    with pytest.raises(openmm.OpenMMException, match="NNFORCE_MAX_NEIGHBOR_CAPACITY"):
        force.setNeighborList(0.5, 0.0, 2**31 - 1)
    monkeypatch.setenv("NNFORCE_MAX_NEIGHBOR_CAPACITY", str(2**31 - 1))
    force.setNeighborList(0.5, 0.0, 2**31 - 1)  # allowed when asked for (nothing is allocated until a Context)
    assert force.getNeighborListCapacity() == 2**31 - 1


# ---- every model archive is verified before libtorch reads it ----

def test_flipped_byte_in_any_entry_is_refused(small_model):
    import zipfile

    names = zipfile.ZipFile(io.BytesIO(small_model)).namelist()
    for name in names:
        start, length = data_range(small_model, name)
        if length == 0:
            continue
        damaged = bytearray(small_model)
        damaged[start + length // 2] ^= 0x01
        with pytest.raises(openmm.OpenMMException, match=f"'{re.escape(name)}' (fails its CRC-32 check|does not inflate)"):
            nnforce.NNForce(bytes(damaged))


def test_truncated_model_is_called_truncated_not_a_torch_save_file(small_model, tmp_path):
    path = tmp_path / "model.pt"
    path.write_bytes(small_model[: len(small_model) // 2])
    with pytest.raises(openmm.OpenMMException, match="no zip end record.*cut short") as error:
        nnforce.NNForce(str(path))
    assert "torch.save" not in str(error.value)


def test_directory_given_as_a_model_is_called_a_directory(tmp_path):
    with pytest.raises(IsADirectoryError, match="is a directory, not a model file"):
        nnforce.NNForce(str(tmp_path))


def test_archive_inflating_to_gigabytes_is_refused_before_inflating(small_model):
    """1.5 MiB of deflate that inflates to 1.5 GiB: refused from the directory, without allocating it."""
    size = 1536 << 20
    bomb = add_entry(small_model, "model/data/blob", deflate_zeros(size), size, 0)
    with pytest.raises(openmm.OpenMMException, match="inflate to more than the limit of 1024 MiB.*NNFORCE_MAX_INFLATED_MB"):
        nnforce.NNForce(bomb)


def test_entry_inflating_past_its_declared_size_is_stopped(small_model):
    payload = deflate_zeros(64 << 20)
    lying = add_entry(small_model, "model/data/blob", payload, 1024, zlib.crc32(bytes(1024)))
    with pytest.raises(openmm.OpenMMException, match="'model/data/blob' does not inflate to the 1024 bytes"):
        nnforce.NNForce(lying)
    # and the directory's size is what the limit reads
    with pytest.raises(openmm.OpenMMException, match="NNFORCE_MAX_INFLATED_MB"):
        nnforce.NNForce(declare_size(lying, "model/data/blob", 0xFFFFFFF0))


def test_huge_metadata_entry_is_refused_and_the_limit_can_be_raised(tmp_path, monkeypatch):
    path = tmp_path / "model.pt"
    torch.jit.save(torch.jit.script(TakesNothingExtra()), str(path), _extra_files={"nnforce_metadata.json": " " * (17 << 20)})
    with pytest.raises(openmm.OpenMMException, match="metadata entry .*nnforce_metadata.json' holds 17825792 bytes.*NNFORCE_MAX_METADATA_MB"):
        nnforce.NNForce(str(path))
    monkeypatch.setenv("NNFORCE_MAX_METADATA_MB", "32")
    assert energy(nnforce.NNForce(str(path))) == pytest.approx((POS * POS).sum())


def test_bad_limit_environment_variable_is_named(small_model, monkeypatch):
    monkeypatch.setenv("NNFORCE_MAX_INFLATED_MB", "lots")
    with pytest.raises(openmm.OpenMMException, match="NNFORCE_MAX_INFLATED_MB must be a whole number of MiB >= 1, not 'lots'"):
        nnforce.NNForce(small_model)


@pytest.mark.parametrize("length", [0, 1, 55, 56, 63, 64, 65, 119, 120, 1000, 1 << 20])
def test_sha256_and_crc32_match_hashlib_and_zlib(length):
    data = np.random.default_rng(length).integers(0, 256, length, dtype=np.uint8).tobytes()
    assert plugin.sha256Hex(data) == hashlib.sha256(data).hexdigest()
    assert plugin.crc32Of(data) == zlib.crc32(data)


class Weighted(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor([1.5, -2.0, 0.25]))

    def forward(self, positions: Tensor) -> Tensor:
        return (positions * self.w).sum()


def test_pt2_archives_get_the_same_verification(tmp_path):
    """A .pt2 package (PT2 archive, as torch.export.save and AOTInductor write it) is checked the same way."""
    path = tmp_path / "model.pt2"
    torch.export.save(torch.export.export(Weighted(), (torch.zeros(4, 3),)), str(path))
    data = path.read_bytes()
    plugin.checkModelArchive(data, "model.pt2")  # a good archive passes
    name = next(n for n in __import__("zipfile").ZipFile(io.BytesIO(data)).namelist() if n.endswith("weight_0"))
    start, length = data_range(data, name)
    damaged = bytearray(data)
    damaged[start + length - 1] ^= 0x04  # one bit of the last weight
    with pytest.raises(openmm.OpenMMException, match=f"'{re.escape(name)}' fails its CRC-32 check"):
        plugin.checkModelArchive(bytes(damaged), "model.pt2")


def test_entry_marked_as_directory_is_refused(small_model):
    """libtorch's zip reader extracts nothing from an entry whose MS-DOS directory attribute is set, leaving the
    tensor's buffer unread: found by bench/fuzz_models.py (byte 38 of a central directory entry), now refused."""
    import struct
    from zip_surgery import central_entries

    name, central, _ = next(e for e in central_entries(small_model) if e[0].endswith("data.pkl"))
    damaged = bytearray(small_model)
    damaged[central + 38] |= 0x10
    with pytest.raises(openmm.OpenMMException, match=f"'{re.escape(name)}' is marked as a directory but holds data"):
        nnforce.NNForce(bytes(damaged))
    assert struct.unpack("<I", small_model[central + 38:central + 42])[0] & 0x10 == 0


# ---- issue 24: inputs that used to give a silently wrong number ----

def _lj_with_cutoff_metadata(cutoff_nm):
    from nnforce.models import LennardJones

    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(LennardJones(cutoff=0.85)), buffer,
                   _extra_files={"nnforce_metadata.json": '{"elements": [18], "cutoff_nm": %r}' % cutoff_nm})
    return buffer.getvalue()


def test_the_model_recorded_cutoff_binds_the_neighbor_list():
    """A list as long as the recorded cutoff gives the all-pairs energy; a shorter one is refused at Context
    creation (it gave the energy of the pairs inside 0.5 nm only)."""
    positions = np.array([[0.0, 0, 0], [0.37, 0, 0], [0.0, 0.62, 0.0]])  # one pair at 0.62 nm: inside 0.85, beyond 0.5
    model = _lj_with_cutoff_metadata(0.85)
    energies = {}
    for cutoff in (0.0, 0.85, 0.9):
        force = nnforce.NNForce(model)
        force.setNeighborList(cutoff)
        context = context_for(make_system(3, force))
        context.setPositions(positions)
        energies[cutoff] = context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(
            openmm.unit.kilojoule_per_mole)
    from nnforce.models import LennardJones

    lj = LennardJones(cutoff=0.85).double()
    expected = float(lj(torch.tensor(positions)))
    assert energies[0.0] == pytest.approx(expected, rel=1e-10)
    assert energies[0.85] == pytest.approx(expected, rel=1e-10) and energies[0.9] == pytest.approx(expected, rel=1e-10)
    short = nnforce.NNForce(model)
    short.setNeighborList(0.5)
    with pytest.raises(openmm.OpenMMException, match=r"cutoff 0\.5 nm is shorter than the model's own cutoff 0\.85 nm"):
        context_for(make_system(3, short))


class TorchForceStyle(torch.nn.Module):
    """openmm-torch's convention: forward(positions, box) with the box argument under another name."""

    def forward(self, positions: Tensor, boxvectors: Tensor) -> Tensor:
        return boxvectors[0, 0] * (positions * positions).sum()


class Scaled(torch.nn.Module):
    def forward(self, positions: Tensor, k: Tensor) -> Tensor:
        return k * (positions * positions).sum()


def test_positional_binding_still_serves_models_that_follow_it():
    """The new name checks refuse only names that say otherwise: TorchForce's forward(positions, boxvectors) on a
    periodic force and forward(positions, k) with a global 'k' still get the box and k."""
    positions = np.array([[0.1, 0.2, 0.3], [0.4, 0.1, 0.0]])
    force = nnforce.NNForce(torch.jit.script(TorchForceStyle()))
    force.setUsesPeriodicBoundaryConditions(True)
    context = context_for(make_system(2, force, box=np.eye(3) * 2.5))
    context.setPositions(positions)
    energy = context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(openmm.unit.kilojoule_per_mole)
    assert energy == pytest.approx(2.5 * (positions ** 2).sum(), rel=1e-10)
    force = nnforce.NNForce(torch.jit.script(Scaled()))
    force.addGlobalParameter("k", 3.0)
    context = context_for(make_system(2, force))
    context.setPositions(positions)
    energy = context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(openmm.unit.kilojoule_per_mole)
    assert energy == pytest.approx(3.0 * (positions ** 2).sum(), rel=1e-10)
    force = nnforce.NNForce(torch.jit.script(Scaled()))
    force.addGlobalParameter("K", 3.0)  # case only: was bound by position
    with pytest.raises(openmm.OpenMMException, match=r"takes 'k' and the force gives 'K'"):
        context_for(make_system(2, force)).getState(getEnergy=True)


class Float32Energy(torch.nn.Module):
    def forward(self, positions: Tensor) -> Tensor:
        return (positions * positions).sum().float()


def test_float32_energy_is_kept_and_float16_refused():
    positions = np.array([[0.1, 0.2, 0.3], [0.4, 0.1, 0.0]])
    force = nnforce.NNForce(torch.jit.script(Float32Energy()))
    context = context_for(make_system(2, force))
    context.setPositions(positions)
    state = context.getState(getEnergy=True, getForces=True)
    assert state.getPotentialEnergy().value_in_unit(openmm.unit.kilojoule_per_mole) == pytest.approx(
        (positions ** 2).sum(), rel=1e-6)
    forces = state.getForces(asNumpy=True).value_in_unit(openmm.unit.kilojoule_per_mole / openmm.unit.nanometer)
    np.testing.assert_allclose(forces, -2 * positions, rtol=1e-6)
