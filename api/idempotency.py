"""`Idempotency-Key` on POST (draft-ietf-httpapi-idempotency-key-header): a script that sends a
POST again after a timeout, with the same key and the same body, gets the first answer again
(`Idempotent-Replayed: true`) instead of a second request, key or approval. The same key with
another body is a 409, and so is a key whose first request is still being answered.

Keys are the caller's own (per personal access token, else per person), remembered for
`API_IDEMPOTENCY_HOURS`. An answer that says nothing was done because of who asked or how often
(401, 429) or because Switchyard failed (5xx) is not kept: the retry is a first try."""

import hashlib
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.utils import timezone

from api.models import IdempotentRequest
from api.problems import TYPE_BASE, Problem

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
REUSED = TYPE_BASE + "idempotency-key-reused"
IN_PROGRESS = TYPE_BASE + "idempotency-key-in-progress"
REQUEST_ATTRIBUTE = "_api_idempotent_request"
# Answers worth giving again; the headers a replay repeats.
NOT_KEPT = {401, 429}
KEPT_HEADERS = ("ETag", "Location")


class Replay(Exception):
    """Raised at authentication: the answer to give is the one kept for this key."""

    def __init__(self, kept: IdempotentRequest) -> None:
        super().__init__(kept.key)
        self.kept = kept


def idempotency_begin(request: HttpRequest, caller: str) -> None:
    """Before a POST with a key runs: replay its first answer, refuse a conflict, or note it as
    under way (the row's unique key stops a second, concurrent one). `caller` is the caller's
    `ApiCaller.rate_key`."""
    key = request.headers.get(HEADER)
    if request.method != "POST" or key is None:
        return
    if not key.strip() or len(key) > MAX_KEY_LENGTH:
        raise Problem(
            400,
            f"{HEADER} must be 1 to {MAX_KEY_LENGTH} characters: a UUID per logical request is usual.",
            errors={HEADER: ["1 to 255 characters."]},
        )
    fingerprint = _fingerprint(request)
    horizon = timezone.now() - timedelta(hours=settings.API_IDEMPOTENCY_HOURS)
    for _attempt in range(2):
        try:
            with transaction.atomic():
                request_row = IdempotentRequest.objects.create(
                    caller=caller, key=key, fingerprint=fingerprint
                )
        except IntegrityError:
            kept = IdempotentRequest.objects.filter(caller=caller, key=key).first()
            if kept is None:
                continue  # forgotten meanwhile
            if kept.created_at < horizon:
                kept.delete()
                continue
            _refuse_or_replay(kept, fingerprint)
        else:
            setattr(request, REQUEST_ATTRIBUTE, request_row)
            return


def _refuse_or_replay(kept: IdempotentRequest, fingerprint: str) -> None:
    if kept.fingerprint != fingerprint:
        raise Problem(
            409,
            f"This {HEADER} was used for another request (another address or body). Use a new key for a "
            "new request; send exactly the same request to get its answer again.",
            type=REUSED,
            title="Idempotency key reused",
        )
    if kept.status is None:
        raise Problem(
            409,
            f"The first request with this {HEADER} is still being answered. Try again in a moment.",
            type=IN_PROGRESS,
            title="Request in progress",
            headers={"Retry-After": "1"},
        )
    raise Replay(kept)


def _fingerprint(request: HttpRequest) -> str:
    digest = hashlib.sha256()
    for part in (request.method or "", request.get_full_path(), request.content_type or ""):
        digest.update(part.encode())
        digest.update(b"\0")
    if request.content_type == "multipart/form-data":
        _digest_form(digest, request)
    else:
        digest.update(request.body)
    return digest.hexdigest()


def _digest_form(digest: "hashlib._Hash", request: HttpRequest) -> None:
    """A form with files by what it holds, not by its bytes on the wire: a client sends the same
    form again with another boundary between its parts (and an upload over Django's in-memory
    limit was parsed as it arrived, its body never kept whole)."""
    for name in sorted(request.POST):
        for value in request.POST.getlist(name):
            digest.update(f"field\0{name}\0{value}\0".encode())
    for name in sorted(request.FILES):
        for upload in request.FILES.getlist(name):
            digest.update(f"file\0{name}\0{upload.name}\0".encode())
            for chunk in upload.chunks():
                digest.update(chunk)
            upload.seek(0)
            digest.update(b"\0")


def idempotency_finish(request: HttpRequest, response: HttpResponseBase) -> None:
    """After the POST was answered: keep the answer for replays, or forget the key."""
    request_row: IdempotentRequest | None = getattr(request, REQUEST_ATTRIBUTE, None)
    if request_row is None:
        return
    status = response.status_code
    if status >= 500 or status in NOT_KEPT or not isinstance(response, HttpResponse):
        request_row.delete()
        return
    request_row.status = status
    request_row.content_type = response.get("Content-Type", "")
    request_row.headers = {name: response[name] for name in KEPT_HEADERS if response.has_header(name)}
    request_row.body = response.content
    request_row.save(update_fields=["status", "content_type", "headers", "body"])


def idempotency_keep(request: HttpRequest, kept: HttpResponse) -> None:
    """Keep `kept` for replays of this POST in place of the answer that goes out now: for an answer
    that shows a secret once (a new API key), a replay describes the same thing without it."""
    idempotency_finish(request, kept)
    setattr(request, REQUEST_ATTRIBUTE, None)


def replay_response(kept: IdempotentRequest) -> HttpResponse:
    response = HttpResponse(bytes(kept.body), status=kept.status or 200, content_type=kept.content_type)
    for name, value in kept.headers.items():
        response[name] = value
    response["Idempotent-Replayed"] = "true"
    return response


def idempotency_forget() -> int:
    """Forget keys older than `API_IDEMPOTENCY_HOURS`; the number forgotten."""
    horizon = timezone.now() - timedelta(hours=settings.API_IDEMPOTENCY_HOURS)
    deleted, _ = IdempotentRequest.objects.filter(created_at__lt=horizon).delete()
    return deleted
