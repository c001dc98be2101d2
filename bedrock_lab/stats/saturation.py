"""Saturation: throughput against concurrency, Little's law, Universal Scalability Law, knee, SLO capacity.

Universal Scalability Law (Gunther 1993/2007, *Guerrilla Capacity Planning*; Schwartz 2015, *Practical
Scalability Analysis with the Universal Scalability Law*)::

    X(N) = lambda N / (1 + sigma (N - 1) + kappa N (N - 1))

sigma is contention (serialisation), kappa coherency (crosstalk), lambda the throughput of one user.
Throughput peaks at ``N_max = sqrt((1 - sigma) / kappa)``. Fitted by least squares on throughput
(``scipy.optimize.curve_fit``, bounds sigma in [0, 1], kappa >= 0, lambda > 0), which reproduces the book's
Cisco example (sigma = 0.02671591, kappa = 7.690945e-4, lambda = 995.6486, N_max = 35; the numbers
codahale/usl4j tests against).

N_max's 95% interval is the delta method on ``log N_max = (log(1 - sigma) - log kappa) / 2`` with the fit's
covariance and a t quantile on ``levels - 3`` degrees of freedom (none with 3 levels, or when kappa sits on its
bound). It is a statement about the smooth curve, not about a hard limit: against the emulator, whose capacity
is a hard number of concurrent requests (a queue beyond it), USL's N_max overstated that capacity by 1.7-2.1x
while the knee landed on it (:data:`USL_NMAX_OVERSTATES`); summaries lead with the knee and the highest load
meeting the SLOs.

Little's law (Little 1961): in steady state the mean number in the system is ``L = X W``. A closed-loop
run with N users and no think time should show ``L ~= N``; a clearly smaller L means the client could not
keep N requests in flight (a client-side bottleneck), so the throughput measured is the client's, not the
service's.

Knee: the concurrency after which adding users buys little throughput, by the Kneedle rule (Satopaa et
al. 2011): with both axes scaled to [0, 1], the point of greatest ``y - x``.

Example
-------
>>> fit = fit_usl([1, 2, 4, 8, 16], [100, 195, 370, 640, 900])
>>> 0 < fit.sigma < 1 and fit.n_max > 16
True
"""

from __future__ import annotations

import math
import sys
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import optimize

from bedrock_lab.errors import StatsError
from bedrock_lab.stats._data import CONFIG_COLUMNS, ok_mask, require_columns
from bedrock_lab.stats.rates import completion_rate, wall_span_s
from bedrock_lab.stats.slo import SLO, meets_slo, wilson_interval

#: L / N below this flags a client-side bottleneck
LITTLE_RATIO_MIN = 0.8
#: how far USL's N_max overstated a hard capacity (the emulator's concurrent-request limit) in our measurements
#: (issue 11: demo-like sweeps against the emulator), as (low, high) factors: read N_max as an upper estimate
USL_NMAX_OVERSTATES: tuple[float, float] = (1.7, 2.1)


@dataclass(frozen=True, slots=True)
class USLFit:
    """Fitted USL coefficients, the peak, and how well the curve fits (R^2 on throughput)."""

    sigma: float
    kappa: float
    lam: float
    n_max: float  #: concurrency of peak throughput (inf when kappa == 0)
    x_max: float  #: throughput at n_max (lambda / sigma as N -> inf when kappa == 0)
    r2: float
    n_points: int
    n_max_lo: float = float("nan")  #: 95% delta-method interval of n_max (NaN when it cannot be estimated)
    n_max_hi: float = float("nan")

    def throughput(self, n: float | np.ndarray) -> np.ndarray | float:
        return usl(np.asarray(n, dtype=float), self.sigma, self.kappa, self.lam)

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def usl(n: np.ndarray, sigma: float, kappa: float, lam: float) -> np.ndarray:
    """The USL throughput curve X(N)."""
    n = np.asarray(n, dtype=float)
    return lam * n / (1 + sigma * (n - 1) + kappa * n * (n - 1))


