"""Name-search indexes per database (measured in bench/search.py, docs/benchmarks.md).

SQLite: an FTS5 table over name_key, kept in step by triggers, with prefix indexes
so that 'ngu*' is a lookup. PostgreSQL: a full-text GIN index over name_key for
whole-word queries, beside the trigram index for word prefixes.
If this SQLite lacks FTS5 the table is not created and search falls back to LIKE.
"""

from django.db import migrations

SQLITE = [
    "CREATE VIRTUAL TABLE patient_name_fts USING fts5("
    "name_key, content='patients_patient', content_rowid='id', "
    "tokenize='unicode61', prefix='1 2 3', detail='none')",
    "CREATE TRIGGER patient_name_fts_insert AFTER INSERT ON patients_patient BEGIN "
    "INSERT INTO patient_name_fts(rowid, name_key) VALUES (new.id, new.name_key); END",
    "CREATE TRIGGER patient_name_fts_delete AFTER DELETE ON patients_patient BEGIN "
    "INSERT INTO patient_name_fts(patient_name_fts, rowid, name_key) "
    "VALUES ('delete', old.id, old.name_key); END",
    "CREATE TRIGGER patient_name_fts_update AFTER UPDATE OF name_key ON patients_patient BEGIN "
    "INSERT INTO patient_name_fts(patient_name_fts, rowid, name_key) "
    "VALUES ('delete', old.id, old.name_key); "
    "INSERT INTO patient_name_fts(rowid, name_key) VALUES (new.id, new.name_key); END",
    "INSERT INTO patient_name_fts(patient_name_fts) VALUES ('rebuild')",
]
SQLITE_DROP = [
    "DROP TRIGGER IF EXISTS patient_name_fts_insert",
    "DROP TRIGGER IF EXISTS patient_name_fts_delete",
    "DROP TRIGGER IF EXISTS patient_name_fts_update",
    "DROP TABLE IF EXISTS patient_name_fts",
]


def forward(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "sqlite":
        with schema_editor.connection.cursor() as c:
            c.execute("SELECT sqlite_compileoption_used('ENABLE_FTS5')")
            if not c.fetchone()[0]:
                return
        for sql in SQLITE:
            schema_editor.execute(sql)
    elif vendor == "postgresql":
        schema_editor.execute(
            "CREATE INDEX IF NOT EXISTS patient_name_key_tsv ON patients_patient "
            "USING gin (to_tsvector('simple', name_key))"
        )


def backward(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "sqlite":
        for sql in SQLITE_DROP:
            schema_editor.execute(sql)
    elif vendor == "postgresql":
        schema_editor.execute("DROP INDEX IF EXISTS patient_name_key_tsv")


class Migration(migrations.Migration):
    dependencies = [("patients", "0002_name_trigram_index")]
    operations = [migrations.RunPython(forward, backward)]
