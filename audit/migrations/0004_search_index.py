"""Full-text search over the audit trail on PostgreSQL: a GIN index on the words of each event,
which the audit page's search (`reports.selectors.audit`) matches with the same expression.
SQLite has no such index; the page searches it with a plain contains there."""

from django.db import migrations

# The same expression as reports.selectors.audit.SEARCH_DOCUMENT: PostgreSQL uses an expression
# index only for a query that repeats it exactly.
CREATE = """
CREATE INDEX CONCURRENTLY IF NOT EXISTS audit_search ON audit_auditevent USING gin (
    to_tsvector('simple', verb || ' ' || actor_label || ' ' || object_repr || ' ' || note || ' ' || request_id)
)
"""
DROP = "DROP INDEX CONCURRENTLY IF EXISTS audit_search"


def _on_postgresql(sql: str):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    # Built concurrently: a large trail goes on taking events while the index is made.
    atomic = False

    dependencies = [("audit", "0003_chain_existing_events")]

    operations = [migrations.RunPython(_on_postgresql(CREATE), _on_postgresql(DROP), elidable=False)]