def fit_usl(users: Sequence[float] | np.ndarray, throughput: Sequence[float] | np.ndarray) -> USLFit:
    """Least-squares USL fit; needs at least 3 distinct concurrency levels."""
    n = np.asarray(users, dtype=float)
    x = np.asarray(throughput, dtype=float)
    keep = np.isfinite(n) & np.isfinite(x) & (n > 0) & (x > 0)
    n, x = n[keep], x[keep]
    if np.unique(n).size < 3:
        raise StatsError(f"a USL fit needs throughput at >= 3 concurrency levels, got {np.unique(n).size}")
    order = np.argsort(n)
    n, x = n[order], x[order]
    lam0 = float(np.max(x[n == n[0]]) / n[0])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optimize.OptimizeWarning)
            params, pcov = optimize.curve_fit(
                usl, n, x, p0=[0.01, 1e-4, lam0], bounds=([0.0, 0.0, 0.0], [1.0, np.inf, np.inf]),
                x_scale=[0.01, 1e-4, lam0], max_nfev=20_000, ftol=1e-14, xtol=1e-14, gtol=1e-14,
            )
    except (RuntimeError, ValueError) as exc:
        raise StatsError(f"USL fit did not converge: {exc}") from exc
    sigma, kappa, lam = (float(v) for v in params)
    n_max = math.sqrt((1 - sigma) / kappa) if kappa > 0 else math.inf
    x_max = float(usl(np.array(n_max), sigma, kappa, lam)) if math.isfinite(n_max) else (
        lam / sigma if sigma > 0 else math.inf)
    resid = x - usl(n, sigma, kappa, lam)
    ss_tot = float(np.sum((x - x.mean()) ** 2))
    r2 = 1 - float(np.sum(resid**2)) / ss_tot if ss_tot > 0 else float("nan")
    lo, hi = _n_max_interval(sigma, kappa, np.asarray(pcov, dtype=float), int(n.size) - 3)
    return USLFit(sigma=sigma, kappa=kappa, lam=lam, n_max=n_max, x_max=x_max, r2=r2, n_points=int(n.size),
                  n_max_lo=lo, n_max_hi=hi)


def _n_max_interval(sigma: float, kappa: float, cov: np.ndarray, dof: int,
                    confidence: float = 0.95) -> tuple[float, float]:
    """Delta-method interval of N_max on the log scale (NaN, NaN when the fit leaves no degrees of freedom, kappa
    is 0 or sigma 1, or the covariance is not finite)."""
    if dof < 1 or not (kappa > 0 and sigma < 1) or cov.shape != (3, 3) or not np.all(np.isfinite(cov[:2, :2])):
        return float("nan"), float("nan")
    grad = np.array([-0.5 / (1 - sigma), -0.5 / kappa])
    var = float(grad @ cov[:2, :2] @ grad)
    if not var >= 0:
        return float("nan"), float("nan")
    from scipy import stats as st

    half = float(st.t.ppf(0.5 + confidence / 2, dof)) * math.sqrt(var)
    centre = 0.5 * (math.log(1 - sigma) - math.log(kappa))
    # a near-zero kappa (throughput still linear) puts a bound past any float: it is unbounded, not an error
    return _exp_or_inf(centre - half), _exp_or_inf(centre + half)


def _exp_or_inf(x: float) -> float:
    return math.exp(x) if x < math.log(sys.float_info.max) else math.inf


def knee(users: Sequence[float] | np.ndarray, throughput: Sequence[float] | np.ndarray) -> float:
    """Kneedle knee of an increasing, concave throughput curve (NaN with fewer than 3 points).

    >>> knee([1, 2, 4, 8, 16, 32], [10, 20, 39, 70, 90, 95])
    8.0
    """
    n = np.asarray(users, dtype=float)
    x = np.asarray(throughput, dtype=float)
    keep = np.isfinite(n) & np.isfinite(x)
    n, x = n[keep], x[keep]
    if np.unique(n).size < 3:
        return float("nan")
    order = np.argsort(n)
    n, x = n[order], x[order]
    if np.ptp(x) == 0:
        return float("nan")
    nx = (n - n.min()) / np.ptp(n)
    ny = (x - x.min()) / np.ptp(x)
    return float(n[int(np.argmax(ny - nx))])


