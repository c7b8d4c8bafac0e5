"""The connection to Azure OpenAI: a pooled connection that the server closed while it sat idle
(keep-alive expiry, the moment a call takes it) does not fail the call."""

import asyncio

from asgiref.sync import async_to_sync
from django.test import override_settings

from calls import transport

ANSWER = b'{"id":"chatcmpl-1","object":"chat.completion","choices":[],"model":"gpt-4o-mini"}'


class HangUpOnTheSecondRequest:
    """An HTTP server that answers the first request on a connection with keep-alive, and hangs up
    without a word when the next one comes on it: what a client sees when the server's
    keep-alive expiry closes the connection just as the client sends on it."""

    def __init__(self) -> None:
        self.answered = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        await reader.readexactly(length)
        self.answered += 1
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: keep-alive\r\n"
            + f"content-length: {len(ANSWER)}\r\n\r\n".encode()
            + ANSWER
        )
        await writer.drain()
        await reader.read(1)  # the next request on this connection
        writer.close()


@override_settings(AZURE_MODE="emulator")
def test_a_call_on_a_connection_the_server_closed_while_idle_is_sent_again():
    server_side = HangUpOnTheSecondRequest()

    async def go() -> list[int]:
        server = await asyncio.start_server(server_side.handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = transport.openai_client(f"http://127.0.0.1:{port}")
        statuses = []
        try:
            for _ in range(3):
                response = await transport.relayed_call(
                    client,
                    operation="/chat/completions",
                    body={"model": "assistant", "messages": []},
                    stream=False,
                )
                statuses.append(response.status_code)
                await response.aread()
                await response.aclose()
        finally:
            await transport.close_clients()
            server.close()
        return statuses

    assert async_to_sync(go)() == [200, 200, 200]
    assert server_side.answered == 3
