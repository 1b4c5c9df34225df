"""Time the SCIM endpoint's list, filters and deep pages on a large member table, interleaved with
the portal's own member list (the anchor: a page with a known budget over the same table).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/<your database> \\
        .venv/bin/python bench/scim.py --members 100000 --repeat 20

Adds plain members (bulk_create) until the table holds --members, creates a SCIM token and signs
in a superuser, then for each request prints the server-side median and 95th percentile (Django's
test client, in process, DEBUG off), its SQL queries, and its median over the anchor's, measured
in the same rounds (one of ours, then one anchor, repeated). The load average is printed first:
the figures only compare with each other on the same quiet machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def setup_django() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "assetsonar.test_settings")
    import django

    django.setup()


def ensure_members(count: int) -> None:
    from members.models import Member

    have = Member.objects.count()
    if have >= count:
        print(f"Using the {have:,} members already in the database.")
        count = have
    else:
        print(f"Adding {count - have:,} members ...")
    batch = []
    for i in range(have, count):
        batch.append(
            Member(
                full_name=f"Bench Person {i}",
                email=f"bench.person{i}@example.com",
                given_name="Bench",
                family_name=f"Family{i % 5000}",
                employee_id=f"B{i:07d}",
                external_id=f"ext-{i}",
                department=("Engineering", "Sales", "Finance", "Support")[i % 4],
                location=("Berlin", "Lisbon", "Austin")[i % 3],
                title="Engineer",
            )
        )
        if len(batch) == 5000:
            Member.objects.bulk_create(batch)
            batch = []
    Member.objects.bulk_create(batch)
    from django.db import connection

    if connection.vendor == "postgresql":
        # Fresh statistics, as autovacuum would gather them after a bulk load.
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE members_member")


def timed(client, url: str, **headers) -> float:
    started = time.perf_counter()
    response = client.get(url, **headers)
    elapsed = (time.perf_counter() - started) * 1000
    assert response.status_code == 200, (url, response.status_code, response.content[:300])
    return elapsed


def queries(client, url: str, **headers) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        client.get(url, **headers)
    return len(captured)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    setup_django()

    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.cache import cache
    from django.test import Client

    from members.models import Member
    from provisioning.services import scim_token_create

    settings.SCIM_RATE_LIMIT = 10**9
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]  # Django's test client
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"database: {settings.DATABASES['default']['ENGINE']}, DEBUG={settings.DEBUG}")
    ensure_members(args.members)
    total = Member.objects.count()
    _token, secret = scim_token_create(name=f"bench {time.time()}", read_only=True, actor=None)
    auth = {"HTTP_AUTHORIZATION": f"Bearer {secret}"}
    # The identity provider sends no session cookie; the anchor is a signed-in person's page.
    idp = Client()
    client = Client()
    admin, _ = get_user_model().objects.get_or_create(
        username="scim-bench", defaults={"is_superuser": True, "is_staff": True}
    )
    client.force_login(admin)
    middle = Member.objects.order_by("pk").values_list("email", "family_name")[total // 2]
    anchor = "/members/?page=2"
    ours = [
        ("GET /Users?count=100", "/scim/v2/Users?count=100"),
        ("GET /Users deep page (startIndex=50,000)", "/scim/v2/Users?startIndex=50000&count=100"),
        (
            "GET /Users last page",
            f"/scim/v2/Users?startIndex={max(1, total - 99)}&count=100",
        ),
        ("filter userName eq", f'/scim/v2/Users?filter=userName eq "{middle[0].upper()}"'),
        (
            "filter name.familyName eq, 100 per page",
            f'/scim/v2/Users?filter=name.familyName eq "{middle[1]}"&count=100',
        ),
        ("filter externalId eq", f'/scim/v2/Users?filter=externalId eq "ext-{total // 3}"'),
        (
            "filter meta.lastModified gt (none newer)",
            '/scim/v2/Users?filter=meta.lastModified gt "2100-01-01T00:00:00Z"',
        ),
    ]
    header = f"{'request':<44} {'median ms':>10} {'p95 ms':>8} {'queries':>8} {'÷ anchor':>9}"
    print(f"{total:,} members; anchor: the portal's member list, {anchor}")
    print(header)
    print("-" * len(header))
    anchor_all = []
    for label, url in ours:
        cache.clear()
        timed(idp, url, **auth)  # warm
        timed(client, anchor)
        samples, anchors = [], []
        for _ in range(args.repeat):
            samples.append(timed(idp, url, **auth))
            anchors.append(timed(client, anchor))
        anchor_all += anchors
        p95 = statistics.quantiles(samples, n=20)[18]
        ratio = statistics.median(samples) / statistics.median(anchors)
        print(
            f"{label:<44} {statistics.median(samples):>10.1f} {p95:>8.1f} "
            f"{queries(idp, url, **auth):>8} {ratio:>9.2f}"
        )
    print(
        f"{'anchor ' + anchor:<44} {statistics.median(anchor_all):>10.1f} "
        f"{statistics.quantiles(anchor_all, n=20)[18]:>8.1f} {queries(client, anchor):>8} "
        f"{1:>9.2f}"
    )
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
