# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,-all
#     formats: ipynb,py:percent
#     notebook_metadata_filter: kernelspec,jupytext
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # What a small study keeps
#
# The study trained 14-million-parameter U-Nets for ten epochs on 512 whole images of 0.2 Å pixels. A laptop
# cannot, so every preset below `paper` shrinks something: the pixel, the crop a network sees at once, its width,
# its steps. Which of the study's conclusions about Fig 9.1 (dose) and Fig 9.2 (structure and size) survive which
# shrinking? This page scores the same pretrainings at several such scales ("arms") exactly as the book scores its
# own: each claim's statistic with its bootstrap interval and verdict, beside how well the models learned, how much
# they specialise to their own domain, and what the arm cost.
#
# ```{admonition} Before you start
# :class: tip
# **You will learn to** tell a conclusion of the study from an artefact of a small re-run, and to read what a
# re-run at another scale can and cannot decide.
#
# **You need** the {doc}`dose` and {doc}`structure` chapters.
#
# **Time to run** on this machine from an empty cache: {glue:text}`ablation_time_empty`. This page:
# {glue:text}`ablation_time_run`.
# ```

# %% tags=["parameters"]
preset = "cpu"  # smoke | class | cpu | cpu-fine | paper
cache = None  # cache folder (default: $HRTEM_TL_CACHE or ./.hrtem_cache)
device = "auto"  # auto | cpu | cuda
seeds = None  # training seeds, e.g. "0,1" (default: the preset's)
static_dir = None  # folder for PNG copies of the figures
live_widgets = False  # ipywidgets controls (needs a live kernel)
settings = None  # any of hrtem_tl/datasets.py PARAMETERS, a dict: the book passes its --set values here

# %% tags=["hide-input"]
import pandas as pd

from hrtem_tl import ablation, claims, datasets, figures, study
from hrtem_tl.book import ChapterClock
from hrtem_tl.presets import get_preset

pr = datasets.with_parameters(get_preset(preset, seeds), settings)
clock = ChapterClock("ablation", pr, cache)
table = ablation.page_table(pr, cache, device)
arms = list(dict.fromkeys(table.arm))
scored = table[table.verdict != "needs transfers"]
own = scored[scored.arm == pr.name]
first = own.groupby("series").first()
figures.glue_value("ablation_arms", len(arms))
figures.glue_value("ablation_other_arms", ", ".join(a for a in arms if a != pr.name) or "none yet")
figures.glue_value("ablation_claims", scored.key.nunique())
figures.glue_value("ablation_own_holds", int((own.verdict == "holds").sum()))
figures.glue_value("ablation_own_claims", len(own))
for name, row in first.iterrows():
    figures.glue_value(f"ablation_{name}_learned", row.learned)
    figures.glue_value(f"ablation_{name}_specialisation", row.specialisation)
    figures.glue_value(f"ablation_{name}_specialisation_min", row.specialisation_min)
    figures.glue_value(f"ablation_{name}_core_min", row.core_seconds / 60)
survivors = scored.groupby("key").verdict.apply(lambda v: int((v == "holds").sum()))
measured = scored.groupby("key").arm.nunique()
figures.glue_value("ablation_everywhere", int((survivors == measured).sum()))
figures.glue_value("ablation_nowhere", int((survivors == 0).sum()))
figures.run_parameters(pr, device)

# %% [markdown]
# ## The claims at each scale
#
# Each row is a claim of Fig 9.1 or Fig 9.2; each column an arm, this run's preset first, whose column is the
# {doc}`dose` and {doc}`structure` chapters' own scorecards (transfers included). The other arms train
# pretrainings only, so their claims about transfer are marked "needs transfers". The colour is the verdict the
# book would give, the text the statistic (hover for its interval, the
# study's value and the arm's cost). This page holds {glue:text}`ablation_arms` arms: the preset itself and
# {glue:text}`ablation_other_arms` (measured by `python -m hrtem_tl ablate`, cached like every model).
# At this preset {glue:text}`ablation_own_holds` of {glue:text}`ablation_own_claims` such claims hold;
# {glue:text}`ablation_everywhere` hold in every arm that measured them and {glue:text}`ablation_nowhere` in none.

