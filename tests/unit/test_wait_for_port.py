"""ProjectSpawner's own readiness poll, without Docker: it returns once the port answers, not
before, and gives up early when the server has died."""

from __future__ import annotations

import asyncio
import socket
from types import SimpleNamespace

from spawner.project_spawner import ProjectSpawner


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def fake_spawner(exit_status=None, http_timeout: float = 30):
    polls = []

    async def poll():
        polls.append(exit_status)
        return exit_status

    return SimpleNamespace(http_timeout=http_timeout, poll=poll, polls=polls)


def test_it_returns_once_the_server_listens_and_not_before():
    port = free_port()

    async def scenario() -> bool:
        async def listen_later():
            await asyncio.sleep(0.3)
            return await asyncio.start_server(lambda reader, writer: writer.close(), "127.0.0.1", port)

        listening = asyncio.create_task(listen_later())
        await asyncio.wait_for(ProjectSpawner._wait_for_port(fake_spawner(), "127.0.0.1", port), 20)
        was_listening = listening.done()
        (await listening).close()
        return was_listening

    assert asyncio.run(scenario())


def test_it_gives_up_when_the_container_has_exited():
    spawner = fake_spawner(exit_status=1)
    # far short of the 30 s http_timeout: the poll saw the exit
    asyncio.run(asyncio.wait_for(ProjectSpawner._wait_for_port(spawner, "127.0.0.1", free_port()), 20))
    assert spawner.polls == [1]
