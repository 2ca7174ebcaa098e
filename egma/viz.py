"""Plotly figures and views shared by the chapters.

`setup_plotly()` is the first call of every chapter. Jupyter Book 1 (myst-nb) drops plotly's
JSON-only output (`application/vnd.plotly.v1+json`) and plotly's stock "notebook" renderer adds a
MathJax CDN script to every figure, so the book would show no figures offline. The set-up here
makes every figure carry both the JSON (JupyterLab renders it natively, also in a reopened,
untrusted notebook) and a `text/html` div (what the HTML book shows), and puts plotly.js itself
inline on the page once, so the book needs no network.
"""
from __future__ import annotations

import base64
import html
import io

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
from PIL import Image
from plotly.subplots import make_subplots
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


# --- figures shared by chapters ---------------------------------------------------------------

REGION_COLOURS = {
    "finding:cardiomegaly": "#e6194b", "finding:pleural_effusion": "#4363d8", "finding:consolidation": "#f58231",
    "finding:pneumonia": "#911eb4", "finding:atelectasis": "#42d4f4", "finding:edema": "#f032e6",
    "finding:pneumothorax": "#bfef45", "finding:nodule": "#fabed4", "finding:opacity": "#469990",
    "finding:support_devices": "#dcbeff", "finding:fracture": "#9a6324",
}
ANATOMY_COLOUR = "#a9a9a9"


def region_colour(key: str) -> str:
    return REGION_COLOURS.get(key, ANATOMY_COLOUR)


def png_data_uri(image: np.ndarray, max_side: int | None = None) -> str:
    """A uint8 grayscale image as an inline PNG: compact in notebooks and static HTML (no per-pixel JSON)."""
    img = Image.fromarray(np.asarray(image, dtype=np.uint8))
    if max_side and max(img.size) > max_side:
        img.thumbnail((max_side, max_side))
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def add_image(fig: go.Figure, image: np.ndarray, row: int | None = None, col: int | None = None,
              max_side: int = 512) -> None:
    """Place an image in pixel coordinates of the ORIGINAL image (y down), whatever its display size."""
    h, w = image.shape[:2]
    kw = dict(row=row, col=col) if row else {}
    fig.add_layout_image(dict(source=png_data_uri(image, max_side), xref="x", yref="y", x=0, y=0, sizex=w, sizey=h,
                              sizing="stretch", layer="below"), **kw)
    fig.update_xaxes(range=[0, w], showgrid=False, zeroline=False, visible=False, constrain="domain", **kw)
    fig.update_yaxes(range=[h, 0], showgrid=False, zeroline=False, visible=False, scaleanchor="x", **kw)


def mask_outline_traces(masks: dict[str, np.ndarray], step: int = 2) -> list[go.Scatter]:
    """One line trace per mask, its outline (marching squares) in original pixel coordinates."""
    from skimage import measure

    traces = []
    for key, mask in masks.items():
        xs, ys = [], []
        for contour in measure.find_contours(mask[::step, ::step].astype(float), 0.5):
            xs += list(contour[:, 1] * step) + [None]
            ys += list(contour[:, 0] * step) + [None]
        traces.append(go.Scatter(x=xs, y=ys, mode="lines", name=key.split(":")[-1],
                                 line=dict(color=region_colour(key), width=2)))
    return traces


def image_with_outlines(image: np.ndarray, masks: dict[str, np.ndarray], title: str = "") -> go.Figure:
    h, w = image.shape
    fig = go.Figure(mask_outline_traces(masks))
    add_image(fig, image)
    fig.update_layout(title=title, width=520, height=int(520 * h / w) + 60, margin=dict(l=10, r=10, t=40, b=10),
                      legend=dict(orientation="h"))
    return fig


