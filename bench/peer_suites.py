"""Run openmm-torch's and openmm-ml's own test files against nnforce through one-line shims, side by side.

    python bench/peer_suites.py PATH_TO_OPENMM_TORCH PATH_TO_OPENMM_ML [-k EXPR] [--ml-files F ...]
        [--openmmml-package SITE/openmmml]

Nothing of the peers is copied into this project: their checkouts are read where they are. A temporary folder gets

* ``openmmtorch/__init__.py``: ``from nnforce import NNForce as TorchForce`` (the one-line shim);
* ``openmmml/__init__.py``: ``import nnforce.compat.openmmml; nnforce.compat.openmmml.install()`` (the one-line
  shim: ``openmmml`` and its submodules, e.g. ``openmmml.models.aimnet2potential``, become nnforce's compat package,
  whose ``MLPotential`` is ``nnforce.MLPotential``);
* for openmm-ml itself (its checkout on PYTHONPATH, pure Python, not installed): a ``.dist-info`` whose
  ``entry_points.txt`` is generated from the ``openmmml.*`` entry-point lists in the checkout's setup.py, because
  openmm-ml registers its models and embeddings only through those entry-point groups;
* or, with ``--openmmml-package``, a released openmm-ml as pip installed it (e.g. ``pip install openmmml==1.8`` in
  another environment): that ``openmmml`` folder and the ``openmmml-*.dist-info`` beside it are linked into the
  temporary folder, so the checkout's test files run against the release (the checkout of the peer's repository may
  be older or newer than the release the issue names).

Both sides load bench/_peer_standins.py (``-p _peer_standins``): the offline stand-ins for downloads only
(ANI-2x/ANI-1ccx -> torchani wheel's ANI-1x; MACE foundation models -> one small seeded MACE). Each side runs in
its own pytest process (1 thread); results are read from pytest's junit XML and written, item by item, to
bench/results/peer_suites.md. openmm-torch itself is run too where ``openmmtorch`` is importable (it is not
installed in nnforce's venv; the GPU items of TestCUDAGraphs skip without CUDA on both sides).
"""
import argparse
import ast
import os
import re
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
NOTE = ("Items failing on both sides compare against the real weights' reference energies (the stand-ins have "
        'other weights), need a download without a stand-in (aceff-* via huggingface_hub, not installed), a file '
        'missing from the openmm-ml checkout (test/data/toluene/toluene.ckpt, absent from the mirror) or a package'
        ' not installed (fennix, orb, les: collection skipped). openmm-torch 1.5 itself is not installed '
        'here; the issue records that it passes its 20 non-GPU items. aimnet 0.2.6 (requirements-potentials.txt) '
        'has no get_model_path, which some of openmm-ml 1.8\'s AIMNet2 tests import.')
TORCH_FILES = ("python/tests/TestTorchForce.py", "python/tests/TestSerializeTorchForce.py",
               "python/tests/TestCUDAGraphs.py")


def _write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write(text)


def _ml_entry_points(ml_path):
    """The ``openmmml.*`` entry-point groups declared in the checkout's setup.py (parsed, not executed)."""
    tree = ast.parse(open(os.path.join(ml_path, "setup.py")).read())
    groups = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values):
                if isinstance(key, ast.Constant) and str(key.value).startswith("openmmml."):
                    groups[key.value] = [ast.literal_eval(item) for item in value.elts]
    if "openmmml.potentials" not in groups:
        raise ValueError(f"no 'openmmml.potentials' entry points in {ml_path}/setup.py")
    return groups


def _ml_version(ml_path):
    text = open(os.path.join(ml_path, "setup.py")).read()
    match = re.search(r"__version__\s*=\s*['\"]([^'\"]+)", text)
    return match.group(1) if match else "unknown"


