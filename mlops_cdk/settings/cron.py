"""EventBridge cron expressions: the one grammar the settings check and the cost estimate read.

``cron(minutes hours day-of-month month day-of-week year)``, as EventBridge Scheduler and
Application Auto Scaling scheduled actions take it:
https://docs.aws.amazon.com/scheduler/latest/UserGuide/schedule-types.html#cron-based
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# EventBridge cron fields: minutes hours day-of-month month day-of-week year.
_CRON_FIELD_PATTERNS = (
    ("minutes", r"[0-9*,/-]+"),
    ("hours", r"[0-9*,/-]+"),
    ("day-of-month", r"(\?|[0-9*,/-]+|L|LW|[0-9]{1,2}W)"),
    ("month", r"([0-9*,/-]|JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC)+"),
    ("day-of-week", r"(\?|([1-7*,/#-]|L|SUN|MON|TUE|WED|THU|FRI|SAT)+)"),
    ("year", r"[0-9*,/-]+"),
)
_CRON_RANGES = {"minutes": (0, 59), "hours": (0, 23), "day-of-month": (1, 31), "month": (1, 12),
                "day-of-week": (1, 7), "year": (1970, 2199)}  # fmt: skip
_CRON_HELP = (
    "must be cron(minutes hours day-of-month month day-of-week year): 6 fields in EventBridge "
    "syntax with ? in day-of-month or day-of-week, e.g. cron(0 2 ? * SUN *)"
)

DAY_NUMBERS = {"SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7}
MONTH_NUMBERS = {name: i for i, name in enumerate(
    ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), 1)}  # fmt: skip
_NAME = re.compile("|".join((*DAY_NUMBERS, *MONTH_NUMBERS)))


def check_cron(value: str) -> str:
    """The settings validator: a 6-field EventBridge cron, normalized to single spaces."""
    match = re.fullmatch(r"cron\((?P<fields>[^()]+)\)", value.strip())
    fields = match["fields"].split() if match else []
    if len(fields) != len(_CRON_FIELD_PATTERNS):
        raise ValueError(_CRON_HELP)
    for (name, pattern), field in zip(_CRON_FIELD_PATTERNS, fields, strict=True):
        if not re.fullmatch(pattern, field.upper()):
            raise ValueError(f"{name} field {field!r} is not valid; {_CRON_HELP}")
        low, high = _CRON_RANGES[name]
        for number in re.findall(r"(?<![/#])\b\d+", field):
            if not low <= int(number) <= high:
                raise ValueError(f"{name} field {field!r} is outside {low}-{high}; {_CRON_HELP}")
    for nth in re.findall(r"#(\d+)", fields[4]):
        if not 1 <= int(nth) <= 5:
            raise ValueError(
                f"day-of-week field {fields[4]!r}: #{nth} is not a week of the month (1-5); "
                f"{_CRON_HELP}"
            )
    if (fields[2] == "?") == (fields[4] == "?"):
        raise ValueError(f"exactly one of day-of-month and day-of-week must be ?; {_CRON_HELP}")
    return f"cron({' '.join(fields)})"


@dataclass(frozen=True)
class CronField:
    """What one cron field matches.

    ``values`` are the fixed values (every value of the range for ``*`` and ``?``);
    ``relative`` counts the items with ``L``, ``W`` or ``#`` (last day, nearest weekday, nth
    weekday): each is one day a month, but not a fixed value.
    """

    text: str
    values: frozenset[int]
    relative: int

    @property
    def unspecified(self) -> bool:
        """``?``: the other day field decides."""
        return self.text == "?"

    @property
    def count(self) -> int:
        return len(self.values) + self.relative


def parse_field(text: str, low: int, high: int) -> CronField:
    """Parse one field: values, ``*``, ``?``, ranges (``FRI-MON`` wraps), steps, names."""
    text = text.upper()
    if text in ("*", "?"):
        return CronField(text, frozenset(range(low, high + 1)), 0)
    values: set[int] = set()
    relative = 0
    for item in text.split(","):
        if any(mark in _NAME.sub("", item) for mark in "LW#"):
            relative += 1
            continue
        base, _, step_text = item.partition("/")
        step = int(step_text) if step_text else 1
        if base == "*":
            first, last = low, high
        elif "-" in base:
            first_text, last_text = base.split("-", 1)
            first, last = _number(first_text), _number(last_text)
        else:
            first = _number(base)
            last = high if step_text else first
        if first <= last:
            values.update(range(first, last + 1, step))
        else:  # a range that wraps (FRI-MON)
            values.update(range(first, high + 1, step), range(low, last + 1, step))
    return CronField(text, frozenset(values), relative)


def _number(text: str) -> int:
    return DAY_NUMBERS.get(text) or MONTH_NUMBERS.get(text) or int(text)


def _fields(expression: str) -> list[str]:
    match = re.fullmatch(r"cron\((.+)\)", expression.strip())
    if match is None:
        raise ValueError(f"schedule {expression!r} is not cron(...)")
    return match.group(1).split()


def weekdays(days: str) -> set[int]:
    """Python weekdays (MON = 0) of a cron day-of-week list such as MON-FRI or SAT,SUN."""
    return {(number - 2) % 7 for number in parse_field(days, 1, 7).values}


def fire_times(cron: str, time_zone: str) -> list[dt.datetime]:
    """When an EventBridge cron fires over one year (2027, both DST changes), as aware datetimes.

    Day fields with L, W or # are treated as matching any day (the hours still count)."""
    minutes, hours, dom, month, dow, _year = _fields(cron)
    minute_set, hour_set = parse_field(minutes, 0, 59).values, parse_field(hours, 0, 23).values
    day_fields = {
        "dom": parse_field(dom, 1, 31),
        "month": parse_field(month, 1, 12),
        "dow": parse_field(dow, 1, 7),
    }
    # A field with a relative day matches any day: an over-approximation, on the safe side.
    allowed = {name: None if f.relative else f.values for name, f in day_fields.items()}
    zone = zoneinfo.ZoneInfo(time_zone)
    times: list[dt.datetime] = []
    day = dt.date(2027, 1, 1)
    while day.year == 2027:
        weekday = (day.isoweekday() % 7) + 1  # EventBridge: 1 = SUN
        matched = {"dom": day.day, "month": day.month, "dow": weekday}
        if all(values is None or matched[name] in values for name, values in allowed.items()):
            times.extend(
                dt.datetime(day.year, day.month, day.day, h, m, tzinfo=zone)
                for h in sorted(hour_set)
                for m in sorted(minute_set)
            )
        day += dt.timedelta(days=1)
    return times


