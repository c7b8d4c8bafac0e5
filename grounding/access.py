"""Who may see which data set and document: the one place the data set pages and the document
viewer ask.

A department's data sets are seen by its members and leads (platform admins see every one) and
changed by its leads (and platform admins). A document is read, in the viewer, by the same people
and by anyone who may use an assistant with an active grounding on its data set: the people its
citations are shown to. Outside a person's reach a data set or a document does not exist (404);
within it, a change that needs a lead is a 403.
"""

from typing import Any

from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import Http404

from grounding.models import DataSet, Document, Grounding
from org.models import Department, Membership, User
from provisioning.models import ModelDeployment


def member_department_ids(user: User) -> list[int]:
    return [membership.department_id for membership in user.memberships_with_departments]


def led_department_ids(user: User) -> list[int]:
    return [m.department_id for m in user.memberships_with_departments if m.role == Membership.Role.LEAD]


def may_see_data_sets(user: User) -> bool:
    """Whether the data set pages are for this person at all (the navigation asks too)."""
    return user.is_platform_admin or bool(user.memberships_with_departments)


def may_manage(user: User, data_set: DataSet) -> bool:
    """Whether `user` may change the data set and its documents: its department's leads and
    platform admins."""
    return user.is_platform_admin or data_set.department_id in led_department_ids(user)


def data_sets_visible_to(user: User) -> QuerySet[DataSet]:
    """Every data set `user` may look at: their departments' (all of them for platform admins).
    Anyone without a department gets a 403."""
    if user.is_platform_admin:
        return DataSet.objects.all()
    departments = member_department_ids(user)
    if not departments:
        raise PermissionDenied("Data sets belong to departments: ask a lead to add you to yours.")
    return DataSet.objects.filter(department_id__in=departments)


def data_set_for_reader(user: User, data_set_id: int) -> DataSet:
    """The data set as a member of its department sees it: another department's does not exist."""
    try:
        return (
            data_sets_visible_to(user)
            .select_related("department", "owner", "landing_zone")
            .get(pk=data_set_id)
        )
    except DataSet.DoesNotExist:
        raise Http404("No such data set.") from None


def data_set_for_lead(user: User, data_set_id: int) -> DataSet:
    """The data set for a change: outside the user's reach a 404, within it but without being a
    lead of its department (or a platform admin) a 403."""
    data_set = data_set_for_reader(user, data_set_id)
    if not may_manage(user, data_set):
        raise PermissionDenied(f"Only {data_set.department.name}'s leads change its data sets and documents.")
    return data_set


def departments_for_new_data_set(user: User) -> QuerySet[Department]:
    """The departments `user` may create a data set for: the ones they lead (every one for
    platform admins). A member who leads none gets a 403."""
    if user.is_platform_admin:
        return Department.objects.all()
    led = led_department_ids(user)
    if not led:
        raise PermissionDenied("A department's leads create its data sets.")
    return Department.objects.filter(pk__in=led)


def _document(document_id: int) -> Document:
    try:
        return Document.objects.select_related("uploaded_by").get(pk=document_id)
    except Document.DoesNotExist:
        raise Http404("No such document.") from None


def document_for_lead(user: User, document_id: int) -> Document:
    """A document for a change (a deletion): as `data_set_for_lead` decides for its data set."""
    document = _document(document_id)
    document.data_set = data_set_for_lead(user, document.data_set_id)
    return document


def document_for_data_set_reader(user: User, document_id: int) -> Document:
    """A document as its data set's page lists it (being deleted included): as
    `data_set_for_reader` decides for its data set."""
    document = _document(document_id)
    document.data_set = data_set_for_reader(user, document.data_set_id)
    return document


def readable_data_set_ids(user: User) -> "QuerySet[Grounding, Any]":
    """The data sets of the assistants `user` may use that are grounded on them now."""
    usable = ModelDeployment.objects.usable_by(user).values("pk")
    return Grounding.objects.active().filter(deployment__in=usable).values("data_set_id")


def documents_readable_by(user: User) -> QuerySet[Document]:
    """The documents `user` may open in the viewer: their departments' (every one for platform
    admins) and those of the data sets their assistants are grounded on. A document being
    deleted is not opened any more."""
    documents = Document.objects.exclude(state=Document.State.DELETING)
    if user.is_platform_admin:
        return documents
    departments = user.memberships.values("department_id")
    return documents.filter(
        Q(data_set__department_id__in=departments) | Q(data_set_id__in=readable_data_set_ids(user))
    )


def document_for_reader(user: User, document_id: int) -> Document:
    """The document `document_id` if `user` may read it (see `documents_readable_by`); anything
    else does not exist (404), whoever asks."""
    try:
        return (
            documents_readable_by(user)
            .select_related("data_set__department", "uploaded_by")
            .get(pk=document_id)
        )
    except Document.DoesNotExist:
        raise Http404("No such document.") from None