def sentences_html(sentences: list[str], regions: list[list[str]]) -> str:
    """The report with each sentence highlighted in its region's colour and the region named after it."""
    parts = []
    for text, keys in zip(sentences, regions):
        colour = region_colour(keys[0]) if keys else ANATOMY_COLOUR
        label = ", ".join(k.split(":")[-1] for k in keys)
        parts.append(f'<span style="background:{colour}55;border-bottom:3px solid {colour};padding:1px 3px">'
                     f'{html.escape(text)}</span> <sub style="color:#555">[{html.escape(label)}]</sub>')
    return '<p style="line-height:2.1">' + " ".join(parts) + "</p>"


def dictation_figure(transcript, sentence_of_token: np.ndarray, colours: list[str], title: str = "") -> go.Figure:
    """Words as bars on the time axis, coloured by the sentence they belong to."""
    fig = go.Figure()
    for s, colour in enumerate(colours):
        idx = np.flatnonzero(sentence_of_token == s)
        fig.add_trace(go.Bar(base=transcript.t_start[idx], x=np.maximum(transcript.t_end[idx] - transcript.t_start[idx], 0.03),
                             y=[f"sentence {s + 1}"] * len(idx), orientation="h", marker_color=colour,
                             text=[transcript.tokens[i] for i in idx], textposition="inside",
                             hovertemplate="%{text}<br>%{base:.2f} s<extra></extra>", name=f"sentence {s + 1}"))
    fig.update_layout(title=title, barmode="overlay", height=120 + 28 * len(colours), xaxis_title="time (s)",
                      yaxis=dict(autorange="reversed"), showlegend=False, margin=dict(l=10, r=10, t=40, b=40))
    return fig