# %% tags=["hide-input"]
figures.show(figures.ablation_chart(table), "ablation_claims", static_dir)

# %% [markdown]
# ## How much the models learn and specialise
#
# A claim about which source transfers best to a target needs models that beat each other on their own domains:
# in the study every lattice's own models beat every other lattice's on it (the ratio P(s -> t) / P(t -> t) over
# the off-diagonal small-particle cells has median 1.81 and minimum 1.04). At this preset the structure series
# learned {glue:text}`ablation_structure_learned` sources, with a median ratio of
# {glue:text}`ablation_structure_specialisation:.2f` (minimum {glue:text}`ablation_structure_specialisation_min:.2f`)
# for {glue:text}`ablation_structure_core_min:.1f` core-minutes of pretraining; the dose series learned
# {glue:text}`ablation_dose_learned` sources (median ratio {glue:text}`ablation_dose_specialisation:.2f`). The table
# gives every arm (what each one changes: hover over its column in the chart above).

# %% tags=["hide-input"]
figures.Table(table.groupby(["arm", "series"], sort=False).first().reset_index()[
    ["arm", "series", "models", "core_seconds", "learned", "worst_ratio", "in_domain", "specialisation",
     "specialisation_min"]].round(3).assign(core_seconds=lambda t: t.core_seconds.round().astype(int)).rename(columns={
        "core_seconds": "training (core-s)", "worst_ratio": "worst source / constant",
        "in_domain": "in-domain loss (study scale)", "specialisation": "P(s->t)/P(t->t) median",
        "specialisation_min": "minimum"}))

# %% [markdown]
# ## Why the structure models specialise less: how well they fit
#
# Where does the missing specialisation go? Lattice by lattice, in the study and here alike, the better a target's
# own models fit it, the more every other lattice's models lose on it. Each point below is one small-particle
# target: across the axis of its own models' fit, the rank correlation with the median P(s -> t) / P(t -> t) is
# {glue:text}`ablation_fit_rho_run:+.2f` {glue:text}`ablation_fit_rho_run_interval` in this run and
# {glue:text}`ablation_fit_rho_study:+.2f` {glue:text}`ablation_fit_rho_study_interval` in the study (90 %
# bootstrap intervals over the targets). This run's own models fit their lattices to a median
# {glue:text}`ablation_fit_run:.2f` of a constant prediction, the study's to {glue:text}`ablation_fit_study:.2f`;
# the further right a run's targets sit, the less its models tell the lattices apart. This run's best-fitted
# target, {glue:text}`ablation_fit_best_target` ({glue:text}`ablation_fit_best:.2f`), specialises at
# {glue:text}`ablation_fit_best_ratio:.2f` (the study's median over all targets 1.81). The symmetry and size claims
# ask which source does best on a target; they need the left of this chart, that is models trained further.

# %% tags=["hide-input"]
structure_ev = claims.evidence("structure", study.load_results("structure", pr, cache), pr)
fit_points = pd.concat([
    ablation.fit_and_specialisation(structure_ev).assign(run=f"this run ({pr.name})"),
    ablation.fit_and_specialisation(claims.published("structure")).assign(run="the study")], ignore_index=True)
for run, part in (("run", fit_points[fit_points.run != "the study"]),
                  ("study", fit_points[fit_points.run == "the study"])):
    rho, low, high = ablation.fit_rank_correlation(part)
    figures.glue_value(f"ablation_fit_rho_{run}", rho)
    figures.glue_value(f"ablation_fit_rho_{run}_interval", f"[{low:+.2f}, {high:+.2f}]")
    figures.glue_value(f"ablation_fit_{run}", float(part.own_fit.median()))
ours = fit_points[fit_points.run != "the study"].sort_values("own_fit")
figures.glue_value("ablation_fit_best_target", ours.target.iloc[0] if len(ours) else "none")
figures.glue_value("ablation_fit_best", float(ours.own_fit.iloc[0]) if len(ours) else float("nan"))
figures.glue_value("ablation_fit_best_ratio", float(ours.specialisation.iloc[0]) if len(ours) else float("nan"))
figures.show(figures.fit_specialisation_chart(fit_points), "ablation_fit", static_dir)

