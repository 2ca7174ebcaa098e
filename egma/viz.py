"""Plotly figures and views shared by the chapters.

`setup_plotly()` is the first call of every chapter. Jupyter Book 1 (myst-nb) drops plotly's
JSON-only output (`application/vnd.plotly.v1+json`) and plotly's stock "notebook" renderer adds a
MathJax CDN script to every figure, so the book would show no figures offline. The set-up here
makes every figure carry both the JSON (JupyterLab renders it natively, also in a reopened,
untrusted notebook) and a `text/html` div (what the HTML book shows), and puts plotly.js itself
inline on the page once, so the book needs no network.
"""
from __future__ import annotations

import plotly.io as pio
from plotly.io.base_renderers import MimetypeRenderer
from plotly.offline import get_plotlyjs

BOOK_RENDERER = "egma_book"

# plotly.js reads this before it loads: typeset with a MathJax already on the page, never fetch one.
_PLOTLY_WINDOW_CONFIG = "window.PlotlyConfig = {MathJaxConfig: 'local'};"


class _BookHtmlRenderer(MimetypeRenderer):
    """A figure as a `text/html` div whose script draws it with the page's plotly.js."""

    def to_mimebundle(self, fig_dict):
        html = pio.to_html(fig_dict, include_plotlyjs=False, include_mathjax=False, full_html=False,
                           default_width="100%", default_height=525, validate=False)
        return {"text/html": html}


def plotlyjs_script() -> str:
    """The whole plotly.js library as inline `<script>` tags (about 5 MB, no network needed)."""
    return f"<script>{_PLOTLY_WINDOW_CONFIG}</script>\n<script>{get_plotlyjs()}</script>"


def setup_plotly() -> None:
    """Make plotly figures render in JupyterLab, under papermill and in the offline HTML book.

    Call it once, first thing in a chapter: inside a kernel it displays plotly.js as the cell's
    output, so it must come before the first figure on the page.
    """
    pio.renderers[BOOK_RENDERER] = _BookHtmlRenderer()
    pio.renderers.default = f"plotly_mimetype+{BOOK_RENDERER}"
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:  # plain Python: figures are shown by other means, nothing to embed
        return
    if get_ipython() is not None:
        display({"text/html": plotlyjs_script()}, raw=True)
