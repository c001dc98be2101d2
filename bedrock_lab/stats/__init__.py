"""Statistics of load-test records: honest tails, comparisons with verdicts, saturation, data quality.

Pure functions on the records DataFrame of :func:`bedrock_lab.records.load_records` (one row per request);
one module per topic, each with its formulas and references in the docstring. Errors are
:class:`bedrock_lab.errors.StatsError`. The usual entry points::

    from bedrock_lab.stats import SLO, analyze, summarize
    a = analyze(df, SLO(ttft_s=1.0, e2e_s=10.0))      # Analysis: every table the report needs
    a.summary, a.comparisons, a.capacity, a.quality    # DataFrames
    summarize(df, by=["model_id", "tier_requested"])   # one table, any grouping

See ``docs/stats.md`` for the column reference of every table.
"""

from __future__ import annotations

from bedrock_lab.stats._data import CONFIG_COLUMNS, HIGHER_IS_BETTER, METRICS, tokens_per_second, with_metrics
from bedrock_lab.stats.censoring import censored_fit, censored_sample, censored_summary, km_quantiles
from bedrock_lab.stats.compare import (
    Comparison,
    bootstrap_quantiles,
    compare_grid,
    compare_many,
    compare_two,
    smallest_detectable_effect,
    vargha_delaney_a,
    verdict_summary,
)
from bedrock_lab.stats.fits import DEFAULT_DISTS, DIST_NAMES, Fit, fit_distributions, fit_one, gof, qq_data
from bedrock_lab.stats.multiple import adjust, benjamini_hochberg, holm
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
from bedrock_lab.stats.summary import Analysis, analyze, summarize
from bedrock_lab.stats.synthetic import synthetic_records

__all__ = [
    "CONFIG_COLUMNS", "DEFAULT_DISTS", "DEFAULT_QUANTILES", "DIST_NAMES", "HIGHER_IS_BETTER", "METRICS",
    "SLO", "Analysis", "Comparison", "Fit", "QuantileEstimate", "USLFit",
    "adjust", "analyze", "benjamini_hochberg", "bimodality_coefficient", "bootstrap_quantiles", "censored_fit", "censored_sample",
    "censored_summary", "compare_grid", "completion_rate", "ecdf_points", "compare_many", "compare_two", "early_stopping_min_passing",
    "early_stopping_min_queries", "early_stopping_overlatency", "fit_distributions", "fit_one", "fit_usl",
    "gof", "goodput", "holm", "km_quantiles", "knee", "load_table", "meets_slo", "min_samples_for_ci",
    "mser_truncation", "outcome_rates", "qq_data", "quality_flags", "quantile_ci", "quantile_table",
    "saturation", "smallest_detectable_effect", "summarize", "synthetic_records", "tokens_per_second",
    "vargha_delaney_a", "verdict_summary", "warmup_trim", "wilson_interval", "with_metrics",
]