def load_table(df: pd.DataFrame, slo: SLO | None = None, *, group: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per (configuration, users): throughput, latency, Little's-law check and goodput.

    ``group`` are the configuration columns other than ``users`` (default: the ones present). Columns:
    ``users``, ``n_requests``, ``n_ok``, ``throughput_rps`` (ok completions per second), ``mean_e2e_s``,
    ``in_flight`` (L = completions per second of all requests x their mean duration), ``little_ratio`` (L / users),
    ``client_bottleneck`` (ratio < 0.8), ``goodput``, ``goodput_lo`` and ``meets_slo``.
    """
    require_columns(df, ["users", "status", "e2e_s", "start"])
    group = [c for c in (group if group is not None else CONFIG_COLUMNS) if c in df.columns and c != "users"]
    slo = slo or SLO()
    good = meets_slo(df, slo)
    rows = []
    for key, sub in df.groupby([*group, "users"], dropna=False, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        keys = dict(zip([*group, "users"], key, strict=True))
        span = wall_span_s(sub)
        ok = ok_mask(sub)
        e2e = pd.to_numeric(sub["e2e_s"], errors="coerce")
        x_ok = completion_rate(sub, ok)
        x_all = completion_rate(sub)
        w_all = float(e2e.mean()) if e2e.notna().any() else float("nan")
        in_flight = x_all * w_all
        users = float(keys["users"]) if keys["users"] is not None and keys["users"] == keys["users"] else np.nan
        ratio = in_flight / users if users and users == users else float("nan")
        k = int(good.loc[sub.index].sum())
        lo, _ = wilson_interval(k, len(sub))
        rows.append({**keys, "n_requests": len(sub), "n_ok": int(ok.sum()), "duration_s": span,
                     "throughput_rps": x_ok, "mean_e2e_s": float(e2e[ok].mean()) if ok.any() else np.nan,
                     "in_flight": in_flight, "little_ratio": ratio,
                     "client_bottleneck": bool(ratio == ratio and ratio < LITTLE_RATIO_MIN),
                     "goodput": k / len(sub), "goodput_lo": lo, "meets_slo": k / len(sub) >= slo.goodput_target})
    return pd.DataFrame(rows)


def saturation(df: pd.DataFrame, slo: SLO | None = None, *, group: Sequence[str] | None = None
               ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(load_table, capacity)``: the per-users table and, per configuration, the USL fit, knee and the
    highest user count meeting the SLOs.

    ``capacity`` columns: the configuration keys, ``levels`` (user counts measured), ``sigma``, ``kappa``,
    ``lam``, ``n_max``, ``x_max``, ``r2``, ``n_points``, ``n_max_lo``/``n_max_hi`` (95% delta-method interval)
    (NaN when fewer than 3 levels or the fit failed; ``usl_note`` says why), ``knee_users``,
    ``max_users_meeting_slo`` (NaN when none does), ``client_bottleneck_users``.
    """
    table = load_table(df, slo, group=group)
    group = [c for c in (group if group is not None else CONFIG_COLUMNS) if c in df.columns and c != "users"]
    rows = []
    grouped = table.groupby(group, dropna=False, sort=True) if group else [((), table)]
    for key, sub in grouped:
        keys = dict(zip(group, key if isinstance(key, tuple) else (key,), strict=True))
        sub = sub[pd.to_numeric(sub["users"], errors="coerce").notna()].sort_values("users")
        row: dict[str, object] = {**keys, "levels": sub["users"].astype(int).tolist()}
        note = ""
        try:
            fit = fit_usl(sub["users"].to_numpy(float), sub["throughput_rps"].to_numpy(float))
            row.update(fit.as_dict())
        except StatsError as exc:
            note = str(exc)
            row.update({k: np.nan for k in ("sigma", "kappa", "lam", "n_max", "x_max", "r2", "n_max_lo", "n_max_hi")})
        row["usl_note"] = note
        row["knee_users"] = knee(sub["users"].to_numpy(float), sub["throughput_rps"].to_numpy(float))
        meeting = sub.loc[sub["meets_slo"].astype(bool), "users"]
        row["max_users_meeting_slo"] = float(meeting.max()) if len(meeting) else float("nan")
        row["client_bottleneck_users"] = sub.loc[sub["client_bottleneck"].astype(bool), "users"].astype(int).tolist()
        rows.append(row)
    return table, pd.DataFrame(rows)
