"""Seed a PostgreSQL benchmark database at any size in minutes: every table is filled by one
INSERT ... SELECT over generate_series (multi-row inserts done by the server, no Python loop), and
the counts the services keep are set in a few set-based UPDATEs.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/as_scale_p1m \\
        .venv/bin/python bench/seed_scale.py --members 1000000

Shape, for N members (the same at every N, so page times compare across sizes):
- N members in 12 departments and 8 locations; every tenth deactivated;
- 1.2 N assets: one per member (laptop or phone), most in custody; a quarter enrolled in an MDM;
  one in five of the deactivated members still holds theirs, locked via MDM (the lock notice);
  0.2 N spare assets available; one open custody record per asset in custody;
- 20 licenses: license 1 is given to every member (the license with most seats: N), each member
  also holds one of licenses 2-16; laptops in custody hold one of the device licenses 17-20;
  the deactivated members' entitlements are revoked (history);
- 2 automations; N/2 events for the deactivated members (5 each), 2 executions per event (N
  executions), 10 action logs per execution (10 N), and one MDM lock command per locked device.
The executions and logs can be sized apart (--executions, --logs-per-execution).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

FIRST = (  # noqa: SIM905 - a word list, one line per ~85 characters
    "Ada Alan Amara Ana Arjun Astrid Ben Carlos Chen Chloe David Diego Elena Emil Emma "
    "Fatima Felix Grace Hana Ibrahim Ingrid Ivan Jamal Jana Jin Julia Kofi Laila Lars Leon "
    "Lina Lukas Maria Mateo Mei Nadia Noah Omar Priya Sofia"
).split()
LAST = (  # noqa: SIM905 - a word list, one line per ~85 characters
    "Abe Berg Costa Dahl Eze Fox Garcia Hahn Ito Jensen Khan Lee Lopez Mensah Meyer Moreau "
    "Nakamura Novak Okafor Olsen Patel Quinn Rossi Sato Schmidt Silva Singh Smith Tanaka "
    "Torres Ueda Vogel Wang Weber Wood Yilmaz Young Zhang Ziegler Zhou"
).split()
DEPARTMENTS = (  # noqa: SIM905 - a word list, one line per ~85 characters
    "Engineering Sales Support Marketing Finance People Legal Operations Design Product "
    "Security Research"
).split()
LOCATIONS = (  # noqa: SIM905 - a word list, one line per ~85 characters
    "Berlin London Lisbon Madrid Paris Warsaw Toronto Singapore"
).split()


# A first name, a middle initial and a last name, each picked by a hash of the row number: the
# parts are independent of each other and of the status, department and location (which are
# functions of i % 10, i % 12 and i / 12), as real names are. With the parts as functions of i
# (an earlier version), every member named Ada was deactivated, and a walk of the department's
# name index for its active members read thousands of rows before the first one: an artefact of
# the data, not of the page. Every last name is held by about one member in 40 at every size.
NAME_SQL = (
    "a.f[1 + (hashtext('f' || i) & 2147483647) % 40] || ' ' "
    "|| chr(65 + (hashtext('m' || i) & 2147483647) % 26) || '. ' "
    "|| a.l[1 + (hashtext('l' || i) & 2147483647) % 40]"
)


def sql_array(values: list[str]) -> str:
    return "ARRAY[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


def steps(n: int, executions: int, logs_per_execution: int) -> list[tuple[str, str]]:
    """The seeding statements, in order. Only integers computed here and the word lists above
    are formatted into them (no outside input), hence the S608 exemptions."""
    spare = n // 5
    assets = n + spare
    events = executions // 2
    deactivated = n // 10
    arrays = (
        f"(SELECT {sql_array(FIRST)} f, {sql_array(LAST)} l, {sql_array(DEPARTMENTS)} d, "
        f"{sql_array(LOCATIONS)} loc) a"
    )
    # Member i is deactivated when i % 10 = 0; deactivated member i still holds its asset when
    # i % 50 = 0. Asset i (i <= N) belongs to member i.
    holds = "(i % 10 <> 0 OR i % 50 = 0)"
    return [
        (
            "members",
            "INSERT INTO members_member (id, full_name, email, employee_id, department, location, "  # noqa: S608
            "title, employment_type, status, deactivated_at, deactivation_reason, created_at, "
            "updated_at, assets_count, live_entitlements_count, deactivated_by_name, external_id, "
            "family_name, given_name, scim_user_name) "
            f"SELECT i, {NAME_SQL}, 'm' || i || "
            "'@scale.example', 'S' || lpad(i::text, 8, '0'), a.d[1 + i % 12], "
            "a.loc[1 + (i / 12) % 8], 'Engineer', 'full_time', "
            "CASE WHEN i % 10 = 0 THEN 'deactivated' ELSE 'active' END, "
            "CASE WHEN i % 10 = 0 THEN now() - (i % 700) * interval '1 hour' END, "
            "CASE WHEN i % 10 = 0 THEN 'Left the company' ELSE '' END, "
            # The counts the services keep, known from the shape: a holder has its one asset;
            # an active member holds licenses 1 and 2 + i % 15.
            f"now() - ({n} - i) * interval '1 second', now(), "
            f"CASE WHEN {holds} THEN 1 ELSE 0 END, CASE WHEN i % 10 <> 0 THEN 2 ELSE 0 END, "
            "'', '', '', '', '' "
            f"FROM generate_series(1, {n}) i, {arrays}",
        ),
        (
            "MDM connection",
            "INSERT INTO assets_mdmconnection (id, name, provider, base_url, credentials_encrypted,"
            " is_active, last_test_message, max_concurrent_requests, created_at, updated_at) "
            "VALUES (1, 'Scale MDM (simulator)', 'simulator', '', '', true, '', 5, now(), now())",
        ),
        (
            "assets",
            "INSERT INTO assets_asset (id, asset_tag, name, category, platform, manufacturer, "  # noqa: S608
            "model, serial_number, status, mdm_device_id, lock_state, locked_at, notes, "
            "created_at, updated_at, custodian_id, mdm_connection_id) "
            "SELECT i, 'SA-' || lpad(i::text, 8, '0'), "
            "CASE WHEN i % 3 = 2 THEN 'iPhone 15' ELSE 'MacBook Pro' END, "
            "CASE WHEN i % 3 = 2 THEN 'phone' ELSE 'laptop' END, "
            "CASE WHEN i % 3 = 2 THEN 'ios' ELSE 'macos' END, 'Apple', '', 'SSN' || i, "
            f"CASE WHEN i <= {n} AND {holds} THEN 'in_custody' ELSE 'available' END, "
            "CASE WHEN i % 4 = 0 THEN 'dev-' || i ELSE '' END, "
            f"CASE WHEN i <= {n} AND i % 50 = 0 AND i % 4 = 0 THEN 'locked' ELSE 'unlocked' END, "
            f"CASE WHEN i <= {n} AND i % 50 = 0 AND i % 4 = 0 THEN now() END, '', "
            "now() - i * interval '1 second', now(), "
            f"CASE WHEN i <= {n} AND {holds} THEN i END, CASE WHEN i % 4 = 0 THEN 1 END "
            f"FROM generate_series(1, {assets}) i",
        ),
        (
            "custody records",
            "INSERT INTO assets_custodyrecord (asset_id, member_id, checked_out_at, note) "
            "SELECT id, custodian_id, now() - interval '30 days', '' FROM assets_asset "
            "WHERE custodian_id IS NOT NULL",
        ),
        (
            "licenses",
            "INSERT INTO licenses_license (id, name, vendor, kind, seats, cost, notes, created_at,"  # noqa: S608
            " updated_at, seats_used) "
            "SELECT i, 'App ' || i, 'Vendor ' || (i % 5), "
            "CASE WHEN i > 16 THEN 'device' WHEN i % 2 = 0 THEN 'cloud' ELSE 'user' END, "
            f"{n * 2}, 1000, '', now(), now(), 0 FROM generate_series(1, 20) i",
        ),
        (
            "entitlements",
            "INSERT INTO licenses_entitlement (license_id, member_id, asset_id, assigned_at, "  # noqa: S608
            "revoked_at, revoked_reason) "
            "SELECT lic, i, NULL, now() - interval '300 days', "
            "CASE WHEN i % 10 = 0 THEN now() - (i % 700) * interval '1 hour' END, "
            "CASE WHEN i % 10 = 0 THEN 'Member deactivated' ELSE '' END "
            f"FROM generate_series(1, {n}) i, LATERAL (VALUES (1), (2 + i % 15)) v(lic) "
            "UNION ALL "
            "SELECT 17 + id % 4, NULL, id, now() - interval '300 days', NULL, '' "
            "FROM assets_asset WHERE custodian_id IS NOT NULL AND category = 'laptop'",
        ),
        (
            "automations",
            "INSERT INTO automations_automation (id, name, description, enabled, trigger_module, "
            "trigger_event, match, created_at, updated_at) "
            "SELECT i, 'Offboarding ' || i, '', true, 'members', 'member.deactivated', 'all', "
            "now(), now() FROM generate_series(1, 2) i",
        ),
        (
            "events",
            "INSERT INTO automations_event (id, kind, member_id, occurred_at, member_snapshot, "  # noqa: S608
            "status, attempts, processed_at, last_error) "
            "SELECT md5('event' || i)::uuid, 'member.deactivated', "
            f"10 * (1 + i % {max(deactivated, 1)}), "
            f"now() - ({events} - i) * interval '2 seconds', '{{}}', 'done', 1, now(), '' "
            f"FROM generate_series(1, {events}) i",
        ),
        (
            "executions",
            "INSERT INTO automations_execution (id, automation_id, automation_name, event_id, "  # noqa: S608
            "member_id, status, insight, created_at, started_at, finished_at) "
            "SELECT 2 * i - k, 2 - k, 'Offboarding ' || (2 - k), md5('event' || i)::uuid, "
            f"10 * (1 + i % {max(deactivated, 1)}), "
            "CASE WHEN i % 97 = 0 THEN 'failed' ELSE 'succeeded' END, '', "
            f"now() - ({events} - i) * interval '2 seconds' + k * interval '1 ms', now(), now() "
            f"FROM generate_series(1, {events}) i, generate_series(0, 1) k",
        ),
        (
            "action logs",
            "INSERT INTO automations_actionlog (id, key, execution_id, action_kind, target_type, "  # noqa: S608
            "target_label, status, insight, attempts, created_at, finished_at, detail) "
            f"SELECT (e - 1) * {logs_per_execution} + k, 'scale:' || e || ':' || k, e, "
            "(ARRAY['webhook', 'revoke_licenses', 'mdm_lock'])[1 + k % 3], "
            "(ARRAY['webhook', 'entitlement', 'asset'])[1 + k % 3], 'Target ' || k, "
            "CASE WHEN e % 97 = 0 AND k = 1 THEN 'failed' WHEN k % 7 = 6 THEN 'skipped' "
            "ELSE 'succeeded' END, '', 1, "
            f"now() - ({executions} - e) * interval '1 second' + k * interval '1 ms', now(), '{{}}'"
            f" FROM generate_series(1, {events * 2}) e, "
            f"generate_series(1, {logs_per_execution}) k",
        ),
        (
            "MDM lock commands",
            "INSERT INTO automations_mdmcommand (kind, status, pin_encrypted, vendor_command_id, "  # noqa: S608
            "message, phone, created_at, sent_at, last_error, response_excerpt, asset_id, "
            "connection_id, log_id) "
            "SELECT 'lock', 'acknowledged', '', 'sim-' || a.id, '', '', now(), now(), '', '', "
            f"a.id, 1, (e.id - 1) * {logs_per_execution} + 3 "
            "FROM assets_asset a JOIN LATERAL (SELECT id FROM automations_execution "
            "WHERE member_id = a.id ORDER BY created_at DESC LIMIT 1) e ON true "
            "WHERE a.lock_state = 'locked'",
        ),
        (
            "counts: seats used",
            "UPDATE licenses_license l SET seats_used = c.n, seats = c.n + 100 FROM (SELECT "
            "license_id, count(*) n FROM licenses_entitlement WHERE revoked_at IS NULL "
            "GROUP BY 1) c WHERE c.license_id = l.id",
        ),
    ]


SEQUENCED = (
    "members_member",
    "assets_asset",
    "licenses_license",
    "automations_automation",
    "automations_execution",
    "automations_actionlog",
    "assets_mdmconnection",
)
TABLES = [
    "automations_mdmcommand",
    "automations_webhookattempt",
    "automations_actionlog",
    "automations_execution",
    "automations_event",
    "automations_action",
    "automations_condition",
    "automations_automationchange",
    "automations_automation",
    "licenses_entitlement",
    "licenses_license",
    "assets_custodyrecord",
    "assets_asset",
    "assets_mdmconnection",
    "members_member",
    "assetsonar_auditevent",
    "assetsonar_tally",
]


def column_defaults() -> list[tuple[str, str, object]]:
    """(table, column, value) of every NOT NULL column of the seeded tables that has a default
    in its Django model (or is text): the INSERTs above name only the columns whose values the shape
    decides, so a column added later (a new flag, a new text field) gets its model's default
    instead of breaking the seed. Django keeps defaults in Python, not in the database."""
    from django.apps import apps

    found = []
    for model in apps.get_models():
        if model._meta.db_table not in TABLES:
            continue
        for f in model._meta.concrete_fields:
            if f.null or f.primary_key:
                continue
            # The model's default, or "" for a text field without one (as a form saves it).
            value = f.get_default()
            if not isinstance(value, (bool, int, str, dict, list)):
                continue  # None, a timestamp, a uuid: the INSERTs name those
            found.append((model._meta.db_table, f.column, value))
    return found


def set_column_defaults(cursor, defaults, *, drop: bool = False) -> None:
    import json

    from psycopg import sql

    for table, column, value in defaults:
        if drop:
            statement = sql.SQL("ALTER TABLE {} ALTER COLUMN {} DROP DEFAULT")
            cursor.execute(statement.format(sql.Identifier(table), sql.Identifier(column)))
            continue
        literal = json.dumps(value) if isinstance(value, (dict, list)) else value
        statement = sql.SQL("ALTER TABLE {} ALTER COLUMN {} SET DEFAULT {}").format(
            sql.Identifier(table), sql.Identifier(column), sql.Literal(literal)
        )
        cursor.execute(statement)


def seed(n: int, executions: int, logs_per_execution: int, resume: str = "") -> None:
    from django.db import connection

    from assetsonar.tallies import _recount_tallies

    if connection.vendor != "postgresql":
        raise SystemExit("seed_scale.py is for PostgreSQL; use manage.py seed_demo on SQLite.")
    started = time.monotonic()
    todo = steps(n, executions, logs_per_execution)
    if resume:  # an interrupted seed: its earlier steps committed (autocommit), go on from here
        todo = todo[[label for label, _ in todo].index(resume) :]
    with connection.cursor() as cursor:
        if not resume:
            existing = [t for t in TABLES if t in connection.introspection.table_names()]
            cursor.execute(f"TRUNCATE {', '.join(existing)} RESTART IDENTITY CASCADE")
        defaults = column_defaults()
        set_column_defaults(cursor, defaults)
        try:
            for label, statement in todo:
                step = time.monotonic()
                cursor.execute(statement)
                print(
                    f"  {label}: {cursor.rowcount:,} rows, {time.monotonic() - step:.1f} s",
                    flush=True,
                )
        finally:  # the schema as the migrations left it
            set_column_defaults(cursor, defaults, drop=True)
        # Sequences past the explicit ids, so rows the portal adds later get new ones.
        for table in SEQUENCED:
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # noqa: S608
                f"(SELECT coalesce(max(id), 1) FROM {table}))"
            )
    _recount_tallies(fix=True)
    step = time.monotonic()
    with connection.cursor() as cursor:
        # Statistics for the planner and the visibility map for index-only scans (counts), as
        # autovacuum would leave a database that has run for a while.
        cursor.execute("VACUUM ANALYZE")
    print(f"  vacuum analyze: {time.monotonic() - step:.1f} s")
    print(
        f"Seeded {n:,} members, {executions:,} executions, "
        f"{executions * logs_per_execution:,} action logs in {time.monotonic() - started:.0f} s."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, required=True)
    parser.add_argument("--executions", type=int, help="default: as many as members")
    parser.add_argument("--logs-per-execution", type=int, default=10)
    parser.add_argument("--resume", default="", help="the step to go on from (its label)")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "assetsonar.test_settings")
    import django

    django.setup()
    seed(args.members, args.executions or args.members, args.logs_per_execution, args.resume)


if __name__ == "__main__":
    main()
