"""Database upkeep that the application does itself."""

from __future__ import annotations

from django.db import connection


def analyze() -> None:
    """Refresh the query planner's statistics.

    SQLite keeps none until ANALYZE runs, and without them it may pick an index that
    starts with facility_id for any query filtered by facility, walking every row
    (measured: 90 ms for a phone lookup at 100k patients instead of 1 ms).
    analysis_limit keeps it to a sample, so it takes well under a second at any size.
    """
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("PRAGMA analysis_limit=1000")
            cursor.execute("ANALYZE")
        elif connection.vendor == "postgresql":
            cursor.execute("ANALYZE")
