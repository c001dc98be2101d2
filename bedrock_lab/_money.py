"""Money as people read it: every amount the kit prints (plan, confirmation, budget stop, report) goes through
:func:`fmt_usd`, so $0.0004 is never shown as $0.00."""

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
