"""Fill the database with a realistic demo company, or with a large data set for benchmarks.

    manage.py seed_demo --if-empty            # the demo `make run` loads on first start
    manage.py seed_demo --members 100000      # ~120,000 assets and ~300,000 entitlements
    manage.py seed_demo --reset --seed 7      # start over (demo and benchmark databases only)

Rows are written with `bulk_create`, bypassing the services on purpose: the services lock, audit
and fire the deactivation trigger one row at a time, which a seed must not do (no audit trail of
made-up history, no offboarding automations for members who "left" months ago) and which would
take hours for 100,000 members. The data still keeps every rule the services enforce: an asset has
a custodian exactly when it is in custody, with exactly one open custody record; entitlements have
the target their license's kind asks for and no license has fewer seats than live entitlements;
deactivated members have a deactivation date and reason.

The same --seed gives the same company (names, devices, licenses); dates are relative to today so
"expires soon" stays true. The work is a list of steps (STEPS below), each a function taking the
shared `Seed`; add a function to the list to seed something more.
"""

from __future__ import annotations

import math
import random
import time
import unicodedata
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import islice
from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError
from django.core.management.color import no_style
from django.db import connection, transaction
from django.utils import timezone

from assets.models import Asset, CustodyRecord, MDMConnection
from assetsonar.models import AuditEvent
from licenses.models import Entitlement, License
from members.models import Member

DEMO_MEMBERS = 300
DEMO_ASSETS = 400
ASSETS_PER_MEMBER = 1.2
BATCH_SIZE = 5000
EMAIL_DOMAIN = "northwind.example"

# A list literal of 110 names each would be formatted one name a line.
FIRST_NAMES = (  # noqa: SIM905
    "Aaliyah Aarav Abigail Adaeze Adrian Aiko Aisha Alejandro Alex Amara Amelia Ana Andrea Anja "
    "Arjun Astrid Ava Ayesha Ben Bianca Carlos Carmen Charlotte Chen Chloe Daniel David Diego "
    "Dmitri Elena Elif Eliza Emil Emily Emma Ethan Fatima Felix Finn Freya Gabriel Grace Hana "
    "Hannah Harper Hiroshi Ibrahim Ingrid Isabella Ivan Jack Jamal James Jana Javier Jin Jonas "
    "Julia Kai Karin Kofi Laila Lars Laura Leah Leon Liam Lina Lucas Luis Lukas Maria Mariam "
    "Mateo Maya Mei Mia Miguel Mila Mohammed Nadia Naomi Nikolai Noah Nora Olivia Omar Oscar "
    "Paul Priya Rafael Ravi Rosa Ryan Sakura Samuel Sara Sebastian Sofia Sophie Tariq Theo "
    "Thomas Valentina Victor Wei Yara Yusuf Zara Zoe"
).split()
LAST_NAMES = (  # noqa: SIM905
    "Abbott Adeyemi Ahmed Alvarez Andersen Bauer Becker Bergström Brown Campbell Castillo Chen "
    "Clarke Costa Cruz Davies Dubois Edwards Evans Fischer Fernández Fraser García Gonzalez "
    "Gupta Hansen Hartmann Hayashi Hernández Hoffmann Hughes Ito Jansen Johnson Jones Kapoor "
    "Kaur Kim Klein Kowalski Kumar Larsen Lee Lehmann Lewis Li Lim Lopez Martin Martínez Meyer "
    "Miller Moreau Müller Murphy Nakamura Nguyen Nielsen Novak Okafor Olsen Ong Park Patel "
    "Pereira Petrov Phillips Ramírez Reyes Richter Roberts Robinson Rodríguez Rossi Sánchez "
    "Santos Schmidt Schneider Schulz Shah Silva Singh Smith Sokolov Suzuki Tan Tanaka Taylor "
    "Thompson Torres Tran Wagner Walker Wang Weber Williams Wilson Wong Wright Yamamoto Yilmaz "
    "Young Zhang Zimmermann"
).split()

