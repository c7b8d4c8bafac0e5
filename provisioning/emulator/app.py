"""The emulator as one ASGI application."""

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from provisioning.emulator import (
    arm,
    control,
    costs,
    dataplane,
    graph,
    identity,
    identity_control,
    oidc,
)
from provisioning.emulator.catalog import Catalog
from provisioning.emulator.errors import AzureError
from provisioning.emulator.search.routes import routes as search_routes
from provisioning.emulator.state import Store

logger = logging.getLogger("azure_emulator")


async def azure_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, AzureError)
    return error.response()


# Requests whose client request id is kept (the latest), as Azure's own logs keep them.
CLIENT_REQUEST_IDS_KEPT = 1000

ASGIApp = Callable[[MutableMapping[str, Any], Any, Any], Awaitable[None]]


class ClientRequestIds:
    """Keeps each request's `x-ms-client-request-id` (the id a caller names its request by, which
    Azure writes in its logs and echoes), for `GET /_emulator/client-request-ids`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name == b"x-ms-client-request-id":
                    seen = scope["app"].state.client_request_ids
                    seen.append(
                        {"method": scope["method"], "path": scope["path"], "id": value.decode("latin-1")}
                    )
                    break
        await self.app(scope, receive, send)


async def client_request_ids(request: Request) -> JSONResponse:
    return JSONResponse({"requests": list(request.app.state.client_request_ids)})


async def forget_client_request_ids(request: Request) -> JSONResponse:
    request.app.state.client_request_ids.clear()
    return JSONResponse({"requests": []})


def build_app(*, state_path: Path | None, catalog: Catalog | None = None) -> Starlette:
    store = Store(state_path)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        flusher = asyncio.create_task(store.flush_usage_forever())
        try:
            yield
        finally:
            flusher.cancel()
            async with store.lock:
                store.save()

    app = Starlette(
        routes=[
            Route("/_emulator/client-request-ids", client_request_ids, methods=["GET"]),
            Route("/_emulator/client-request-ids", forget_client_request_ids, methods=["DELETE"]),
            *control.routes,
            *identity_control.routes,
            *identity.routes,
            *oidc.routes,
            *graph.routes,
            *dataplane.routes,
            *search_routes,
            *costs.routes,
            *arm.routes,
        ],
        exception_handlers={AzureError: azure_error},
        lifespan=lifespan,
        middleware=[Middleware(ClientRequestIds)],
    )
    app.state.store = store
    app.state.client_request_ids = deque(maxlen=CLIENT_REQUEST_IDS_KEPT)
    app.state.catalog = catalog or Catalog.load()
    return app
