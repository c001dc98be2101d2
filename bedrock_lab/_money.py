"""Money as people read it: every amount the kit prints (plan, confirmation, budget stop, report) goes through
:func:`fmt_usd`, so $0.0004 is never shown as $0.00; a monthly projection is :func:`monthly_usd` at the traffic
of a sweep file's ``traffic:`` section or the default here."""

from __future__ import annotations


def fmt_usd(amount: float) -> str:
    """Money with enough significant digits to read: ``$12.35``, ``$0.0004``, ``$0.000012``, ``$0``.

    >>> fmt_usd(12.345), fmt_usd(0.00042), fmt_usd(0.0000123), fmt_usd(0), fmt_usd(1234567.8)
    ('$12.35', '$0.00042', '$0.000012', '$0', '$1,234,567.80')
    """
    a = float(amount)
    if a == 0:
        return "$0"
    if abs(a) >= 1:
        return f"${a:,.2f}"
    text = f"{a:.2g}"
    if "e" in text:  # tiny amounts: plain decimals, two significant digits
        digits = -int(f"{a:e}".split("e")[1]) + 1
        text = f"{a:.{digits}f}"
    return f"${text}"


#: the traffic a monthly cost is projected at when a sweep file states none (``traffic:``, docs/sweeps.md); the
#: sweep file's defaults (bedrock_lab.params.TrafficConfig) and the analysis (bedrock_lab.stats.decision) share it
DEFAULT_REQUESTS_PER_DAY = 100_000
#: days in the projected month
DEFAULT_DAYS_PER_MONTH = 30.0


def monthly_usd(cost_per_1k: float, requests_per_day: float, days_per_month: float = DEFAULT_DAYS_PER_MONTH) -> float:
    """The monthly bill of a configuration costing ``cost_per_1k`` USD per 1,000 requests at a steady traffic.

    >>> monthly_usd(0.21, 100_000)
    630.0
    """
    return float(cost_per_1k) / 1000.0 * float(requests_per_day) * float(days_per_month)