def gaze_trace_figure(samples, fixations=None, windows: np.ndarray | None = None, colours: list[str] | None = None,
                      title: str = "") -> go.Figure:
    """Raw x(t) and y(t) with the provided fixations as horizontal segments and sentence windows shaded."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.05, subplot_titles=("x (px)", "y (px)"))
    for row, values in ((1, samples.x), (2, samples.y)):
        fig.add_trace(go.Scattergl(x=samples.t, y=values, mode="lines", line=dict(width=1, color="#444"),
                                   name="raw samples", showlegend=row == 1), row=row, col=1)
        if fixations is not None:
            xs, ys = [], []
            for a, b, v in zip(fixations.t_start, fixations.t_end, fixations.x if row == 1 else fixations.y):
                xs += [a, b, None]
                ys += [v, v, None]
            fig.add_trace(go.Scattergl(x=xs, y=ys, mode="lines", line=dict(width=4, color="#e6194b"),
                                       name="fixations", showlegend=row == 1), row=row, col=1)
    if windows is not None:
        for (a, b), colour in zip(windows, colours):
            fig.add_vrect(x0=a, x1=b, fillcolor=colour, opacity=0.15, line_width=0)
    fig.update_layout(title=title, height=460, xaxis2_title="time (s)", margin=dict(l=10, r=10, t=60, b=40))
    return fig


def scanpath_figure(image: np.ndarray, fixations, colours_of_fixation: list[str], title: str = "") -> go.Figure:
    """Fixations on the image, marker area ~ duration, joined in order."""
    h, w = image.shape
    fig = go.Figure(go.Scatter(x=fixations.x, y=fixations.y, mode="lines+markers", line=dict(color="#ffffff", width=1),
                               marker=dict(size=6 + 30 * np.sqrt(fixations.duration), color=colours_of_fixation,
                                           line=dict(color="black", width=1), opacity=0.8),
                               hovertemplate="%{x:.0f}, %{y:.0f}<extra></extra>"))
    add_image(fig, image)
    fig.update_layout(title=title, width=520, height=int(520 * h / w) + 60, margin=dict(l=10, r=10, t=40, b=10),
                      showlegend=False)
    return fig


def image_grid(images: list[np.ndarray], titles: list[str], cols: int = 4, size: int = 170) -> go.Figure:
    """A contact sheet; each image inline as a small PNG."""
    rows = -(-len(images) // cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles, horizontal_spacing=0.01, vertical_spacing=0.04)
    for i, image in enumerate(images):
        r, c = i // cols + 1, i % cols + 1
        fig.add_trace(go.Scatter(x=[], y=[]), row=r, col=c)
        h, w = image.shape
        fig.add_layout_image(dict(source=png_data_uri(image, 256), xref=f"x{i + 1 if i else ''}", yref=f"y{i + 1 if i else ''}",
                                  x=0, y=0, sizex=w, sizey=h, sizing="stretch", layer="below"))
        fig.update_xaxes(range=[0, w], visible=False, row=r, col=c)
        fig.update_yaxes(range=[h, 0], visible=False, scaleanchor=f"x{i + 1 if i else ''}", row=r, col=c)
    fig.update_annotations(font_size=11)
    fig.update_layout(height=rows * (size + 30), width=cols * size, showlegend=False, margin=dict(l=5, r=5, t=30, b=5),
                      plot_bgcolor="white")
    return fig


def matrix_figure(matrices: dict[str, np.ndarray], row_labels: list[str] | None = None, x_title: str = "",
                  y_title: str = "", height: int = 360, colorscale: str = "Viridis") -> go.Figure:
    """Heatmaps side by side (title -> 2-D array), each with its own colour bar; row 0 at the top."""
    titles = list(matrices)
    fig = make_subplots(rows=1, cols=len(titles), subplot_titles=titles, horizontal_spacing=0.09)
    for i, (title, values) in enumerate(matrices.items(), start=1):
        values = np.asarray(values, dtype=float)
        domain = fig.layout[f"xaxis{i if i > 1 else ''}"].domain
        labels = row_labels if row_labels is not None and len(row_labels) == len(values) else None
        fig.add_trace(go.Heatmap(z=values, y=labels, colorscale=colorscale, colorbar=dict(x=domain[1] + 0.005, len=0.9,
                                                                                          thickness=10),
                                 hovertemplate="row %{y}, column %{x}: %{z:.3g}<extra>" + title + "</extra>"),
                      row=1, col=i)
        fig.update_yaxes(autorange="reversed", showticklabels=labels is None or i == 1, row=1, col=i)
        fig.update_xaxes(title_text=x_title, row=1, col=i)
    fig.update_yaxes(title_text=y_title, row=1, col=1)
    fig.update_annotations(font_size=12)
    fig.update_layout(height=height, margin=dict(l=10, r=40, t=40, b=40))
    return fig


def patch_overlay_figure(image: np.ndarray, values: np.ndarray, grid: int, title: str = "",
                         colorscale: str = "Hot", opacity: float = 0.55) -> go.Figure:
    """A square model-frame image with one value per patch (row-major, grid x grid) laid over it."""
    size = image.shape[0]
    step = size / grid
    centres = (np.arange(grid) + 0.5) * step
    fig = go.Figure(go.Heatmap(z=np.asarray(values, float).reshape(grid, grid), x=centres, y=centres,
                               colorscale=colorscale, opacity=opacity, colorbar=dict(thickness=10),
                               hovertemplate="patch row %{y}, col %{x}: %{z:.3g}<extra></extra>"))
    add_image(fig, image)
    fig.update_layout(title=title, width=440, height=420, margin=dict(l=10, r=10, t=40, b=10))
    return fig


# --- chapter 2: gaze preprocessing --------------------------------------------------------------

FIXATION_SET_COLOURS = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4")


def fixation_detection_figure(t: np.ndarray, x: np.ndarray, y: np.ndarray, speed: np.ndarray, threshold: float,
                              fixation_sets: dict, windows: np.ndarray | None = None,
                              colours: list[str] | None = None, title: str = "",
                              show_s: float | None = None) -> go.Figure:
    """x(t), y(t) and angular speed (log axis, threshold dashed), then every fixation table of
    `fixation_sets` (name -> FixationTable, the first drawn on x and y too) as a row of intervals.
    Sentence gaze windows are shaded; `show_s` opens the figure on the first seconds. Samples are
    sent as float32 (plenty for display, half the page weight)."""
    t, x, y, speed = (np.asarray(a, np.float32) for a in (t, x, y, speed))
    fig = make_subplots(rows=4, cols=1, shared_xaxes=True, vertical_spacing=0.03, row_heights=[0.28, 0.28, 0.24, 0.2],
                        subplot_titles=("x (px)", "y (px)", "angular speed (deg/s)", "fixations"))
    first = next(iter(fixation_sets.values()))
    for row, values, centre in ((1, x, first.x), (2, y, first.y)):
        fig.add_trace(go.Scattergl(x=t, y=values, mode="lines", line=dict(width=1, color="#444"), name="samples",
                                   showlegend=row == 1), row=row, col=1)
        fig.add_trace(go.Scattergl(x=np.column_stack([first.t_start, first.t_end, np.full(len(first), np.nan)]).ravel(),
                                   y=np.repeat(centre, 3), mode="lines", line=dict(width=4, color=FIXATION_SET_COLOURS[0]),
                                   name=next(iter(fixation_sets)), showlegend=False), row=row, col=1)
    fig.add_trace(go.Scattergl(x=t, y=np.maximum(speed, 0.1), mode="lines", line=dict(width=1, color="#444"),
                               showlegend=False), row=3, col=1)
    fig.add_hline(y=threshold, line_dash="dash", line_color="#e6194b", row=3, col=1)
    fig.update_yaxes(type="log", row=3, col=1)
    for k, (name, fx) in enumerate(fixation_sets.items()):
        fig.add_trace(go.Scattergl(x=np.column_stack([fx.t_start, fx.t_end, np.full(len(fx), np.nan)]).ravel(),
                                   y=np.repeat([name], 3 * len(fx)), mode="lines", name=name,
                                   line=dict(width=9, color=FIXATION_SET_COLOURS[k % len(FIXATION_SET_COLOURS)])),
                      row=4, col=1)
    if windows is not None:
        for (a, b), colour in zip(windows, colours or [ANATOMY_COLOUR] * len(windows)):
            fig.add_vrect(x0=a, x1=b, fillcolor=colour, opacity=0.15, line_width=0)
    if show_s is not None:
        fig.update_xaxes(range=[t[0], t[0] + show_s])
    fig.update_layout(title=title, height=680, xaxis4_title="time (s)", margin=dict(l=10, r=10, t=60, b=40),
                      legend=dict(orientation="h", y=-0.08))
    return fig


_HEAT_SCALE = [[0, "rgba(255,230,0,0)"], [0.05, "rgba(255,200,0,0.25)"], [1, "rgba(255,0,0,0.9)"]]
_GRID_SCALE = [[0, "rgba(0,90,255,0)"], [1, "rgba(0,90,255,0.75)"]]


def sentence_heatmap_slider(image: np.ndarray, maps: np.ndarray, soft: np.ndarray, sentences: list[str],
                            outlines: list[tuple[list, list]] | None = None, notes: list[str] | None = None,
                            title: str = "") -> go.Figure:
    """Each sentence's heatmap over the model-frame image (left) and its patch-grid labels GS (right),
    one slider step per sentence. Steps only toggle trace visibility, so the slider works in static
    HTML without a kernel. `outlines` (model-frame x, y lists per sentence) draws the true region."""
    size, grid = image.shape[0], int(round(np.sqrt(soft.shape[1])))
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.03,
                        subplot_titles=("heatmap (model frame)", f"patch labels GS ({grid}x{grid})"))
    per_sentence = []
    for i, (heat, labels) in enumerate(zip(maps, soft)):
        first = len(fig.data)
        peak = heat.max() if heat.max() > 0 else 1.0
        fig.add_trace(go.Heatmap(z=np.round(255 * heat / peak).astype(np.uint8), x0=0.5, dx=1, y0=0.5, dy=1,
                                 zmin=0, zmax=255,  # one byte per pixel keeps many sentences light
                                 colorscale=_HEAT_SCALE, showscale=False, hoverinfo="skip", visible=i == 0), row=1, col=1)
        fig.add_trace(go.Heatmap(z=np.round(labels.reshape(grid, grid), 2), x0=size / grid / 2, dx=size / grid,
                                 y0=size / grid / 2, dy=size / grid, zmin=0, zmax=1, colorscale=_GRID_SCALE,
                                 showscale=False, texttemplate="%{z:.2f}", textfont=dict(size=9, color="white"),
                                 visible=i == 0), row=1, col=2)
        if outlines is not None:
            for col in (1, 2):
                fig.add_trace(go.Scatter(x=outlines[i][0], y=outlines[i][1], mode="lines", hoverinfo="skip",
                                         line=dict(color="#00ff88", width=2), visible=i == 0, showlegend=False),
                              row=1, col=col)
        per_sentence.append(range(first, len(fig.data)))
    for col in (1, 2):
        add_image(fig, image, row=1, col=col)
    steps = []
    for i, text in enumerate(sentences):
        visible = [False] * len(fig.data)
        for k in per_sentence[i]:
            visible[k] = True
        label = f"{i + 1}. {text}" + (f" ({notes[i]})" if notes and notes[i] else "")
        steps.append(dict(method="update", label=str(i + 1),
                          args=[{"visible": visible}, {"title.text": f"{title}<br><sub>{html.escape(label)}</sub>"}]))
    first_label = f"1. {sentences[0]}" + (f" ({notes[0]})" if notes and notes[0] else "")
    fig.update_layout(title=f"{title}<br><sub>{html.escape(first_label)}</sub>", height=500, width=900,
                      showlegend=False, margin=dict(l=10, r=10, t=80, b=10),
                      sliders=[dict(active=0, steps=steps, currentvalue=dict(prefix="sentence "), pad=dict(t=30))])
    return fig


# --- chapters 5 and 6: evaluation ---------------------------------------------------------------

PREDICTOR_COLOURS = {"trained": "#1f77b4", "untrained": "#ff7f0e", "majority": "#7f7f7f", "random": "#bcbcbc"}


def _predictor_colour(name: str, i: int) -> str:
    palette = ("#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2")
    return PREDICTOR_COLOURS.get(name, palette[i % len(palette)])


def _facets(table, facet: str | None) -> list:
    return list(dict.fromkeys(table[facet])) if facet else [None]


def confusion_figure(confusions: dict, title: str = "", height: int = 380, y_title: str = "true",
                     x_title: str = "predicted", text_format: str = "%{text}") -> go.Figure:
    """Confusion matrices side by side (title -> DataFrame, rows true, columns predicted): colour = share
    of the true class's items (row-normalised), text = counts (`text_format`: plotly's, e.g. "%{text:.1f}")."""
    names = list(confusions)
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=names, horizontal_spacing=0.12)
    for i, name in enumerate(names, start=1):
        counts = confusions[name]
        rows = counts.to_numpy(dtype=float)
        share = rows / np.maximum(rows.sum(axis=1, keepdims=True), 1)
        fig.add_trace(go.Heatmap(z=share, x=list(counts.columns), y=list(counts.index), zmin=0, zmax=1,
                                 colorscale="Blues", showscale=i == len(names), text=counts.to_numpy(),
                                 texttemplate=text_format, colorbar=dict(title="share", thickness=10),
                                 hovertemplate=f"{y_title} %{{y}}, {x_title} %{{x}}: {text_format} (%{{z:.0%}})"
                                               "<extra></extra>"),
                      row=1, col=i)
        fig.update_yaxes(autorange="reversed", showticklabels=i == 1, row=1, col=i)
        fig.update_xaxes(title_text=x_title, tickangle=30, row=1, col=i)
    fig.update_yaxes(title_text=y_title, row=1, col=1)
    fig.update_annotations(font_size=12)
    fig.update_layout(title=title, height=height, margin=dict(l=10, r=10, t=60, b=40))
    return fig


def _faceted(table, facet: str | None) -> tuple[go.Figure, list[tuple[int, object]]]:
    """A one-row figure with a panel per value of `facet`, and (column, that panel's rows) for each."""
    panels = _facets(table, facet)
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[str(p) for p in panels] if facet else None,
                        shared_yaxes=True, horizontal_spacing=0.04)
    return fig, [(col, table if facet is None else table[table[facet] == panel])
                 for col, panel in enumerate(panels, start=1)]


