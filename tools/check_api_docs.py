#!/usr/bin/env python3
"""Every public function in the plugin's API headers has an OpenMM-style doc comment naming its parameters.

For each function declared in a public section of a class or struct, or at namespace scope, of
``plugin/openmmapi/include/*.h``: the lines right above it must be a ``/** ... */`` comment with one
``@param NAME`` per parameter and, unless it returns void (or is a constructor), an ``@return``.
Usage: ``python tools/check_api_docs.py [HEADER ...]``; prints what is missing and exits 1 if anything is.
"""
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _split_top(text, sep=","):
    """Split at ``sep`` outside (), <> and {}."""
    parts, depth, current = [], 0, ""
    for ch in text:
        if ch in "(<{":
            depth += 1
        elif ch in ")>}":
            depth -= 1
        if ch == sep and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    if current.strip():
        parts.append(current)
    return parts


def _signature(decl):
    """(name, return type text, parameter names) of a declaration text."""
    open_at = decl.index("(")
    head = decl[:open_at].strip()
    depth, close_at = 0, None
    for k in range(open_at, len(decl)):
        depth += {"(": 1, ")": -1}.get(decl[k], 0)
        if depth == 0:
            close_at = k
            break
    params = []
    for part in _split_top(decl[open_at + 1:close_at]):
        part = part.split("=")[0].strip()
        if part and part != "void":
            params.append(re.findall(r"[A-Za-z_]\w*", part)[-1])
    words = head.split()
    name = words[-1].lstrip("*&~") if words else ""
    return name, " ".join(words[:-1]), params


def _comment_above(lines, index):
    """The ``/** ... */`` block ending on the line above ``index``, or None."""
    k = index - 1
    if k < 0 or not lines[k].strip().endswith("*/"):
        return None
    end = k
    while k >= 0 and "/**" not in lines[k]:
        if "/*" in lines[k] and "/**" not in lines[k]:
            return None
        k -= 1
    return "\n".join(lines[k:end + 1]) if k >= 0 else None


def problems(path):
    lines = Path(path).read_text().splitlines()
    found = []
    scopes = []  # for each open brace: the access of that scope ("public", "private", or "namespace")
    k = 0
    while k < len(lines):
        stripped = lines[k].strip()
        if not stripped or stripped.startswith(("//", "*", "/*", "#")):
            k += 1
            continue
        label = re.match(r"(public|private|protected)\s*:", stripped)
        if label and scopes:
            scopes[-1] = label.group(1)
            k += 1
            continue
        access = scopes[-1] if scopes else "namespace"
        decl_start = k
        decl = stripped.split("//")[0].strip()
        if "(" in decl and access in ("public", "namespace") and not re.match(r"(namespace|class|struct|using)\b", decl):
            while not re.search(r"[;{]", decl.split("//")[0].rsplit(")", 1)[-1]) and k + 1 < len(lines):
                k += 1
                decl += " " + lines[k].split("//")[0].strip()
            name, returns, params = _signature(decl)
            comment = _comment_above(lines, decl_start)
            where = f"{path}:{decl_start + 1}: {name}"
            if comment is None:
                found.append(f"{where}: no /** */ doc comment above it")
            else:
                for param in params:
                    if not re.search(rf"@param\s+{re.escape(param)}\b", comment):
                        found.append(f"{where}: no @param {param}")
                constructor = returns in ("", "explicit", "virtual") or name.startswith("~")
                if not constructor and not re.search(r"\bvoid$", returns) and "@return" not in comment:
                    found.append(f"{where}: no @return")
        line = lines[k]
        for ch in line.split("//")[0]:
            if ch == "{":
                opener = " ".join(lines[max(0, decl_start - 1):k + 1])
                if re.search(r"\bstruct\b", opener) and "(" not in line:
                    scopes.append("public")
                elif re.search(r"\bclass\b", opener) and "(" not in line:
                    scopes.append("private")
                elif re.search(r"\bnamespace\b", line):
                    scopes.append("namespace")
                else:
                    scopes.append("body")
            elif ch == "}" and scopes:
                scopes.pop()
        k += 1
    return found


def main(argv):
    headers = argv[1:] or sorted(str(p) for p in (ROOT / "plugin" / "openmmapi" / "include").glob("*.h"))
    found = [p for header in headers for p in problems(header)]
    print("\n".join(found) if found else "api docs ok")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
