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
from .claims import CITATION, CONFIDENCE, interval_text, verdict_text
from .model import FREEZE_OPTIONS
from .study import PRETRAINED, REDUCTIONS

# ---------------------------------------------------------------- labels

def domain_label(series: str, domain: str) -> str:
    """Reader-facing label: defocus in nm, dose in e-/Å², structure names as they are."""
    if series == "defocus":
        return f"{float(domain) / 10:g}"
    return domain


def device_name(device: str) -> str:
    """The device a chapter's models train on: ``auto`` resolved to cpu or cuda."""
    from .train import pick_device

    return pick_device(device).type


def axis_title(series: str) -> str:
    return {"defocus": "defocus (nm)", "dose": "dose (e⁻/Å²)", "structure": "lattice"}[series]


# ---------------------------------------------------------------- pickers

def freeze_params() -> list:
    return [alt.param(name=f"show_{f}", value=True, bind=alt.binding_checkbox(name=f"freeze {f} "))
            for f in FREEZE_OPTIONS]


def reduction_param():
    return alt.param(name="reduction", value="median",
                     bind=alt.binding_radio(options=list(REDUCTIONS), name="reduction "))


def reduced(chart, field: str, groupby: list, **more):
    """``chart`` aggregated per ``groupby`` by every reduction of ``field`` (and ``more`` aggregates), with
    ``value`` the one the reduction picker names (computed in the page)."""
    ops = {name: f"{name}({field})" for name in REDUCTIONS}
    return chart.transform_aggregate(**ops, **more, groupby=groupby).transform_calculate(value="datum[reduction]")


FREEZE_FILTER = " || ".join(f"(datum.freeze == '{f}' && show_{f})" for f in FREEZE_OPTIONS)


def _records(df: pd.DataFrame) -> list[dict]:
    return json.loads(df.to_json(orient="records", double_precision=5))


# ---------------------------------------------------------------- charts

SCALES = {"study's scale": "_study", "cross-entropy": ""}


def scale_param():
    """Loss scale picker: the study's published scale (``train.study_scale_loss``; the claims use it, so it is
    shown first) or our cross-entropy (nats)."""
    return alt.param(name="scale", value="study's scale",
                     bind=alt.binding_radio(options=list(SCALES), name="loss "))


PASS_ANY_FREEZE = f"datum.freeze == '{PRETRAINED}' || " + FREEZE_FILTER


def pt_heatmaps(models: pd.DataFrame, series: str, order, title: str, cell: int = 26) -> alt.FacetChart:
    """P and T heatmaps side by side on one colour scale, with freezing checkboxes and reduction and scale pickers.

    ``models`` is ``study.model_table``: P rows pool every pretraining of the source and pass every freezing
    checkbox (P does not depend on it); T rows are the transfers of the checked options.
    """
    data = models.assign(source=models.source.map(lambda d: domain_label(series, d)),
                         target=models.target.map(lambda d: domain_label(series, d)))
    labels = [domain_label(series, d) for d in order]
    base = reduced(alt.Chart(alt.Data(values=_records(data))).transform_filter(PASS_ANY_FREEZE)
                   .transform_calculate(value_loss="scale == 'cross-entropy' ? datum.loss : datum.loss_study"),
                   "value_loss", ["source", "target", "stage"], models="count()")
    heat = base.mark_rect().encode(
        x=alt.X("target:O", sort=labels, title=f"target {axis_title(series)}"),
        y=alt.Y("source:O", sort=labels, title=f"pretraining {axis_title(series)}"),
        color=alt.Color("value:Q", scale=alt.Scale(type="log", scheme="viridis", reverse=True),
                        title="loss (log)"),
        tooltip=["source:O", "target:O", "stage:N", alt.Tooltip("value:Q", format=".4f"), "models:Q"])
    stage_names = {"P": "P: after pretraining (every replicate)", "T": "T: after transfer learning"}
    return (heat.properties(width=cell * len(labels), height=cell * len(labels))
            .facet(column=alt.Column("stage:N", title=None,
                                     header=alt.Header(labelExpr=f"{json.dumps(stage_names)}[datum.value]")))
            .add_params(*freeze_params(), reduction_param(), scale_param())
            .properties(title=title))


