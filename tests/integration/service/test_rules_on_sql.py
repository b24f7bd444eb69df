"""The service's rules, sampled again on SQLite and PostgreSQL.

The rule tests run on the in-memory storage (tests/unit/service), once and
without a database. The ones imported here run again in this directory,
whose fixtures (``service``, ``clocked``, ``world``) are on the real
databases: every refusal path (one per audited action, through a unit of work
that must roll back and an audit row written after it), token expiry and
revocation, the throttle's rows, and the successful paths of each kind of
principal. What only SQL does (constraints, locks, concurrency, the audit
chain, the drivers) is tested in the other modules here.
"""

from __future__ import annotations

from tests.integration.service.conftest import World
from tests.unit.service.test_credentials import (  # noqa: F401 - collected here, on SQL
    test_bad_tokens_are_refused_and_audited,
    test_last_used_is_recorded_and_throttled,
    test_revoked_token_is_refused,
    test_token_expiry_is_honoured,
)
from tests.unit.service.test_permission_matrix import (  # noqa: F401 - collected here, on SQL
    _assert_refused,
    _attempts,
    _with_admin,
    test_only_a_signed_in_user_has_an_own_account_page,
    test_tenant_admin_manages_own_tenant,
    test_user_token_sets_own_status_and_plan,
)
from tests.unit.service.test_tenants import (  # noqa: F401 - collected here, on SQL
    test_default_tenant_cannot_be_removed,
    test_tenant_admin_edits_basics_only,
)
from tests.unit.service.test_users import (  # noqa: F401 - collected here, on SQL
    test_changes_are_audited_with_actor_channel_before_and_after,
    test_edit_without_change_writes_no_audit_event,
    test_list_users_off_hides_the_directory_from_the_public,
)


async def test_every_refusal_path_on_sql(world: World):
    """Each audited action refused once on the real database: nothing changed, one row."""
    await _with_admin(world)
    for name, (action, attempt) in _attempts().items():
        await _assert_refused(world, "acme_admin", name, action, attempt)
