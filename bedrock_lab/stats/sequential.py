"""Sequential cells in the analysis: always-valid percentile intervals, stop reasons and the cost saved.

The confidence sequence itself (Howard & Ramdas, "Sequential estimation of quantiles with applications to
A/B-testing and best-arm identification", Bernoulli 28(3), 2022, Theorem 1; beta-binomial mixture boundary) lives
in :mod:`bedrock_lab._confseq`, one implementation that the engines' stop controller also uses; it is re-exported
here. See docs/stats.md and docs/sequential.md.

Example
-------
>>> import numpy as np
>>> x = np.random.default_rng(0).lognormal(0, 0.5, 2000)
>>> cs = quantile_cs(x, 0.9)
>>> bool(cs.lo <= np.exp(0.5 * 1.2816) <= cs.hi), cs.n
(True, 2000)
>>> w = SloWatcher(0.9, target=1.0)
>>> w.update(x[:300]); w.status()
'above'
"""

from __future__ import annotations

from bedrock_lab._confseq import (
    DEFAULT_T_OPT,
    SequentialInterval,
    SloWatcher,
    Status,
    prior_weight,
    quantile_cs,
    quantile_cs_band,
    quantile_cs_path,
)

__all__ = [
    "DEFAULT_T_OPT",
    "SequentialInterval",
    "SloWatcher",
    "Status",
    "prior_weight",
    "quantile_cs",
    "quantile_cs_band",
    "quantile_cs_path",
]
