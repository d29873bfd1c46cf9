"""The catalogue service starts on a port its crashed predecessor still held, once it is let go."""

from __future__ import annotations

import asyncio
import socket

from tornado.web import Application

from hub.service_runner import listen


def test_it_waits_for_its_port_to_be_free():
    held = socket.socket()
    held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    held.bind(("127.0.0.1", 0))
    held.listen()
    port = held.getsockname()[1]

    async def scenario():
        asyncio.get_running_loop().call_later(0.5, held.close)  # the old process exits
        await listen(Application(), port, "127.0.0.1", wait=5)
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.close()

    asyncio.run(scenario())