VERDICT_COLOURS = {"holds": "#1a9850", "weaker": "#fdae61", "undecided": "#999999", "contradicts": "#d73027",
                   "not learned": "#7570b3", "no verdict (test scale)": "#bbbbbb", "no data": "#dddddd",
                   "not applicable": "#eeeeee",
                   "undecided (one pretraining per source: no interval)": "#cccccc"}


def forest_plot(card: pd.DataFrame, width: int = 260) -> alt.Chart:
    """Every claim a row: this run's statistic (dot, coloured by verdict) with its bootstrap interval (line), the
    study's value (black diamond) and the bar the verdict uses (grey ticks: half the study's value, a share, or
    the equivalence band ±log10 1.25); statistics on the study's scale."""
    def finite(x):
        return None if x is None or not np.isfinite(x) else float(x)

    rows = []
    for _, r in card.iterrows():
        label = f"{r.series}: {r.claim}"
        label = label if len(label) <= 60 else label[:58] + "…"
        bars = [-r.bar, r.bar] if r.kind == "equivalence" else [r.bar]
        rows.append({"claim": label, "figure": r.figure, "verdict": r.verdict, "run": finite(r["this run"]),
                     "low": finite(r.low), "high": finite(r.high), "study": finite(r.study),
                     "bars": [finite(b) for b in bars]})
    data = pd.DataFrame(rows)
    order = list(data.claim)
    y = alt.Y("claim:N", sort=order, title=None, axis=alt.Axis(labelLimit=330))
    x_scale = alt.Scale(domain=[-1.0, 1.4], clamp=True)  # statistics are signs, rank correlations, log ratios
    base = alt.Chart(alt.Data(values=_records(data)))
    x_title = f"statistic (> 0 supports the claim; {int(CONFIDENCE * 100)} % bootstrap interval)"
    zero = alt.Chart(alt.Data(values=[{"x": 0}])).mark_rule(color="#444", strokeDash=[2, 2]).encode(
        x=alt.X("x:Q", scale=x_scale))
    ticks = (base.transform_flatten(["bars"]).transform_filter("isValid(datum.bars)")
             .mark_tick(color="#888", thickness=2, size=14).encode(x=alt.X("bars:Q", scale=x_scale), y=y))
    intervals = base.transform_filter("isValid(datum.low)").mark_rule(strokeWidth=2).encode(
        x=alt.X("low:Q", title=x_title, scale=x_scale), x2="high:Q", y=y,
        color=alt.Color("verdict:N", scale=alt.Scale(domain=list(VERDICT_COLOURS),
                                                      range=list(VERDICT_COLOURS.values())),
                        legend=alt.Legend(orient="bottom", columns=2, labelLimit=320)))
    runs = base.transform_filter("isValid(datum.run)").mark_circle(size=70, opacity=1).encode(
        x=alt.X("run:Q", scale=x_scale), y=y, color="verdict:N",
        tooltip=["claim:N", "figure:N", "verdict:N", alt.Tooltip("run:Q", format="+.2f"),
                 alt.Tooltip("low:Q", format="+.2f"), alt.Tooltip("high:Q", format="+.2f"),
                 alt.Tooltip("study:Q", format="+.2f")])
    study = base.transform_filter("isValid(datum.study)").mark_point(
        shape="diamond", color="black", size=60, filled=True).encode(x=alt.X("study:Q", scale=x_scale), y=y)
    return (alt.layer(zero, ticks, intervals, runs, study)
            .properties(width=width, height=18 * len(order),
                        title=alt.TitleParams("The study's claims, this run against the study",
                                              subtitle="dot and line: this run and its interval; diamond: the "
                                                       "study; grey ticks: the bar of the verdict")))


def reference_heatmaps(ref: pd.DataFrame, series: str, order, cell: int = 22) -> alt.FacetChart:
    """The published P and T (median over all freezing options) on their own colour scale."""
    if "freeze" in ref:
        ref = ref[ref.freeze == "all"]
    ref = ref[ref.source.isin(order) & ref.target.isin(order)]
    data = ref.assign(source=ref.source.map(lambda d: domain_label(series, d)),
                      target=ref.target.map(lambda d: domain_label(series, d)))
    labels = [domain_label(series, d) for d in order]
    long = data.melt(id_vars=["source", "target"], value_vars=["P", "T"], var_name="stage", value_name="loss")
    return (alt.Chart(alt.Data(values=_records(long))).mark_rect().encode(
        x=alt.X("target:O", sort=labels, title=f"target {axis_title(series)}"),
        y=alt.Y("source:O", sort=labels, title=f"pretraining {axis_title(series)}"),
        color=alt.Color("loss:Q", scale=alt.Scale(type="log", scheme="greys"), title="published loss (log)"),
        tooltip=["source:O", "target:O", "stage:N", alt.Tooltip("loss:Q", format=".4f")])
        .properties(width=cell * len(labels), height=cell * len(labels))
        .facet(column=alt.Column("stage:N", title=None))
        .properties(title=alt.TitleParams("Published (median over freezing options)", subtitle=CITATION)))


