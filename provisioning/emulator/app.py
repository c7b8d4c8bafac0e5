"""The emulator as one ASGI application."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

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
from provisioning.emulator.state import Store

logger = logging.getLogger("azure_emulator")


async def azure_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, AzureError)
    return error.response()


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
            *control.routes,
            *identity_control.routes,
            *identity.routes,
            *oidc.routes,
            *graph.routes,
            *dataplane.routes,
            *costs.routes,
            *arm.routes,
        ],
        exception_handlers={AzureError: azure_error},
        lifespan=lifespan,
    )
    app.state.store = store
    app.state.catalog = catalog or Catalog.load()
    return app
