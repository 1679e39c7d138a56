"""Check that nvcc compiles nnforce's CUDA sources for exactly the requested GPU architectures.

    python .ci/cuda_archs.py build/compile_commands.json "7.5;8.0;9.0+PTX"

Reads the -gencode flags of every .cu entry of the compile commands (CMAKE_EXPORT_COMPILE_COMMANDS=ON): the SASS
targets (code=sm_XY) must be the list, and PTX (code=compute_XY) must be embedded exactly for the +PTX entries.
"""
import json
import re
import sys


def main(path, requested):
    wanted_sass, wanted_ptx = set(), set()
    for item in filter(None, re.split(r"[;, ]+", requested)):
        arch = item.upper().replace("+PTX", "").replace(".", "")
        wanted_sass.add(arch)
        if item.upper().endswith("+PTX"):
            wanted_ptx.add(arch)
    with open(path) as handle:
        entries = [e for e in json.load(handle) if e["file"].endswith(".cu")]
    if not entries:
        raise SystemExit(f"cuda_archs: no .cu file in {path}")
    for entry in entries:
        command = entry.get("command") or " ".join(entry["arguments"])
        sass = set(re.findall(r"arch=compute_(\d+),code=sm_(\d+)", command))
        ptx = set(re.findall(r"arch=compute_(\d+),code=compute_(\d+)", command))
        got_sass = {a for a, b in sass if a == b}
        got_ptx = {a for a, b in ptx if a == b}
        if got_sass != wanted_sass or got_ptx != wanted_ptx or "arch=compute_50" in command:
            raise SystemExit(f"cuda_archs: {entry['file']}: nvcc gets sm {sorted(got_sass, key=int)}, PTX "
                             f"{sorted(got_ptx, key=int)}; wanted sm {sorted(wanted_sass, key=int)}, PTX "
                             f"{sorted(wanted_ptx, key=int)}\n{command}")
        print(f"cuda_archs: {entry['file'].split('/')[-1]}: nvcc -gencode for sm {','.join(sorted(got_sass, key=int))}"
              f" + PTX {','.join(sorted(got_ptx, key=int)) or 'none'} (requested {requested})")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    main(sys.argv[1], sys.argv[2])
