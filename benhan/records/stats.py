"""Counts for the director: records created, completed, signed, sealed and stored.

A record is counted at the furthest stage that *all* its documents reached:
completed (every document completed or further), signed, sealed; "stored" is a
closed record. A record without documents counts as created only.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date

from django.db.models import Count, Q
from django.utils import timezone

from benhan.records.models import DocumentStatus, Record, RecordStatus

STAGES = ("created", "completed", "signed", "sealed", "stored")
_AT_LEAST = {
    "completed": [DocumentStatus.COMPLETED, DocumentStatus.SIGNED, DocumentStatus.SEALED],
    "signed": [DocumentStatus.SIGNED, DocumentStatus.SEALED],
    "sealed": [DocumentStatus.SEALED],
}


@dataclass
class Stats:
    total: Counter = field(default_factory=Counter)
    by_kind: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    by_department: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    by_month: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))


def stage_counts(row: dict) -> list[str]:
    """The stages one record has reached."""
    stages = ["created"]
    docs = row["n_docs"]
    for stage in ("completed", "signed", "sealed"):
        if docs and row[f"n_{stage}"] == docs:
            stages.append(stage)
    if row["status"] == RecordStatus.CLOSED:
        stages.append("stored")
    return stages


def compute(facility_id: int, since: date | None = None) -> Stats:
    qs = Record.objects.filter(facility_id=facility_id)
    if since:
        qs = qs.filter(created_at__date__gte=since)
    rows = qs.values(
        "status", "created_at", "encounter__kind", "encounter__department__name"
    ).annotate(
        n_docs=Count("documents"),
        **{
            f"n_{stage}": Count("documents", filter=Q(documents__status__in=statuses))
            for stage, statuses in _AT_LEAST.items()
        },
    )
    stats = Stats()
    for row in rows:
        month = timezone.localtime(row["created_at"]).strftime("%Y-%m")
        for stage in stage_counts(row):
            stats.total[stage] += 1
            stats.by_kind[row["encounter__kind"]][stage] += 1
            stats.by_department[row["encounter__department__name"]][stage] += 1
            stats.by_month[month][stage] += 1
    return stats


def month_chart(by_month: dict[str, Counter], months: list[str]) -> dict:
    """Geometry for an inline SVG bar chart: created vs stored per month."""
    peak = max([by_month[m]["created"] for m in months] + [1])
    width, height, gap = 40, 120, 12
    bars = []
    for i, m in enumerate(months):
        x = i * (width + gap)
        for j, stage in enumerate(("created", "stored")):
            value = by_month[m][stage]
            h = round(height * value / peak)
            bars.append(
                {
                    "x": x + j * (width // 2),
                    "y": height - h,
                    "h": h,
                    "w": width // 2 - 2,
                    "stage": stage,
                    "value": value,
                    "month": m,
                }
            )
    return {
        "bars": bars,
        "width": len(months) * (width + gap),
        "height": height,
        "labels": [
            {"x": i * (width + gap), "text": m[5:] + "/" + m[2:4]} for i, m in enumerate(months)
        ],
    }


def last_months(n: int = 12) -> list[str]:
    today = timezone.localdate()
    y, m = today.year, today.month
    out = []
    for _ in range(n):
        out.append(f"{y:04d}-{m:02d}")
        m -= 1
        if m == 0:
            y, m = y - 1, 12
    return list(reversed(out))