class Note:
    """A sentence in place of a figure that does not apply to this run."""

    def __init__(self, text: str):
        self.text = text

    def _repr_markdown_(self) -> str:
        return f"*{self.text}*"


def published_beside(ref: pd.DataFrame, series: str, order, name: str, cell: int = 22):
    """The published heatmaps for the run's domains that the study has (:func:`reference_heatmaps`), or one
    sentence saying that it published none of them (a run on other doses, defoci or lattices)."""
    matched = [d for d in order if d in set(ref.source) and d in set(ref.target)]
    if len(matched) < 2:
        which = f"cells for only one of this run's domains ({matched[0]})" if matched else \
            f"no {series} cells for this run's domains ({', '.join(map(str, order))})"
        return Note(f"The study published {which}: there is no heatmap to set beside this run's, and the rank "
                    "correlation below does not apply.")
    return show(reference_heatmaps(ref, series, matched, cell=cell), name)


def rank_text(value: float) -> str:
    """A Spearman rank correlation for the prose: two decimals, or why there is none."""
    return f"{value:.2f}" if np.isfinite(value) else "not applicable (no published cells for this run's domains)"


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
    base = reduced(alt.Chart(alt.Data(values=_records(rows))).transform_filter(FREEZE_FILTER), y, [x, color])
    return (base.mark_bar().encode(
        x=alt.X(f"{x}:N", title=x_title, sort=sort), y=alt.Y("value:Q", title=y_title),
        color=alt.Color(f"{color}:N"), xOffset=alt.XOffset(f"{color}:N"),
        tooltip=[f"{x}:N", f"{color}:N", alt.Tooltip("value:Q", format=".4g")])
        .properties(width=300, height=200, title=title).add_params(*freeze_params(), reduction_param()))


def distance_chart(ours: pd.DataFrame, study: pd.DataFrame, series: str, title: str) -> alt.Chart:
    """Off-diagonal cells against the optical distance of their domains, this run's and the study's, with a P / T
    picker and a least-squares line per run; y is log10 of the loss over its target column's median (from
    ``claims.distance_table``), so that both runs and every target share one axis."""
    rows = pd.concat([ours.assign(run="this run"), study.assign(run="study (published)")], ignore_index=True)
    rows = rows.assign(source=rows.source.map(lambda d: domain_label(series, d)),
                       target=rows.target.map(lambda d: domain_label(series, d)))
    stage = alt.param(name="stage", value="P", bind=alt.binding_radio(options=["P", "T"], name="stage "))
    x_title = ("contrast-transfer distance (0: same, 1: unrelated, 2: reversed)" if series == "defocus"
               else "|ln(dose ratio)|")
    base = alt.Chart(alt.Data(values=_records(rows))).transform_filter("datum.stage == stage")
    colour = alt.Color("run:N", scale=alt.Scale(domain=["this run", "study (published)"],
                                                range=["#1f77b4", "#444444"]))
    points = base.mark_circle(size=45, opacity=0.7).encode(
        x=alt.X("distance:Q", title=x_title), y=alt.Y("relative:Q", title="log10(loss / target column median)"),
        color=colour, tooltip=["run:N", "source:N", "target:N", alt.Tooltip("loss:Q", format=".4f"),
                               alt.Tooltip("distance:Q", format=".2f")])
    lines = base.transform_regression("distance", "relative", groupby=["run"]).mark_line().encode(
        x="distance:Q", y="relative:Q", color=colour)
    return alt.layer(points, lines).add_params(stage).properties(width=420, height=260, title=title)


# ---------------------------------------------------------------- the hands-on chapter

LESSON_COLOURS = {"from scratch": "#000000", "transfer: none frozen": "#1f77b4",
                  "transfer: encoder frozen": "#ff7f0e", "transfer: decoder frozen": "#2ca02c",
                  "pretrained only (no target image)": "#888888", "pretraining (source images)": "#888888"}


