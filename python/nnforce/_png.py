"""Figures as PNG files for the reports: matplotlib on the Agg backend, PNGs written atomically, PNG files as
``data:`` URIs. Used by :mod:`nnforce._html` (pages), :mod:`nnforce._viewer` (static structure pictures) and the
plotting modules; it imports neither of the first two."""
import base64

from ._io import atomic_save


def png_data_uri(path):
    """A ``data:image/png;base64,...`` URI holding the PNG file ``path``.

    Parameters
    ----------
    path : str

    Returns
    -------
    str

    Examples
    --------
    >>> png_data_uri("fes.png")[:22]  # doctest: +SKIP
    'data:image/png;base64,'
    """
    with open(path, "rb") as handle:
        return "data:image/png;base64," + base64.b64encode(handle.read()).decode("ascii")


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (no display needed).

    Returns
    -------
    module

    Examples
    --------
    >>> fig, ax = pyplot().subplots()  # doctest: +SKIP
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path, dpi=100):
    """Write a matplotlib figure as PNG atomically, close it, and return ``path``.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    path : str
    dpi : int

    Returns
    -------
    str

    Examples
    --------
    >>> plt = pyplot(); fig, ax = plt.subplots(); save_figure(fig, "plot.png")  # doctest: +SKIP
    'plot.png'
    """
    atomic_save(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format="png", bbox_inches="tight"))
    pyplot().close(fig)
    return path