def make_shims(root, ml_path):
    shim = os.path.join(root, "shim")
    _write(os.path.join(shim, "openmmtorch", "__init__.py"), "from nnforce import NNForce as TorchForce\n")
    _write(os.path.join(shim, "openmmml", "__init__.py"),
           "import nnforce.compat.openmmml; nnforce.compat.openmmml.install()\n")
    peer = os.path.join(root, "peer-ml")
    version = _ml_version(ml_path)
    info = os.path.join(peer, f"openmmml-{version}.dist-info")
    _write(os.path.join(info, "METADATA"), f"Metadata-Version: 2.1\nName: openmmml\nVersion: {version}\n")
    _write(os.path.join(info, "entry_points.txt"),
           "".join(f"[{group}]\n" + "".join(line.replace(" = ", "=") + "\n" for line in lines)
                   for group, lines in _ml_entry_points(ml_path).items()))
    return shim, peer


def released_peer(root, package):
    """A PYTHONPATH folder holding an installed openmm-ml release: its package and its dist-info (entry points)."""
    package = os.path.abspath(package)
    site = os.path.dirname(package)
    infos = [n for n in os.listdir(site) if n.startswith("openmmml-") and n.endswith(".dist-info")]
    if os.path.basename(package) != "openmmml" or not os.path.isfile(os.path.join(package, "__init__.py")) \
            or len(infos) != 1:
        raise ValueError(f"--openmmml-package {package}: expected the 'openmmml' folder of a pip installation with "
                         "one openmmml-*.dist-info beside it (e.g. .../site-packages/openmmml)")
    peer = os.path.join(root, "peer-ml-release")
    os.makedirs(peer, exist_ok=True)
    os.symlink(package, os.path.join(peer, "openmmml"))
    os.symlink(os.path.join(site, infos[0]), os.path.join(peer, infos[0]))
    return peer, infos[0][len("openmmml-"):-len(".dist-info")]


def run_pytest(label, files, cwd, pythonpath, root, extra):
    xml = os.path.join(root, f"{label}.xml")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(pythonpath + [HERE, os.path.join(REPO, "python")])
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENMM_CPU_THREADS"):
        env[name] = "1"
    env["HF_HUB_OFFLINE"] = "1"
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "_peer_standins",
               f"--junitxml={xml}", "-o", "junit_family=xunit1", *extra, *files]
    start = time.time()
    proc = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.time() - start
    log = os.path.join(root, f"{label}.log")
    _write(log, proc.stdout + proc.stderr)
    results = {}
    if os.path.exists(xml):
        for case in ET.parse(xml).getroot().iter("testcase"):
            name = f"{os.path.basename(case.get('file') or case.get('classname', '').replace('.', '/'))}::" \
                   f"{case.get('classname', '').split('.')[-1]}::{case.get('name')}"
            outcome, message = "pass", ""
            for child in case:
                if child.tag in ("failure", "error"):
                    outcome = "FAIL" if child.tag == "failure" else "ERROR"
                    message = (child.get("message") or "").splitlines()[0][:160] if child.get("message") else ""
                elif child.tag == "skipped":
                    outcome = "skip"
                    message = (child.get("message") or "")[:160]
            results[name] = (outcome, message)
    print(f"{label}: {len(results)} items in {seconds:.0f} s (log {log})", flush=True)
    return results, seconds


def _count(results, outcome="pass"):
    return sum(1 for value in results.values() if value[0] == outcome)