def _lesson_line(method: str, freeze: str) -> str:
    if method == "transfer":
        return f"transfer: {freeze} frozen"
    return {"pretrained only": "pretrained only (no target image)",
            "pretraining": "pretraining (source images)"}.get(method, method)


def learning_curve_chart(models: pd.DataFrame, title: str) -> alt.LayerChart:
    """Loss on the target against the number of labelled target images (log axis): each model a dot, each method
    (from scratch; transfer per freezing option) a line through its reduced value per size; the pretrained-only
    models (no target image) a dashed rule. Freezing checkboxes, reduction and loss-scale pickers; from
    ``lesson.model_table``."""
    data = models.assign(line=[_lesson_line(m, f) for m, f in zip(models.method, models.freeze)])
    colour = alt.Color("line:N", title=None, scale=alt.Scale(domain=list(LESSON_COLOURS)[:5],
                                                             range=list(LESSON_COLOURS.values())[:5]),
                       legend=alt.Legend(orient="right"))
    y = alt.Y("value:Q", title="loss on the target (log)", scale=alt.Scale(type="log"))
    base = (alt.Chart(alt.Data(values=_records(data))).transform_filter(PASS_ANY_FREEZE)
            .transform_calculate(value="scale == 'cross-entropy' ? datum.loss : datum.loss_study"))
    trained = base.transform_filter("datum.size > 0")
    x = alt.X("size:Q", title="labelled target images", scale=alt.Scale(type="log", nice=False),
              axis=alt.Axis(values=sorted(int(n) for n in data["size"].unique() if n > 0), format="d"))
    dots = trained.mark_circle(size=28, opacity=0.45).encode(
        x=x, y=y, color=colour, tooltip=["line:N", "size:Q", "replicate:Q", alt.Tooltip("value:Q", format=".4f")])
    lines = reduced(trained, "value", ["line", "size"]).mark_line(point=True, strokeWidth=2).encode(
        x=x, y=y, color=colour, tooltip=["line:N", "size:Q", alt.Tooltip("value:Q", format=".4f")])
    rule = (reduced(base.transform_filter("datum.size == 0"), "value", ["line"])
            .mark_rule(strokeDash=[5, 4], strokeWidth=2).encode(y=y, color=colour))
    return (alt.layer(rule, dots, lines).add_params(*freeze_params(), reduction_param(), scale_param())
            .properties(width=380, height=260, title=title))


def epoch_curves_chart(curves: pd.DataFrame, title: str) -> alt.FacetChart:
    """Training and validation cross-entropy per epoch of every model of the target-set size picked in a
    drop-down (one line per model; the pretrainings beside them), with freezing checkboxes; from
    ``lesson.curve_table``."""
    data = curves.assign(line=[_lesson_line(m, f) for m, f in zip(curves.method, curves.freeze)])
    sizes = sorted(int(n) for n in data["size"].unique() if n > 0)
    pick = alt.param(name="images", value=sizes[0],
                     bind=alt.binding_select(options=sizes, name="labelled target images "))
    shown = {k: v for k, v in LESSON_COLOURS.items() if not k.startswith("pretrained only")}
    colour = alt.Color("line:N", title=None, scale=alt.Scale(domain=list(shown), range=list(shown.values())),
                       legend=alt.Legend(orient="bottom", columns=3, labelLimit=300))
    lines = (alt.Chart(alt.Data(values=_records(data)))
             .transform_filter(f"(datum.size == images || datum.size == 0) && ({PASS_ANY_FREEZE})")
             .mark_line(opacity=0.8, strokeWidth=1.5).encode(
                 x=alt.X("epoch:O", title="epoch"),
                 y=alt.Y("loss:Q", title="cross-entropy (nats, log)", scale=alt.Scale(type="log")),
                 color=colour, detail="model:N",
                 strokeDash=alt.condition("datum.method == 'pretraining'", alt.value([4, 3]), alt.value([1, 0])),
                 tooltip=["model:N", "epoch:O", alt.Tooltip("loss:Q", format=".4f")])
             .properties(width=260, height=220))
    split_names = {"train": "training images (mean over the epoch's minibatches)",
                   "validation": "validation images (after the epoch)"}
    return (lines.facet(column=alt.Column("split:N", title=None, sort=["train", "validation"],
                                          header=alt.Header(labelExpr=f"{json.dumps(split_names)}[datum.value]")))
            .add_params(pick, *freeze_params()).properties(title=title))


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


