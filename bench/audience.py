"""How long the automation page's "Who it would run for now" takes (its count, capped at 10,000,
and its first page of ten), and the deactivation preview of one member, on a database of N
members. Seeds the members it needs (bulk inserts: 12 departments, 8 locations, four email
domains, the counters the member row keeps) when the database has fewer.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/as_preview \\
        .venv/bin/python bench/audience.py --members 100000

Prints, per set of conditions, the median of --repeat rounds in milliseconds and the queries.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEPARTMENTS = [
    "Engineering",
    "Sales",
    "Support",
    "Marketing",
    "Finance",
    "People",
    "Legal",
    "Operations",
    "Design",
    "Product",
    "Security",
    "Research",
]
LOCATIONS = ["Berlin", "London", "Lisbon", "Madrid", "Paris", "Warsaw", "Toronto", "Singapore"]
DOMAINS = ["example.com", "eu.example.com", "contractors.example.org", "example.net"]


def setup_django() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "assetsonar.test_settings")
    import django

    django.setup()


def seed(n: int) -> None:
    from members.models import Member

    have = Member.objects.count()
    batch = []
    for i in range(have, n):
        batch.append(
            Member(
                full_name=f"Member {i:07d}",
                email=f"m{i}@{DOMAINS[i % 4]}",
                employee_id=f"B{i:07d}",
                department=DEPARTMENTS[i % 12],
                location=LOCATIONS[i % 8],
                title="Engineer" if i % 3 else "Contractor",
                status="deactivated" if i % 10 == 0 else "active",
                deactivated_at=None,
                assets_count=i % 3,
                live_entitlements_count=i % 5,
            )
        )
        if batch[-1].status == "deactivated":
            from django.utils import timezone

            batch[-1].deactivated_at = timezone.now()
        if len(batch) == 5000:
            Member.objects.bulk_create(batch)
            batch = []
    if batch:
        Member.objects.bulk_create(batch)


CASES = {
    "department is engineering": ("all", [("department", "is", "engineering")]),
    "all: department + location": (
        "all",
        [("department", "is", "engineering"), ("location", "is", "berlin")],
    ),
    "any: department or location": (
        "any",
        [("department", "is", "legal"), ("location", "is", "paris")],
    ),
    "email domain is eu.example.com": ("all", [("email_domain", "is", "eu.example.com")]),
    "title contains contract (rare-ish)": ("all", [("title", "contains", "contract")]),
    "no condition": ("all", []),
    "location is Zürich (checked one by one)": (
        "all",
        [("location", "is", "zürich"), ("department", "is", "engineering")],
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--members", type=int, required=True)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    setup_django()
    from django.db import connection, reset_queries
    from django.test.utils import CaptureQueriesContext

    from assetsonar.paging import paginate
    from automations.models import Automation, Condition
    from automations.selectors_preview import AUDIENCE_ORDERING, automation_audience
    from members.models import Member

    seed(args.members)
    print(f"{Member.objects.count():,} members; load average {os.getloadavg()[0]:.2f}")
    print(f"{'conditions':<42} {'count':>8} {'median ms':>10} {'queries':>8}")
    for label, (match, conditions) in CASES.items():
        automation = Automation.objects.create(name=f"bench {label}", match=match, enabled=False)
        for pos, (field, op, value) in enumerate(conditions):
            Condition.objects.create(
                automation=automation, position=pos, field=field, operator=op, value=value
            )
        automation = Automation.objects.prefetch_related("conditions").get(pk=automation.pk)
        times = []
        for _ in range(args.repeat):
            reset_queries()
            with CaptureQueriesContext(connection) as queries:
                start = time.perf_counter()
                audience = automation_audience(automation)
                if audience.in_database:
                    page = paginate(
                        audience.queryset, ordering=AUDIENCE_ORDERING, per_page=10, number=1
                    )
                    count = f"{page.paginator.count:,}{'+' if page.paginator.capped else ''}"
                    list(page.object_list)
                else:
                    count = f"{len(audience.matched)}/{audience.checked}"
                times.append((time.perf_counter() - start) * 1000)
        print(
            f"{label:<42} {count:>8} {statistics.median(times):>10.1f} "
            f"{len(queries.captured_queries):>8}"
        )
        automation.delete()


if __name__ == "__main__":
    main()
