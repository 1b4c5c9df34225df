"""The independent SCIM compliance suite, scim2-tester, over real HTTP against the portal."""

from __future__ import annotations

from collections import Counter

import httpx2
import pytest
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import Status, check_server

from members.models import Member

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("existing", [0, 150], ids=["empty-portal", "150-members"])
def test_scim2_tester_check_server_passes(live_server, scim_secret, existing):
    # With more members than a page holds, the suite's list checks still find what it created.
    Member.objects.bulk_create(
        Member(full_name=f"Existing {i}", email=f"existing{i}@example.com") for i in range(existing)
    )
    http = httpx2.Client(
        base_url=f"{live_server.url}/scim/v2",
        headers={"Authorization": f"Bearer {scim_secret}"},
        timeout=30,
    )
    with http:
        results = check_server(SyncSCIMClient(http))

    failures = [r for r in results if r.status not in (Status.SUCCESS, Status.SKIPPED)]
    skipped = [r for r in results if r.status == Status.SKIPPED]
    report = "\n".join(f"{r.status.name} {r.title}: {r.reason}" for r in failures + skipped)
    # What ran, by tag, for the closing note of the issue (pytest -s shows it).
    by_tag = Counter(tag for r in results for tag in r.tags)
    print(
        f"scim2-tester: {len(results) - len(failures) - len(skipped)} passed, "
        f"{len(skipped)} skipped, {len(failures)} failed; by tag: "
        + ", ".join(f"{tag} {n}" for tag, n in sorted(by_tag.items()))
        + f"\n{report}"
    )
    assert not failures, report
    # Nothing is skipped: discovery says patch, filter and etag are supported, and the suite
    # skips only what discovery says is not.
    assert not skipped, report
    # scim2-tester 0.5.2 makes 68 checks against this schema (the README says so).
    assert len(results) == 68
    # The suite's clean-up deletes what it created: every member it made is hidden, none deleted.
    made = Member.objects.exclude(email__startswith="existing")
    assert made.exists()
    assert not made.filter(scim_hidden_at__isnull=True).exists()
    assert Member.objects.filter(scim_hidden_at__isnull=True).count() == existing
