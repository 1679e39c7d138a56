"""The one page, table and figure engine of nnforce's reports (``nnforce analyze`` and ``nnforce demo``).

Pages are self-contained: figures are PNG files embedded as base64 data URIs, the style sheet is inline, there
are no fonts or external links. The one script a page may carry is the 3D structure viewer of
:mod:`nnforce._viewer` (embedded as a ``data:`` URI, with its licence notices), added by :func:`page` when the body
holds structure cards made by :func:`structures`. Figures come from matplotlib's Agg backend and are written
atomically (:mod:`nnforce._png`).

Direction: ``_png`` (matplotlib, PNG files, data URIs) <- ``_viewer`` (structure cards) <- ``_html`` (pages).
"""
import html
import math

from ._io import atomic_write
from ._png import png_data_uri
from ._viewer import STYLE as VIEWER_STYLE, has_cards, page_scripts, structure_cards

STYLE = """
body { font-family: sans-serif; max-width: 1100px; margin: 1.5em auto; padding: 0 1em; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 3px 9px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; } figure { margin: 0.6em 0; } figcaption { font-size: 0.88em; color: #555; }
.flow { font-family: monospace; background: #f7f7f7; padding: 0.5em 0.8em; }
.warn { background: #fff3cd; border: 1px solid #e0c36c; padding: 0.5em 0.8em; }
.row { display: flex; flex-wrap: wrap; gap: 1em; align-items: flex-start; }
"""


def esc(value):
    """HTML-escape ``str(value)``.

    Examples
    --------
    >>> esc("a < b")
    'a &lt; b'

    Parameters
    ----------
    value : object

    Returns
    -------
    str
    """
    return html.escape(str(value))


def fmt(value):
    """A number for a table cell: thousands separators for integers, four significant digits otherwise.

    Examples
    --------
    >>> fmt(12345), fmt(3.14159), fmt(123.456), fmt(1e-5)
    ('12,345', '3.142', '123.5', '1e-05')

    Parameters
    ----------
    value : int or float

    Returns
    -------
    str
    """
    import numpy as np

    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    value = float(value)
    if value == 0 or not math.isfinite(value):
        return str(value)
    if abs(value) >= 1e5 or abs(value) < 1e-3:
        return f"{value:.4g}"
    return f"{value:.4g}" if abs(value) < 100 else f"{value:.1f}"


def figure(path, alt, caption):
    """A ``<figure>`` with the PNG at ``path`` embedded and a caption.

    Examples
    --------
    >>> figure("fes.png", "free energy", "-kT ln p")  # doctest: +SKIP
    '<figure><img src="data:image/png;base64,..." alt="free energy"><figcaption>-kT ln p</figcaption></figure>'

    Parameters
    ----------
    path : str
    alt, caption : str

    Returns
    -------
    str
    """
    return f'<figure><img src="{png_data_uri(path)}" alt="{esc(alt)}"><figcaption>{esc(caption)}</figcaption></figure>'


def table(rows, header=None):
    """An HTML table. Without ``header`` the first cell of each row is a row heading; numbers are right-aligned
    and formatted with :func:`fmt`.

    Parameters
    ----------
    rows : iterable of sequences
    header : sequence of str, optional

    Returns
    -------
    str

    Examples
    --------
    >>> table([("atoms", 22)])
    '<table><tr><th>atoms</th><td class="num">22</td></tr></table>'
    """
    import numpy as np

    out = ["<table>"]
    if header:
        out.append("<tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>")
    for row in rows:
        cells = []
        for k, cell in enumerate(row):
            if k == 0 and header is None:
                cells.append(f"<th>{esc(cell)}</th>")
            elif isinstance(cell, (int, float, np.integer, np.floating)) and not isinstance(cell, bool):
                cells.append(f'<td class="num">{esc(fmt(cell))}</td>')
            else:
                cells.append(f"<td>{esc(cell)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "".join(out)


def structures(entries, picture_dir):
    """Cards showing structures (PDB files) in 3D, with a static picture as fallback (:mod:`nnforce._viewer`).

    Parameters
    ----------
    entries : list of dict
        ``{"name": str, "pdb": path, "caption": str}`` each.
    picture_dir : str
        Folder for the static pictures (PNG, also embedded).

    Returns
    -------
    str
        HTML; :func:`page` adds the viewer library and its script to a page holding it.

    Examples
    --------
    >>> structures([{"name": "state 1", "pdb": "state000.pdb", "caption": "C7eq"}], "figures")  # doctest: +SKIP
    """
    return structure_cards(entries, picture_dir)


def page(title, body, style=STYLE, icon=False):
    """A complete, self-contained HTML document (with the 3D viewer when ``body`` holds :func:`structures` cards).

    Parameters
    ----------
    title : str
    body : str
        HTML of the body (headings, sections, figures, tables).
    style : str
        Inline CSS.
    icon : bool
        Declare an empty favicon (``data:``), so a browser does not look for ``favicon.ico`` beside the file.

    Examples
    --------
    >>> page("t", "<p>x</p>").startswith("<!DOCTYPE html>")
    True

    Returns
    -------
    str
    """
    if has_cards(body):
        style, body = style + VIEWER_STYLE, body + "\n" + page_scripts()
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
{'<link rel="icon" href="data:,">' + chr(10) if icon else ''}<title>{esc(title)}</title>
<style>{style}</style>
</head>
<body>
{body}
</body>
</html>
"""


def write_page(path, title, body, style=STYLE, icon=False):
    """Write :func:`page` to ``path`` atomically; returns ``path``.

    Parameters
    ----------
    path, title, body, style, icon
        As for :func:`page`.

    Returns
    -------
    str

    Examples
    --------
    >>> write_page("report.html", "results", table([("frames", 100)]))  # doctest: +SKIP
    'report.html'
    """
    with atomic_write(path, "w") as handle:
        handle.write(page(title, body, style, icon))
    return path
