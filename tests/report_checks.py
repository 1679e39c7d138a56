"""Checks shared by the report tests (analysis and demo): a page loads nothing from elsewhere, and its one script
library is the installed viewer's own file, byte for byte."""
import base64
import os
import re
import shutil
import subprocess

SCRIPT = re.compile(r"<script\b([^>]*)>(.*?)</script>", re.S | re.I)
LIBRARY = re.compile(r'<script src="data:text/javascript;base64,([A-Za-z0-9+/=]+)"></script>')
NOTICES = re.compile(r'<details class="licences">.*?</details>', re.S)  # licence text (names URLs, loads nothing)


def viewer_bytes():
    """The installed viewer library's JS file (bytes), or None without it."""
    from nnforce._viewer import viewer_library

    library = viewer_library()
    if library is None:
        return None
    with open(library.path, "rb") as handle:
        return handle.read()


def check_self_contained(page, local_links=False):
    """Assert the page is self-contained; returns the number of structure cards.

    Every src/href is a data: URI (with ``local_links``, an ``<a href>`` may also name a file beside the page by a
    relative path: the analysis report links its PDB files); the only script with a src is the viewer library
    embedded as a data: URI whose bytes are the installed file's; inline scripts carry no URL; outside the
    embedded library and its licence notices (plain text) there is no http(s) URL at all and no <link> other than
    the empty icon."""
    references = re.findall(r'src="([^"]*)"', page) + re.findall(r'<(?!a\b)[^>]*\bhref="([^"]*)"', page)
    assert references and all(ref.startswith("data:") for ref in references), \
        [r[:60] for r in references if not r.startswith("data:")][:3]
    for ref in re.findall(r'<a\b[^>]*\bhref="([^"]*)"', page):
        assert ref.startswith("data:") or (local_links and ":" not in ref and not ref.startswith(("/", "\\"))), ref
    library = viewer_bytes()
    embedded = LIBRARY.findall(page)
    cards = page.count('class="nnf-mol3d"')
    if cards and library is not None:
        assert len(embedded) == 1, "the viewer library is embedded exactly once"
        assert base64.b64decode(embedded[0]) == library
    else:
        assert not embedded
    assert len(NOTICES.findall(page)) == len(embedded)  # the licence notices go with the library
    rest = NOTICES.sub("", LIBRARY.sub("", page))
    for attributes, code in SCRIPT.findall(rest):
        assert "src=" not in attributes, attributes  # no other script is loaded from anywhere
        assert "http://" not in code and "https://" not in code
    assert "http://" not in rest and "https://" not in rest
    assert all(link.strip() == '<link rel="icon" href="data:,">'
               for link in re.findall(r"<link\b[^>]*>", page, re.I))
    return cards


def chromium():
    """The headless Chromium binary, or None."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


# Chromium logs these at INFO level while a software WebGL renders; they are not errors of the page
BENIGN_CONSOLE = ("GL Driver Message", "Automatic fallback to software WebGL")


def open_in_chromium(path, user_dir, *extra):
    """Run headless Chromium on a local file (network off); returns (stdout, console messages from stderr)."""
    command = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
               "--host-resolver-rules=MAP * ~NOTFOUND", f"--user-data-dir={user_dir}", "--enable-logging=stderr",
               "--v=0", *extra, "file://" + os.path.abspath(path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines()
               if ":CONSOLE" in line and not any(text in line for text in BENIGN_CONSOLE)]
    return done.stdout, console


def card_states(dom):
    """(data-viewer, data-atoms or None) of every structure card in a DOM dump."""
    states = []
    for tag in re.findall(r'<figure class="nnf-mol3d"[^>]*>', dom):
        viewer = re.search(r'data-viewer="([^"]*)"', tag)
        atoms = re.search(r'data-atoms="([^"]*)"', tag)
        states.append((viewer.group(1) if viewer else None, atoms.group(1) if atoms else None))
    return states