# name: (share of the company, (head title, lead title), individual titles)
DEPARTMENTS: dict[str, tuple[float, tuple[str, str], list[str]]] = {
    "Engineering": (
        0.28,
        ("VP Engineering", "Engineering Manager"),
        [
            "Software Engineer",
            "Senior Software Engineer",
            "Staff Engineer",
            "Site Reliability Engineer",
            "QA Engineer",
            "Data Engineer",
        ],
    ),
    "Sales": (
        0.15,
        ("VP Sales", "Sales Manager"),
        ["Account Executive", "Sales Development Representative", "Solutions Engineer"],
    ),
    "Marketing": (
        0.08,
        ("Chief Marketing Officer", "Marketing Lead"),
        ["Product Marketing Manager", "Content Strategist", "Growth Marketer"],
    ),
    "Finance": (
        0.05,
        ("Chief Financial Officer", "Finance Manager"),
        ["Financial Analyst", "Accountant", "Payroll Specialist"],
    ),
    "People": (
        0.04,
        ("Chief People Officer", "People Lead"),
        ["People Partner", "Recruiter", "Talent Sourcer"],
    ),
    "IT": (
        0.04,
        ("Head of IT", "IT Manager"),
        ["IT Support Specialist", "Systems Administrator", "Security Engineer"],
    ),
    "Support": (
        0.12,
        ("Head of Support", "Support Team Lead"),
        ["Customer Support Specialist", "Support Engineer", "Technical Account Manager"],
    ),
    "Design": (
        0.07,
        ("Head of Design", "Design Lead"),
        ["Product Designer", "UX Researcher", "Brand Designer"],
    ),
    "Legal": (
        0.03,
        ("General Counsel", "Legal Lead"),
        ["Legal Counsel", "Paralegal", "Compliance Manager"],
    ),
    "Operations": (
        0.14,
        ("Chief Operating Officer", "Operations Manager"),
        ["Operations Analyst", "Office Manager", "Project Manager", "Facilities Coordinator"],
    ),
}
LOCATIONS = {
    "Berlin": 25,
    "London": 20,
    "New York": 20,
    "San Francisco": 15,
    "Singapore": 8,
    "Remote": 12,
}
EMPLOYMENT_TYPES = {
    Member.EmploymentType.FULL_TIME: 82,
    Member.EmploymentType.PART_TIME: 6,
    Member.EmploymentType.CONTRACTOR: 7,
    Member.EmploymentType.INTERN: 3,
    Member.EmploymentType.TEMPORARY: 2,
}
DEACTIVATED_SHARE = 0.06
STILL_HOLDING_SHARE = 0.2  # of deactivated members: devices and licenses not yet handed back
DEACTIVATION_REASONS = [
    "Left the company",
    "Resigned",
    "Contract ended",
    "Internship ended",
    "Role eliminated",
]
TEAM_SIZE = 8  # individual contributors per lead


@dataclass(frozen=True)
class Model:
    """One device model in the catalogue."""

    name: str
    category: str
    platform: str
    manufacturer: str
    serial_prefix: str


MACBOOK_PRO = Model('MacBook Pro 14" (M4 Pro)', "laptop", "macos", "Apple", "C02")
MACBOOK_AIR = Model('MacBook Air 13" (M3)', "laptop", "macos", "Apple", "FVF")
LATITUDE = Model("Dell Latitude 7450", "laptop", "windows", "Dell", "DL")
THINKPAD = Model("Lenovo ThinkPad X1 Carbon Gen 12", "laptop", "windows", "Lenovo", "PF")
THINKPAD_LINUX = Model("Lenovo ThinkPad T14s Gen 5", "laptop", "linux", "Lenovo", "PW")
IPHONE = Model("iPhone 16", "phone", "ios", "Apple", "F2L")
IPHONE_PRO = Model("iPhone 16 Pro", "phone", "ios", "Apple", "G6T")
PIXEL = Model("Google Pixel 9", "phone", "android", "Google", "GP")
IPAD = Model('iPad Air 11" (M2)', "tablet", "ipados", "Apple", "DMP")
ULTRASHARP = Model('Dell UltraSharp 27" U2723QE', "monitor", "none", "Dell", "CN0")
LG_ULTRAFINE = Model('LG UltraFine 27" 5K', "monitor", "none", "LG", "LG")

