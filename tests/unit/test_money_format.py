"""Money as the admin shows it: minor units in the currency's own exponent."""

from __future__ import annotations

import pytest

from projections_app.money import format_money


@pytest.mark.parametrize(
    ("minor", "currency", "shown"),
    [
        (1234, "EUR", "12.34 EUR"),
        (5, "EUR", "0.05 EUR"),
        (-250, "USD", "-2.50 USD"),
        (123_456_789, "EUR", "1,234,567.89 EUR"),
        (5000, "JPY", "5,000 JPY"),
        (1234, "KWD", "1.234 KWD"),
        (0, "EUR", "0.00 EUR"),
        (1234, None, "1,234 minor units"),
        (None, "EUR", "—"),
    ],
)
def test_it_shows_minor_units_in_the_currency(minor, currency, shown):
    assert format_money(minor, currency) == shown
