#!/usr/bin/env python3
"""Sizes in python/nnforce: modules over 450 lines, and functions over 80 lines without a written reason.

Generated files (the SWIG wrapper) are skipped. A long function passes when the line above its ``def`` (or its first decorator) is a comment starting with
``# long:`` that says why it is one piece. Prints what fails; exits 1 if anything does.
Usage: ``python tools/check_sizes.py [PACKAGE_DIR]``.
"""
import ast
import sys
from pathlib import Path

MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 80


def problems(root):
    found = []
    for path in sorted(Path(root).rglob("*.py")):
        text = path.read_text()
        if "automatically generated" in text[:500]:  # the SWIG wrapper (plugin.py), built, not written
            continue
        lines = text.splitlines()
        if len(lines) > MAX_MODULE_LINES:
            found.append(f"{path}: {len(lines)} lines (module limit {MAX_MODULE_LINES})")
        for node in ast.walk(ast.parse(text, str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first = min([node.lineno] + [d.lineno for d in node.decorator_list])
                length = node.end_lineno - first + 1
                reason = lines[first - 2].strip() if first >= 2 else ""
                if length > MAX_FUNCTION_LINES and not reason.startswith("# long:"):
                    found.append(f"{path}:{node.lineno}: {node.name} is {length} lines (limit {MAX_FUNCTION_LINES}; "
                                 "or write `# long: why` above it)")
    return found


def main(argv):
    root = argv[1] if len(argv) > 1 else Path(__file__).resolve().parents[1] / "python" / "nnforce"
    found = problems(root)
    print("\n".join(found) if found else "sizes ok")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