# Laptop choice by department: designers and engineers mostly on Macs, the rest mostly on Windows.
LAPTOPS_BY_DEPARTMENT = {
    "Engineering": {MACBOOK_PRO: 70, THINKPAD_LINUX: 15, THINKPAD: 15},
    "Design": {MACBOOK_PRO: 85, MACBOOK_AIR: 15},
    "Marketing": {MACBOOK_AIR: 60, MACBOOK_PRO: 20, LATITUDE: 20},
}
DEFAULT_LAPTOPS = {LATITUDE: 45, THINKPAD: 30, MACBOOK_AIR: 25}
EXTRA_DEVICES = {IPHONE: 30, IPHONE_PRO: 10, PIXEL: 12, IPAD: 13, ULTRASHARP: 25, LG_ULTRAFINE: 10}
SPARE_SHARE = 0.1  # of all assets: not in anyone's custody
SPARE_STATUSES = {
    Asset.Status.AVAILABLE: 65,
    Asset.Status.IN_REPAIR: 12,
    Asset.Status.RETIRED: 15,
    Asset.Status.LOST: 8,
}
MDM_PLATFORMS = {"macos", "ios", "ipados", "windows"}


@dataclass(frozen=True)
class LicenseSpec:
    """A license of the demo company and who holds it."""

    name: str
    vendor: str
    kind: str
    annual_cost_per_seat: int
    share: float  # of the eligible members (or devices) that hold it
    departments: tuple[str, ...] = ()  # empty: everyone
    platforms: tuple[str, ...] = ()  # device and user-machine licenses: eligible laptop platforms
    on_device: bool = False  # user-machine: a member on their own laptop
    expires_in_days: int | None = 365
    full: bool = False  # every seat taken


U, C, D = License.Kind.USER, License.Kind.CLOUD, License.Kind.DEVICE
ENG, DESIGN = ("Engineering",), ("Design",)
LICENSES = [
    LicenseSpec("Slack Business+", "Salesforce", C, 150, 1.0),
    LicenseSpec("Microsoft 365 E3", "Microsoft", C, 432, 0.35, expires_in_days=220),
    LicenseSpec("Zoom Workplace", "Zoom", C, 180, 0.12, ("Sales", "Support", "People")),
    LicenseSpec("Adobe Creative Cloud", "Adobe", C, 1020, 0.7, ("Design", "Marketing")),
    LicenseSpec("JetBrains All Products Pack", "JetBrains", U, 779, 0.35, ENG, full=True),
    LicenseSpec("Figma Organization", "Figma", C, 540, 0.9, DESIGN, expires_in_days=21),
    LicenseSpec("GitHub Enterprise", "GitHub", C, 252, 0.6, ENG + ("IT",)),
    LicenseSpec("1Password Business", "1Password", C, 96, 0.1, ("IT", "Finance", "Legal")),
    LicenseSpec("Salesforce Sales Cloud", "Salesforce", C, 1980, 0.5, ("Sales",)),
    LicenseSpec("Atlassian Jira", "Atlassian", C, 94, 0.25, ENG + ("IT", "Support")),
    LicenseSpec("Atlassian Confluence", "Atlassian", C, 68, 0.08, ENG + ("Operations",)),
    LicenseSpec("Notion Plus", "Notion Labs", C, 120, 0.1, ("Marketing", "Operations", "People")),
    LicenseSpec("Zendesk Suite Professional", "Zendesk", C, 1380, 0.55, ("Support",)),
    LicenseSpec("DocuSign Business Pro", "DocuSign", C, 480, 0.4, ("Legal", "Sales", "People")),
    LicenseSpec("NetSuite ERP", "Oracle", C, 1188, 0.6, ("Finance",), expires_in_days=12),
    LicenseSpec("Workday HCM", "Workday", C, 600, 0.6, ("People",)),
    LicenseSpec("Tableau Creator", "Salesforce", U, 900, 0.35, ("Finance", "Operations")),
    LicenseSpec("Miro Business", "Miro", C, 192, 0.2, DESIGN + ("Marketing",), full=True),
    LicenseSpec("Loom Business", "Atlassian", C, 180, 0.1, ("Support", "Marketing")),
    LicenseSpec(
        "CrowdStrike Falcon", "CrowdStrike", D, 60, 0.3, platforms=("macos", "windows", "linux")
    ),
    LicenseSpec("Jamf Protect", "Jamf", D, 48, 0.45, platforms=("macos",), expires_in_days=27),
    LicenseSpec("Microsoft Defender for Endpoint", "Microsoft", D, 62, 0.3, platforms=("windows",)),
    LicenseSpec("AutoCAD", "Autodesk", U, 2030, 0.15, ("Design", "Operations"), ("windows",), True),
    LicenseSpec("Parallels Desktop Business", "Parallels", U, 150, 0.08, ENG, ("macos",), True),
    LicenseSpec(
        "Microsoft Visio Plan 2", "Microsoft", U, 180, 0.3, ("IT", "Operations"), ("windows",), True
    ),
]
REVOKE_REASONS = ["No longer needed", "Changed teams", "License review"]


