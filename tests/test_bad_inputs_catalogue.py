"""The bad-input catalogue (issue 15): every input a new user or a tester is likely to get wrong, tried at once.

Each case is clean when it fails the way a user can act on:
* a command line: exit status 2, exactly one line ``nnforce COMMAND: error: ...`` on stderr saying what is wrong
  (matching the case's pattern), and no traceback;
* an API call: the documented exception type (openmm.OpenMMException from the plugin, ValueError / OSError
  subclasses from Python) with a message matching the case's pattern: never a wrong number, a crash or a hang.

The test prints ``tried N, clean M`` and every case must be clean. Cases share one set of small inputs made once
(a 2-atom argon PDB and Lennard-Jones models, a 20-step run to damage, ...), so the catalogue runs in well under
a minute.
"""
import contextlib
import io
import json
import os
import re
import shutil
import zlib

import numpy as np
import openmm
import pytest
import torch
from openmm import app
from torch import Tensor

import nnforce
from nnforce.models import LennardJones
from plugin_helpers import context_for, make_system
from zip_surgery import add_entry, data_range, deflate_zeros

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Raises(torch.nn.Module):
    def forward(self, positions: Tensor) -> Tensor:
        if bool(positions.sum() > -1e9):
            raise RuntimeError("this model refuses every input")
        return positions.sum()


class ReturnsNaN(torch.nn.Module):
    def forward(self, positions: Tensor) -> Tensor:
        return positions.sum() * float("nan")


class WrongShape(torch.nn.Module):
    def forward(self, positions: Tensor) -> Tensor:
        return (positions * positions).sum(1)


class ThousandAPlusB(torch.nn.Module):
    def forward(self, positions: Tensor, a: Tensor, b: Tensor) -> Tensor:
        return 1000.0 * a + b + 0.0 * positions.sum()


class NeedsBox(torch.nn.Module):
    def forward(self, positions: Tensor, box: Tensor) -> Tensor:
        return box.sum() * positions.sum()


class OutputsWrongForces(torch.nn.Module):
    def forward(self, positions: Tensor):
        return positions.sum(), positions[:1]


class TakesCharges(torch.nn.Module):
    def forward(self, positions: Tensor, charges: Tensor) -> Tensor:
        return (charges.sum() + 1.0) * (positions * positions).sum()


class HalfEnergy(torch.nn.Module):
    def forward(self, positions: Tensor) -> Tensor:
        return (85.05 + 0.0 * positions.sum()).to(torch.float16)


class DetachedEnergy(torch.nn.Module):
    def forward(self, positions: Tensor) -> Tensor:
        return (positions.detach() ** 2).sum()


class IgnoresPositions(torch.nn.Module):
    def forward(self, positions: Tensor, scale: Tensor) -> Tensor:
        return scale * 2.0


def _save(module, path, metadata=None):
    extra = {"nnforce_metadata.json": json.dumps(metadata)} if metadata else {}
    torch.jit.save(torch.jit.script(module), str(path), _extra_files=extra)
    return str(path)