def table(title, left_label, left, right_label, right):
    lines = [f"## {title}", "", f"| item | {left_label} | {right_label} | {right_label}: message |",
             "|---|---|---|---|"]
    for name in sorted(set(left) | set(right)):
        a = left.get(name, ("-", ""))[0]
        b, message = right.get(name, ("-", ""))
        lines.append(f"| `{name}` | {a} | {b} | {message.replace('|', '/')} |")
    lines.append("")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("openmm_torch")
    parser.add_argument("openmm_ml")
    parser.add_argument("-k", default=None, help="pytest -k expression for both suites")
    parser.add_argument("--ml-files", nargs="*", default=None, help="openmm-ml test files (default: all of test/)")
    parser.add_argument("--skip-torch", action="store_true")
    parser.add_argument("--skip-ml", action="store_true")
    parser.add_argument("--openmmml-package", default=None,
                        help="an installed openmm-ml release's 'openmmml' folder to run the checkout's tests against "
                             "(default: the checkout's own source)")
    parser.add_argument("--output", default=os.path.join(HERE, "results", "peer_suites.md"))
    args = parser.parse_args(argv)
    torch_path = os.path.abspath(args.openmm_torch)
    ml_path = os.path.abspath(args.openmm_ml)
    extra = ["-k", args.k] if args.k else []
    root = tempfile.mkdtemp(prefix="peer-suites-")
    shim, peer = make_shims(root, ml_path)
    out = ["# openmm-torch's and openmm-ml's own tests against nnforce", "",
           "Written by `python bench/peer_suites.py PATH_TO_OPENMM_TORCH PATH_TO_OPENMM_ML` (one run, both sides; "
           "shims `openmmtorch.TorchForce = nnforce.NNForce`, `openmmml = nnforce.compat.openmmml` (whose MLPotential is nnforce.MLPotential); offline "
           "stand-ins for downloads only, identical for both sides: see bench/_peer_standins.py). CPU only, 1 thread.",
           ""]
    summary = []
    if not args.skip_torch:
        files = [os.path.join(torch_path, f) for f in TORCH_FILES if os.path.exists(os.path.join(torch_path, f))]
        cwd = os.path.join(torch_path, "python", "tests")  # the tests open ../../tests/*.pt
        ours, _ = run_pytest("torch-nnforce", files, cwd, [shim], root, extra)
        try:
            import importlib.util
            have_peer = importlib.util.find_spec("openmmtorch") is not None
        except ImportError:
            have_peer = False
        theirs = run_pytest("torch-peer", files, cwd, [], root, extra)[0] if have_peer else {}
        summary.append(f"- openmm-torch ({', '.join(os.path.basename(f) for f in files)}): nnforce passes "
                       f"{_count(ours)} of {len(ours)} items ({_count(ours, 'skip')} skipped: need CUDA)"
                       + (f"; openmm-torch itself passes {_count(theirs)}" if have_peer else
                          "; openmm-torch itself is not installed here (not run)"))
        out += table("openmm-torch", "openmm-torch", theirs, "nnforce", ours)
    if not args.skip_ml:
        test_dir = os.path.join(ml_path, "test")
        files = args.ml_files or sorted(f for f in os.listdir(test_dir) if f.startswith("Test") and f.endswith(".py"))
        if args.openmmml_package:
            peer_path, ml_version = released_peer(root, args.openmmml_package)
            ml_label = f"{ml_version} (pip release; test files from the checkout, whose setup.py says " \
                       f"{_ml_version(ml_path)})"
            peer_paths = [peer_path]
        else:
            ml_label, peer_paths = _ml_version(ml_path), [ml_path, peer]
        theirs, t1 = run_pytest("ml-peer", files, test_dir, peer_paths, root, extra)
        ours, t2 = run_pytest("ml-nnforce", files, test_dir, [shim], root, extra)
        both = [n for n in theirs if theirs[n][0] == "pass"]
        kept = [n for n in both if ours.get(n, ("-",))[0] == "pass"]
        summary.append(f"- openmm-ml {ml_label} (test/): openmm-ml itself passes {_count(theirs)} of "
                       f"{len(theirs)} items ({t1:.0f} s); nnforce passes {_count(ours)} ({t2:.0f} s); of the items "
                       f"openmm-ml passes, nnforce passes {len(kept)} of {len(both)}")
        out += table("openmm-ml", "openmm-ml", theirs, "nnforce", ours)
    out[4:4] = ["## Summary", ""] + summary + ["", NOTE, ""]
    text = "\n".join(out) + "\n"
    tmp = args.output + ".tmp"
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(tmp, "w") as handle:
        handle.write(text)
    os.replace(tmp, args.output)
    print("\n".join(summary))
    print(f"logs in {root}; wrote {args.output}")


if __name__ == "__main__":
    main()