def ablation_chart(table: pd.DataFrame, cell: int = 60) -> alt.Chart:
    """What a small study keeps: each claim a row, each arm a column; the cell's colour is the claim's verdict at
    that arm, its text the statistic (the tooltip adds the interval, the study's value, the arm's cost, learning
    and specialisation). A claim an arm cannot measure without transfers is left blank there (the arms but the
    page's own preset train pretrainings only)."""
    rows = table[table.verdict != "needs transfers"].copy()
    rows["label"] = [f"{f}: {c}" if len(c) <= 58 else f"{f}: {c[:56]}…" for f, c in zip(rows.figure, rows.claim)]
    rows["text"] = [f"{s:+.2f}" if np.isfinite(s) else "–" for s in rows.statistic]
    rows["interval"] = [f"[{lo:+.2f}, {hi:+.2f}]" if np.isfinite(lo) else "no interval"
                        for lo, hi in zip(rows.low, rows.high)]
    rows["cost"] = [f"{c / 60:.1f} core-min, {m} pretrainings" for c, m in zip(rows.core_seconds, rows.models)]
    rows["specialises"] = [f"median {a:.2f}, min {b:.2f} (study 1.81, 1.04)"
                           for a, b in zip(rows.specialisation, rows.specialisation_min)]
    keep = ["arm", "label", "verdict", "text", "interval", "study", "cost", "learned", "specialises", "what"]
    data = alt.Data(values=_records(rows[keep]))
    arms = list(dict.fromkeys(rows.arm))
    x = alt.X("arm:N", sort=arms, title=None, axis=alt.Axis(orient="top", labelAngle=-35, labelAlign="left",
                                                            labelLimit=180))
    y = alt.Y("label:N", sort=list(dict.fromkeys(rows.label)), title=None, axis=alt.Axis(labelLimit=300))
    present = [v for v in VERDICT_COLOURS if v in set(rows.verdict)]
    base = alt.Chart(data).encode(x=x, y=y)
    tiles = base.mark_rect(stroke="white").encode(
        color=alt.Color("verdict:N", scale=alt.Scale(domain=present, range=[VERDICT_COLOURS[v] for v in present]),
                        legend=alt.Legend(orient="bottom", direction="horizontal", labelLimit=320)),
        tooltip=["arm:N", "what:N", "label:N", "verdict:N", alt.Tooltip("text:N", title="statistic"), "interval:N",
                 alt.Tooltip("study:Q", format="+.2f"), "cost:N", "learned:N", "specialises:N"])
    text = base.mark_text(fontSize=11, color="black").encode(text="text:N")
    return alt.layer(tiles, text).properties(
        width=cell * len(arms), height=24 * len(set(rows.label)),
        title=alt.TitleParams("Each claim's verdict at each shrinking", anchor="start",
                              subtitle="text: the statistic; hover: its interval, the arm's cost (arms other "
                                       "than the page's own preset: pretrainings only)"))


def fit_specialisation_chart(points: pd.DataFrame) -> alt.Chart:
    """Per target lattice and run (``run``: this run, the study): how well its own models fit it (x, in-domain over
    constant-prediction loss) against how much the other lattices' models lose on it (y, the median of
    P(s -> t) / P(t -> t)), both on log axes; the rule at 1: other sources as good as its own."""
    rows = points.assign(fit=points.own_fit.round(3), ratio=points.specialisation.round(2))
    data = alt.Data(values=_records(rows[["run", "target", "fit", "ratio"]]))
    runs = list(dict.fromkeys(rows.run))

    def log_span(low, high):  # a log axis a little wider than [low, high]
        return [float(low / 1.3), float(high * 1.3)]

    x_span = log_span(rows.fit.min(), rows.fit.max())
    y_span = log_span(min(rows.ratio.min(), 1.0), max(rows.ratio.max(), 1.0))  # the rule at 1 in view
    dots = alt.Chart(data).mark_point(filled=True, size=70).encode(
        x=alt.X("fit:Q", scale=alt.Scale(type="log", domain=x_span, nice=False),
                title="own models' fit: in-domain / constant-prediction loss"),
        y=alt.Y("ratio:Q", scale=alt.Scale(type="log", domain=y_span, nice=False),
                title="median P(s→t) / P(t→t) over the other sources"),
        color=alt.Color("run:N", sort=runs, title=None, legend=alt.Legend(orient="bottom")),
        shape=alt.Shape("run:N", sort=runs, legend=None),
        tooltip=["run:N", "target:N", alt.Tooltip("fit:Q", format=".3f"), alt.Tooltip("ratio:Q", format=".2f")])
    labels = dots.mark_text(align="left", dx=6, dy=-6, fontSize=9).encode(text="target:N")
    one = alt.Chart(alt.Data(values=[{"y": 1.0}])).mark_rule(strokeDash=[4, 4], color="gray").encode(y="y:Q")
    return alt.layer(one, dots, labels).properties(
        width=420, height=300,
        title=alt.TitleParams("The better a lattice's own models fit it, the more they beat the others there",
                              anchor="start", subtitle="small particles, after pretraining; one point per target"))


