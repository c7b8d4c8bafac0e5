"""The URL table of the search data plane. The OData paths (`indexes('name')`) are matched here,
as Starlette's path syntax cannot say them."""

import re
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from provisioning.emulator.search.documents import (
    document_get,
    documents_count,
    documents_index,
    documents_search_get,
    documents_search_post,
)
from provisioning.emulator.search.errors import resource_not_found
from provisioning.emulator.search.indexes import (
    index_create,
    index_create_or_update,
    index_delete,
    index_get,
    index_statistics,
    indexes_list,
)

__all__ = ["routes"]

Handler = Callable[[Request], Awaitable[Response]]
INDEX = r"indexes\('(?P<index>(?:[^']|'')+)'\)"
KEY = r"\('(?P<key>(?:[^']|'')*)'\)"

OPERATIONS: list[tuple[str, re.Pattern[str], Handler]] = [
    ("POST", re.compile(r"indexes"), index_create),
    ("GET", re.compile(r"indexes"), indexes_list),
    ("PUT", re.compile(INDEX), index_create_or_update),
    ("GET", re.compile(INDEX), index_get),
    ("DELETE", re.compile(INDEX), index_delete),
    ("GET", re.compile(INDEX + r"/search\.stats"), index_statistics),
    ("POST", re.compile(INDEX + r"/docs/search\.index"), documents_index),
    ("POST", re.compile(INDEX + r"/docs/search\.post\.search"), documents_search_post),
    ("GET", re.compile(INDEX + r"/docs/\$count"), documents_count),
    ("GET", re.compile(INDEX + r"/docs"), documents_search_get),
    ("GET", re.compile(INDEX + r"/docs" + KEY), document_get),
]


async def dispatch(request: Request) -> Response:
    operation = request.path_params["operation"].strip("/")
    for method, pattern, handler in OPERATIONS:
        match = pattern.fullmatch(operation)
        if match is not None and request.method == method:
            request.scope["path_params"].update(
                {name: value.replace("''", "'") for name, value in match.groupdict().items()}
            )
            return await handler(request)
    raise resource_not_found()


routes = [
    Route("/search/{service}/{operation:path}", dispatch, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
]
