"""Django admin for grounding: a read-only look at data sets, documents and groundings.

Data sets and documents change on the data set pages, groundings through their approvals: each
change there is checked, audited and followed by ingestion, which an edit here would skip.
"""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from grounding.models import DataSet, Document, Grounding


class ReadOnlyAdmin(admin.ModelAdmin[Any]):
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(DataSet)
class DataSetAdmin(ReadOnlyAdmin):
    list_display = ["name", "department", "data_classification", "owner", "landing_zone", "created_at"]
    list_filter = ["department", "data_classification"]
    search_fields = ["name", "description", "department__name", "owner__email"]
    list_select_related = ["department", "owner", "landing_zone"]


@admin.register(Document)
class DocumentAdmin(ReadOnlyAdmin):
    list_display = [
        "name",
        "data_set",
        "version",
        "kind",
        "state",
        "pages",
        "passages",
        "size",
        "uploaded_at",
    ]
    list_filter = ["state", "kind", "data_set__department"]
    search_fields = ["name", "uid", "sha256", "data_set__name"]
    list_select_related = ["data_set"]
    exclude = ["run_token"]


@admin.register(Grounding)
class GroundingAdmin(ReadOnlyAdmin):
    list_display = ["deployment", "data_set", "state", "requested_by", "requested_at", "decided_at"]
    list_filter = ["state"]
    search_fields = ["deployment__display_name", "data_set__name"]
    list_select_related = ["deployment", "data_set", "requested_by"]