def pixels_by_series(preset, series_names) -> str:
    """Each series' output pixel in words, e.g. "0.5 Å (defocus), 0.25 Å (dose, structure)"; one value when the
    series share it."""
    by_pixel: dict[float, list[str]] = {}
    for name in series_names:
        by_pixel.setdefault(preset.for_series(name).pixel_size, []).append(name)
    if len(by_pixel) == 1:
        return f"{next(iter(by_pixel))} Å"
    return ", ".join(f"{pixel} Å ({', '.join(names)})" for pixel, names in by_pixel.items())


# ---------------------------------------------------------------- output

def glue_value(name: str, value) -> None:
    """Glue a computed number or word for the prose (myst-nb), as a plain Python value."""
    from myst_nb import glue

    glue(name, value.item() if isinstance(value, np.generic) else value, display=False)


EMBED_OPTIONS = {"renderer": "svg", "downloadFileName": None,
                 "actions": {"export": True, "source": False, "compiled": False, "editor": False}}


def embed_html(chart: alt.TopLevelMixin, name: str | None = None) -> str:
    """HTML that draws ``chart`` with the page's vendored Vega bundle and registers its view for tests.

    The chart's menu exports PNG and SVG (drawn in the page, offline); no editor or source links. The bundle is a
    classic script in the page head; should it not have run yet, drawing waits for DOMContentLoaded.
    """
    div = name or f"vis-{uuid.uuid4().hex[:8]}"
    spec = json.dumps(chart.to_dict())
    options = json.dumps({**EMBED_OPTIONS, "downloadFileName": div})
    # a chart wider than the page's column scrolls inside it instead of being cut at the column's edge
    return (f'<div id="{div}" class="hrtem-chart" style="overflow-x:auto;max-width:100%"></div><script>(function(){{'
            f'var spec={spec};'
            f'function draw(){{vegaEmbed("#{div}", spec, {options}).then(function(r){{'
            f'window.hrtemViews = window.hrtemViews || {{}}; window.hrtemViews["{div}"] = r.view;}})'
            f'.catch(function(e){{console.error(e);}});}}'
            f'if (window.vegaEmbed) {{draw();}} else {{document.addEventListener("DOMContentLoaded", draw);}}'
            f'}})();</script>')


class Download:
    """A link that saves a table as CSV, from the page itself (a data: URL: works offline, from disk or http)."""

    def __init__(self, table: pd.DataFrame, filename: str, label: str):
        self.table, self.filename, self.label = table, filename, label

    def _repr_html_(self) -> str:
        data = base64.b64encode(self.table.to_csv(index=False).encode()).decode()
        return (f'<p><a class="hrtem-download" download="{self.filename}" '
                f'href="data:text/csv;charset=utf-8;base64,{data}">{self.label}</a> '
                f'({len(self.table)} rows, CSV)</p>')


class Table:
    """A table shown whole: every row and the full text of every cell, no index column."""

    def __init__(self, table: pd.DataFrame):
        self.table = table

    def _repr_html_(self) -> str:
        with pd.option_context("display.max_colwidth", None, "display.max_rows", None):
            return self.table.to_html(index=False, classes="hrtem-table", border=0)


