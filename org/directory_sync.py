"""The directory sync: access follows Microsoft Entra ID between sign-ins, too.

Every ENTRA_SYNC_EVERY_SECONDS (and when an admin asks) Switchyard reads from Microsoft Graph who
is in the groups it maps (the departments' member and lead groups, the platform-role groups) and
brings every person who signs in with Microsoft in line, as their next sign-in would. A person in
none of those groups any more, or whose account is disabled, is a leaver: they lose their Entra
memberships and platform roles, their account here is deactivated and their sessions end, so an
open browser tab stops working at its next request rather than at the next sign-in.

What Graph is asked: a delta round over the mapped groups (from the last run's delta link, so
Graph answers only the direct membership changes since), and each mapped group's transitive
members with their account state. The transitive read is the answer of record: the delta round
reports direct members only, so a person removed from a group nested in a mapped group, or a
disabled account, would never show up in it. The delta round is what the run logs as Graph's own
account of what changed, and its link is kept for the next run.

When Graph cannot be read, nobody's departments change (the last known state stays), but the
platform roles Entra ID governs are taken away until a run can confirm them: they reach every
department (as a sign-in does when Graph is down; org.receivers).
"""

import logging
from dataclasses import dataclass, field
from importlib import import_module

from allauth.socialaccount.models import SocialAccount
from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.contrib.sessions.models import Session
from django.db import transaction
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import audit_record
from org.graph import DELTA_FILTER_GROUPS, DeltaLinkExpired, GraphClient, GraphError
from org.models import Department, DirectorySyncRun, PlatformGroup, User
from org.passwords import ENTRA_PROVIDER_ID
from org.services import (
    ENTRA,
    MembershipChanges,
    account_active_change_record,
    memberships_sync_from_entra,
    platform_roles_revoke_unconfirmed,
)

logger = logging.getLogger(__name__)

PLATFORM_GROUP_NAMES = {group.value for group in PlatformGroup}


@dataclass
class Directory:
    """What Graph said: the people in each mapped group (transitively) and whose account is on."""

    people_by_group: dict[str, set[str]] = field(default_factory=dict)
    account_enabled: dict[str, bool] = field(default_factory=dict)
    delta_links: dict[str, object] = field(default_factory=dict)
    direct_changes: int = 0

    def groups_of(self, object_id: str) -> set[str]:
        return {group_id for group_id, people in self.people_by_group.items() if object_id in people}


def mapped_group_ids() -> list[str]:
    """Every Entra group Switchyard gives meaning to: departments' and platform roles'."""
    group_ids: set[str] = set()
    for member_group, lead_group in Department.objects.values_list(
        "entra_member_group_id", "entra_lead_group_id"
    ):
        group_ids.update({member_group, lead_group})
    group_ids.update(
        {settings.ENTRA_ADMIN_GROUP_ID, settings.ENTRA_FINANCE_GROUP_ID, settings.ENTRA_SECURITY_GROUP_ID}
    )
    # As written where they are mapped: the membership rules compare them as they are.
    return sorted(group_id for group_id in group_ids if group_id)


def directory_sync(
    *, trigger: str = DirectorySyncRun.Trigger.SCHEDULE, requested_by: User | None = None
) -> DirectorySyncRun:
    """Bring every person who signs in with Microsoft in line with Entra ID; the run, as it ended.

    Safe to run twice: each person's change is made under a lock on their memberships, and a
    second run finds nothing left to do."""
    with transaction.atomic():
        run = DirectorySyncRun.objects.create(
            started_at=timezone.now(), trigger=trigger, requested_by=requested_by
        )
        if requested_by is not None:
            audit_record(
                actor=requested_by,
                verb="directory_sync.requested",
                target=run,
                note="Sync with Microsoft Entra ID now.",
            )
    try:
        return _run(run)
    except Exception as error:
        # A run must not stay "running" forever on the operations page: it failed, and why.
        _run_failed(run, f"The sync stopped on an unexpected error ({error.__class__.__name__}: {error}).")
        raise


