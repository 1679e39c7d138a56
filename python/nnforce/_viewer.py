"""Interactive 3D views of structures inside nnforce's self-contained HTML reports, with a static picture beside.

The viewer is `3Dmol.js <https://3dmol.org>`_ (BSD-3-Clause) as bundled in the standalone JavaScript file of the
``chemiscope`` package from PyPI (BSD-3-Clause; ``chemiscope/sphinx/static/chemiscope.min.js``, which sets
``window.$3Dmol`` when it loads). The file is embedded in the page as a ``data:`` URI, so a report works offline
and loads nothing from elsewhere; its licence notices are embedded with it. Each structure is a card holding

* a static picture (matplotlib, ball and stick, projected on the molecule's two principal axes), shown when
  JavaScript is off, when ``chemiscope`` is not installed, or when the browser has no WebGL;
* a 3Dmol.js view (drag to rotate, scroll to zoom) of the PDB text, which the page's script shows instead.

The script marks each card with ``data-viewer`` (``ready``, ``picture`` or ``error: ...``) and, when ready,
``data-atoms`` (the atoms 3Dmol.js read), so tests can check what a browser did. At most :data:`MAX_INTERACTIVE`
cards of a page get a 3D view: browsers limit the number of live WebGL contexts (Chromium: 16).

:mod:`nnforce._html` is the only user: ``_html.structures(...)`` makes the cards and ``_html.page`` adds the
library and the script once, when the body has cards.
"""
import base64
import html
import importlib.metadata
import importlib.util
import os
import re
from dataclasses import dataclass

import numpy as np

from ._png import png_data_uri, pyplot, save_figure

__all__ = ["ViewerLibrary", "viewer_library", "structure_cards", "page_scripts", "structure_picture", "read_pdb",
           "MAX_INTERACTIVE", "CARD_CLASS"]

PACKAGE = "chemiscope"
BUNDLE = ("sphinx", "static", "chemiscope.min.js")
NOTICES = ("static", "chemiscope-widget.mjs.LICENSE.txt")  # third-party notices of the same bundled libraries
MAX_INTERACTIVE = 8
CARD_CLASS = "nnf-mol3d"

# CPK-like colours and radii (nm) for the static picture
_COLOURS = {"H": "#f2f2f2", "C": "#808080", "N": "#3050f8", "O": "#ff0d0d", "S": "#ffc832", "P": "#ff8000",
            "F": "#90e050", "Cl": "#1ff01f"}
_BOND_COLOURS = {"H": "#b4b4b4"}  # white bonds would vanish on the white page
_COVALENT_NM = {"H": 0.031, "C": 0.076, "N": 0.071, "O": 0.066, "S": 0.105, "P": 0.107, "F": 0.057, "Cl": 0.102}


@dataclass
class ViewerLibrary:
    """The installed viewer library: ``name``/``version`` of the package, ``path`` of the JS file, ``viewer``
    (the 3Dmol.js version inside), ``licence`` (the package's licence text and the bundle's notices)."""

    name: str
    version: str
    path: str
    viewer: str
    licence: str


def viewer_library():
    """The bundled 3Dmol.js of the installed ``chemiscope`` package, or None when it is not installed.

    The package is located without importing it (its ``__init__`` pulls in Jupyter widgets).

    Returns
    -------
    ViewerLibrary or None

    Examples
    --------
    >>> library = viewer_library()
    >>> library is None or library.path.endswith("chemiscope.min.js")
    True
    """
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    root = list(spec.submodule_search_locations)[0]
    path = os.path.join(root, *BUNDLE)
    if not os.path.isfile(path):
        return None
    try:
        distribution = importlib.metadata.distribution(PACKAGE)
        version = distribution.version
        licences = [f for f in (distribution.files or []) if "licen" in str(f).lower()]
        licence = "\n".join(f.read_text() or "" for f in licences)
    except importlib.metadata.PackageNotFoundError:
        version, licence = "unknown", ""
    notices_path = os.path.join(root, *NOTICES)
    notices = open(notices_path, encoding="utf-8").read() if os.path.isfile(notices_path) else ""
    found = re.search(r"3dmol v([0-9][0-9.]*)", notices, re.I)
    text = (f"chemiscope {version} (BSD-3-Clause):\n{licence.strip()}\n\n"
            f"3Dmol.js {found.group(1) if found else ''} (BSD-3-Clause, David Koes and contributors) and the other "
            f"libraries bundled in chemiscope.min.js:\n{notices.strip()}")
    return ViewerLibrary(PACKAGE, version, path, found.group(1) if found else "unknown", text)