def _argon_pdb(path, n=2, box=None):
    topology = app.Topology()
    residue = topology.addResidue("AR", topology.addChain())
    for i in range(n):
        topology.addAtom(f"AR{i + 1}", app.element.argon, residue)
    if box is not None:
        topology.setPeriodicBoxVectors(np.eye(3) * box * openmm.unit.nanometer)
    positions = np.array([[0.0, 0.0, 0.0], [0.38, 0.0, 0.0], [0.0, 0.38, 0.0], [0.38, 0.38, 0.0]][:n]) + 0.5
    with open(path, "w") as handle:
        app.PDBFile.writeFile(topology, positions * 10.0 * openmm.unit.angstrom, handle)
    return str(path)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    from nnforce.cli import main

    root = tmp_path_factory.mktemp("bad_inputs")
    f = {"root": root}
    f["pdb"] = _argon_pdb(root / "argon.pdb")
    f["lj"] = _save(LennardJones(), root / "lj.pt", {"elements": [18], "cutoff_nm": 0.85})
    f["methanol_pdb"] = str(root / "mcl.pdb")
    topology = app.Topology()
    residue = topology.addResidue("MCL", topology.addChain())
    for name, symbol in (("C1", "C"), ("CL1", "Cl"), ("H1", "H")):
        topology.addAtom(name, app.element.Element.getBySymbol(symbol), residue)
    with open(f["methanol_pdb"], "w") as handle:
        app.PDBFile.writeFile(topology, np.array([[0, 0, 0], [1.78, 0, 0], [-0.36, 1.0, 0]]) * openmm.unit.angstrom, handle)
    for name, module in (("raises", Raises()), ("nan", ReturnsNaN()), ("shape", WrongShape())):
        f[name] = _save(module, root / f"{name}.pt")
    data = open(f["lj"], "rb").read()
    f["lj_bytes"] = data
    (root / "text.pt").write_text("not a model\n")
    (root / "empty.pt").write_bytes(b"")
    (root / "truncated.pt").write_bytes(data[: len(data) // 2])
    start, length = data_range(data, next(n for n in _names(data) if n.endswith("data.pkl")))
    flipped = bytearray(data)
    flipped[start + length // 2] ^= 0x20
    (root / "flipped.pt").write_bytes(bytes(flipped))
    torch.save({"w": torch.zeros(2)}, root / "state_dict.pt")
    (root / "modeldir").mkdir()
    (root / "afile").write_text("a file, not a folder\n")
    # a 20-step run to damage: checkpoint, checkpoint.json, trajectory
    run = root / "run"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(["simulate", f["pdb"], f["lj"], "-o", str(run), "--steps", "20", "--equilibration-steps", "0",
                     "--platform", "Reference", "--trajectory-interval", "2", "--no-progress", "--threads", "1"]) == 0
    f["run"] = str(run)
    (root / "cut.dcd").write_bytes(open(run / "trajectory.dcd", "rb").read()[:-7])  # frame 10 of 10 cut short
    # a checkpoint whose weights do not fit the model its spec describes
    from nnforce.train.config import build_model

    spec = {"type": "pair", "elements": [18]}
    weights = {k: torch.zeros(3) for k in build_model(spec).state_dict()} or {"stray": torch.zeros(3)}
    torch.save({"format": "nnforce-checkpoint", "version": 1, "model_state": weights, "best_model_state": None,
                "model_spec": spec, "history": [], "metadata": None}, root / "misfit.ckpt")
    pdb_text = open(f["pdb"]).read()
    f["swapped_pdb"] = str(root / "argon_swapped.pdb")  # the same 2 atoms, the other order
    open(f["swapped_pdb"], "w").write(pdb_text.replace("AR1", "ARX").replace("AR2", "AR1").replace("ARX", "AR2"))
    return f


def _names(data):
    import zipfile

    return zipfile.ZipFile(io.BytesIO(data)).namelist()


def _damaged_run(inputs, name, damage):
    """A copy of the 20-step run folder with one file damaged by ``damage(path)``."""
    target = os.path.join(str(inputs["root"]), "runs", name)
    if not os.path.isdir(target):
        shutil.copytree(inputs["run"], target)
        damage(target)
    return target


def _cli(argv):
    """(exit status, stderr) of ``nnforce argv`` run in this process."""
    from nnforce.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as stop:
            code = stop.code
    return code, err.getvalue()


def _clean_cli(argv, pattern):
    code, err = _cli(argv)
    errors = [line for line in err.splitlines() if re.match(r"nnforce( \w+)?: (internal )?error:", line)]
    problems = []
    if code != 2:
        problems.append(f"exit status {code}")
    if "Traceback" in err:
        problems.append("traceback")
    if len(errors) != 1:
        problems.append(f"{len(errors)} error lines")
    elif not re.search(pattern, errors[0], re.IGNORECASE | re.DOTALL):
        problems.append(f"message does not match {pattern!r}")
    return problems, (errors[0] if errors else err.strip()[-300:])


def _clean_api(call, types, pattern):
    try:
        value = call()
    except types as error:
        text = str(error)
        if re.search(pattern, text, re.IGNORECASE | re.DOTALL):
            return [], text.splitlines()[0] if text else type(error).__name__
        return [f"message does not match {pattern!r}"], text
    except Exception as error:  # noqa: BLE001 - a wrong exception type is what the catalogue reports
        return [f"raised {type(error).__name__} instead of {types}"], str(error)[:300]
    return [f"no error (returned {value!r})"], ""


def _energy(force, n=2, box=None, positions=None):
    context = context_for(make_system(n, force, box=box))
    context.setPositions(positions if positions is not None else [[0.1 * i, 0.05, 0.0] for i in range(n)])
    return context.getState(getEnergy=True, getForces=True).getPotentialEnergy()


def _force_with(model, *setters):
    force = nnforce.NNForce(torch.jit.script(model) if isinstance(model, torch.nn.Module) else model)
    for setter in setters:
        setter(force)
    return force


def _xml_case(inputs, before, after):
    force = nnforce.NNForce(inputs["lj_bytes"])
    force.setAtoms([1, 0])
    force.setAtomicNumbers([18, 18])
    force.setNeighborList(0.85, 0.1, 100)
    force.addGlobalParameter("scale", 2.0)
    xml = openmm.XmlSerializer.serialize(force)
    assert before in xml, (before, xml[:300])
    return lambda: openmm.XmlSerializer.deserialize(xml.replace(before, after))


def cli_cases(f):
    """(name, argv, pattern) for the command line."""
    root, pdb, lj, run = f["root"], f["pdb"], f["lj"], f["run"]
    sim = ["simulate", pdb, lj, "--platform", "Reference", "--no-progress", "--steps", "4", "--equilibration-steps", "0"]
    out = ["-o", str(root / "out")]
    traj = os.path.join(run, "trajectory.dcd")
    final = os.path.join(run, "final.pdb")
    cut = root / "cut.dcd"
    dist = ["--features", "distances:selection=all", "-o", root / "analysis"]
    (root / "garbage.dcd").write_bytes(os.urandom(500))
    (root / "garbage.ckpt").write_bytes(os.urandom(300))
    (root / "empty.ckpt").write_bytes(b"")
    (root / "garbage.pdb").write_text("this is\nnot a PDB file at all\nATOM  garbage\n")
    (root / "binary.pdb").write_bytes(os.urandom(400))
    (root / "empty.pdb").write_text("")
    (root / "dup.pdb").write_text(open(pdb).read().replace("AR2", "AR1"))
    (root / "bad.yaml").write_text("model: [unclosed\n  - : :\n")
    (root / "list.yaml").write_text("- just\n- a list\n")
    return [
        ("simulate: missing structure", ["simulate", root / "no.pdb", lj], r"structure file not found"),
        ("simulate: structure is a folder", ["simulate", root / "modeldir", lj], r"is a directory"),
        ("simulate: garbage PDB", [*sim[:1], root / "garbage.pdb", *sim[2:], *out], r"garbage.pdb"),
        ("simulate: binary PDB", [*sim[:1], root / "binary.pdb", *sim[2:], *out], r"binary.pdb"),
        ("simulate: empty PDB", [*sim[:1], root / "empty.pdb", *sim[2:], *out], r"no atoms|not a readable"),
        ("simulate: missing model", [*sim[:2], root / "no.pt", *sim[3:], *out], r"model file not found.*ani1x"),
        ("simulate: model is a folder", [*sim[:2], root / "modeldir", *sim[3:], *out], r"is a directory"),
        ("simulate: text as model", [*sim[:2], root / "text.pt", *sim[3:], *out], r"not a model file"),
        ("simulate: empty model", [*sim[:2], root / "empty.pt", *sim[3:], *out], r"not a model file"),
        ("simulate: truncated model", [*sim[:2], root / "truncated.pt", *sim[3:], *out], r"no zip end record"),
        ("simulate: flipped byte in model", [*sim[:2], root / "flipped.pt", *sim[3:], *out], r"CRC-32"),
        ("simulate: torch.save file as model", [*sim[:2], root / "state_dict.pt", *sim[3:], *out], r"not a TorchScript"),
        ("simulate: model raises", [*sim[:2], f["raises"], *sim[3:], *out], r"refuses every input"),
        ("simulate: model returns NaN", [*sim[:2], f["nan"], *sim[3:], *out], r"non-finite energy"),
        ("simulate: model returns wrong shape", [*sim[:2], f["shape"], *sim[3:], *out], r"scalar energy"),
        ("simulate: element the model lacks", ["simulate", f["methanol_pdb"], lj, "--platform", "Reference", *out],
         r"does not know"),
        ("simulate: negative steps", [*sim, "--steps", "-5", *out], r"steps must be >= 0"),
        ("simulate: zero time step", [*sim, "--timestep-fs", "0", *out], r"timestep_fs"),
        ("simulate: negative temperature", [*sim, "--temperature", "-10", *out], r"temperature"),
        ("simulate: unknown integrator", [*sim, "--integrator", "leapfrog", *out], r"unknown integrator"),
        ("simulate: unknown platform", [*sim, "--platform", "Quantum", *out], r"unknown OpenMM platform"),
        ("simulate: bad trajectory extension", [*sim, "--trajectory", "t.txt", *out], r"trajectory must end"),
        ("simulate: steps not a number", [*sim, "--steps", "many"], r"invalid int value"),
        ("simulate: bad model precision", [*sim, "--model-precision", "half"], r"invalid choice"),
        ("simulate: output folder is a file", [*sim, "-o", root / "afile"], r"it is a file"),
        ("simulate: output folder under a file", [*sim, "-o", root / "afile" / "run"], r"is a file, not a folder"),
        ("simulate: output folder not writable", [*sim, "-o", "/proc/nnforce-cannot-write"], r"cannot write"),
        ("simulate: atoms merged by duplicate names", [*sim[:1], root / "dup.pdb", *sim[2:], *out],
         r"2 ATOM/HETATM records but OpenMM read 1"),
        ("simulate: ML atoms without force field", [*sim, "--ml-atoms", "0", *out], r"forcefield"),
        ("simulate: missing force field file", [*sim, "--ml-atoms", "0", "--forcefield", root / "no.xml", *out],
         r"no\.xml"),
        ("simulate: threads 0", [*sim, "--threads", "0", *out], r"threads must be >= 1"),
        ("simulate: resume, truncated checkpoint",
         [*sim, "-o", _damaged_run(f, "cut", lambda d: _truncate(os.path.join(d, "checkpoint.chk"))), "--resume"],
         r"checkpoint.chk .*does not match the SHA-256"),
        ("simulate: resume, empty checkpoint",
         [*sim, "-o", _damaged_run(f, "empty", lambda d: open(os.path.join(d, "checkpoint.chk"), "wb").close()),
          "--resume"], r"checkpoint.chk \(0 bytes\) does not match"),
        ("simulate: resume, garbage checkpoint.json",
         [*sim, "-o", _damaged_run(f, "json", lambda d: open(os.path.join(d, "checkpoint.json"), "w").write("{oops")),
          "--resume"], r"checkpoint.json is not valid JSON"),
        ("simulate: resume, checkpoint.json without hash",
         [*sim, "-o", _damaged_run(f, "nohash", _drop_hash), "--resume"], r"checkpoint.json lacks checkpoint_sha256"),
        ("analyze: missing trajectory", ["analyze", root / "none.dcd", "--top", final], r"trajectory file not found"),
        ("analyze: truncated DCD", ["analyze", cut, "--top", final, "-o", root / "a1", *dist],
         r"frame 10 is incomplete.*--complete-frames-only"),
        ("analyze: garbage DCD", ["analyze", root / "garbage.dcd", "--top", final, "-o", root / "a2", *dist],
         r"garbage.dcd"),
        ("analyze: topology of another system", ["analyze", traj, "--top", f["methanol_pdb"], "-o", root / "a3", *dist],
         r"atoms"),
        ("analyze: missing topology", ["analyze", traj, "--top", root / "no.pdb"], r"topology file not found"),
        ("analyze: tica lag not a number", ["analyze", traj, "--top", final, *dist, "--reduce", "tica:lag=abc"],
         r"option lag='abc'"),
        ("analyze: tica lag zero", ["analyze", traj, "--top", final, *dist, "--reduce", "tica:lag=0"], r"option lag=0"),
        ("analyze: k not a number", ["analyze", traj, "--top", final, *dist, "--cluster", "kmeans:k=ten"], r"option k='ten'"),
        ("analyze: unknown reduction", ["analyze", traj, "--top", final, "--reduce", "umap", "-o", root / "a4",
                                        "--features", "distances:selection=all"], r"unknown reduction"),
        ("analyze: bad option syntax", ["analyze", traj, "--top", final, *dist, "--msm", "lag:5"], r"not key=value"),
        ("export: missing checkpoint", ["export", root / "no.ckpt", "-o", root / "m.pt"], r"does not exist"),
        ("export: garbage checkpoint", ["export", root / "garbage.ckpt", "-o", root / "m.pt"],
         r"not a readable training checkpoint"),
        ("export: empty checkpoint", ["export", root / "empty.ckpt", "-o", root / "m.pt"],
         r"not a readable training checkpoint"),
        ("export: model given as checkpoint", ["export", lj, "-o", root / "m.pt"], r"checkpoint"),
        ("export: no output", ["export", root / "garbage.ckpt"], r"-o/--output"),
        ("export --info: corrupt model", ["export", root / "flipped.pt", "--info"], r"CRC-32"),
        ("export --info: model without metadata", ["export", f["raises"], "--info"], r"carries no nnforce metadata"),
        ("train: missing config", ["train", root / "no.yaml"], r"no\.yaml"),
        ("train: broken YAML", ["train", root / "bad.yaml"], r"bad\.yaml"),
        ("train: YAML that is not a mapping", ["train", root / "list.yaml"], r"list\.yaml"),
        ("nnforce: unknown command", ["fly"], r"invalid choice: 'fly'"),
        # issue 24: silently wrong before
        ("simulate: neighbor list shorter than the model's cutoff", [*sim, "--neighbor-cutoff", "0.2", *out],
         r"--neighbor-cutoff.*0\.2 nm is shorter than the model's own cutoff 0\.85"),
        ("simulate: resume with the atoms in another order",
         [*sim[:1], f["swapped_pdb"], *sim[2:], "-o", _damaged_run(f, "swapped", lambda d: None), "--resume"],
         r"another structure.*argon_swapped\.pdb"),
        ("simulate: lambda-ml 2", [*sim, "--lambda-ml", "2", *out], r"lambda_ml \(--lambda-ml\) must be between 0"),
        ("simulate: NaN time step", [*sim, "--timestep-fs", "nan", *out], r"timestep_fs must be a finite number"),
        ("simulate: infinite temperature", [*sim, "--temperature", "inf", *out], r"temperature_k must be a finite"),
        ("analyze: negative dt-ps", ["analyze", traj, "--top", final, *dist, "--dt-ps", "-1"],
         r"dt_ps \(--dt-ps\) must be a positive number"),
        ("analyze: NaN temperature", ["analyze", traj, "--top", final, *dist, "--temperature", "nan"],
         r"--temperature"),
        # issue 24: an error before, but not one line that says what to change
        ("export: weights that do not fit the spec", ["export", root / "misfit.ckpt", "-o", root / "m.pt"],
         r"misfit\.ckpt: the weights it holds do not fit the model its spec describes"),
        ("export: a TorchScript model given as checkpoint", ["export", lj, "-o", root / "m.pt"],
         r"lj\.pt is a TorchScript model, already exported, not a training checkpoint.*--info"),
        ("analyze: misspelt feature option", ["analyze", traj, "--top", final, "--features", "distances:selction=all",
                                              "-o", root / "a5"], r"no option 'selction' \(did you mean 'selection'\?\)"),
    ]


def _truncate(path):
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2])


def _drop_hash(folder):
    path = os.path.join(folder, "checkpoint.json")
    saved = json.load(open(path))
    saved.pop("checkpoint_sha256")
    json.dump(saved, open(path, "w"))


def api_cases(f):
    """(name, call, exception types, pattern) for the plugin and the Python API."""
    from nnforce.contract import inspect_model
    from nnforce.simulate import SimulationConfig

    Error = openmm.OpenMMException
    lj = f["lj_bytes"]
    size = 1536 << 20
    bomb = add_entry(lj, "lj/data/blob", deflate_zeros(size), size, 0)
    lying = add_entry(lj, "lj/data/blob", deflate_zeros(8 << 20), 1024, zlib.crc32(bytes(1024)))
    truncated = lj[: len(lj) - 30]
    globals_ab = lambda *names: _force_with(ThousandAPlusB(), *[  # noqa: E731
        (lambda n, i: lambda force: force.addGlobalParameter(n, float(i)))(n, i) for i, n in enumerate(names)])
    return [
        ("binding: misspelt global parameter", lambda: _energy(globals_ab("b", "A")), Error, r"no argument named 'A'"),
        ("binding: global the model does not take", lambda: _energy(_force_with(
            LennardJones(), lambda force: force.addGlobalParameter("lambda_ml", 1.0))), Error, r"takes none"),
        ("binding: per-atom input never positional", lambda: _energy(_force_with(
            torch.jit.script(ThousandAPlusB()), lambda force: force.addGlobalParameter("A", 1.0),
            lambda force: force.addGlobalParameter("B", 1.0), lambda force: force.addPerAtomInput("q", [0.0, 0.0]))),
         Error, r"by name only"),
        ("binding: box needed, force not periodic", lambda: _energy(_force_with(NeedsBox())), Error,
         r"setUsesPeriodicBoundaryConditions"),
        ("binding: derivative of unknown parameter", lambda: _energy(_force_with(
            ThousandAPlusB(), lambda force: force.addGlobalParameter("a", 1.0),
            lambda force: force.addGlobalParameter("b", 1.0), lambda force: force.addEnergyParameterDerivative("c"))),
         Error, r"names no global parameter"),
        # issue 24: plugin inputs accepted and ignored, or bound against their names
        ("addGlobalParameter: named 'box'", lambda: _force_with(LennardJones(), lambda force: force.addGlobalParameter("box", 1.0)),
         Error, r"'box' is an input NNForce provides.*setUsesPeriodicBoundaryConditions"),
        ("addGlobalParameter: named 'box', force not periodic", lambda: _energy(_force_with(
            NeedsBox(), lambda force: force.addGlobalParameter("box", 1.0))), Error, r"'box' is an input NNForce provides"),
        ("addPerAtomInput: named 'positions'", lambda: _force_with(
            LennardJones(), lambda force: force.addPerAtomInput("positions", [0.0, 0.0])), Error,
         r"'positions' is an input NNForce provides"),
        ("setGlobalParameterName: to 'neighbors'", lambda: _force_with(
            LennardJones(), lambda force: force.addGlobalParameter("scale", 1.0),
            lambda force: force.setGlobalParameterName(0, "neighbors")), Error, r"'neighbors' is an input.*setNeighborList"),
        ("output: float16 energy", lambda: _energy(_force_with(HalfEnergy())), Error, r"energy as Half.*float32 or float64"),
        ("output: energy detached from the positions", lambda: _energy(_force_with(DetachedEnergy())), Error,
         r"no autograd path to the positions"),
        ("output: energy not from the positions", lambda: _energy(_force_with(
            IgnoresPositions(), lambda force: force.addGlobalParameter("scale", 1.0))), Error,
         r"no autograd path to the positions"),
        ("binding: box given as 'charges'", lambda: _energy(_force_with(
            TakesCharges(), lambda force: force.setUsesPeriodicBoundaryConditions(True)), box=np.eye(3) * 3.0), Error,
         r"'charges'.*per-atom charges.*would pass it the box"),
        ("binding: globals differing only in case", lambda: _energy(globals_ab("A", "B")), Error,
         r"takes 'a' and the force gives 'A'"),
        ("binding: global one letter off", lambda: _energy(_force_with(
            IgnoresPositions(), lambda force: force.addGlobalParameter("scal", 1.0))), Error,
         r"takes 'scale' and the force gives 'scal'"),
        ("setNeighborList: shorter than the model's recorded cutoff", lambda: _energy(_cutoff_force(f, 0.5)), Error,
         r"cutoff 0\.5 nm is shorter than the model's own cutoff 0\.85 nm.*setNeighborList\(0\.85\)"),
        ("createMixedSystem: atom index out of range", lambda: _mixed_out_of_range(f), ValueError,
         r"atoms has indices outside 0\.\.2: \[7\]"),
        *([("MLPotential: ani2x without a network", lambda: _ani2x_offline(f), OSError,
            r"MLPotential\('ani2x'\): torchani could not download.*Run once with network access")]
          if _ani2x_not_shipped() else []),
        ("simulate API: a coordinate at 1e9 nm", lambda: _far_coordinate(f), ValueError,
         r"atom 1 lies at \[1000000000\.0, 0\.0, 0\.0\] nm"),
        ("output: wrong forces shape", lambda: _energy(_force_with(OutputsWrongForces(),
                                                                   lambda force: force.setOutputsForces(True))),
         Error, r"forces of shape"),
        ("output: NaN energy", lambda: _energy(_force_with(ReturnsNaN())), Error, r"non-finite energy"),
        ("output: model raises", lambda: _energy(_force_with(Raises())), Error, r"refuses every input"),
        ("setAtoms: index out of range", lambda: _energy(_force_with(LennardJones(), lambda force: force.setAtoms([0, 5]))),
         Error, r"out of range"),
        ("setAtoms: repeated index", lambda: _force_with(LennardJones(), lambda force: force.setAtoms([1, 1])), Error,
         r"appears twice"),
        ("setAtomicNumbers: not an element", lambda: _force_with(LennardJones(), lambda force: force.setAtomicNumbers([0])),
         Error, r"not an atomic number"),
        ("setAtomicNumbers: wrong count", lambda: _energy(_force_with(LennardJones(),
                                                                      lambda force: force.setAtomicNumbers([18]))),
         Error, r"1 atomic numbers"),
        ("addPerAtomInput: width 0", lambda: _force_with(LennardJones(), lambda force: force.addPerAtomInput("q", [0.0], 0)),
         Error, r"width must be >= 1"),
        ("setProperty: unknown name", lambda: _force_with(LennardJones(), lambda force: force.setProperty("speed", "max")),
         Error, r"unknown property 'speed'"),
        ("setProperty: bad precision", lambda: _force_with(LennardJones(), lambda force: force.setProperty("precision", "half")),
         Error, r"'single' or 'double'"),
        ("setNeighborList: NaN cutoff", lambda: _force_with(LennardJones(), lambda force: force.setNeighborList(float("nan"))),
         Error, r"finite"),
        ("setNeighborList: capacity beyond the limit", lambda: _force_with(
            LennardJones(), lambda force: force.setNeighborList(0.5, 0.0, 2**31 - 1)), Error,
         r"NNFORCE_MAX_NEIGHBOR_CAPACITY"),
        ("NNForce: missing file", lambda: nnforce.NNForce(str(f["root"] / "no.pt")), FileNotFoundError, r"no model file"),
        ("NNForce: folder", lambda: nnforce.NNForce(str(f["root"] / "modeldir")), IsADirectoryError, r"is a directory"),
        ("NNForce: text file", lambda: nnforce.NNForce(str(f["root"] / "text.pt")), Error, r"not a TorchScript archive"),
        ("NNForce: empty bytes", lambda: nnforce.NNForce(b""), Error, r"empty"),
        ("NNForce: eager module", lambda: nnforce.NNForce(LennardJones()), TypeError, r"torch.jit.script"),
        ("NNForce: a number", lambda: nnforce.NNForce(42), TypeError, r"file path, bytes"),
        ("NNForce: torch.save file", lambda: nnforce.NNForce(str(f["root"] / "state_dict.pt")), Error, r"torch.save"),
        ("NNForce: truncated bytes", lambda: nnforce.NNForce(truncated), Error, r"no zip end record"),
        ("NNForce: flipped byte", lambda: nnforce.NNForce(str(f["root"] / "flipped.pt")), Error, r"CRC-32"),
        ("NNForce: archive inflating to 1.5 GiB", lambda: nnforce.NNForce(bomb), Error, r"NNFORCE_MAX_INFLATED_MB"),
        ("NNForce: entry inflating past its size", lambda: nnforce.NNForce(lying), Error, r"does not inflate"),
        ("XML: atoms are words", _xml_case(f, 'atoms="1 0"', 'atoms="a b"'), Error, r"attribute 'atoms'"),
        ("XML: atoms not integers", _xml_case(f, 'atoms="1 0"', 'atoms="1 0.5"'), Error, r"attribute 'atoms'"),
        ("XML: garbage atomic numbers", _xml_case(f, 'atomicNumbers="18 18"', 'atomicNumbers="18 Ar"'), Error,
         r"attribute 'atomicNumbers'"),
        ("XML: atomic number out of range", _xml_case(f, 'atomicNumbers="18 18"', 'atomicNumbers="18 999"'), Error,
         r"attribute 'atomicNumbers'"),
        ("XML: neighborCapacity 4e12", _xml_case(f, 'neighborCapacity="100"', 'neighborCapacity="4000000000000"'),
         Error, r"attribute 'neighborCapacity'"),
        ("XML: neighborCutoff not a number", _xml_case(f, 'neighborCutoff=".85"', 'neighborCutoff="far"'), Error,
         r"attribute 'neighborCutoff'"),
        ("XML: default not a number", _xml_case(f, 'default="2"', 'default="two"'), Error, r"attribute 'default'"),
        ("XML: forceGroup out of range", _xml_case(f, 'forceGroup="0"', 'forceGroup="40"'), Error,
         r"attribute 'forceGroup'"),
        ("XML: usesPeriodic not a bool", _xml_case(f, 'usesPeriodic="0"', 'usesPeriodic="maybe"'), Error,
         r"attribute 'usesPeriodic'"),
        ("XML: model bytes changed", _xml_case(f, 'model="UEsDB', 'model="UEsDC'), Error, r"SHA-256"),
        ("XML: model not base64", _xml_case(f, 'model="UEsDB', 'model="UE$DB'), Error, r"base64"),
        ("XML: future version", _xml_case(f, 'version="2"', 'version="9"'), Error, r"upgrade nnforce"),
        ("inspect_model: truncated", lambda: inspect_model(truncated), ValueError, r"no zip end record"),
        ("inspect_model: folder", lambda: inspect_model(str(f["root"] / "modeldir")), IsADirectoryError,
         r"is a directory"),
        ("inspect_model: huge metadata", lambda: inspect_model(_huge_metadata(f)), ValueError,
         r"NNFORCE_MAX_METADATA_MB"),
        ("SimulationConfig: no structure", lambda: SimulationConfig(model="m.pt"), ValueError, r"give a structure"),
        ("SimulationConfig: report interval 0", lambda: SimulationConfig(model="m.pt", pdb="x.pdb", report_interval=0),
         ValueError, r"report_interval"),
        ("analysis: truncated DCD in Python", lambda: _analyze_cut(f), ValueError, r"incomplete"),
    ]


def _mixed_out_of_range(f):
    from nnforce.potentials import MLPotential

    topology = app.PDBFile(f["methanol_pdb"]).topology
    system = openmm.System()
    for atom in topology.atoms():
        system.addParticle(atom.element.mass)
    system.addForce(openmm.NonbondedForce())
    for _ in range(3):
        system.getForce(0).addParticle(0.0, 0.3, 0.5)
    return MLPotential("nnforce", modelPath=f["lj"]).createMixedSystem(topology, system, [0, 7])


def _ani2x_not_shipped():
    """Whether torchani must download ANI-2x (its networks are not in the installed package)."""
    try:
        import torchani
    except Exception:  # noqa: BLE001 - torchani missing or broken: the case cannot run
        return False
    return not os.path.exists(os.path.join(os.path.dirname(torchani.__file__), "resources", "ani-2x_8x.info"))


def _ani2x_offline(f):
    """MLPotential('ani2x') with no way out to the network (a dead proxy) and an empty download cache (HOME)."""
    from nnforce.potentials import MLPotential

    saved = {k: os.environ.get(k) for k in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy", "HOME")}
    os.environ.update({"HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9",
                       "https_proxy": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9",
                       "HOME": str(f["root"] / "home")})
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # torchani prints "Downloading ANI model parameters ..."
            return MLPotential("ani2x")
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _far_coordinate(f):
    from nnforce.simulate import SimulationConfig, run

    topology = app.PDBFile(f["pdb"]).topology
    return run(SimulationConfig(model=f["lj"], topology=topology, positions=[[0.5, 0.5, 0.5], [1e9, 0.0, 0.0]],
                                output_dir=str(f["root"] / "far"), steps=2, platform="Reference", progress=False))


def _cutoff_force(f, cutoff):
    """The Lennard-Jones model whose metadata records cutoff_nm 0.85, with a neighbor list of ``cutoff``."""
    force = nnforce.NNForce(f["lj_bytes"])
    force.setNeighborList(cutoff)
    return force


def _huge_metadata(f):
    path = f["root"] / "huge_metadata.pt"
    if not path.exists():
        torch.jit.save(torch.jit.script(LennardJones()), str(path), _extra_files={"nnforce_metadata.json": " " * (17 << 20)})
    return str(path)


def _analyze_cut(f):
    from nnforce.analysis.stream import iter_chunks

    return list(iter_chunks(f["root"] / "cut.dcd", os.path.join(f["run"], "final.pdb")))


def test_catalogue_every_bad_input_fails_cleanly(inputs, capsys):
    results = []
    for name, argv, pattern in cli_cases(inputs):
        problems, message = _clean_cli(argv, pattern)
        results.append((name, problems, message))
    for name, call, types, pattern in api_cases(inputs):
        problems, message = _clean_api(call, types, pattern)
        results.append((name, problems, message))
    clean = [r for r in results if not r[1]]
    with capsys.disabled():
        print(f"\nbad-input catalogue: tried {len(results)}, clean {len(clean)}")
        for name, problems, message in results:
            if problems:
                print(f"  NOT CLEAN {name}: {'; '.join(problems)} | {message}")
    assert len(clean) == len(results), [(n, p, m) for n, p, m in results if p]


def test_complete_frames_only_reads_the_whole_frames(inputs):
    """The other half of the truncation contract: asked to, the analysis reads exactly the complete frames."""
    from nnforce.analysis.stream import iter_chunks
    import mdtraj as md

    final = os.path.join(inputs["run"], "final.pdb")
    whole = md.load(os.path.join(inputs["run"], "trajectory.dcd"), top=final)
    frames = np.concatenate([c.xyz for c in iter_chunks(inputs["root"] / "cut.dcd", final, chunk=3,
                                                         complete_frames_only=True)])
    assert whole.n_frames == 10 and frames.shape[0] == 9
    np.testing.assert_array_equal(frames, whole.xyz[:9])