def _run(run: DirectorySyncRun) -> DirectorySyncRun:
    group_ids = mapped_group_ids()
    refusal = _refusal(group_ids)
    if refusal:
        return _run_failed(run, refusal)
    try:
        with GraphClient() as graph:
            directory = _directory_read(graph, group_ids, previous_links=_previous_delta_links())
    except GraphError as error:
        _roles_revoke_unconfirmed(run)
        return _run_failed(
            run,
            f"{error} Everyone's last known departments were kept; platform roles were removed "
            "until Microsoft Graph confirms them.",
            outage=True,
        )
    leavers: list[int] = []
    for person in _known_people():
        run.people_checked += 1
        if _person_sync(run, person, directory):
            leavers.append(person.user_id)
    run.sessions_ended = _sessions_end(set(leavers))
    run.delta_links = directory.delta_links
    run.outcome = DirectorySyncRun.Outcome.SUCCEEDED
    run.finished_at = timezone.now()
    run.save()
    logger.info(
        "Directory sync %s: %s people checked; Graph reported %s direct membership changes; memberships "
        "added %s, changed %s, removed %s; platform roles removed %s; %s deactivated, %s sessions ended.",
        run.pk,
        run.people_checked,
        directory.direct_changes,
        run.memberships_added,
        run.memberships_changed,
        run.memberships_removed,
        run.platform_roles_removed,
        run.people_deactivated,
        run.sessions_ended,
    )
    return run


def run_summary(run: DirectorySyncRun) -> str:
    """What a directory sync changed, in words."""
    if run.outcome == DirectorySyncRun.Outcome.RUNNING:
        return "Running…"
    counts = [
        (run.memberships_added, "membership added", "memberships added"),
        (run.memberships_changed, "membership changed", "memberships changed"),
        (run.memberships_removed, "membership removed", "memberships removed"),
        (run.platform_roles_removed, "platform role removed", "platform roles removed"),
        (run.people_deactivated, "person deactivated", "people deactivated"),
        (run.sessions_ended, "session ended", "sessions ended"),
    ]
    changes = [f"{count} {one if count == 1 else many}" for count, one, many in counts if count]
    if run.outcome == DirectorySyncRun.Outcome.FAILED:
        return ", ".join(changes) if changes else "Nothing changed"
    checked = f"{run.people_checked} {'person' if run.people_checked == 1 else 'people'} checked"
    return ", ".join([checked, *changes]) if changes else f"{checked}, nothing to change"


def _refusal(group_ids: list[str]) -> str:
    """Why a run must not start (and change nobody), or ""."""
    if not (settings.ENTRA_TENANT_ID and settings.ENTRA_CLIENT_ID and settings.ENTRA_CLIENT_SECRET):
        return (
            "Microsoft Entra ID is not configured: set ENTRA_TENANT_ID, ENTRA_CLIENT_ID and "
            "ENTRA_CLIENT_SECRET (the application needs GroupMember.Read.All and User.Read.All on Graph)."
        )
    if not group_ids:
        # Without a mapped group everyone would look like a leaver.
        return (
            "No department or platform role names a Microsoft Entra ID group, so there is nothing to "
            "sync against; nobody was changed."
        )
    return ""


def _previous_delta_links() -> dict[str, object]:
    last = DirectorySyncRun.objects.filter(outcome=DirectorySyncRun.Outcome.SUCCEEDED).first()
    return dict(last.delta_links) if last is not None else {}


def _directory_read(
    graph: GraphClient, group_ids: list[str], *, previous_links: dict[str, object]
) -> Directory:
    directory = Directory()
    # A delta link covers the groups it was made for: a changed mapping starts from scratch.
    links = previous_links.get("groups") if previous_links.get("group_ids") == group_ids else None
    rounds = [
        group_ids[start : start + DELTA_FILTER_GROUPS]
        for start in range(0, len(group_ids), DELTA_FILTER_GROUPS)
    ]
    new_links: list[str] = []
    for index, round_ids in enumerate(rounds):
        link = links[index] if isinstance(links, list) and len(links) == len(rounds) else ""
        try:
            delta = graph.groups_delta(group_ids=round_ids, delta_link=str(link))
        except DeltaLinkExpired:
            logger.info("Microsoft Graph no longer knows the last delta link; starting the round afresh.")
            link = ""
            delta = graph.groups_delta(group_ids=round_ids)
        if link:
            directory.direct_changes += sum(
                len(members) for members in (delta.added | delta.removed).values()
            )
        new_links.append(delta.delta_link)
    directory.delta_links = {"groups": new_links, "group_ids": group_ids}
    for group_id in group_ids:
        people = graph.group_people(group_id)
        directory.people_by_group[group_id] = {person.object_id for person in people}
        for person in people:
            directory.account_enabled[person.object_id] = person.account_enabled
    return directory


def _known_people() -> list[SocialAccount]:
    return list(
        SocialAccount.objects.filter(provider=ENTRA_PROVIDER_ID).select_related("user").order_by("pk")
    )


