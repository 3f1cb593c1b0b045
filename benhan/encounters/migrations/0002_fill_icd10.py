"""Load the shipped WHO ICD-10 list (see benhan/encounters/data/README.md)."""

import csv
from pathlib import Path

from django.db import migrations

from benhan.lib.vntext import search_key

CSV = Path(__file__).resolve().parent.parent / "data" / "icd10_who.csv"


def forward(apps, schema_editor):
    Icd10Code = apps.get_model("encounters", "Icd10Code")
    if Icd10Code.objects.exists():
        return
    with CSV.open(encoding="utf-8", newline="") as f:
        rows = [
            Icd10Code(
                code=r["code"],
                title_en=r["title_en"],
                chapter=r["chapter"],
                search_key=search_key(f"{r['code']} {r['title_en']}"),
            )
            for r in csv.DictReader(f)
        ]
    Icd10Code.objects.bulk_create(rows, batch_size=2000)


def trigram(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    schema_editor.execute(
        "CREATE INDEX IF NOT EXISTS icd10_search_key_trgm "
        "ON encounters_icd10code USING gin (search_key gin_trgm_ops)"
    )


class Migration(migrations.Migration):
    dependencies = [("encounters", "0001_initial")]
    operations = [
        migrations.RunPython(forward, migrations.RunPython.noop),
        migrations.RunPython(trigram, migrations.RunPython.noop),
    ]
