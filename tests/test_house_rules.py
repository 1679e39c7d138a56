"""The house rules of python/nnforce, checked on the source (AST; nothing is imported): no import circle
(tools/check_imports.py), no module over 450 lines and no function over 80 lines without a written reason
(tools/check_sizes.py)."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tools" / "check_imports.py"
SIZES = ROOT / "tools" / "check_sizes.py"


def _check(package, script=SCRIPT):
    return subprocess.run([sys.executable, str(script), str(package)], capture_output=True, text=True)


def test_nnforce_has_no_import_circle():
    result = _check(ROOT / "python" / "nnforce")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "no import circles"


def test_checker_finds_a_circle_hidden_in_a_function(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from .a import f\n")
    (pkg / "a.py").write_text("from .sub.b import g\n\ndef f():\n    return g()\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "b.py").write_text("def g():\n    from ..a import f\n    return f\n")
    (pkg / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import f\n")
    result = _check(pkg)
    assert result.returncode == 1
    assert result.stdout.strip().splitlines() == ["import circle: pkg.a <-> pkg.sub.b"]


def test_checker_ignores_type_checking_imports(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from . import b\n")
    (pkg / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import a\n")
    assert _check(pkg).returncode == 0


def test_nnforce_sizes():
    result = _check(ROOT / "python" / "nnforce", SIZES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "sizes ok"


def test_size_checker_counts_lines_and_reads_reasons(tmp_path):
    body = "".join(f"    x{k} = {k}\n" for k in range(80))  # def line + 80 lines = 81
    (tmp_path / "a.py").write_text(f"def long():\n{body}\n\n# long: one table, kept whole\ndef reasoned():\n{body}"
                                   f"\n\ndef short():\n    return 1\n")
    (tmp_path / "b.py").write_text("x = 1\n" * 451)
    result = _check(tmp_path, SIZES)
    assert result.returncode == 1
    lines = sorted(line.replace(str(tmp_path) + "/", "") for line in result.stdout.strip().splitlines())
    assert lines == ["a.py:1: long is 81 lines (limit 80; or write `# long: why` above it)",
                     "b.py: 451 lines (module limit 450)"]


API_DOCS = ROOT / "tools" / "check_api_docs.py"


def test_plugin_api_headers_document_every_public_method():
    result = subprocess.run([sys.executable, str(API_DOCS)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "api docs ok"


def test_api_doc_checker_names_what_is_missing(tmp_path):
    header = tmp_path / "A.h"
    header.write_text("""namespace X {
class A {
public:
    /**
     * Set it.
     *
     * @param value  the value
     */
    void set(int value, const std::map<std::string, std::string>& extra = std::map<std::string, std::string>());
    int get() const { return v; }
    /** The value. @return it */
    int value() const;
private:
    void hidden(int x);
    int v;
};
}
""")
    result = subprocess.run([sys.executable, str(API_DOCS), str(header)], capture_output=True, text=True)
    assert result.returncode == 1
    assert [line.split(": ", 1)[1] for line in result.stdout.strip().splitlines()] == [
        "set: no @param extra", "get: no /** */ doc comment above it"]
