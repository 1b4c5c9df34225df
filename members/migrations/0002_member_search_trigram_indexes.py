"""Trigram indexes for the members search, on PostgreSQL only.

Django's `icontains` compiles to `UPPER(col::text) LIKE UPPER(%s)` on PostgreSQL; a GIN index with
pg_trgm's `gin_trgm_ops` on the same UPPER() expression answers it for terms of 3+ characters (one
trigram at least) instead of scanning every row. Both the portal (members.selectors.member_search)
and the admin's `search_fields` use it.

Written here rather than in Member.Meta.indexes: Django writes a GinIndex for SQLite as
`CREATE INDEX ... ((UPPER("full_name") gin_trgm_ops))`, which SQLite rejects, and SQLite rebuilds
the table with every Meta index whenever a later migration alters it. Plain SQL rather than
GinIndex(OpClass(...)): OpClass only compiles to valid SQL around an expression when
django.contrib.postgres is installed, which this project does not need otherwise. On SQLite this
migration does nothing and the search scans the table, fine at the sizes SQLite is meant for.
"""

from __future__ import annotations

from django.db import migrations

COLUMNS = {"member_name_upper_trgm": "full_name", "member_email_upper_trgm": "email"}


def add_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    # pg_trgm ships with PostgreSQL's contrib and is a trusted extension (PostgreSQL 13+): the
    # database owner may create it without being a superuser. IF NOT EXISTS: it may already be
    # installed, by an administrator or for another application.
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for name, column in COLUMNS.items():
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {name} ON members_member "
            f"USING gin (UPPER({column}) gin_trgm_ops)"
        )


def remove_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    # The extension stays: something else may use it, and it costs nothing unused.
    for name in COLUMNS:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [("members", "0001_initial")]

    operations = [migrations.RunPython(add_indexes, remove_indexes)]
