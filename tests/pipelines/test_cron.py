"""The cron parser and next fire times (UTC), against a table worked out by hand."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from slipway.exceptions import InvalidParameterValue
from slipway.pipelines.cron import next_fire, parse_cron, validate_cron


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def fire(expr: str, after: str) -> str:
    at = datetime.fromtimestamp(next_fire(expr, ms(after)) / 1000, tz=UTC)
    return at.strftime("%Y-%m-%d %H:%M %a")


@pytest.mark.parametrize(
    ("expr", "after", "expected"),
    [
        # plain fields, strictly after, seconds ignored
        ("0 * * * *", "2024-01-01T00:00:00", "2024-01-01 01:00 Mon"),
        ("0 * * * *", "2024-01-01T00:59:59", "2024-01-01 01:00 Mon"),
        ("* * * * *", "2024-01-01T10:15:30", "2024-01-01 10:16 Mon"),
        ("*/5 * * * *", "2024-01-01T00:03:59", "2024-01-01 00:05 Mon"),
        ("*/5 * * * *", "2024-01-01T00:55:00", "2024-01-01 01:00 Mon"),
        ("1-10/4 * * * *", "2024-01-01T00:06:00", "2024-01-01 00:09 Mon"),
        ("50/5 * * * *", "2024-01-01T00:51:00", "2024-01-01 00:55 Mon"),
        ("15,45 8-9 * * *", "2024-01-01T09:45:00", "2024-01-02 08:15 Tue"),
        ("30 23 * * *", "2024-12-31T23:30:00", "2025-01-01 23:30 Wed"),
        # month ends and leap days
        ("0 0 31 * *", "2024-04-01T00:00:00", "2024-05-31 00:00 Fri"),
        ("0 12 30 * *", "2024-01-31T00:00:00", "2024-03-30 12:00 Sat"),
        ("0 0 29 2 *", "2024-03-01T00:00:00", "2028-02-29 00:00 Tue"),
        ("0 0 29 feb *", "2023-06-01T00:00:00", "2024-02-29 00:00 Thu"),
        ("0 0 28-31 2 *", "2023-02-28T00:00:00", "2024-02-28 00:00 Wed"),
        ("59 23 31 12 *", "2024-12-31T23:59:00", "2025-12-31 23:59 Wed"),
        # the day-of-month / day-of-week rule
        ("0 0 1 * mon", "2024-01-02T00:00:00", "2024-01-08 00:00 Mon"),  # either: a Monday
        ("0 0 13 * fri", "2024-09-07T00:00:00", "2024-09-13 00:00 Fri"),  # either: Friday 13th
        ("0 0 13 * fri", "2024-09-14T00:00:00", "2024-09-20 00:00 Fri"),
        ("0 0 29 2 mon", "2025-01-01T00:00:00", "2025-02-03 00:00 Mon"),  # a Monday in Feb
        ("0 0 * * mon", "2024-01-02T00:00:00", "2024-01-08 00:00 Mon"),  # dom * : weekday only
        ("0 0 1 * *", "2024-01-02T00:00:00", "2024-02-01 00:00 Thu"),  # dow * : day only
        ("0 0 */10 * mon", "2024-01-02T00:00:00", "2024-03-11 00:00 Mon"),  # starts with *: both
        # names, ranges of names, 7 = Sunday
        ("30 4 * jan-mar sat,sun", "2024-03-31T05:00:00", "2025-01-04 04:30 Sat"),
        ("0 9 * * MON-FRI", "2024-01-05T09:00:00", "2024-01-08 09:00 Mon"),
        ("0 0 * * 7", "2024-01-01T00:00:00", "2024-01-07 00:00 Sun"),
        ("0 0 * * 0", "2024-01-01T00:00:00", "2024-01-07 00:00 Sun"),
        ("0 6 1 Jun,DEC *", "2024-06-01T06:00:00", "2024-12-01 06:00 Sun"),
        # macros
        ("@hourly", "2024-01-01T00:30:00", "2024-01-01 01:00 Mon"),
        ("@daily", "2024-01-01T00:00:00", "2024-01-02 00:00 Tue"),
        ("@midnight", "2024-01-01T23:59:00", "2024-01-02 00:00 Tue"),
        ("@weekly", "2024-01-01T00:00:00", "2024-01-07 00:00 Sun"),
        ("@monthly", "2024-01-31T00:00:00", "2024-02-01 00:00 Thu"),
        ("@yearly", "2024-12-31T23:59:00", "2025-01-01 00:00 Wed"),
        ("@annually", "2024-01-01T00:00:00", "2025-01-01 00:00 Wed"),
    ],
)
def test_next_fire(expr: str, after: str, expected: str) -> None:
    assert fire(expr, after) == expected


def test_next_fire_is_minute_aligned_epoch_ms() -> None:
    value = next_fire("*/15 * * * *", ms("2024-05-05T10:07:42"))
    assert value == ms("2024-05-05T10:15:00")
    assert value % 60_000 == 0


def test_spacing_and_case_are_normalised() -> None:
    assert validate_cron("  0   3 * *  MON ") == "0 3 * * MON"
    assert validate_cron("@DAILY") == "@DAILY"
    assert parse_cron("0 0 * * 7").weekdays == frozenset({0})


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("", "A cron expression is required"),
        ("0 * * *", "expected 5 fields (minute hour day-of-month month day-of-week), got 4"),
        ("0 * * * * *", "got 6"),
        ("60 * * * *", "minute 60 is out of range 0-59"),
        ("0 24 * * *", "hour 24 is out of range 0-23"),
        ("0 0 0 * *", "day-of-month 0 is out of range 1-31"),
        ("0 0 * 13 *", "month 13 is out of range 1-12"),
        ("0 0 * * 8", "day-of-week 8 is out of range 0-7"),
        ("0 0 * foo *", "month 'foo' is not a number or a name (jan, feb"),
        ("0 0 * * funday", "day-of-week 'funday' is not a number or a name (sun, mon"),
        ("x * * * *", "minute 'x' is not a number"),
        ("*/0 * * * *", "step '0' in minute must be a number above 0"),
        ("*/a * * * *", "step 'a' in minute must be a number above 0"),
        ("10-5 * * * *", "minute range '10-5' runs backwards"),
        ("1,,2 * * * *", "empty item in minute"),
        ("-5 * * * *", "minute '' is not a number"),
        ("@often", "unknown macro; use one of @yearly"),
        ("0 0 30 2 *", "never fires"),
        ("0 0 31 apr,jun,sep,nov *", "never fires"),
    ],
)
def test_bad_expressions_say_what_is_wrong(expr: str, expected: str) -> None:
    with pytest.raises(InvalidParameterValue) as info:
        parse_cron(expr)
    assert expected in info.value.message
    assert info.value.error_code == "INVALID_PARAMETER_VALUE"


def test_feb_30_with_a_weekday_still_fires_on_the_weekday() -> None:
    # both day fields restricted: either may match, so Mondays in February qualify
    assert fire("0 0 30 2 mon", "2024-01-01T00:00:00") == "2024-02-05 00:00 Mon"
