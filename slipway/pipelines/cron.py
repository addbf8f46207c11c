"""Cron expressions for schedules: the classic five fields, in UTC.

``minute hour day-of-month month day-of-week``, each ``*``, a number, a range ``1-5``, a step
``*/15`` or ``1-30/2`` (or ``5/10``: from 5 to the end, every 10), or a comma-separated list of
those; months and weekdays also by name (``jan``..``dec``, ``sun``..``sat``; 0 and 7 are both
Sunday). ``@hourly``, ``@daily`` (``@midnight``), ``@weekly``, ``@monthly`` and ``@yearly``
(``@annually``) stand for the usual expressions.

As in Vixie cron, when both day fields are restricted (neither starts with ``*``) a day
matches if *either* does (``0 0 1 * mon``: the first of the month and every Monday); when one
starts with ``*`` a day must match both (so ``0 0 * * mon`` is every Monday, and
``0 0 */10 * mon`` a Monday that is the 1st, 11th, 21st or 31st). An expression that can
never fire (``0 0 30 feb *``) is refused when it is parsed, not discovered when nothing runs.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from slipway.exceptions import InvalidParameterValue

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
MONTHS = {
    name: i
    for i, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
        start=1,
    )
}
WEEKDAYS = {name: i for i, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
SEARCH_YEARS = 30
"""How far ahead :meth:`CronExpr.next_after` looks: 28 years repeat every calendar (leap
years and weekdays both), so an expression that fires at all fires within this."""
MINUTE_MS = 60_000


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    low: int
    high: int
    names: dict[str, int] | None = None


_FIELDS = (
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day-of-month", 1, 31),
    _Field("month", 1, 12, MONTHS),
    _Field("day-of-week", 0, 7, WEEKDAYS),
)


@dataclass(frozen=True, slots=True)
class CronExpr:
    """A parsed expression: the values each field allows, and whether the day fields were
    restricted (which decides the day-of-month/day-of-week rule)."""

    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    """0 = Sunday .. 6 = Saturday (a 7 in the expression is stored as 0)."""
    days_restricted: bool
    weekdays_restricted: bool

    def day_matches(self, day: datetime) -> bool:
        in_month = day.day in self.days
        in_week = (day.isoweekday() % 7) in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return in_month or in_week
        return in_month and in_week

    def matches(self, moment: datetime) -> bool:
        """Whether the expression fires in the (UTC) minute of ``moment``."""
        return (
            moment.month in self.months
            and self.day_matches(moment)
            and moment.hour in self.hours
            and moment.minute in self.minutes
        )

    def next_after(self, after_ms: int) -> int:
        """The first minute (epoch ms, UTC) strictly after ``after_ms`` that fires."""
        start = datetime.fromtimestamp(after_ms // MINUTE_MS * 60, tz=UTC)
        moment = start + timedelta(minutes=1)
        limit = start.year + SEARCH_YEARS
        while moment.year <= limit:
            if moment.month not in self.months:
                moment = _first_of_next_month(moment)
                continue
            if not self.day_matches(moment):
                moment = moment.replace(hour=0, minute=0) + timedelta(days=1)
                continue
            if moment.hour not in self.hours:
                moment = moment.replace(minute=0) + timedelta(hours=1)
                continue
            if moment.minute not in self.minutes:
                later = [m for m in sorted(self.minutes) if m > moment.minute]
                if later:
                    moment = moment.replace(minute=later[0])
                else:
                    moment = moment.replace(minute=0) + timedelta(hours=1)
                continue
            return int(moment.timestamp()) * 1000
        raise InvalidParameterValue(f"Cron expression {self.text!r} never fires")


def _first_of_next_month(moment: datetime) -> datetime:
    if moment.month == 12:
        return moment.replace(year=moment.year + 1, month=1, day=1, hour=0, minute=0)
    return moment.replace(month=moment.month + 1, day=1, hour=0, minute=0)


def _bad(expr: str, problem: str) -> InvalidParameterValue:
    return InvalidParameterValue(f"Cron expression {expr!r}: {problem}")


def _value(token: str, field: _Field, expr: str) -> int:
    lowered = token.lower()
    if field.names is not None and lowered in field.names:
        return field.names[lowered]
    if not token.isdigit():
        names = f" or a name ({', '.join(field.names)})" if field.names else ""
        raise _bad(expr, f"{field.name} {token!r} is not a number{names}")
    number = int(token)
    if not field.low <= number <= field.high:
        raise _bad(expr, f"{field.name} {number} is out of range {field.low}-{field.high}")
    return number


def _parse_field(text: str, field: _Field, expr: str) -> frozenset[int]:
    allowed: set[int] = set()
    for part in text.split(","):
        if not part:
            raise _bad(expr, f"empty item in {field.name} {text!r}")
        base, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) == 0:
                raise _bad(expr, f"step {step_text!r} in {field.name} must be a number above 0")
            step = int(step_text)
        if base == "*":
            low, high = field.low, field.high
        elif "-" in base:
            first, _, last = base.partition("-")
            low, high = _value(first, field, expr), _value(last, field, expr)
            if low > high:
                raise _bad(expr, f"{field.name} range {base!r} runs backwards")
        else:
            low = _value(base, field, expr)
            high = field.high if slash else low
        allowed.update(range(low, high + 1, step))
    return frozenset(allowed)


def parse_cron(expr: str) -> CronExpr:
    """The parsed expression; INVALID_PARAMETER_VALUE saying what is wrong with a bad one."""
    if not isinstance(expr, str) or not expr.strip():
        raise InvalidParameterValue(
            "A cron expression is required: five fields (minute hour day-of-month month "
            "day-of-week, e.g. '0 * * * *') or @hourly, @daily, @weekly, @monthly, @yearly"
        )
    text = " ".join(expr.split())
    fields_text = MACROS.get(text.lower(), text)
    if fields_text.startswith("@"):
        raise _bad(expr, f"unknown macro; use one of {', '.join(MACROS)}")
    parts = fields_text.split(" ")
    if len(parts) != len(_FIELDS):
        raise _bad(
            expr,
            f"expected 5 fields (minute hour day-of-month month day-of-week), got {len(parts)}",
        )
    minutes, hours, days, months, weekdays = (
        _parse_field(part, field, expr) for part, field in zip(parts, _FIELDS, strict=True)
    )
    parsed = CronExpr(
        text=text,
        minutes=minutes,
        hours=hours,
        days=days,
        months=months,
        weekdays=frozenset(d % 7 for d in weekdays),
        days_restricted=not parts[2].startswith("*"),
        weekdays_restricted=not parts[4].startswith("*"),
    )
    if parsed.days_restricted and not parsed.weekdays_restricted:
        longest = max(_longest_month(m) for m in months)
        if min(days) > longest:
            raise _bad(expr, "never fires: no month in it has that day")
    return parsed


def _longest_month(month: int) -> int:
    return 29 if month == 2 else calendar.monthrange(2001, month)[1]


def next_fire(expr: str, after_ms: int) -> int:
    """When ``expr`` next fires strictly after ``after_ms`` (epoch milliseconds, UTC), in
    epoch milliseconds."""
    return parse_cron(expr).next_after(after_ms)


def validate_cron(expr: str) -> str:
    """``expr`` with its spacing normalised; INVALID_PARAMETER_VALUE if it is not valid."""
    return parse_cron(expr).text


__all__ = ["MACROS", "CronExpr", "next_fire", "parse_cron", "validate_cron"]
