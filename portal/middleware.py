from collections.abc import AsyncIterator, Callable, Iterator

from asgiref.sync import sync_to_async
from django.http import FileResponse, HttpRequest, HttpResponseBase


def _next_chunk(iterator: Iterator[bytes]) -> bytes | None:
    return next(iterator, None)


async def _read_in_thread(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    while (chunk := await sync_to_async(_next_chunk, thread_sensitive=False)(chunks)) is not None:
        yield chunk


class AsyncFileStreamingMiddleware:
    """Under ASGI, hand the files WhiteNoise serves to the server as an async stream.

    WhiteNoise returns a FileResponse over a plain file iterator; Django's ASGI handler would
    read it whole into memory (and warn). Reading it chunk by chunk in a thread keeps the
    event loop free and memory flat. Sits above WhiteNoiseMiddleware.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        if isinstance(response, FileResponse) and not response.is_async and "wsgi.input" not in request.META:
            response.streaming_content = _read_in_thread(iter(response.streaming_content))  # type: ignore[arg-type]
        return response