def read_pdb(path):
    """Elements and coordinates (nm) of the first model of a PDB file (ATOM/HETATM records).

    Parameters
    ----------
    path : str

    Returns
    -------
    tuple
        ``(elements list of str, xyz [n, 3] nm)``.

    Examples
    --------
    >>> from nnforce.demo.molecule import ALANINE_PDB
    >>> elements, xyz = read_pdb(ALANINE_PDB)
    >>> len(elements), elements[:2]
    (22, ['C', 'H'])
    """
    elements, xyz = [], []
    with open(path) as handle:
        for line in handle:
            if line.startswith("ENDMDL"):
                break
            if line.startswith(("ATOM  ", "HETATM")):
                symbol = line[76:78].strip() or re.sub(r"[^A-Za-z]", "", line[12:16])[:1]
                elements.append(symbol[:1].upper() + symbol[1:].lower())
                xyz.append([float(line[30:38]), float(line[38:46]), float(line[46:54])])
    if not elements:
        raise ValueError(f"{path} has no ATOM/HETATM records: not a structure to show")
    return elements, np.asarray(xyz, dtype=np.float64) / 10.0


def _bonds(elements, xyz_nm):
    """Pairs closer than 1.15 x the sum of their covalent radii."""
    from scipy.spatial import cKDTree

    radii = np.array([_COVALENT_NM.get(e, 0.075) for e in elements])
    pairs = cKDTree(xyz_nm).query_pairs(2.3 * radii.max(), output_type="ndarray")
    if len(pairs) == 0:
        return pairs.reshape(0, 2)
    distance = np.linalg.norm(xyz_nm[pairs[:, 0]] - xyz_nm[pairs[:, 1]], axis=1)
    return pairs[distance < 1.15 * (radii[pairs[:, 0]] + radii[pairs[:, 1]])]


def structure_picture(path, elements, xyz_nm, title=None):
    """A ball-and-stick PNG of a structure, seen along its smallest principal axis (nearer atoms drawn last).

    Parameters
    ----------
    path : str
        Where the PNG goes (written atomically).
    elements : list of str
    xyz_nm : array, shape (n, 3)
    title : str, optional

    Returns
    -------
    str
        ``path``.

    Examples
    --------
    >>> structure_picture("state0.png", *read_pdb("state0.pdb"))  # doctest: +SKIP
    'state0.png'
    """
    from matplotlib.collections import LineCollection

    xyz = np.asarray(xyz_nm, dtype=np.float64)
    centred = xyz - xyz.mean(axis=0)
    _, _, axes = np.linalg.svd(centred, full_matrices=False) if len(xyz) > 2 else (None, None, np.eye(3))
    view = centred @ axes.T  # columns: the two widest principal axes, then depth
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(3.0, 3.0))
    big = len(elements) > 300  # proteins: smaller balls, no per-bond colours that nobody could see
    bonds = _bonds(elements, xyz)
    if len(bonds):
        middle = (view[bonds[:, 0], :2] + view[bonds[:, 1], :2]) / 2
        segments = np.concatenate([np.stack([view[bonds[:, 0], :2], middle], axis=1),
                                   np.stack([view[bonds[:, 1], :2], middle], axis=1)])
        ends = np.concatenate([bonds[:, 0], bonds[:, 1]])
        colours = [_BOND_COLOURS.get(elements[a], _COLOURS.get(elements[a], "#ff69b4")) for a in ends]
        ax.add_collection(LineCollection(segments, colors=colours, linewidths=1.0 if big else 3.5, zorder=2,
                                         capstyle="round"))
    order = np.argsort(view[:, 2])  # far atoms first: nearer ones are drawn over them
    sizes = np.array([(6 if big else 140) if e != "H" else (2 if big else 60) for e in elements])
    ax.scatter(view[order, 0], view[order, 1], s=sizes[order], c=[_COLOURS.get(elements[k], "#ff69b4") for k in order],
               edgecolors="0.2", linewidths=0.2 if big else 0.6, zorder=3)
    span = float(np.abs(view[:, :2]).max()) + 0.08
    ax.set_xlim(-span, span)
    ax.set_ylim(-span, span)
    ax.set_aspect("equal")
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=9)
    return save_figure(fig, path)


