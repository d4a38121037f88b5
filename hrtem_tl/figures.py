"""Figures: tidy tables from the results, Altair charts with in-page pickers, static PNG copies.

Charts carry their per-model rows and compute the reduction in the page (Vega-Lite transforms), so the freezing
checkboxes and the reduction picker work in the static book with no kernel. ``embed_html`` renders a chart for
the book against a vendored Vega bundle (no CDN); ``explore`` wraps a figure function in ipywidgets for a kernel.
"""

from __future__ import annotations

import base64
import io
import json
import uuid
from pathlib import Path

import altair as alt
import numpy as np
import pandas as pd

from . import datasets as ds
from .model import FREEZE_OPTIONS
from .presets import get_preset

REDUCTIONS = ("median", "mean", "min", "max")
REFERENCE = Path(__file__).parent / "reference"
CITATION = ("Rangel DaCosta, Oill, Scott, Elemental Microscopy EM000010 (2025), doi 10.69761/kjte5358, "
            "CC-BY-4.0; values from the companion repository msa-em/hrtem-transfer-learning")


# ---------------------------------------------------------------- tables

def domain_label(series: str, domain: str) -> str:
    """Reader-facing label: defocus in nm, dose in e-/Å², structure names as they are."""
    if series == "defocus":
        return f"{float(domain) / 10:g}"
    return domain


def axis_title(series: str) -> str:
    return {"defocus": "defocus (nm)", "dose": "dose (e⁻/Å²)", "structure": "lattice"}[series]


def model_table(df: pd.DataFrame, series: str, preset: str, domains=None) -> pd.DataFrame:
    """One row per model of the main setting: source, target, freeze, seed, P, T.

    Off-diagonal cells are transfer models (main learning rates, main transfer size); a diagonal cell has no
    transfer (as in the study): its T repeats P, listed once per freezing option so that the pickers apply.
    """
    pr = get_preset(preset)
    lr_pre, lr_tr = pr.main_lr
    tr = df[(df.kind == "transfer") & np.isclose(df.lr_pretrain, lr_pre) & np.isclose(df.lr_transfer, lr_tr)
            & (df.transfer_size == pr.transfer_size)]
    out = [tr[["source", "target", "freeze", "seed", "P", "T"]]]
    pre = df[(df.kind == "pretrain") & np.isclose(df.lr_pretrain, lr_pre)]
    for _, row in pre.iterrows():
        p = json.loads(row.P_all)[row.source]
        out.append(pd.DataFrame({"source": row.source, "target": row.source, "freeze": list(FREEZE_OPTIONS),
                                 "seed": row.seed, "P": p, "T": p}))
    table = pd.concat(out, ignore_index=True)
    if domains is not None:
        table = table[table.source.isin(domains) & table.target.isin(domains)]
    return table.reset_index(drop=True)