@dataclass(slots=True)
class MemberRow:
    """What later steps need to know about a member (100,000 instances would take much memory)."""

    pk: int
    department: str
    active: bool
    deactivated_at: datetime | None
    still_holding: bool
    laptop: tuple[int, str] | None = None  # (asset pk, platform) of the laptop in their custody


@dataclass(slots=True)
class AssetRow:
    pk: int
    platform: str
    category: str
    status: str


@dataclass
class Seed:
    """Everything the steps share."""

    rng: random.Random
    now: datetime
    member_count: int
    asset_count: int
    members: list[MemberRow] = field(default_factory=list)
    assets: list[AssetRow] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def past(self, max_days: float, min_days: float = 0) -> datetime:
        return self.now - timedelta(days=self.rng.uniform(min_days, max_days))

    def pick(self, weights: dict) -> Any:
        return self.rng.choices(list(weights), weights=list(weights.values()))[0]


def batched(items: Iterable, size: int = BATCH_SIZE) -> Iterator[list]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def insert(model: type, objects: Iterable) -> int:
    """bulk_create in batches; the objects get their primary keys (PostgreSQL and SQLite)."""
    total = 0
    for chunk in batched(objects):
        model.objects.bulk_create(chunk, batch_size=BATCH_SIZE)
        total += len(chunk)
    return total


def ascii_slug(text: str) -> str:
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(ch for ch in plain.lower() if ch.isalnum())


# --- Steps ---------------------------------------------------------------------------------------


