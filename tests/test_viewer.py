"""The reports' 3D structure viewer (nnforce._viewer through nnforce._html): the bundled 3Dmol.js embedded
byte for byte, the PDB text carried exactly, a static picture whose bonds are the molecule's, the fallback
without the library, and what a real browser (headless Chromium, network off) does with the page."""
import base64
import html
import re

import numpy as np
import pytest

from report_checks import card_states, check_self_contained, chromium, open_in_chromium, viewer_bytes


def _page(tmp_path, count=2, name="page.html"):
    from nnforce import _html
    from nnforce.demo.molecule import ALANINE_PDB

    entries = [{"name": f"S{k + 1}", "pdb": ALANINE_PDB, "caption": f"state {k + 1}"} for k in range(count)]
    body = "<h1>structures</h1>" + _html.structures(entries, str(tmp_path / "pictures"))
    return _html.write_page(str(tmp_path / name), "structures", body, icon=True)


def test_static_picture_bonds_are_the_molecules_bonds(tmp_path):
    import mdtraj as md
    from PIL import Image

    from nnforce._viewer import _bonds, read_pdb, structure_picture
    from nnforce.demo.molecule import ALANINE_PDB

    elements, xyz = read_pdb(ALANINE_PDB)
    reference = md.load(ALANINE_PDB)
    assert elements == [a.element.symbol for a in reference.topology.atoms]
    np.testing.assert_allclose(xyz, reference.xyz[0], atol=1e-6)
    found = {tuple(sorted(map(int, pair))) for pair in _bonds(elements, xyz)}
    expected = {tuple(sorted((a.index, b.index))) for a, b in reference.topology.bonds}
    assert len(expected) == 21 and found == expected  # 22 atoms, no ring: 21 bonds, the PDB's own
    path = structure_picture(str(tmp_path / "ala.png"), elements, xyz, title="alanine dipeptide")
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB"), dtype=np.float64)
    # oxygen red and nitrogen blue are drawn (CPK colours), not a blank canvas
    red = (pixels[..., 0] > 200) & (pixels[..., 1] < 60) & (pixels[..., 2] < 60)
    blue = (pixels[..., 2] > 200) & (pixels[..., 0] < 100)
    assert red.sum() > 20 and blue.sum() > 20


def test_cards_carry_the_pdb_and_the_embedded_library(tmp_path):
    from nnforce._viewer import viewer_library
    from nnforce.demo.molecule import ALANINE_PDB

    path = _page(tmp_path)
    page = open(path, encoding="utf-8").read()
    assert check_self_contained(page) == 2
    carried = [html.unescape(text) for text in re.findall(r'data-pdb="([^"]*)"', page)]
    assert carried == [open(ALANINE_PDB).read()] * 2
    for encoded in re.findall(r'class="nnf-mol3d-picture" src="data:image/png;base64,([^"]+)"', page):
        assert base64.b64decode(encoded)[:8] == b"\x89PNG\r\n\x1a\n"
    library = viewer_library()
    if library is None:
        pytest.skip("chemiscope (the package bundling 3Dmol.js) is not installed: pip install chemiscope")
    assert library.viewer.startswith("2.") and "BSD" in library.licence and "3dmol" in library.licence.lower()
    assert f"3Dmol.js {library.viewer} from chemiscope {library.version} (BSD-3-Clause)" in page
    assert len(viewer_bytes()) > 1_000_000  # the whole bundle, compared byte for byte by check_self_contained


def test_without_the_library_the_pictures_stay_and_no_script_is_added(tmp_path, monkeypatch):
    import nnforce._viewer as viewer

    monkeypatch.setattr(viewer, "viewer_library", lambda: None)
    page = open(_page(tmp_path), encoding="utf-8").read()
    assert "<script" not in page.lower()
    assert "pip install chemiscope" in page
    assert page.count('class="nnf-mol3d-picture" src="data:image/png') == 2
    assert check_self_contained(page) == 2


@pytest.mark.skipif(chromium() is None, reason="no chromium binary (apt-get install -y chromium, or `make chromium`)")
def test_views_render_in_headless_chromium(tmp_path, monkeypatch):
    from PIL import Image

    import nnforce._viewer as viewer

    if viewer.viewer_library() is None:
        pytest.skip("chemiscope (the package bundling 3Dmol.js) is not installed: pip install chemiscope")
    count = viewer.MAX_INTERACTIVE + 1
    path = _page(tmp_path, count)
    dom, console = open_in_chromium(path, tmp_path / "profile", "--dump-dom")
    assert console == [], console[:3]
    states = card_states(dom)
    # 3Dmol.js read all 22 atoms of each structure (hydrogens kept); past the limit the picture stays
    assert states[:-1] == [("ready", "22")] * (count - 1)
    assert states[-1][0].startswith("picture (3D views limited")
    shot = tmp_path / "shot.png"
    _, console = open_in_chromium(path, tmp_path / "profile-shot", f"--screenshot={shot}", "--window-size=700,420",
                                  "--hide-scrollbars")
    with Image.open(shot) as image:
        first_card = np.asarray(image.convert("L"), dtype=np.float64)[90:330, 20:310]
    assert first_card.std() > 10  # the WebGL canvas drew the molecule
    # and without the library the same page keeps its pictures in the browser
    monkeypatch.setattr(viewer, "viewer_library", lambda: None)
    plain = _page(tmp_path, 1, "plain.html")
    dom, console = open_in_chromium(plain, tmp_path / "profile-plain", "--dump-dom")
    assert console == [] and card_states(dom) == [("picture", None)]
    assert re.search(r'<img class="nnf-mol3d-picture" src="data:image/png', dom)
