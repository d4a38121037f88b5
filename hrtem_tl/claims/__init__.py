"""The study's findings (STUDY.md section 5) as statistics of a results table, each with a verdict.

A claim is one function of an :class:`Evidence` (the cells of a series' heatmaps per freezing option and, for our
runs, the per-model rows) that returns one number, signed so that a positive value supports the claim. The same
function applied to the published values (``reference/``) gives the study's own number wherever the published
tables hold what it needs; where they do not, the number the study states is used (Fig 6.2), or none.

Statistics compare losses by ranks, signs and log10 ratios, never by absolute nats. They are computed on the
study's own scale by default: our models trained on plain cross-entropy (STUDY.md 4), then scored with the
study's published loss (``train.study_scale_loss``: its doubled softmax, floor subtracted), which is bounded in
[0, 1] like an error rate. The scale matters for comparisons between cells: cross-entropy charges a confidently
wrong pixel without bound, the study's loss at most 1, so a model that fails confidently on a few pixels can rank
differently on the two. The scorecard shows the cross-entropy statistic beside it.

Every statistic carries a 90 % bootstrap interval (``verdicts.bootstrap``): the pretrainings of each source
(replicates and seeds: a P cell's crowd) and the transfers of each cell (pooled over freezing options, as the
study's T cell pools them) are resampled with replacement and the statistic recomputed. The verdict reads the
statistic and its interval against a bar (``verdicts.bar``; rule written once in ``verdicts.verdict``):

- ``direction``: the bar is half the study's value; ``holds`` when the statistic reaches it and the interval
  excludes 0, ``contradicts`` when the interval lies at or below 0, ``weaker`` when it lies between 0 and the bar;
- ``share`` ("not necessarily"): the same with a bar of one quarter of the models;
- ``equivalence`` ("comparable", "~"): a log10 ratio; ``holds`` when the interval lies within a factor 1.25 either
  way, ``contradicts`` when it lies outside;
- ``undecided`` otherwise, with the replicates that would likely decide it if the interval narrows as 1/sqrt(R).

Before any verdict, a sanity line per series (``sanity``): each source's median in-domain loss over its
pretrainings against the constant-prediction loss of its own masks (the loss of a model that learnt nothing),
both on the study's scale. A series with a source above two thirds of that reports "not learned" instead of
verdicts (the verdict it would get is shown beside). The threshold is checked on the study's own pretrainings
(``published_learning``): its hardest, diamond C on small particles, stands at 0.58 of a constant prediction (its
particle fraction estimated from STUDY.md's geometry), so a threshold of one half would call the study's own model
unlearned.

Modules, in the order they build on each other: ``evidence`` (our rows and the published cells as heatmap cells),
``statistics`` (one function per finding), ``registry`` (the claims), ``verdicts`` (bar, verdict, bootstrap),
``sanity`` (the learned gate), ``report`` (scorecards, terminal, chapters). Every name is re-exported here.
"""

from ..study import model_table
from .evidence import (
    CITATION,
    EQUIVALENCE_FACTOR,
    HALF,
    IN_FOCUS,
    LEARNED_FRACTION,
    METRICS,
    MIN_SHARE,
    REFERENCE,
    Evidence,
    MissingEvidence,
    _log_ratio,
    _numeric_order,
    _per_freeze_median_t,
    _reference_domain,
    _sign,
    _small,
    evidence,
    lattice_names,
    lattice_of,
    log_spread_across_sources,
    matrix,
    off_diagonal,
    published,
    reference_cells,
    spearman,
)
from .registry import CLAIMS, Claim, get_claims, measure, study_value
from .report import (
    SINGLE,
    _fmt,
    agreement,
    cached_scorecard,
    display_table,
    format_scorecard,
    glue_scorecard,
    interval_text,
    print_scorecards,
    run_evidence,
    scorecard,
    verdict_counts,
    verdict_text,
)
from .sanity import _blocker, learned_sources, learning, published_learning, sanity_line, study_particle_fraction
from .statistics import (
    _lattice_mass,
    _size_gaps,
    _sweep,
    _symmetry_pairs,
    _transfers,
    aggressive_learning_rates_best,
    defocus_in_focus_hardest,
    distance_cells,
    distance_fades_after_transfer,
    distance_table,
    dose_low_pretraining_worse,
    dose_low_to_high_loses_more,
    dose_target_snr,
    freezing_decoder_like_none,
    freezing_encoder_costs_loss,
    freezing_encoder_saves_parameters,
    freezing_encoder_saves_time,
    loss_grows_with_distance,
    more_images_less_spread,
    more_images_lower_loss,
    ood_spread,
    size_small_pretrained_lose_on_large,
    size_transfer_irons_out,
    structure_lighter_transfers_better,
    structure_symmetry_transfers,
    structure_target_dominates,
    transfer_like_mixture,
    transfer_not_more_robust,
    transfer_removes_the_source,
)
from .verdicts import (
    CONFIDENCE,
    N_BOOTSTRAP,
    VERDICTS,
    bar,
    bootstrap,
    interval,
    replicates_of,
    replicates_to_decide,
    resample,
    strata,
    verdict,
)