def estimate_bars_figure(table, x: str, colour: str, facet: str | None = None, title: str = "", y_title: str = "",
                         chance: float | None = None, height: int = 360) -> go.Figure:
    """Grouped bars of a tidy estimate table (value, ci_low, ci_high) with 95 % CI whiskers; one panel
    per value of `facet`, one colour per value of `colour`, an optional dashed chance line."""
    fig, parts = _faceted(table, facet)
    for col, part in parts:
        for i, (name, rows) in enumerate(part.groupby(colour, sort=False)):
            fig.add_trace(go.Bar(x=rows[x].astype(str), y=rows["value"], name=str(name), legendgroup=str(name),
                                 showlegend=col == 1, marker_color=_predictor_colour(str(name), i),
                                 error_y=dict(type="data", symmetric=False, array=rows["ci_high"] - rows["value"],
                                              arrayminus=rows["value"] - rows["ci_low"], thickness=1.2),
                                 hovertemplate=f"{name}: " + "%{y:.3f}<extra></extra>"), row=1, col=col)
        if chance is not None:
            fig.add_hline(y=chance, line_dash="dash", line_color="#555555", row=1, col=col)
    fig.update_yaxes(title_text=y_title, row=1, col=1)
    fig.update_annotations(font_size=12)
    fig.update_layout(title=title, barmode="group", height=height, margin=dict(l=10, r=10, t=60, b=40))
    return fig


