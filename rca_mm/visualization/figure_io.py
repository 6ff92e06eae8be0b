"""Saving matplotlib figures as files, atomically."""
import os.path as osp
from typing import Optional

from matplotlib.figure import Figure

from rca_mm.fileio import atomic_write


def save_figure(fig: Figure, path: str, dpi: Optional[int] = None) -> None:
    """Save a figure, in the format of the extension of ``path`` (PNG
    without one); a reader never sees a half-written file.

    Args:
        fig (matplotlib.figure.Figure): the figure.
        path (str): the file; its directory is created.
        dpi (int, optional): resolution. Default: None (the figure's).
    """
    fmt = osp.splitext(path)[1][1:].lower() or 'png'
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format=fmt))
