"""Money as people read it: minor units and an ISO 4217 code, shown as `1,234.56 EUR`.

Read models keep money as a bigint of minor units beside its currency (the banking
slice's rule: never a float), so showing it is a matter of the currency's exponent.
"""

from __future__ import annotations

# ISO 4217 currencies whose minor unit is not a hundredth (every other code has two).
_DIGITS: dict[str, int] = {
    **dict.fromkeys(
        ("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND", "VUV")
        + ("XAF", "XOF", "XPF"),
        0,
    ),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
    **dict.fromkeys(("CLF", "UYW"), 4),
}


def minor_unit_digits(currency: str) -> int:
    return _DIGITS.get(currency.upper(), 2)


def format_money(minor_units: int | None, currency: str | None) -> str:
    """`123456, "EUR"` -> `1,234.56 EUR`; without a currency the exponent is unknown, so the
    amount stays in minor units."""
    if minor_units is None:
        return "—"
    if not currency:
        return f"{minor_units:,} minor units"
    digits = minor_unit_digits(currency)
    sign = "-" if minor_units < 0 else ""
    whole, fraction = divmod(abs(minor_units), 10**digits)
    shown = f"{whole:,}.{fraction:0{digits}d}" if digits else f"{whole:,}"
    return f"{sign}{shown} {currency}"
