"""Statistics of load-test records: honest tails, comparisons with verdicts, saturation, data quality.

Pure functions on the records DataFrame of :func:`bedrock_lab.records.load_records` (one row per request);
one module per topic, each with its formulas and references in the docstring. Errors are
:class:`bedrock_lab.errors.StatsError`. The one analysis of a sweep, which the CLI, the analysis notebook and
the report all read, is :func:`analyze` (:mod:`.analysis`)::

    from bedrock_lab.stats import analyze, load_sweep_data, slo_from, summarize
    data = load_sweep_data("outputs/demo")             # done cells only; failed cells in data.failed
    a = analyze(data, slo_from(data, {"ttft_s": 1.0})) # Analysis: every table of the report
    a.summary, a.comparisons, a.capacity, a.quality    # DataFrames, per (model, tier, prompt_size, users)
    summarize(df, by=["model_id", "tier_requested"])   # one table, any grouping

See ``docs/stats.md`` for the column reference of every table.
"""

from __future__ import annotations

from bedrock_lab.stats._data import CONFIG_COLUMNS, HIGHER_IS_BETTER, METRICS, tokens_per_second, with_metrics
from bedrock_lab.stats.analysis import (
    KEYS,
    Analysis,
    SweepData,
    analyze,
    comparison_strata,
    cost_table,
    error_rate_max,
    load_sweep_data,
    slo_from,
    summary_table,
    write_tables,
)
from bedrock_lab.stats.censoring import (
    CensoredQuantile,
    censored_fit,
    censored_quantile,
    censored_quantile_table,
    censored_sample,
    censored_summary,
    km_quantiles,
)
from bedrock_lab.stats.compare import (
    Comparison,
    bootstrap_quantiles,
    compare_grid,
    compare_many,
    compare_two,
    decide,
    interval_verdict,
    log_median_se,
    smallest_detectable_effect,
    vargha_delaney_a,
    verdict_summary,
)
from bedrock_lab.stats.fits import DEFAULT_DISTS, DIST_NAMES, Fit, fit_distributions, fit_one, gof, qq_data
from bedrock_lab.stats.labels import label_records, short_model
from bedrock_lab.stats.multiple import adjust, benjamini_hochberg, bonferroni, holm, interval_levels
from bedrock_lab.stats.quality import bimodality_coefficient, mser_truncation, quality_flags, warmup_trim
from bedrock_lab.stats.quantiles import (
    DEFAULT_QUANTILES,
    QuantileEstimate,
    early_stopping_min_passing,
    early_stopping_min_queries,
    early_stopping_overlatency,
    ecdf_points,
    min_samples_for_ci,
    quantile_ci,
    quantile_table,
)
from bedrock_lab.stats.rates import completion_rate, outcome_rates, wilson_interval
from bedrock_lab.stats.saturation import USLFit, fit_usl, knee, load_table, saturation
from bedrock_lab.stats.slo import SLO, goodput, meets_slo
from bedrock_lab.stats.summary import summarize
from bedrock_lab.stats.synthetic import synthetic_records
from bedrock_lab.stats.timeseries import bin_width, time_bins

__all__ = [
    "CONFIG_COLUMNS", "DEFAULT_DISTS", "DEFAULT_QUANTILES", "DIST_NAMES", "HIGHER_IS_BETTER", "KEYS", "METRICS",
    "SLO", "Analysis", "CensoredQuantile", "Comparison", "Fit", "QuantileEstimate", "SweepData", "USLFit",
    "adjust", "analyze", "benjamini_hochberg", "bimodality_coefficient", "bonferroni", "bootstrap_quantiles",
    "censored_fit", "censored_quantile", "censored_quantile_table", "censored_sample", "censored_summary",
    "compare_grid", "compare_many", "compare_two",
    "comparison_strata", "completion_rate", "cost_table", "decide", "early_stopping_min_passing",
    "early_stopping_min_queries", "early_stopping_overlatency", "ecdf_points", "error_rate_max",
    "fit_distributions", "fit_one", "fit_usl", "gof", "goodput", "holm", "interval_levels", "interval_verdict",
    "km_quantiles", "knee", "label_records", "load_sweep_data", "load_table", "log_median_se", "meets_slo",
    "min_samples_for_ci",
    "mser_truncation", "outcome_rates", "qq_data", "quality_flags", "quantile_ci", "quantile_table",
    "saturation", "short_model", "slo_from", "smallest_detectable_effect", "summarize", "summary_table",
    "synthetic_records", "tokens_per_second", "vargha_delaney_a", "verdict_summary", "warmup_trim",
    "bin_width", "time_bins",
    "wilson_interval", "with_metrics", "write_tables",
]
