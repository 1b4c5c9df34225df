"""bench/seed_scale.py keeps working as the schema grows: it fills a small PostgreSQL database
whose counts are right and whose pages render (the benchmarks run on it)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection

BENCH = Path(__file__).resolve().parents[2] / "bench"

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def seed_scale():
    if connection.vendor != "postgresql":
        pytest.skip("bench/seed_scale.py is for PostgreSQL (set DATABASE_URL)")
    sys.path.insert(0, str(BENCH))
    try:
        import seed_scale

        yield seed_scale
    finally:
        sys.path.remove(str(BENCH))


def test_seeds_every_table_with_counts_that_match_the_rows(seed_scale, capsys):
    from automations.models import ActionLog, Execution
    from licenses.models import License
    from members.models import Member

    seed_scale.seed(120, 60, 3)
    assert Member.objects.count() == 120
    assert Member.objects.filter(status=Member.Status.DEACTIVATED).count() == 12
    assert Execution.objects.count() == 60
    assert ActionLog.objects.count() == 180
    assert License.objects.count() == 20
    # The counts the services keep, as `manage.py recount --check` sees them.
    call_command("recount", "--check")
    # No database default is left behind (the schema is the migrations').
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 'members_member'"
            " AND column_name = 'deactivate_on_last_day' AND column_default IS NOT NULL"
        )
        assert cursor.fetchone()[0] == 0


def test_column_defaults_cover_every_not_null_column_the_inserts_leave_out(seed_scale):
    """A NOT NULL column added later without a value in the INSERTs gets its model's default."""
    defaults = {(t, c) for t, c, _ in seed_scale.column_defaults()}
    assert ("members_member", "deactivate_on_last_day") in defaults
    assert ("members_member", "personal_email") in defaults
    assert ("automations_action", "config") in defaults