def estimate_curves_figure(table, x: str, colour: str, facet: str | None = None, title: str = "", x_title: str = "",
                           y_title: str = "", log_x: bool = False, chance: float | None = None,
                           height: int = 360) -> go.Figure:
    """Lines of a tidy estimate table against `x`, a shaded 95 % CI band each; panels by `facet`."""
    fig, parts = _faceted(table, facet)
    for col, part in parts:
        for i, (name, rows) in enumerate(part.groupby(colour, sort=False)):
            rows = rows.sort_values(x)
            line = _predictor_colour(str(name), i)
            band = "rgba({},{},{},0.18)".format(*(int(line[j:j + 2], 16) for j in (1, 3, 5)))
            fig.add_trace(go.Scatter(x=np.concatenate([rows[x], rows[x][::-1]]),
                                     y=np.concatenate([rows["ci_high"], rows["ci_low"][::-1]]), mode="lines",
                                     fill="toself", fillcolor=band, line=dict(width=0), hoverinfo="skip",
                                     showlegend=False, legendgroup=str(name)), row=1, col=col)
            fig.add_trace(go.Scatter(x=rows[x], y=rows["value"], mode="lines+markers", name=str(name),
                                     legendgroup=str(name), showlegend=col == 1, line=dict(color=line),
                                     hovertemplate=f"{name}, {x} " + "%{x}: %{y:.3f}<extra></extra>"), row=1, col=col)
        if chance is not None:
            fig.add_hline(y=chance, line_dash="dash", line_color="#555555", row=1, col=col)
        fig.update_xaxes(title_text=x_title, type="log" if log_x else None, row=1, col=col)
    fig.update_yaxes(title_text=y_title, row=1, col=1)
    fig.update_annotations(font_size=12)
    fig.update_layout(title=title, height=height, margin=dict(l=10, r=10, t=60, b=40))
    return fig