def cell_table(models: pd.DataFrame, reduction: str = "median", freezes=FREEZE_OPTIONS) -> pd.DataFrame:
    """P and T per (source, target) cell, reduced over the chosen freezing options (Python twin of the page)."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction={reduction!r} is unknown; allowed: {', '.join(REDUCTIONS)}")
    sel = models[models.freeze.isin(freezes)]
    return sel.groupby(["source", "target"])[["P", "T"]].agg(reduction).reset_index()


def spread_across_sources(cells: pd.DataFrame, stage: str) -> float:
    """Median over targets of the standard deviation across pretraining domains (off-diagonal cells)."""
    off = cells[cells.source != cells.target]
    return float(off.groupby("target")[stage].std().median())


def rank_correlation(ours: pd.DataFrame, reference: pd.DataFrame, stage: str) -> float:
    """Spearman correlation between our cells and the published cells (matched on source, target)."""
    merged = ours.merge(reference, on=["source", "target"], suffixes=("", "_paper"))
    return float(merged[stage].rank().corr(merged[f"{stage}_paper"].rank()))


def load_reference(series: str, reduction: str = "median", freeze: str = "all") -> pd.DataFrame:
    """Published cell values (P, T) mapped onto our domain labels; see ``reference/README.md``."""
    files = {"dose": "dose_heatmaps_long.csv", "defocus": "defocus_heatmaps_long.csv",
             "structure": "structure_heatmaps_long.csv", "size": "size_heatmaps_long.csv"}
    ref = pd.read_csv(REFERENCE / files[series])
    if series == "dose":
        ref = ref[ref.variant == "corrected"]
    ref = ref[(ref.reduction == reduction) & (ref.freeze == freeze)].copy()
    for col in ("pretrain", "target"):
        ref[col] = ref[col].astype(str).map(_reference_domain)
    return ref.rename(columns={"pretrain": "source"})[["source", "target", "P", "T"]].reset_index(drop=True)


def _reference_domain(name: str) -> str:
    """``w_CdSe_small`` -> ``CdSe_small``; numbers stay as they are (defocus in Å, dose in e-/Å²)."""
    if "_" in name:
        return name.split("_", 1)[1]
    return str(int(float(name)))


# ---------------------------------------------------------------- pickers

def freeze_params() -> list:
    return [alt.param(name=f"show_{f}", value=True, bind=alt.binding_checkbox(name=f"freeze {f} "))
            for f in FREEZE_OPTIONS]


def reduction_param():
    return alt.param(name="reduction", value="median",
                     bind=alt.binding_radio(options=list(REDUCTIONS), name="reduction "))


FREEZE_FILTER = " || ".join(f"(datum.freeze == '{f}' && show_{f})" for f in FREEZE_OPTIONS)


def _records(df: pd.DataFrame) -> list[dict]:
    return json.loads(df.to_json(orient="records", double_precision=5))


# ---------------------------------------------------------------- charts

def pt_heatmaps(models: pd.DataFrame, series: str, order, title: str, cell: int = 26) -> alt.FacetChart:
    """P and T heatmaps side by side on one colour scale, with freezing checkboxes and a reduction picker."""
    data = models.assign(source=models.source.map(lambda d: domain_label(series, d)),
                         target=models.target.map(lambda d: domain_label(series, d)))
    labels = [domain_label(series, d) for d in order]
    base = (alt.Chart(alt.Data(values=_records(data)))
            .transform_filter(FREEZE_FILTER)
            .transform_fold(["P", "T"], as_=["stage", "loss"])
            .transform_aggregate(median="median(loss)", mean="mean(loss)", min="min(loss)", max="max(loss)",
                                 models="count()", groupby=["source", "target", "stage"])
            .transform_calculate(value="datum[reduction]"))
    heat = base.mark_rect().encode(
        x=alt.X("target:O", sort=labels, title=f"target {axis_title(series)}"),
        y=alt.Y("source:O", sort=labels, title=f"pretraining {axis_title(series)}"),
        color=alt.Color("value:Q", scale=alt.Scale(type="log", scheme="viridis", reverse=True),
                        title="loss, nats (log)"),
        tooltip=["source:O", "target:O", "stage:N", alt.Tooltip("value:Q", format=".4f"), "models:Q"])
    stage_names = {"P": "P: after pretraining", "T": "T: after transfer learning"}
    return (heat.properties(width=cell * len(labels), height=cell * len(labels))
            .facet(column=alt.Column("stage:N", title=None,
                                     header=alt.Header(labelExpr=f"{json.dumps(stage_names)}[datum.value]")))
            .add_params(*freeze_params(), reduction_param())
            .properties(title=title))


def reference_heatmaps(ref: pd.DataFrame, series: str, order, cell: int = 22) -> alt.FacetChart:
    """The published P and T (median over all freezing options) on their own colour scale."""
    data = ref.assign(source=ref.source.map(lambda d: domain_label(series, d)),
                      target=ref.target.map(lambda d: domain_label(series, d)))
    labels = [domain_label(series, d) for d in order]
    long = data.melt(id_vars=["source", "target"], value_vars=["P", "T"], var_name="stage", value_name="loss")
    return (alt.Chart(alt.Data(values=_records(long))).mark_rect().encode(
        x=alt.X("target:O", sort=labels, title=f"target {axis_title(series)}"),
        y=alt.Y("source:O", sort=labels, title=f"pretraining {axis_title(series)}"),
        color=alt.Color("loss:Q", scale=alt.Scale(scheme="greys", zero=False), title="published loss"),
        tooltip=["source:O", "target:O", "stage:N", alt.Tooltip("loss:Q", format=".4f")])
        .properties(width=cell * len(labels), height=cell * len(labels))
        .facet(column=alt.Column("stage:N", title=None))
        .properties(title=alt.TitleParams("Published (median over freezing options)", subtitle=CITATION)))


def distribution_chart(rows: pd.DataFrame, x: str, x_title: str, column: str | None = None,
                       y: str = "T", y_title: str = "T: loss after transfer (nats)", title: str = "") -> alt.Chart:
    """Box plots of per-model losses, coloured by freezing option, with freezing checkboxes."""
    enc = dict(x=alt.X(f"{x}:O", title=x_title), y=alt.Y(f"{y}:Q", title=y_title, scale=alt.Scale(zero=False)),
               color=alt.Color("freeze:N", scale=alt.Scale(domain=list(FREEZE_OPTIONS))),
               xOffset=alt.XOffset("freeze:N", scale=alt.Scale(domain=list(FREEZE_OPTIONS))))
    chart = (alt.Chart(alt.Data(values=_records(rows))).transform_filter(FREEZE_FILTER)
             .mark_boxplot(extent="min-max", size=8).encode(**enc).properties(width=220, height=200))
    if column:
        chart = chart.facet(column=alt.Column(f"{column}:N"))
    return chart.add_params(*freeze_params()).properties(title=title)


def reduced_bars(rows: pd.DataFrame, x: str, x_title: str, y: str, y_title: str, color: str = "freeze",
                 title: str = "", sort=None) -> alt.Chart:
    """Bars of a per-model quantity reduced in the page (picker), with freezing checkboxes."""
    base = (alt.Chart(alt.Data(values=_records(rows))).transform_filter(FREEZE_FILTER)
            .transform_aggregate(median=f"median({y})", mean=f"mean({y})", min=f"min({y})", max=f"max({y})",
                                 groupby=[x, color])
            .transform_calculate(value="datum[reduction]"))
    return (base.mark_bar().encode(
        x=alt.X(f"{x}:N", title=x_title, sort=sort), y=alt.Y("value:Q", title=y_title),
        color=alt.Color(f"{color}:N"), xOffset=alt.XOffset(f"{color}:N"),
        tooltip=[f"{x}:N", f"{color}:N", alt.Tooltip("value:Q", format=".4g")])
        .properties(width=300, height=200, title=title).add_params(*freeze_params(), reduction_param()))


# ---------------------------------------------------------------- example images

def _png_data_url(array: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _to_gray(image: np.ndarray, pixel_size: float, bar_nm: float = 2.0) -> np.ndarray:
    """8-bit display of an image ([x, y] indexed, as abTEM) with a white scale bar of ``bar_nm`` nm."""
    img = np.asarray(image, dtype=np.float64).T  # rows = y
    lo, hi = np.percentile(img, [1, 99])
    out = (np.clip((img - lo) / max(hi - lo, 1e-9), 0, 1) * 255).astype(np.uint8)
    n = int(round(bar_nm * 10 / pixel_size))
    h = out.shape[0]
    out[h - 8:h - 5, 6:6 + n] = 255
    return out


def example_table(series_domains: dict, preset: str, cache=None, index: int = 0) -> pd.DataFrame:
    """One example (image and mask as PNG data URLs) per (series, domain) from the validation splits."""
    rows = []
    for series, domains in series_domains.items():
        for domain in domains:
            d = ds.load_dataset(series, domain, "val", preset, cache)
            px = d.meta["pixel_size"]
            rows.append({"dataset": f"{series}: {domain_label(series, domain)}"
                         + (" nm" if series == "defocus" else " e⁻/Å²" if series == "dose" else ""),
                         "series": series, "image": _png_data_url(_to_gray(d.images[index], px)),
                         "mask": _png_data_url(_to_gray(d.masks[index].astype(float), px)),
                         "defocus_nm": round(d.meta["defocus"][index] / 10, 2), "dose": d.meta["dose"],
                         "pixel_size": px})
    return pd.DataFrame(rows)


def example_viewer(examples: pd.DataFrame, size: int = 260) -> alt.Chart:
    """Image and mask of the dataset picked in a drop-down (works in the static page)."""
    pick = alt.param(name="dataset", value=examples.dataset.iloc[0],
                     bind=alt.binding_select(options=list(examples.dataset), name="dataset "))
    base = alt.Chart(alt.Data(values=_records(examples))).transform_filter("datum.dataset == dataset")
    panels = []
    for field, label in (("image", "image (counts; bar = 2 nm)"), ("mask", "label")):
        panels.append(base.mark_image(width=size, height=size).encode(
            x=alt.value(size / 2), y=alt.value(size / 2), url=f"{field}:N")
            .properties(width=size, height=size, title=label))
    return alt.hconcat(*panels).add_params(pick)


# ---------------------------------------------------------------- output

def glue_value(name: str, value) -> None:
    """Glue a computed number or word for the prose (myst-nb), as a plain Python value."""
    from myst_nb import glue

    glue(name, value.item() if isinstance(value, np.generic) else value, display=False)


def embed_html(chart: alt.TopLevelMixin, name: str | None = None) -> str:
    """HTML that draws ``chart`` with the page's vendored Vega bundle and registers its view for tests.

    The bundle is an ES module (deferred), so drawing waits for DOMContentLoaded when it has not run yet.
    """
    div = name or f"vis-{uuid.uuid4().hex[:8]}"
    spec = json.dumps(chart.to_dict())
    return (f'<div id="{div}" class="hrtem-chart"></div><script>(function(){{'
            f'var spec={spec};'
            f'function draw(){{vegaEmbed("#{div}", spec, {{actions: false, renderer: "svg"}}).then(function(r){{'
            f'window.hrtemViews = window.hrtemViews || {{}}; window.hrtemViews["{div}"] = r.view;}})'
            f'.catch(function(e){{console.error(e);}});}}'
            f'if (window.vegaEmbed) {{draw();}} else {{document.addEventListener("DOMContentLoaded", draw);}}'
            f'}})();</script>')


class BookChart:
    """Displays as the Vega-Lite mimetype in a kernel and as offline HTML in the built book."""

    def __init__(self, chart, name: str):
        self.chart, self.name = chart, name

    def _repr_mimebundle_(self, include=None, exclude=None):
        return {"text/html": embed_html(self.chart, self.name),
                "application/vnd.vegalite.v5+json": self.chart.to_dict()}


def show(chart, name: str, static_dir: str | Path | None = None) -> BookChart:
    """Chart for display; with ``static_dir`` also writes ``<name>.png`` there (vl-convert, for print/README)."""
    if static_dir:
        import vl_convert as vlc

        path = Path(static_dir)
        path.mkdir(parents=True, exist_ok=True)
        (path / f"{name}.png").write_bytes(vlc.vegalite_to_png(chart.to_dict(), scale=2))
    return BookChart(chart, name)


def explore(figure, **choices):
    """ipywidgets controls over a figure function in a live kernel: ``explore(fig, freeze=[...])``."""
    from ipywidgets import interact

    return interact(figure, **choices)


def write_vega_bundle(path: str | Path) -> Path:
    """Vega, Vega-Lite and vega-embed in one script that sets globals (no CDN)."""
    import vl_convert as vlc

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(vlc.javascript_bundle())
    return path