class Scorecard:
    """A series' scorecard as a reader scans it: one row per claim with the figure, the study's finding, the
    study's number, this run's number with its interval, and the verdict (coloured); the statistic's definition,
    the bar and the cross-entropy twin fold under the claim (and show on hover)."""

    def __init__(self, card: pd.DataFrame):
        self.card = card

    def _repr_html_(self) -> str:
        from html import escape

        def num(x, sign=True):
            return "–" if not np.isfinite(x) else (f"{x:+.2f}" if sign else f"{x:.2f}")

        pct = int(CONFIDENCE * 100)
        several = self.card.series.nunique() > 1
        head = (("<th>series</th>" if several else "") + "<th>figure</th><th>claim (the study's finding)</th>"
                f"<th>study</th><th>this run [{pct} % interval]</th><th>verdict</th>")
        rows = []
        for _, r in self.card.iterrows():
            word = str(r.verdict)
            colour = VERDICT_COLOURS.get(word, "#dddddd")
            definition = escape(f"{r.statistic} Bar: {num(r.bar, False)}; in cross-entropy: "
                                f"{num(r['cross-entropy'])}.")
            rows.append(
                "<tr>" + (f"<td>{escape(r.series)}</td>" if several else "")
                + f'<td class="hrtem-nowrap">{escape(r.figure)}</td>'
                f'<td class="hrtem-claim" title="{definition}">{escape(r.claim)}'
                f"<details><summary>how it is measured</summary>{definition}</details></td>"
                f'<td class="hrtem-num">{num(r.study)}</td>'
                f'<td class="hrtem-num">{num(r["this run"])}<br>{escape(interval_text(r.low, r.high))}</td>'
                f'<td><span class="hrtem-verdict" style="border-left: 0.8em solid {colour}; padding-left: 0.4em">'
                f"{escape(verdict_text(r))}</span></td></tr>")
        style = ("<style>.hrtem-scorecard td{vertical-align:top;padding:0.25em 0.5em}"
                 ".hrtem-scorecard .hrtem-num,.hrtem-scorecard .hrtem-nowrap{white-space:nowrap}"
                 ".hrtem-scorecard details{font-size:0.85em;color:#555}"
                 ".hrtem-scorecard .hrtem-claim{min-width:12em}.hrtem-scorecard{width:100%}</style>")
        return (f'{style}<table class="hrtem-scorecard hrtem-table"><thead><tr>{head}</tr></thead>'
                f"<tbody>{''.join(rows)}</tbody></table>")


class RunParameters:
    """The parameters a chapter ran with, once and tidily (no paths)."""

    def __init__(self, **params):
        self.params = params

    def _repr_html_(self) -> str:
        items = " · ".join(f"{k} <code>{v}</code>" for k, v in self.params.items())
        return f'<p class="hrtem-run">This page was computed with {items}.</p>'

    def _repr_markdown_(self) -> str:
        return "This page was computed with " + " · ".join(f"{k} `{v}`" for k, v in self.params.items()) + "."


def run_parameters(preset, device) -> RunParameters:
    """The line at the top of a page: preset, device, seeds, and every scientific parameter that differs from
    the study's (``datasets.changed_parameters``), in its unit."""
    from .datasets import PARAMETERS, changed_parameters

    def one(v):
        return v if isinstance(v, str) else f"{v:g}"  # a lattice's name, or a number

    def text(name, value):
        unit = PARAMETERS[name][1]
        shown = ", ".join(one(v) for v in value) if isinstance(value, list) else one(value)
        return f"{shown} {unit}".strip()

    changed = {name: text(name, value) for name, value in changed_parameters(preset).items()}
    return RunParameters(preset=preset.name, device=device_name(device), seeds=",".join(map(str, preset.seeds)),
                         **changed)


def conditions_text(series) -> str:
    """A series' fixed imaging conditions for a figure title: "CdSe, defocus -10 nm", "CdSe, 400 e⁻/Å²"."""
    fixed = series.fixed
    parts = [fixed["lattice"]] if "lattice" in fixed else []  # the dose and defocus series' material
    if "defocus" in fixed:
        parts.append(f"defocus {fixed['defocus'] / 10:g} nm")
    if "dose" in fixed:
        parts.append(f"{fixed['dose']:g} e⁻/Å²")
    return ", ".join(parts)


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
    """Vega, Vega-Lite and vega-embed in one classic script that sets ``window.vegaEmbed`` (no CDN).

    vl-convert's bundle declares its names at the top level (written for ``type="module"``, which Chromium
    refuses to load from ``file://``): wrapped in a function, it loads as a classic script from disk and over
    http alike, and its names stay out of the page's global scope.
    """
    import vl_convert as vlc

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("(function () {\n" + vlc.javascript_bundle() + "\n})();\n")
    return path
