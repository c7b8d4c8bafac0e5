"""Log lines as JSON (LOG_FORMAT=json, production's default): one object per line, which a log
collector reads without a pattern, with the id of the request or Celery task that wrote it: the
same id the response's X-Request-ID, the audit trail and Azure (`x-ms-client-request-id`) carry,
so one search finds a call everywhere it went."""

import json
import logging
from datetime import UTC, datetime
from typing import Any

from audit.context import current_origin

# What every LogRecord has; anything else on a record was passed as `extra=` and is written too.
_STANDARD = frozenset(
    vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None)).keys()
    | {"message", "asctime", "taskName"}
)


# Where AuditOriginMiddleware leaves the request's id on the request (`request.META`): Django logs a
# response's error status after the middleware has returned, outside the request's origin.
REQUEST_ID_META = "SWITCHYARD_REQUEST_ID"


def request_id_of(record: logging.LogRecord) -> str:
    """The id of the request or task the record was written for ("" when none): the one given
    with `extra=`, the one on the record's Django request, or the one under way."""
    given = getattr(record, "request_id", None)
    if given and given != "-":
        return str(given)
    request = getattr(record, "request", None)
    meta = getattr(request, "META", None)
    if isinstance(meta, dict) and meta.get(REQUEST_ID_META):
        return str(meta[REQUEST_ID_META])
    return current_origin().request_id


class RequestIdFilter(logging.Filter):
    """Puts the request's (or task's) id on every record, for the text format's `%(request_id)s`."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_of(record) or "-"
        return True


class JsonFormatter(logging.Formatter):
    """time (UTC, ISO 8601), level, logger, message, request_id, the record's extras, and the
    exception's traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        request_id = request_id_of(record) or None
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": request_id,
        }
        for name, value in vars(record).items():
            if name not in _STANDARD and name != "request_id" and name not in line:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str, ensure_ascii=False)
