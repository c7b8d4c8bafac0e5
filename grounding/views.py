"""Data set pages: the list, a data set with its documents (live while they are read), the
upload, and the document viewer that citations open."""

import functools
import mimetypes
from dataclasses import dataclass
from typing import Any, BinaryIO, cast

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Count, Q, Sum
from django.http import FileResponse, HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_cache_control
from django.views.decorators.http import require_POST

from base.tables import SortOrder, lifecycle_order, query_with, render_page_or_fragment
from grounding import access, viewer
from grounding.files import MIB, FileRefused, read_upload
from grounding.forms import DataSetForm
from grounding.models import DataSet, Document
from grounding.services import (
    DataSetRefused,
    DocumentRefused,
    UploadOutcome,
    data_set_create,
    data_set_delete,
    data_set_deletion_refusal,
    data_set_update,
    document_delete,
    document_retry,
    document_upload,
)
from money.amounts import usd
from money.periods import Period
from money.search_costs import data_set_search_cost
from org.models import User

DOCUMENTS_PAGE_SIZE = 50
# How often the documents table refreshes while one of them is being read or deleted.
LIVE_SECONDS = 2

DOCUMENT_SORTS: dict[str, tuple[Any, ...]] = {
    "name": ("name",),
    "state": (lifecycle_order(Document.State.values), "name"),
    "size": ("size", "name"),
    "uploaded": ("uploaded_at", "name"),
}

ACCEPT = ".pdf,.docx,.pptx,.xlsx,.md,.markdown,.txt,.text,.html,.htm"

# What a download is served as. An HTML page is served as bytes to save, never as a page the
# browser could render on Switchyard's origin.
DOWNLOAD_TYPES = {
    "pdf": "application/pdf",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "markdown": "text/markdown; charset=utf-8",
    "text": "text/plain; charset=utf-8",
}


KIND_LABELS = {
    "pdf": "PDF",
    "docx": "Word document",
    "pptx": "PowerPoint presentation",
    "xlsx": "Excel workbook",
    "markdown": "Markdown",
    "text": "Text",
    "html": "HTML page",
}


# What a document without pages is called when a citation asks for a page of it.
KIND_NOUNS = {
    "docx": "Word document",
    "xlsx": "workbook",
    "markdown": "Markdown file",
    "text": "text file",
    "html": "HTML page",
}


@dataclass(frozen=True)
class DocumentRow:
    document: Document

    @property
    def kind_label(self) -> str:
        return KIND_LABELS.get(self.document.kind, self.document.kind)