def structure_cards(entries, picture_dir):
    """HTML cards, one per structure: a static picture and a 3D view the page's script turns on.

    Parameters
    ----------
    entries : list of dict
        ``{"name": str, "pdb": path, "caption": str}`` each.
    picture_dir : str
        Folder for the static pictures (``<pdb name>.png``).

    Returns
    -------
    str
        ``<div class="nnf-mol3d-row">...</div>``.

    Examples
    --------
    >>> structure_cards([{"name": "S1", "pdb": "state0.pdb", "caption": "C7eq"}], "figures")  # doctest: +SKIP
    """
    cards = []
    for entry in entries:
        elements, xyz = read_pdb(entry["pdb"])
        with open(entry["pdb"]) as handle:
            pdb_text = handle.read()
        png = os.path.join(picture_dir, os.path.splitext(os.path.basename(entry["pdb"]))[0] + ".png")
        structure_picture(png, elements, xyz)
        name, caption = html.escape(str(entry["name"])), html.escape(str(entry.get("caption", "")))
        cards.append(
            f'<figure class="{CARD_CLASS}" data-viewer="picture">'
            f'<div class="nnf-mol3d-view" hidden data-pdb="{html.escape(pdb_text, quote=True)}"></div>'
            f'<img class="nnf-mol3d-picture" src="{png_data_uri(png)}" alt="{name}: static picture">'
            f"<figcaption><strong>{name}</strong> {caption} "
            f'<span class="nnf-mol3d-hint">(static picture)</span></figcaption></figure>')
    return '<div class="nnf-mol3d-row">' + "".join(cards) + "</div>"


STYLE = """
.nnf-mol3d-row { display: flex; flex-wrap: wrap; gap: 0.8em; }
.nnf-mol3d { margin: 0; width: 300px; border: 1px solid #ddd; padding: 4px; }
.nnf-mol3d-view { width: 290px; height: 260px; position: relative; }
.nnf-mol3d-picture { width: 290px; }
.nnf-mol3d-hint { color: #777; font-size: 0.85em; }
details.licences pre { white-space: pre-wrap; font-size: 0.75em; max-height: 20em; overflow: auto; }
"""

# Our own code: turns the cards' 3D views on (or leaves the picture, saying why, in data-viewer).
_INIT = """
(function () {
  var cards = document.querySelectorAll('.%(card)s');
  for (var i = 0; i < cards.length; i++) {
    var card = cards[i], view = card.querySelector('.nnf-mol3d-view'),
        picture = card.querySelector('.nnf-mol3d-picture'), hint = card.querySelector('.nnf-mol3d-hint');
    if (typeof window.$3Dmol === 'undefined') { card.setAttribute('data-viewer', 'picture'); continue; }
    if (i >= %(limit)d) { card.setAttribute('data-viewer', 'picture (3D views limited to %(limit)d a page)'); continue; }
    try {
      view.hidden = false;
      var viewer = window.$3Dmol.createViewer(view, {backgroundColor: 'white'});
      if (!viewer) { throw new Error('no WebGL'); }
      var model = viewer.addModel(view.getAttribute('data-pdb'), 'pdb', {keepH: true});
      viewer.setStyle({}, {stick: {radius: 0.14}, sphere: {scale: 0.23}});
      viewer.zoomTo();
      viewer.render();
      picture.hidden = true;
      hint.textContent = '(3D: drag to rotate, scroll to zoom)';
      card.setAttribute('data-atoms', String(model.selectedAtoms({}).length));
      card.setAttribute('data-viewer', 'ready');
    } catch (error) {
      view.hidden = true;
      picture.hidden = false;
      card.setAttribute('data-viewer', 'error: ' + error);
    }
  }
})();
"""


def page_scripts(library=None):
    """What a page with structure cards adds at the end of its body: the viewer library (a ``data:`` URI script),
    the script that turns the views on, and the library's licence notices. Without the library: a note saying
    the pictures are static and how to get the 3D views.

    Parameters
    ----------
    library : ViewerLibrary, optional
        Default: :func:`viewer_library`.

    Returns
    -------
    str

    Examples
    --------
    >>> "pip install" in page_scripts(ViewerLibrary("x", "0", "/nonexistent", "0", "")) or True
    True
    """
    library = library or viewer_library()
    if library is None or not os.path.isfile(library.path):
        return ('<p class="nnf-mol3d-hint">Structures are static pictures: the 3D viewer needs the chemiscope '
                "package (<code>pip install chemiscope</code>, in nnforce's [analysis] and [demo] extras), whose "
                "bundled 3Dmol.js is then embedded in the report.</p>")
    with open(library.path, "rb") as handle:
        encoded = base64.b64encode(handle.read()).decode("ascii")
    init = _INIT % {"card": CARD_CLASS, "limit": MAX_INTERACTIVE}
    return (f'<details class="licences"><summary>3D viewer: 3Dmol.js {html.escape(library.viewer)} from '
            f"{html.escape(library.name)} {html.escape(library.version)} (BSD-3-Clause), embedded in this page; "
            f"licence notices</summary><pre>{html.escape(library.licence)}</pre></details>\n"
            f'<script src="data:text/javascript;base64,{encoded}"></script>\n'
            f"<script>{init}</script>\n")


def has_cards(body):
    """Whether an HTML body holds structure cards (so the page needs :func:`page_scripts`)."""
    return f'class="{CARD_CLASS}"' in body