# %% [markdown]
# :::{exercise}
# :label: ablation-pixels
# A dose of 30 e⁻/Å² on 0.5 Å pixels puts 7.5 electrons in a pixel; on the study's 0.2 Å pixels, 1.2. Which of
# the dose claims would you expect coarse pixels to break, and why?
# :::

# %% [markdown] tags=["solution"]
# :::{solution} ablation-pixels
# :class: dropdown
# "A model carried from low to high dose loses more than one carried from high to low": with six times the
# electrons per pixel, the low-dose images are nearly as clean as the high-dose ones, so low-dose models lose
# little going up while high-dose models, trained on almost noise-free images, lose on the noisy ones. Compare the
# `cpu 0.5 Å pixels` column with `cpu` (whose dose series runs on 0.25 Å pixels) where both are measured.
# :::

# %% [markdown]
# :::{exercise}
# :label: ablation-specialise
# Which arm's models specialise most to their own domain, and what would you expect that to do to the claim "after
# pretraining, lattices sharing crystal symmetry transfer well to each other"?
# :::

# %% tags=["solution", "remove-cell"]
per_arm = table.groupby(["arm", "series"], sort=False).first().reset_index()
best = per_arm.loc[per_arm.specialisation.idxmax()]
figures.glue_value("ablation_best_arm", f"{best.arm} ({best.series})")
figures.glue_value("ablation_best_specialisation", best.specialisation)
figures.glue_value("ablation_best_specialisation_min", best.specialisation_min)

# %% [markdown] tags=["solution"]
# :::{solution} ablation-specialise
# :class: dropdown
# In this run: **{glue:text}`ablation_best_arm`**, median ratio {glue:text}`ablation_best_specialisation:.2f`
# (minimum {glue:text}`ablation_best_specialisation_min:.2f`; the study 1.81 and 1.04). The symmetry claim asks
# which source is best for each target; when every source is nearly as good on every target (ratios near 1),
# small differences decide it and the statistic stays small and noisy, whatever the symmetry classes.
# :::

# %% [markdown]
# :::{exercise}
# :label: ablation-cost
# What did the costliest arm cost, against this preset's own pretrainings of the same series, and did it change
# any verdict?
# :::

# %% tags=["solution", "remove-cell"]
costs = per_arm.assign(per_model=per_arm.core_seconds / per_arm.models)
dear = costs.loc[costs.per_model.idxmax()]
mine = costs[(costs.arm == pr.name) & (costs.series == dear.series)]
base_cost = float(mine.per_model.iloc[0]) if len(mine) else float("nan")
before = scored[(scored.arm == pr.name) & (scored.series == dear.series)].set_index("key").verdict
after = scored[(scored.arm == dear.arm) & (scored.series == dear.series)].set_index("key").verdict
figures.glue_value("ablation_dear_arm", f"{dear.arm} ({dear.series})")
figures.glue_value("ablation_dear_factor", dear.per_model / base_cost)
figures.glue_value("ablation_dear_changed", int((before.reindex(after.index) != after).sum()))

# %% [markdown] tags=["solution"]
# :::{solution} ablation-cost
# :class: dropdown
# **{glue:text}`ablation_dear_arm`**: {glue:text}`ablation_dear_factor:.1f` times the training core-seconds per
# pretraining of this preset's own; {glue:text}`ablation_dear_changed` of its claims got another verdict (a factor
# of 1.0 and 0 changes: the costliest arm is this preset itself). Compute buys a verdict only where the claim was
# limited by training, not by the pixel or the number of pretrainings.
# :::

# %% tags=["remove-cell"]
if live_widgets:
    figures.explore(lambda arm=arms[0]: table[table.arm == arm][["claim", "statistic", "low", "high", "verdict"]],
                    arm=arms)

# %% tags=["remove-cell"]
clock.stop(figures.glue_value)