def seed_members(seed: Seed) -> None:
    """Department heads, then team leads reporting to them, then everyone else."""
    rng = seed.rng
    shares = {name: spec[0] for name, spec in DEPARTMENTS.items()}
    sizes = {name: max(2, round(seed.member_count * share)) for name, share in shares.items()}
    # Rounding drift goes to (or comes from) the biggest department.
    sizes["Engineering"] += seed.member_count - sum(sizes.values())
    used_emails: dict[str, int] = {}
    next_id = iter(range(10001, 10**9))

    def new_member(department: str, title: str, manager_pk: int | None, leader: bool) -> Member:
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        local = f"{ascii_slug(first)}.{ascii_slug(last)}"
        seen = used_emails.get(local, 0)
        used_emails[local] = seen + 1
        employment = Member.EmploymentType.FULL_TIME if leader else seed.pick(EMPLOYMENT_TYPES)
        deactivated = not leader and rng.random() < DEACTIVATED_SHARE
        if not leader and employment in (
            Member.EmploymentType.INTERN,
            Member.EmploymentType.TEMPORARY,
        ):
            deactivated = deactivated or rng.random() < 0.2
        when = seed.past(365, 2) if deactivated else None
        if employment == Member.EmploymentType.INTERN:
            title = f"{title} Intern"
        return Member(
            full_name=f"{first} {last}",
            email=f"{local}{seen + 1 if seen else ''}@{EMAIL_DOMAIN}",
            employee_id=f"E{next(next_id)}",
            department=department,
            location=seed.pick(LOCATIONS),
            title=title,
            manager_id=manager_pk,
            employment_type=employment,
            status=Member.Status.DEACTIVATED if deactivated else Member.Status.ACTIVE,
            deactivated_at=when,
            deactivation_reason=rng.choice(DEACTIVATION_REASONS) if deactivated else "",
        )

    def keep(created: list[Member]) -> None:
        for m in created:
            seed.members.append(
                MemberRow(
                    pk=m.pk,
                    department=m.department,
                    active=m.status == Member.Status.ACTIVE,
                    deactivated_at=m.deactivated_at,
                    still_holding=m.status == Member.Status.DEACTIVATED
                    and rng.random() < STILL_HOLDING_SHARE,
                )
            )

    heads = [new_member(dept, DEPARTMENTS[dept][1][0], None, True) for dept in DEPARTMENTS]
    insert(Member, heads)
    keep(heads)
    head_of = {m.department: m.pk for m in heads}

    leads = []
    for dept, size in sizes.items():
        for _ in range(max(1, (size - 1) // (TEAM_SIZE + 1))):
            leads.append(new_member(dept, DEPARTMENTS[dept][1][1], head_of[dept], True))
    insert(Member, leads)
    keep(leads)
    leads_of: dict[str, list[int]] = {}
    for m in leads:
        leads_of.setdefault(m.department, []).append(m.pk)

    def individuals() -> Iterator[Member]:
        for dept, size in sizes.items():
            titles = DEPARTMENTS[dept][2]
            for _ in range(size - 1 - len(leads_of[dept])):
                yield new_member(dept, rng.choice(titles), rng.choice(leads_of[dept]), False)

    for chunk in batched(individuals()):
        insert(Member, chunk)
        keep(chunk)
    seed.counts["members"] = len(seed.members)
    seed.counts["deactivated members"] = sum(not m.active for m in seed.members)


def seed_mdm_connections(seed: Seed) -> None:
    """The simulator stands in for a real MDM in the demo (no credentials needed)."""
    MDMConnection.objects.create(
        name="Device simulator",
        provider=MDMConnection.Provider.SIMULATOR,
        is_active=True,
    )


def seed_assets(seed: Seed) -> None:
    """A laptop for everyone who works here, phones, tablets and monitors for some, a few spares
    in the cupboard; each device in custody with its open custody record, some with history."""
    rng = seed.rng
    mdm = MDMConnection.objects.filter(provider=MDMConnection.Provider.SIMULATOR).first()
    holders = [m for m in seed.members if m.active or m.still_holding]
    left = [m for m in seed.members if not m.active]
    spare_count = round(seed.asset_count * SPARE_SHARE)
    laptop_count = min(len(holders), seed.asset_count - spare_count)
    extra_count = max(0, seed.asset_count - spare_count - laptop_count)

    # (model, status, custodian) for every asset, in asset-tag order.
    plan: list[tuple[Model, str, MemberRow | None]] = []
    for member in rng.sample(holders, laptop_count):
        laptops = LAPTOPS_BY_DEPARTMENT.get(member.department, DEFAULT_LAPTOPS)
        plan.append((seed.pick(laptops), Asset.Status.IN_CUSTODY, member))
    for _ in range(extra_count):
        plan.append((seed.pick(EXTRA_DEVICES), Asset.Status.IN_CUSTODY, rng.choice(holders)))
    spare_models = {**DEFAULT_LAPTOPS, MACBOOK_PRO: 30, IPHONE: 20, ULTRASHARP: 15}
    for _ in range(spare_count):
        plan.append((seed.pick(spare_models), seed.pick(SPARE_STATUSES), None))
    rng.shuffle(plan)

    def history_for(asset: Asset, custodian: MemberRow | None) -> list[CustodyRecord]:
        records = []
        # The latest check-out is the open record; earlier ones were closed before it.
        if custodian is not None:
            until = custodian.deactivated_at or seed.now
            opened = until - timedelta(days=rng.uniform(1, 700))
            records.append(
                CustodyRecord(asset_id=asset.pk, member_id=custodian.pk, checked_out_at=opened)
            )
        else:
            opened = seed.now
        if left and rng.random() < (0.3 if custodian else 0.6):
            previous = rng.choice(left)
            returned = min(opened, previous.deactivated_at) - timedelta(days=rng.uniform(0, 3))
            records.append(
                CustodyRecord(
                    asset_id=asset.pk,
                    member_id=previous.pk,
                    checked_out_at=returned - timedelta(days=rng.uniform(60, 900)),
                    checked_in_at=returned,
                    note="Returned when they left.",
                )
            )
        return records

    tag = iter(range(1, 10**9))
    records_count = 0
    for chunk in batched(plan):
        assets = []
        for model, status, custodian in chunk:
            number = next(tag)
            enrolled = mdm is not None and model.platform in MDM_PLATFORMS
            serial_tail = "".join(rng.choices("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789", k=4))
            assets.append(
                Asset(
                    asset_tag=f"AS-{number:06d}",
                    name=model.name,
                    category=model.category,
                    platform=model.platform,
                    manufacturer=model.manufacturer,
                    model=model.name,
                    serial_number=f"{model.serial_prefix}{serial_tail}{number:06d}",
                    status=status,
                    custodian_id=custodian.pk if custodian else None,
                    mdm_connection_id=mdm.pk if enrolled else None,
                    mdm_device_id=str(uuid.UUID(int=rng.getrandbits(128), version=4))
                    if enrolled
                    else "",
                )
            )
        insert(Asset, assets)
        records = []
        for asset, (model, _status, custodian) in zip(assets, chunk, strict=True):
            seed.assets.append(AssetRow(asset.pk, asset.platform, asset.category, asset.status))
            if custodian is not None and model.category == "laptop" and custodian.laptop is None:
                custodian.laptop = (asset.pk, asset.platform)
            records.extend(history_for(asset, custodian))
        records_count += insert(CustodyRecord, records)
    seed.counts["assets"] = len(seed.assets)
    seed.counts["assets in custody"] = sum(a.status == Asset.Status.IN_CUSTODY for a in seed.assets)
    seed.counts["custody records"] = records_count


def seed_licenses(seed: Seed) -> None:
    """The company's software, with seats for everyone who holds it (some licenses exactly full,
    a few about to expire), and revoked entitlements of people who left or moved on."""
    rng = seed.rng
    today = timezone.localdate()
    usable = [
        a
        for a in seed.assets
        if a.category == "laptop" and a.status not in (Asset.Status.RETIRED, Asset.Status.LOST)
    ]
    plans: list[tuple[LicenseSpec, list[tuple[int | None, int | None, datetime, bool]]]] = []
    for spec in LICENSES:
        grants = []  # (member pk, asset pk, assigned at, live)
        if spec.kind == License.Kind.DEVICE:
            for asset in usable:
                if asset.platform in spec.platforms and rng.random() < spec.share:
                    grants.append((None, asset.pk, seed.past(700, 1), True))
        else:
            for member in seed.members:
                if spec.departments and member.department not in spec.departments:
                    continue
                if rng.random() >= spec.share:
                    continue
                asset_pk = None
                if spec.on_device:
                    if member.laptop is None or member.laptop[1] not in spec.platforms:
                        continue
                    asset_pk = member.laptop[0]
                if member.active or member.still_holding:
                    end = member.deactivated_at or seed.now
                    grants.append(
                        (member.pk, asset_pk, end - timedelta(days=rng.uniform(1, 700)), True)
                    )
                else:
                    grants.append((member.pk, asset_pk, member.deactivated_at, False))
        plans.append((spec, grants))

    licenses = []
    for spec, grants in plans:
        live = sum(g[3] for g in grants)
        seats = live if spec.full else max(5, math.ceil(live * rng.uniform(1.05, 1.3) / 5) * 5)
        licenses.append(
            License(
                name=spec.name,
                vendor=spec.vendor,
                kind=spec.kind,
                seats=seats,
                expires_on=today + timedelta(days=spec.expires_in_days)
                if spec.expires_in_days is not None
                else None,
                cost=Decimal(spec.annual_cost_per_seat * seats),
            )
        )
    insert(License, licenses)

    def entitlements() -> Iterator[Entitlement]:
        for lic, (_spec, grants) in zip(licenses, plans, strict=True):
            for member_pk, asset_pk, when, live in grants:
                if live and member_pk is not None and rng.random() < 0.03:
                    # An earlier, revoked grant of the same license: history, not a seat.
                    yield Entitlement(
                        license_id=lic.pk,
                        member_id=member_pk,
                        asset_id=asset_pk,
                        assigned_at=when - timedelta(days=rng.uniform(30, 300)),
                        revoked_at=when - timedelta(days=rng.uniform(1, 29)),
                        revoked_reason=rng.choice(REVOKE_REASONS),
                    )
                if live:
                    yield Entitlement(
                        license_id=lic.pk, member_id=member_pk, asset_id=asset_pk, assigned_at=when
                    )
                else:  # a member who left: assigned before, revoked when they were deactivated
                    yield Entitlement(
                        license_id=lic.pk,
                        member_id=member_pk,
                        asset_id=asset_pk,
                        assigned_at=when - timedelta(days=rng.uniform(30, 700)),
                        revoked_at=when + timedelta(hours=rng.uniform(1, 48)),
                        revoked_reason="Member deactivated",
                    )

    seed.counts["licenses"] = len(licenses)
    seed.counts["entitlements"] = insert(Entitlement, entitlements())


def seed_counts(seed: Seed) -> None:
    """The counts the services keep (members' assets and live entitlements, seats used, the
    dashboard's tallies), which bulk_create does not: recomputed once over the seeded rows."""
    from assetsonar.tallies import tallies_recount

    tallies_recount()


STEPS: list[Callable[[Seed], None]] = [
    seed_members,
    seed_mdm_connections,
    seed_assets,
    seed_licenses,
    seed_counts,
]

# Emptied by --reset (with the audit log); the portal settings and the sign-in users stay.
RESET_APPS = ["members", "assets", "licenses", "automations"]


class Command(BaseCommand):
    help = "Fill the database with a demo company, or a large data set with --members N."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--if-empty", action="store_true", help="Do nothing if there are members already."
        )
        parser.add_argument(
            "--members",
            type=int,
            default=None,
            help=f"How many members (default {DEMO_MEMBERS}); assets are "
            f"{ASSETS_PER_MEMBER} per member.",
        )
        parser.add_argument("--seed", type=int, default=1, help="Random seed (default 1).")
        parser.add_argument(
            "--reset",
            action="store_true",
            help="First empty the members, assets, licenses and automations tables and the audit "
            "log (demo and benchmark databases only).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["if_empty"] and Member.objects.exists():
            self.stdout.write("The database already has members; nothing seeded.")
            return
        count = options["members"] or DEMO_MEMBERS
        if count < len(DEPARTMENTS) * 3:
            raise CommandError(f"--members must be at least {len(DEPARTMENTS) * 3}.")
        started = time.monotonic()
        with transaction.atomic():
            if options["reset"]:
                self.reset()
            elif Member.objects.exists():
                raise CommandError(
                    "The database already has members. Use --if-empty to leave it as it is, or "
                    "--reset to replace everything with demo data."
                )
            seed = Seed(
                rng=random.Random(options["seed"]),
                now=timezone.now().replace(microsecond=0),
                member_count=count,
                asset_count=DEMO_ASSETS
                if options["members"] is None
                else round(count * ASSETS_PER_MEMBER),
            )
            for step in STEPS:
                step_started = time.monotonic()
                step(seed)
                if options["verbosity"] > 1:
                    self.stdout.write(f"  {step.__name__}: {time.monotonic() - step_started:.1f} s")
        if connection.vendor == "postgresql":
            # Planner statistics for the new rows now, not when autovacuum gets round to it.
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE")
        summary = ", ".join(f"{value:,} {name}" for name, value in seed.counts.items())
        self.stdout.write(
            self.style.SUCCESS(f"Seeded {summary} in {time.monotonic() - started:.1f} s.")
        )

    def reset(self) -> None:
        """Empty the tables like `flush` does (TRUNCATE on PostgreSQL): the ORM's delete() would
        load every row to cascade and send signals."""
        models = [m for label in RESET_APPS for m in apps.get_app_config(label).get_models()]
        tables = [m._meta.db_table for m in [*models, AuditEvent]]
        if connection.vendor == "postgresql":
            # TRUNCATE refuses to run while deferred foreign-key checks of earlier writes in the
            # same transaction are pending; check them now, then defer again as Django expects.
            with connection.cursor() as cursor:
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        connection.ops.execute_sql_flush(
            connection.ops.sql_flush(no_style(), tables, allow_cascade=True)
        )
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET CONSTRAINTS ALL DEFERRED")