def _person_sync(run: DirectorySyncRun, account: SocialAccount, directory: Directory) -> bool:
    """One person in line with the directory; whether they were just deactivated (a leaver)."""
    object_id = account.uid.lower()
    groups = directory.groups_of(object_id)
    enabled = directory.account_enabled.get(object_id, False)
    leaving = not groups or not enabled
    with transaction.atomic():
        # Locked and read afresh: a run started meanwhile (the schedule, an admin) waits here, then
        # finds the person already in line and records nothing twice.
        user = User.objects.select_for_update().get(pk=account.user_id)
        changes = memberships_sync_from_entra(user=user, group_ids=set() if leaving else groups)
        _count(run, changes)
        if not leaving and not user.is_active and _deactivated_by_sync(user):
            _reactivate(user)
        if not leaving or not user.is_active:
            return False
        reason = (
            "Their account is disabled in Microsoft Entra ID."
            if groups
            else "They are in none of the Microsoft Entra ID groups Switchyard maps."
        )
        user.is_active = False
        # save() tells every web process to forget the person it remembers (org.auth).
        user.save(update_fields=["is_active"])
        account_active_change_record(
            user=user,
            actor=None,
            actor_label=ENTRA,
            note=f"Directory sync: {reason} Their sessions are ended.",
        )
    run.people_deactivated += 1
    logger.warning("Directory sync deactivated %s (Entra object id %s): %s", user.email, object_id, reason)
    return True


def _deactivated_by_sync(user: User) -> bool:
    """Whether the sync (not an admin) took this person's account away last: only then does the
    directory's word give it back. An admin's deactivation stays until an admin undoes it."""
    last = (
        AuditEvent.objects.filter(
            object_type=User._meta.label_lower,
            object_id=str(user.pk),
            verb__in=["user.deactivated", "user.reactivated"],
        )
        .order_by("-sequence")
        .only("verb", "actor_label")
        .first()
    )
    return last is not None and last.verb == "user.deactivated" and last.actor_label == ENTRA


def _reactivate(user: User) -> None:
    user.is_active = True
    user.save(update_fields=["is_active"])
    account_active_change_record(
        user=user,
        actor=None,
        actor_label=ENTRA,
        note="Directory sync: back in a mapped Microsoft Entra ID group with an enabled account.",
    )
    logger.info("Directory sync reactivated %s: back in a mapped Entra group.", user.email)


def _count(run: DirectorySyncRun, changes: MembershipChanges) -> None:
    run.memberships_added += sum(name not in PLATFORM_GROUP_NAMES for name in changes.added)
    run.memberships_changed += len(changes.changed)
    run.memberships_removed += sum(name not in PLATFORM_GROUP_NAMES for name in changes.removed)
    run.platform_roles_removed += sum(name in PLATFORM_GROUP_NAMES for name in changes.removed)


def _roles_revoke_unconfirmed(run: DirectorySyncRun) -> None:
    for account in _known_people():
        if not account.user.is_active:
            continue
        run.people_checked += 1
        run.platform_roles_removed += len(platform_roles_revoke_unconfirmed(user=account.user).removed)


def _run_failed(run: DirectorySyncRun, error: str, *, outage: bool = False) -> DirectorySyncRun:
    run.outcome = DirectorySyncRun.Outcome.FAILED
    run.error = error
    run.finished_at = timezone.now()
    run.save()
    if outage:
        logger.error(
            "Directory sync %s failed: %s (%s platform roles removed)",
            run.pk,
            error,
            run.platform_roles_removed,
        )
    else:
        logger.error("Directory sync %s did not run: %s", run.pk, error)
    return run


def _sessions_end(user_ids: set[int]) -> int:
    """End every session of these people; how many ended.

    The session table does not say whose a session is, so this reads the live ones; it runs only
    when someone leaves. Each is deleted through the session engine, which for `cached_db` also
    drops the cached copy (deleting the rows alone would leave that one signed in)."""
    if not user_ids:
        return 0
    engine = import_module(settings.SESSION_ENGINE)
    wanted = {str(user_id) for user_id in user_ids}
    ended = 0
    live = Session.objects.filter(expire_date__gt=timezone.now()).only("session_key", "session_data")
    for session in live.iterator(chunk_size=2000):
        if str(session.get_decoded().get(SESSION_KEY)) in wanted:
            engine.SessionStore(session_key=session.session_key).delete()
            ended += 1
    return ended