def runs_per_month(expression: str, hours_per_month: float) -> float:
    """How often a schedule fires in an average month: ``cron(...)``, ``rate(...)`` or ``at(...)``."""
    match = re.fullmatch(r"(cron|rate|at)\((.+)\)", expression.strip())
    if match is None:
        raise ValueError(f"unknown schedule expression {expression!r}")
    kind, body = match.groups()
    if kind == "at":
        return 0.0  # one-time: nothing monthly
    if kind == "rate":
        amount, unit = body.split()
        unit_hours = {"minute": 1 / 60, "hour": 1, "day": 24}[unit.rstrip("s")]
        return hours_per_month / (int(amount) * unit_hours)
    minutes, hrs, dom, month, dow, _year = body.split()
    days_per_month = hours_per_month / 24
    day_of_month, day_of_week = parse_field(dom, 1, 31), parse_field(dow, 1, 7)
    if not day_of_week.unspecified and day_of_month.unspecified:
        days = day_of_week.count * days_per_month / 7
        if day_of_week.relative:  # nth weekday: once a month each
            days = float(day_of_week.count)
    elif dom == "*":
        days = days_per_month
    else:
        days = 0.0 if day_of_month.unspecified else float(day_of_month.count)
    per_day = parse_field(minutes, 0, 59).count * parse_field(hrs, 0, 23).count
    months = parse_field(month, 1, 12).count / 12
    return per_day * days * months


def scheduled_capacity_hours(actions: Sequence[Mapping[str, Any]]) -> float:
    """Task-hours in one week under Application Auto Scaling scheduled actions (hourly steps)."""
    events: dict[int, float] = {}  # hour of week (Sunday 00:00 = 0) -> new minimum capacity
    for action in actions:
        try:
            _minutes, hrs, _dom, _month, dow, _year = _fields(action["Schedule"])
        except ValueError:
            raise ValueError(f"scheduled action {action['Schedule']!r} is not cron(...)") from None
        days = parse_field(dow, 1, 7).values or frozenset(range(1, 8))
        for day in days:
            for hour in parse_field(hrs, 0, 23).values:
                events[(day - 1) * 24 + hour] = float(action["ScalableTargetAction"]["MinCapacity"])
    if not events:
        return 0.0
    capacity = events[max(events)]  # the state carried over from the previous week
    total = 0.0
    for hour in range(168):
        capacity = events.get(hour, capacity)
        total += capacity
    return total
