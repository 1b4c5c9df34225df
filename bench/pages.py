"""Time every portal list and detail page against the Django admin page that shows the same
data, interleaved in one run, on a data set of any size.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/as_scale_p1m \\
        .venv/bin/python bench/pages.py --members 1000000 --baseline bench/pages-1000.json

Seeds the database first when it has fewer members than asked (PostgreSQL: bench/seed_scale.py,
minutes even at 1M members with 1M executions and 10M action logs; SQLite: seed_demo). Signs in a
superuser with Django's test client (DEBUG off), warms each page, then times the pages round
robin, one request of each page per round, so a busy moment of the machine falls on all pages
alike. Prints the median and 95th percentile per page, the queries of one request, the ratio to
the admin page that shows the same data, and with --baseline (the --json of a run at another
size) the ratio to that run. Targets (issue 12): median <= 50 ms, <= the admin's, and <= 1.5x the
1k run. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
TARGET_MS = 50.0
TARGET_GROWTH = 1.5
# A page slower than this on its warm-up request is timed fewer times (an admin changelist that
# searches 10 million log rows takes seconds a request).
SLOW_MS = 1000.0
VERY_SLOW_MS = 10_000.0


@dataclass
class Page:
    label: str
    url: str | None  # None: the URL does not exist
    counterpart: str | None = None  # label of the admin page that shows the same data
    ours: bool = True


@dataclass
class Result:
    label: str
    url: str | None
    counterpart: str | None
    ours: bool
    status: int | str = "-"
    samples: list[float] = field(default_factory=list)
    queries: int | None = None

    @property
    def median(self) -> float | None:
        return statistics.median(self.samples) if self.samples else None

    @property
    def p95(self) -> float | None:
        if len(self.samples) < 2:
            return self.median
        return statistics.quantiles(self.samples, n=20)[18]


def setup_django() -> None:
    sys.path[:0] = [str(ROOT), str(BENCH)]
    # The test settings: DEBUG off (cached templates, no query log), no HTTPS redirect, no
    # SECRET_KEY needed.
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "assetsonar.test_settings")
    import django

    django.setup()


def ensure_data(members: int, seed: int) -> None:
    from django.core.management import call_command
    from django.db import connection

    from members.models import Member

    # A new database, or one an older checkout migrated: bring the schema up to date first.
    call_command("migrate", verbosity=0)
    have = Member.objects.count()
    if have >= members:
        print(f"Using the {have:,} members already in the database.")
        return
    print(f"The database has {have:,} members; seeding {members:,} (this replaces them) ...")
    if connection.vendor == "postgresql":
        import seed_scale

        seed_scale.seed(members, members, 10)
    else:
        call_command("seed_demo", members=members, seed=seed, reset=have > 0)


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f} ({os.cpu_count()} CPUs)"


def build_pages(
    search: str, client, paged_search: str = "ana", *, only: list[str] | None = None
) -> list[Page]:
    from django.db.models import Q
    from django.urls import NoReverseMatch, reverse

    from assets.models import Asset
    from assetsonar import paging
    from automations.models import Automation, Execution
    from licenses.models import License
    from members import selectors
    from members.models import Member
    from members.views import PAGE_SIZE as MEMBER_PAGE_SIZE

    def url(name: str, *args: object, query: str = "") -> str | None:
        try:
            return reverse(name, args=args) + (f"?{query}" if query else "")
        except NoReverseMatch:
            return None

    holder = (
        Member.objects.filter(assets_count__gt=0, live_entitlements_count__gt=0)
        .order_by("pk")
        .first()
    )
    leaver = (
        Member.objects.filter(status="deactivated", executions__isnull=False).order_by("pk").first()
    )
    locked = (
        Asset.objects.filter(~Q(lock_state=Asset.LockState.UNLOCKED)).order_by("pk").first()
        or Asset.objects.order_by("pk").first()
    )
    biggest = License.objects.order_by("-seats_used", "pk").first()
    automation = Automation.objects.order_by("pk").first()
    execution = Execution.objects.order_by("-created_at", "-id").first()
    count = Member.objects.count()
    pk = {
        "holder": holder.pk if holder else 0,
        "leaver": leaver.pk if leaver else 0,
        "asset": locked.pk if locked else 0,
        "license": biggest.pk if biggest else 0,
        "automation": automation.pk if automation else 0,
        "execution": execution.pk if execution else 0,
    }
    ordering = selectors.member_ordering("name")
    keys = paging._keys(ordering)
    names = [f"keyset_{i}" for i in range(len(keys))]

    def after_row(queryset, index: int) -> str:
        """The keyset token of the page that follows row `index` of `queryset` by name."""
        row = (
            queryset.annotate(**dict(zip(names, (e for e, _ in keys), strict=True)))
            .order_by(*ordering)[index : index + 1]
            .first()
        )
        return (paging._after(row, names) or "") if row is not None else ""

    # A keyset page near the end of the list: the sort key of the member at 90% of it.
    deep_after = after_row(Member.objects.all(), max(0, int(count * 0.9) - 1))
    # A search's second page ("Next" after its first, by keyset): the key of its last row (the
    # admin's second page of the same search, p=1, shows rows 101-200). Its own term, one with a
    # second page at every size (`ana`: 9% of the seeded names, 91 matches at 1k).
    search_after = after_row(
        selectors.member_search(Member.objects.all(), paged_search), MEMBER_PAGE_SIZE - 1
    )
    last_numbered = max(1, paging.OFFSET_LIMIT // 50)
    # The admin shows 100 a page, numbered from 0: the page holding the same offset.
    admin_numbered = (last_numbered - 1) * 50 // 100
    admin_deep = max(0, int(count * 0.9) // 100)
    leaver_email = leaver.email if leaver else "nobody"
    m = "admin:members_member_changelist"
    pages = [
        Page("member list", url("members:list"), "admin members"),
        Page(f"member list ?q={search}", url("members:list", query=f"q={search}"), "admin ?q"),
        Page(
            f"member list ?q={paged_search} page 2",
            url("members:list", query=f"q={paged_search}&after={search_after}"),
            "admin ?q p=1",
        ),
        Page(
            "member list dept+status",
            url("members:list", query="department=Engineering&status=active"),
            "admin dept+status",
        ),
        Page("member list holding=1", url("members:list", query="holding=1"), "admin members"),
        Page(
            "member list left+holding",
            url("members:list", query="status=deactivated&holding=1"),
            "admin status=deactivated",
        ),
        Page("member list sort -name", url("members:list", query="sort=-name"), "admin o=-1"),
        Page("member list sort dept", url("members:list", query="sort=department"), "admin o=3"),
        Page("member list sort loc", url("members:list", query="sort=location"), "admin o=4"),
        Page("member list sort status", url("members:list", query="sort=status"), "admin o=5"),
        Page(
            "member list sort created", url("members:list", query="sort=-created"), "admin members"
        ),
        Page(
            f"member list page {last_numbered}",
            url("members:list", query=f"page={last_numbered}"),
            f"admin p={admin_numbered}",
        ),
        Page(
            "member list keyset at 90%",
            url("members:list", query=f"after={deep_after}"),
            f"admin p={admin_deep}",
        ),
        Page("member detail", url("members:detail", pk["holder"]), "admin member change"),
        Page(
            "member actions panel",
            url("automations:member_actions_panel", pk["leaver"]),
            "admin action logs ?q=member",
        ),
        Page("asset list", url("assets:list"), "admin assets"),
        Page("asset detail (lock notice)", url("assets:detail", pk["asset"]), "admin asset change"),
        Page("license list", url("licenses:list"), "admin licenses"),
        Page("license detail (largest)", url("licenses:detail", pk["license"]), "admin license"),
        Page("automations list", url("automations:list"), "admin automations"),
        Page("executions list", url("automations:executions"), "admin executions"),
        Page(
            "execution detail",
            url("automations:execution_detail", pk["execution"]),
            "admin execution change",
        ),
        Page("dashboard", url("dashboard"), "admin index"),
    ]
    admin = [
        ("admin members", url(m)),
        ("admin ?q", url(m, query=f"q={search}")),
        ("admin ?q p=1", url(m, query=f"q={paged_search}&p=1")),
        ("admin dept+status", url(m, query="department=Engineering&status__exact=active")),
        ("admin status=deactivated", url(m, query="status__exact=deactivated")),
        ("admin o=-1", url(m, query="o=-1")),
        ("admin o=3", url(m, query="o=3")),
        ("admin o=4", url(m, query="o=4")),
        ("admin o=5", url(m, query="o=5")),
        (f"admin p={admin_numbered}", url(m, query=f"p={admin_numbered}")),
        (f"admin p={admin_deep}", url(m, query=f"p={admin_deep}")),
        ("admin member change", url("admin:members_member_change", pk["holder"])),
        (
            "admin action logs ?q=member",
            url("admin:automations_actionlog_changelist", query=f"q={leaver_email}"),
        ),
        ("admin assets", url("admin:assets_asset_changelist")),
        ("admin asset change", url("admin:assets_asset_change", pk["asset"])),
        ("admin licenses", url("admin:licenses_license_changelist")),
        ("admin license", url("admin:licenses_license_change", pk["license"])),
        # Not a target: the admin page that lists the license's entitlements (the change page
        # above shows none), for the reader who wants the like-for-like figure.
        (
            "admin license entitlements",
            url(
                "admin:licenses_entitlement_changelist",
                query=f"license__id__exact={pk['license']}",
            ),
        ),
        ("admin automations", url("admin:automations_automation_changelist")),
        ("admin executions", url("admin:automations_execution_changelist")),
        ("admin execution change", url("admin:automations_execution_change", pk["execution"])),
        ("admin index", url("admin:index")),
    ]
    # At 1k members the admin's last numbered page and its page at 90% are the same page (p=9):
    # measured once.
    admin = list(dict(admin).items())
    if only:
        pages = [page for page in pages if any(part in page.label for part in only)]
        admin = [(label, link) for label, link in admin if label in {p.counterpart for p in pages}]
    return pages + [Page(label, link, ours=False) for label, link in admin]


def timed_get(client, url: str) -> tuple[int, float]:
    started = time.perf_counter()
    response = client.get(url)
    return response.status_code, (time.perf_counter() - started) * 1000


def measure(client, pages: list[Page], repeat: int) -> list[Result]:
    """Warm every page, then `repeat` rounds of one request per page."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    results = [Result(p.label, p.url, p.counterpart, p.ours) for p in pages]
    wanted = {}
    for result in results:
        if result.url is None:
            result.status = "no URL"
            continue
        with CaptureQueriesContext(connection) as queries:
            status, first_ms = timed_get(client, result.url)
        result.status = status
        result.queries = len(queries)
        if status != 200:
            continue
        if first_ms < SLOW_MS:
            timed_get(client, result.url)  # templates compiled, the database's buffers warm
            wanted[result.label] = repeat
        elif first_ms < VERY_SLOW_MS:  # seconds a request: a few samples say enough
            wanted[result.label] = max(2, repeat // 10)
        else:  # tens of seconds: the first request is the only sample
            result.samples.append(first_ms)
        print(f"  warm: {result.label} ({first_ms:.0f} ms)", file=sys.stderr, flush=True)
    for round_number in range(repeat):
        for result in results:
            if len(result.samples) < wanted.get(result.label, 0):
                result.samples.append(timed_get(client, result.url)[1])
        if round_number % 5 == 4:
            print(f"  round {round_number + 1}/{repeat}", file=sys.stderr, flush=True)
    return results


def print_table(results: list[Result], baseline: dict[str, float]) -> list[str]:
    """The table; returns the targets missed."""
    by_label = {r.label: r for r in results}
    header = "{:<30} {:>6} {:>8} {:>8} {:>5} {:>7} {:>7}  {}".format(
        "page", "status", "med ms", "p95 ms", "qs", "/admin", "/base", "targets"
    )
    print(header)
    print("-" * len(header))
    missed = []
    for r in results:
        admin = by_label.get(r.counterpart or "")
        ratio = growth = ""
        notes = []
        if r.median is not None and r.ours:
            if r.median > TARGET_MS:
                notes.append(f"> {TARGET_MS:.0f} ms")
            if admin is not None and admin.median:
                ratio = f"{r.median / admin.median:.2f}"
                if r.median > admin.median:
                    notes.append("slower than admin")
            if baseline.get(r.label):
                growth = f"{r.median / baseline[r.label]:.2f}"
                if r.median > TARGET_GROWTH * baseline[r.label]:
                    notes.append(f"> {TARGET_GROWTH}x base")
            if notes:
                missed.append(f"{r.label}: {', '.join(notes)}")
        elif r.median is not None and baseline.get(r.label):
            growth = f"{r.median / baseline[r.label]:.2f}"
        median = f"{r.median:.1f}" if r.median is not None else "-"
        p95 = f"{r.p95:.1f}" if r.p95 is not None else "-"
        queries = str(r.queries) if r.queries is not None else "-"
        verdict = ("MISSED: " + ", ".join(notes)) if notes else ("met" if r.ours else "")
        print(
            f"{r.label[:30]:<30} {r.status!s:>6} {median:>8} {p95:>8} {queries:>5} "
            f"{ratio:>7} {growth:>7}  {verdict}"
        )
    return missed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=100_000, help="data size (default 100,000)")
    parser.add_argument("--repeat", type=int, default=30, help="timed requests per page")
    parser.add_argument("--search", default="patel", help="search term for the ?q= pages")
    parser.add_argument(
        "--paged-search", default="ana", help="search term whose second page is measured"
    )
    parser.add_argument(
        "--only",
        default="",
        help="only the pages whose name contains one of these (comma separated)",
    )
    parser.add_argument("--seed", type=int, default=1, help="seed for seed_demo (SQLite)")
    parser.add_argument("--json", help="write the medians to this file (a later --baseline)")
    parser.add_argument("--baseline", help="the --json of a run at another size, to compare")
    args = parser.parse_args()

    setup_django()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    print(f"Database: {connection.vendor} {settings.DATABASES['default']['NAME']}")
    print(f"Load average at start: {load_average()}")
    ensure_data(args.members, args.seed)
    # DEBUG off serves the static files from their manifest, as `make run` does: a fresh
    # checkout has none yet.
    call_command("collectstatic", "--noinput", verbosity=0)
    user, _ = get_user_model().objects.get_or_create(
        username="bench-admin", defaults={"is_staff": True, "is_superuser": True}
    )
    # The host must be in ALLOWED_HOSTS; the test client's "testserver" is not.
    client = Client(raise_request_exception=False, SERVER_NAME="localhost")
    client.force_login(user)
    baseline = {}
    if args.baseline:
        baseline = json.loads(Path(args.baseline).read_text())["medians"]
    only = [part for part in args.only.split(",") if part]
    results = measure(
        client, build_pages(args.search, client, args.paged_search, only=only), args.repeat
    )
    print(f"Load average at end: {load_average()}")
    print()
    from members.models import Member

    print(f"{Member.objects.count():,} members, {args.repeat} rounds, DEBUG={settings.DEBUG}")
    missed = print_table(results, baseline)
    print()
    if missed:
        print(f"Targets missed ({len(missed)}):")
        for line in missed:
            print(f"  {line}")
    else:
        print("Every portal page met its targets.")
    if args.json:
        medians = {r.label: r.median for r in results if r.median is not None}
        Path(args.json).write_text(
            json.dumps(
                {
                    "members": args.members,
                    "load": load_average(),
                    "medians": medians,
                    "results": [asdict(r) | {"median": r.median} for r in results],
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