def _user(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


def _with_document_counts(data_sets: Any) -> Any:
    in_flight = [state for state in Document.State.in_flight() if state != Document.State.DELETING]
    return data_sets.annotate(
        document_count=Count("documents", distinct=True),
        indexed_count=Count("documents", filter=Q(documents__state=Document.State.INDEXED), distinct=True),
        in_flight_count=Count("documents", filter=Q(documents__state__in=in_flight), distinct=True),
        failed_count=Count("documents", filter=Q(documents__state=Document.State.FAILED), distinct=True),
        stored_bytes=Sum("documents__size"),
    )


def data_set_list(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    data_sets = _with_document_counts(
        access.data_sets_visible_to(user).select_related("department", "owner")
    ).order_by("department__name", "name")
    led = set(access.led_department_ids(user))
    context = {
        "data_sets": data_sets,
        "may_create": user.is_platform_admin or bool(led),
        "led_ids": led,
        "several_departments": user.is_platform_admin or len(user.memberships_with_departments) > 1,
    }
    return render(request, "grounding/data_set_list.html", context)


def data_set_new(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    departments = access.departments_for_new_data_set(user)
    form = DataSetForm(request.POST or None, departments=departments, actor=user)
    if request.method == "POST" and form.is_valid():
        try:
            data_set = data_set_create(department=form.department_chosen, spec=form.spec(), actor=user)
        except DataSetRefused as refusal:
            form.add_error(None, str(refusal))
        else:
            messages.success(request, f"“{data_set.name}” is created: add its documents below.")
            return redirect("grounding:data_set_detail", data_set_id=data_set.pk)
    return render(request, "grounding/data_set_form.html", {"form": form, "data_set": None})


def data_set_edit(request: HttpRequest, data_set_id: int) -> HttpResponse:
    user = _user(request)
    data_set = access.data_set_for_lead(user, data_set_id)
    form = DataSetForm(request.POST or None, actor=user, data_set=data_set)
    if request.method == "POST" and form.is_valid():
        try:
            data_set_update(data_set=data_set, spec=form.spec(), actor=user)
        except DataSetRefused as refusal:
            form.add_error(None, str(refusal))
        else:
            messages.success(request, f"“{form.cleaned_data['name']}” is saved.")
            return redirect("grounding:data_set_detail", data_set_id=data_set.pk)
    return render(request, "grounding/data_set_form.html", {"form": form, "data_set": data_set})


def data_set_delete_view(request: HttpRequest, data_set_id: int) -> HttpResponse:
    user = _user(request)
    data_set = access.data_set_for_lead(user, data_set_id)
    if request.method == "POST":
        try:
            data_set_delete(data_set=data_set, actor=user)
        except DataSetRefused as refusal:
            messages.error(request, str(refusal))
            return redirect("grounding:data_set_detail", data_set_id=data_set.pk)
        messages.success(request, f"“{data_set.name}” is deleted.")
        return redirect("grounding:data_set_list")
    context = {"data_set": data_set, "refusal": data_set_deletion_refusal(data_set)}
    return render(request, "grounding/data_set_delete.html", context)


def data_set_detail(request: HttpRequest, data_set_id: int) -> HttpResponse:
    user = _user(request)
    data_set = access.data_set_for_reader(user, data_set_id)
    sort = SortOrder.parse(request.GET.get("sort"), DOCUMENT_SORTS, "name")
    documents = data_set.documents.select_related("uploaded_by").order_by(*sort.ordering(), "pk")
    page = Paginator(documents, DOCUMENTS_PAGE_SIZE).get_page(request.GET.get("page"))
    figures = data_set.document_figures()
    counts = figures.by_state
    in_flight = sum(counts.get(state, 0) for state in Document.State.in_flight())
    may_manage = access.may_manage(user, data_set)
    context: dict[str, Any] = {
        "data_set": data_set,
        "may_manage": may_manage,
        "page": page,
        "rows": [DocumentRow(document) for document in page],
        "columns": sort.headers(request.GET),
        "document_count": figures.total,
        "counts": counts,
        "reading": sum(
            counts.get(state, 0)
            for state in (
                Document.State.QUEUED,
                Document.State.EXTRACTING,
                Document.State.EMBEDDING,
                Document.State.INDEXING,
            )
        ),
        "stored_bytes": figures.stored_bytes,
        "passage_count": figures.passages,
        "live": LIVE_SECONDS if in_flight else 0,
        "refresh_url": request.get_full_path(),
        "previous_url": query_with(request.GET, page=str(page.number - 1)) if page.has_previous() else "",
        "next_url": query_with(request.GET, page=str(page.number + 1)) if page.has_next() else "",
        "groundings": data_set.groundings.current().select_related("deployment__department"),
        "accept": ACCEPT,
        "max_file_mb": settings.GROUNDING_MAX_FILE_BYTES / MIB,
        "max_file_bytes": settings.GROUNDING_MAX_FILE_BYTES,
        "max_documents": settings.GROUNDING_MAX_DOCUMENTS,
        # Called by the template only where it shows (the whole page, not the documents' live
        # refresh), once.
        "search_cost": functools.cache(functools.partial(_search_cost_this_month, data_set))
        if may_manage
        else None,
    }
    return render_page_or_fragment(request, "grounding/data_set_detail.html", context, target="documents")


def _search_cost_this_month(data_set: DataSet) -> str | None:
    cost = data_set_search_cost(
        data_set_id=data_set.pk,
        landing_zone_id=data_set.landing_zone_id,
        period=Period.month(timezone.localdate()),
    )
    return None if cost is None else usd(cost)


def _wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


@require_POST
def document_upload_view(request: HttpRequest, data_set_id: int) -> HttpResponse:
    """One file per request from the page's script (a JSON answer it shows beside the file);
    several from the plain form without script (each with its message, then the page)."""
    user = _user(request)
    data_set = access.data_set_for_lead(user, data_set_id)
    uploads = request.FILES.getlist("file")
    results: list[dict[str, Any]] = []
    for upload in uploads:
        name = upload.name or "unnamed"
        try:
            data = read_upload(cast(BinaryIO, upload))
            result = document_upload(data_set=data_set, name=name, data=data, actor=user)
        except (FileRefused, DocumentRefused) as refusal:
            results.append({"name": name, "refused": True, "code": refusal.code, "message": refusal.message})
        else:
            document = result.document
            results.append(
                {
                    "name": document.name,
                    "refused": False,
                    "outcome": result.outcome.value,
                    "message": result.message,
                    "document": {
                        "id": document.pk,
                        "version": document.version,
                        "state": document.state,
                        "state_label": document.get_state_display(),
                    },
                }
            )
    if _wants_json(request):
        if len(results) != 1:
            return JsonResponse(
                {"refused": True, "code": "one_file", "message": "Send one file per request."}, status=400
            )
        result_json = results[0]
        status = (
            400 if result_json["refused"] else (201 if result_json["outcome"] == UploadOutcome.ADDED else 200)
        )
        return JsonResponse(result_json, status=status)
    if not results:
        messages.error(request, "Choose one or more files to upload.")
    for outcome in results:
        if outcome["refused"]:
            messages.error(request, f"“{outcome['name']}” was not added. {outcome['message']}")
        elif outcome["outcome"] in (UploadOutcome.UNCHANGED, UploadOutcome.RETRIED):
            messages.info(request, outcome["message"])
        else:
            messages.success(request, outcome["message"])
    return redirect("grounding:data_set_detail", data_set_id=data_set.pk)


def document_delete_view(request: HttpRequest, document_id: int) -> HttpResponse:
    user = _user(request)
    document = access.document_for_lead(user, document_id)
    if request.method == "POST":
        document_delete(document=document, actor=user)
        messages.success(
            request,
            f"“{document.name}” is being deleted: its passages leave the index and assistants stop "
            "citing it.",
        )
        return redirect("grounding:data_set_detail", data_set_id=document.data_set_id)
    groundings = document.data_set.groundings.active().select_related("deployment")
    return render(
        request,
        "grounding/document_delete.html",
        {"document": document, "data_set": document.data_set, "groundings": groundings},
    )


@require_POST
def document_retry_view(request: HttpRequest, document_id: int) -> HttpResponse:
    user = _user(request)
    document = access.document_for_lead(user, document_id)
    was_failed = document.state == Document.State.FAILED
    retried = document_retry(document=document, actor=user)
    if was_failed and retried.state == Document.State.QUEUED:
        messages.success(request, f"“{retried.name}” is queued to be read again.")
    else:
        messages.info(
            request, f"“{retried.name}” is {retried.get_state_display().lower()}: nothing to try again."
        )
    return redirect("grounding:data_set_detail", data_set_id=document.data_set_id)


def _requested_page(request: HttpRequest) -> int | None:
    try:
        page = int(request.GET.get("page", ""))
    except ValueError:
        return None
    return page if page >= 1 else None


def document_view(request: HttpRequest, document_id: int) -> HttpResponse:
    user = _user(request)
    document = access.document_for_reader(user, document_id)
    page = _requested_page(request)
    context: dict[str, Any] = {
        "document": document,
        "data_set": document.data_set,
        "sees_data_set": user.is_platform_admin
        or document.data_set.department_id in access.member_department_ids(user),
        "requested_page": page,
        "kind_noun": KIND_NOUNS.get(document.kind, "document"),
    }
    try:
        text = viewer.document_text(document)
    except viewer.DocumentUnreadable as unreadable:
        context["unreadable"] = str(unreadable)
    else:
        blocks, first, last = text.window(page)
        context.update(
            text=text,
            blocks=blocks,
            first_page=first,
            last_page=last,
            page_missing=page is not None and text.paged and page > text.page_count,
            earlier_page=max(first - viewer.WINDOW_PAGES + viewer.WINDOW_BEFORE, 1) if first > 1 else None,
            later_page=last + 1 + viewer.WINDOW_BEFORE if last < text.page_count else None,
        )
    response = render(request, "grounding/document_view.html", context)
    patch_cache_control(response, private=True)
    return response


def document_download(request: HttpRequest, document_id: int) -> HttpResponseBase:
    user = _user(request)
    document = access.document_for_reader(user, document_id)
    try:
        stored = document.file.open("rb")
    except (FileNotFoundError, OSError):
        messages.error(request, f"The file of “{document.name}” is no longer in Switchyard's storage.")
        return redirect(reverse("grounding:document_view", kwargs={"document_id": document.pk}))
    content_type = DOWNLOAD_TYPES.get(document.kind) or mimetypes.guess_type(document.name)[0] or ""
    if not content_type or "html" in content_type:
        content_type = "application/octet-stream"
    response = FileResponse(stored, as_attachment=True, filename=document.name, content_type=content_type)
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    patch_cache_control(response, private=True, no_store=True)
    return response
