"""Time the portal's busiest pages against their Django admin counterparts on a large data set.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/assetsonar_pages \\
        .venv/bin/python bench/pages.py --members 100000 --repeat 30

Seeds the database first (seed_demo) when it has fewer members than asked, signs in a superuser
with Django's test client, and for each page prints the server-side median and 95th percentile
over the repeated requests, the number of SQL queries, and how the portal page compares with the
admin page that shows the same thing. See bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Page:
    label: str
    url: str | None  # None: the URL does not exist (yet)
    counterpart: str | None = None  # label of the admin page it is compared with


@dataclass
class Result:
    page: Page
    status: int | str
    median_ms: float | None = None
    p95_ms: float | None = None
    queries: int | None = None


def setup_django() -> None:
    sys.path.insert(0, str(ROOT))
    # The test settings: DEBUG off (production-like templates and no query log), but no HTTPS
    # redirect and no SECRET_KEY needed.
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "assetsonar.test_settings")
    import django

    django.setup()


def ensure_data(members: int, seed: int) -> None:
    from django.core.management import call_command

    from members.models import Member

    have = Member.objects.count()
    if have >= members:
        print(f"Using the {have:,} members already in the database.")
        return
    print(f"The database has {have:,} members; seeding {members:,} (this replaces them) ...")
    call_command("seed_demo", members=members, seed=seed, reset=have > 0)


def build_pages(search: str) -> list[Page]:
    from django.db.models import Count, Q
    from django.urls import NoReverseMatch, reverse

    from licenses.models import License
    from members.models import Member

    def url(name: str, *args: object, query: str = "") -> str | None:
        try:
            return reverse(name, args=args) + (f"?{query}" if query else "")
        except NoReverseMatch:
            return None

    member = Member.objects.filter(assets_in_custody__isnull=False).order_by("pk").first()
    member_pk = member.pk if member else 0
    biggest = (
        License.objects.annotate(
            live=Count("entitlements", filter=Q(entitlements__revoked_at__isnull=True))
        )
        .order_by("-live", "pk")
        .first()
    )
    license_pk = biggest.pk if biggest else 0
    filtered = "department=Engineering&status=active"
    return [
        Page("member list", url("members:list"), "admin members"),
        Page(
            f"member list ?q={search}", url("members:list", query=f"q={search}"), "admin members ?q"
        ),
        Page("member list filtered", url("members:list", query=filtered), "admin members filtered"),
        Page("member detail", url("members:detail", member_pk), "admin member change"),
        Page("asset list", url("assets:list"), "admin assets"),
        Page("license list", url("licenses:list"), "admin licenses"),
        Page(
            "license detail (largest)", url("licenses:detail", license_pk), "admin license change"
        ),
        Page("admin members", url("admin:members_member_changelist")),
        Page("admin members ?q", url("admin:members_member_changelist", query=f"q={search}")),
        Page(
            "admin members filtered",
            url(
                "admin:members_member_changelist",
                query="department=Engineering&status__exact=active",
            ),
        ),
        Page("admin member change", url("admin:members_member_change", member_pk)),
        Page("admin assets", url("admin:assets_asset_changelist")),
        Page("admin licenses", url("admin:licenses_license_changelist")),
        Page("admin license change", url("admin:licenses_license_change", license_pk)),
    ]


def measure(client, page: Page, repeat: int) -> Result:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    if page.url is None:
        return Result(page, "no URL")
    first = client.get(page.url)
    if first.status_code != 200:
        return Result(page, first.status_code)
    client.get(page.url)  # warm caches (templates, the database's buffers)
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        client.get(page.url)
        samples.append((time.perf_counter() - started) * 1000)
    with CaptureQueriesContext(connection) as queries:
        client.get(page.url)
    p95 = statistics.quantiles(samples, n=20)[18] if len(samples) > 1 else samples[0]
    return Result(page, 200, statistics.median(samples), p95, len(queries))


def print_table(results: list[Result]) -> None:
    by_label = {r.page.label: r for r in results}
    header = "{:<34} {:>6} {:>10} {:>8} {:>8} {:>11}".format(
        "page", "status", "median ms", "p95 ms", "queries", "ours/admin"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        ratio = ""
        other = by_label.get(r.page.counterpart or "")
        if r.median_ms is not None and other is not None and other.median_ms:
            ratio = f"{r.median_ms / other.median_ms:.2f}"
        median = f"{r.median_ms:.1f}" if r.median_ms is not None else "-"
        p95 = f"{r.p95_ms:.1f}" if r.p95_ms is not None else "-"
        queries = str(r.queries) if r.queries is not None else "-"
        print(f"{r.page.label:<34} {r.status!s:>6} {median:>10} {p95:>8} {queries:>8} {ratio:>11}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=100_000, help="data size (default 100,000)")
    parser.add_argument("--repeat", type=int, default=30, help="timed requests per page")
    parser.add_argument("--search", default="patel", help="search term for the ?q= pages")
    parser.add_argument("--seed", type=int, default=1, help="seed for seed_demo")
    args = parser.parse_args()

    setup_django()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client

    print(f"Database: {connection.vendor} {settings.DATABASES['default']['NAME']}")
    ensure_data(args.members, args.seed)
    user, _ = get_user_model().objects.get_or_create(
        username="bench-admin", defaults={"is_staff": True, "is_superuser": True}
    )
    # The host must be in ALLOWED_HOSTS; the test client's "testserver" is not.
    client = Client(raise_request_exception=False, SERVER_NAME="localhost")
    client.force_login(user)
    results = []
    for page in build_pages(args.search):
        result = measure(client, page, args.repeat)
        print(f"  {page.label}: {result.status}", file=sys.stderr)
        results.append(result)
    print()
    print_table(results)


if __name__ == "__main__":
    main()
