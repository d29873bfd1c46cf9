"""The start queue: first come, first served, places readable while waiting, and a slot always given
back, whatever happens to the start that held it."""

from __future__ import annotations

import asyncio

import pytest

from spawner.start_queue import StartQueue, Ticket, TicketState


async def settle() -> None:
    """Let every task that can run, run."""
    for _ in range(5):
        await asyncio.sleep(0)


class Starts:
    """Starts that each wait for their slot, record when they got it, and hold it until released
    (or fail, if told to)."""

    def __init__(self, queue: StartQueue) -> None:
        self.queue = queue
        self.order: list[str] = []
        self.tickets: dict[str, Ticket] = {}
        self.release: dict[str, asyncio.Future] = {}
        self.tasks: dict[str, asyncio.Task] = {}

    def begin(self, name: str) -> None:
        ticket = self.tickets[name] = Ticket(name)
        self.release[name] = asyncio.get_running_loop().create_future()

        async def start() -> None:
            async with self.queue.slot(ticket):
                self.order.append(name)
                outcome = await self.release[name]
                if outcome == "fail":
                    raise RuntimeError(f"{name} failed to start")

        self.tasks[name] = asyncio.create_task(start())

    def finish(self, name: str, outcome: str = "ok") -> None:
        self.release[name].set_result(outcome)

    def places(self) -> dict[str, int | None]:
        return {name: self.queue.place(ticket) for name, ticket in self.tickets.items()}


def test_two_slots_serve_in_arrival_order_and_report_places():
    async def scenario():
        queue = StartQueue(2)
        starts = Starts(queue)
        for name in "abcde":
            starts.begin(name)
        await settle()
        assert starts.order == ["a", "b"]
        assert starts.places() == {"a": None, "b": None, "c": 1, "d": 2, "e": 3}
        assert (queue.starting, queue.waiting) == (2, 3)
        starts.finish("b")
        await settle()
        assert starts.order == ["a", "b", "c"]
        assert starts.places() == {"a": None, "b": None, "c": None, "d": 1, "e": 2}
        starts.finish("a")
        starts.finish("c")
        await settle()
        assert starts.order == ["a", "b", "c", "d", "e"]
        starts.finish("d")
        starts.finish("e")
        await asyncio.gather(*starts.tasks.values())
        assert (queue.starting, queue.waiting) == (0, 0)
        assert {t.state for t in starts.tickets.values()} == {TicketState.DONE}

    asyncio.run(scenario())


def test_a_waiter_who_cancels_leaves_the_line_and_those_behind_move_up():
    async def scenario():
        queue = StartQueue(1)
        starts = Starts(queue)
        for name in "abcd":
            starts.begin(name)
        await settle()
        assert starts.places() == {"a": None, "b": 1, "c": 2, "d": 3}
        starts.tasks["b"].cancel()
        await settle()
        assert starts.tickets["b"].state is TicketState.LEFT
        assert starts.places() == {"a": None, "b": None, "c": 1, "d": 2}
        starts.finish("a")
        await settle()
        assert starts.order == ["a", "c"]  # b never got a slot
        starts.finish("c")
        await settle()
        starts.finish("d")
        await settle()
        assert starts.order == ["a", "c", "d"] and queue.starting == 0

    asyncio.run(scenario())


@pytest.mark.parametrize("ending", ["fail", "cancel", "timeout"])
def test_the_slot_comes_back_however_a_start_ends(ending):
    async def scenario():
        queue = StartQueue(1)
        starts = Starts(queue)
        starts.begin("a")
        starts.begin("b")
        await settle()
        if ending == "fail":
            starts.finish("a", "fail")
        elif ending == "cancel":
            starts.tasks["a"].cancel()
        await settle()
        if ending == "timeout":  # the hub's start_timeout, as JupyterHub applies it: wait_for cancels
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(starts.tasks["a"], 0.01)
            await settle()
        assert starts.order == ["a", "b"]
        assert starts.tickets["a"].state is TicketState.DONE
        assert queue.starting == 1 and queue.place(starts.tickets["b"]) is None
        starts.finish("b")
        await asyncio.gather(*starts.tasks.values(), return_exceptions=True)
        assert queue.starting == 0

    asyncio.run(scenario())


def test_a_slot_granted_to_a_start_cancelled_in_the_same_tick_passes_on():
    async def scenario():
        queue = StartQueue(1)
        starts = Starts(queue)
        for name in "abc":
            starts.begin(name)
        await settle()
        starts.finish("a")          # b is granted the slot...
        starts.tasks["b"].cancel()  # ...and cancelled before it could run
        await settle()
        assert starts.order == ["a", "c"]
        assert starts.tickets["b"].state is TicketState.DONE and queue.starting == 1
        starts.finish("c")
        await settle()
        assert queue.starting == 0

    asyncio.run(scenario())


def test_places_can_be_watched_until_the_turn_comes():
    async def scenario():
        queue = StartQueue(1)
        starts = Starts(queue)
        for name in "abc":
            starts.begin(name)
        await settle()
        seen: list[int | None] = []

        async def watch() -> None:
            ticket = starts.tickets["c"]
            while ticket.state is TicketState.WAITING:
                if not seen or seen[-1] != queue.place(ticket):
                    seen.append(queue.place(ticket))
                await queue.changed(timeout=5)
            seen.append(None)

        watcher = asyncio.create_task(watch())
        await settle()
        starts.finish("a")
        await settle()
        starts.finish("b")
        await asyncio.wait_for(watcher, 5)
        assert seen == [2, 1, None]
        starts.finish("c")
        await asyncio.gather(*starts.tasks.values())
        assert starts.tickets["c"].queued_s > 0

    asyncio.run(scenario())


def test_more_slots_let_waiting_starts_go_at_once():
    async def scenario():
        queue = StartQueue(1)
        starts = Starts(queue)
        for name in "abc":
            starts.begin(name)
        await settle()
        queue.resize(3)
        await settle()
        assert starts.order == ["a", "b", "c"]
        for name in "abc":
            starts.finish(name)
        await asyncio.gather(*starts.tasks.values())

    asyncio.run(scenario())


def test_a_ticket_is_used_once_and_a_queue_needs_a_slot():
    async def scenario():
        queue = StartQueue(1)
        ticket = Ticket("a")
        async with queue.slot(ticket):
            pass
        with pytest.raises(ValueError, match="make a new one"):
            async with queue.slot(ticket):
                pass

    asyncio.run(scenario())
    with pytest.raises(ValueError, match="concurrent_starts to 1 or more"):
        StartQueue(0)
