"""A first-come, first-served gate on workspace starts, shared by every spawner of one hub.

Why: a workspace start is CPU-bound (JupyterLab's imports and extension loading), so fifty starts at
once on two cores each take about twenty-five times as long as one, and they all miss their timeouts
together. Started a few at a time, each takes about its own time and the others wait their turn,
knowing their place (``StartQueue.place``, shown on the spawn page).

The hub is one asyncio process, so the gate is plain asyncio with no lock: every change of state
happens between two ``await`` points. A slot is always given back, whether the start succeeded,
failed, timed out or was cancelled, and a person who gives up while waiting leaves the line, so
those behind move up.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field


class TicketState(enum.StrEnum):
    NEW = "new"            # made, not yet in line (the start's cheap checks are still running)
    WAITING = "waiting"    # in line for a slot
    STARTING = "starting"  # holds a slot
    DONE = "done"          # gave its slot back after starting, whether it worked or not
    LEFT = "left"          # left the line before its turn (a stop, a cancelled start)


@dataclass(eq=False)
class Ticket:
    """One start's place in line. ``queued_s`` is how long it waited for its slot."""

    name: str
    state: TicketState = TicketState.NEW
    queued_s: float = 0.0
    _joined: float = field(default=0.0, repr=False)
    _turn: asyncio.Event = field(default_factory=asyncio.Event, repr=False)


class StartQueue:
    """At most ``slots`` starts at a time; the others wait in the order they came."""

    def __init__(self, slots: int) -> None:
        self._slots = _checked(slots)
        self._waiting: deque[Ticket] = deque()
        self._starting: set[Ticket] = set()
        self._changed = asyncio.Event()

    @property
    def slots(self) -> int:
        return self._slots

    def resize(self, slots: int) -> None:
        """Change the number of slots; more slots let waiting starts go at once, fewer let the
        starts under way finish."""
        self._slots = _checked(slots)
        self._grant()

    @property
    def starting(self) -> int:
        return len(self._starting)

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def place(self, ticket: Ticket) -> int | None:
        """1 for the next in line, 2 for the one after...; None when the ticket is not waiting."""
        if ticket.state is not TicketState.WAITING:
            return None
        return self._waiting.index(ticket) + 1

    async def changed(self, timeout: float | None = None) -> None:
        """Return at the next change of the line (someone joined, left, got or gave back a slot),
        or after ``timeout`` seconds."""
        event = self._changed
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            pass

    @asynccontextmanager
    async def slot(self, ticket: Ticket) -> AsyncIterator[Ticket]:
        """Wait in line for a slot, hold it inside the ``async with`` block, give it back on the
        way out, however the block ends. Cancelled while waiting, the ticket leaves the line."""
        if ticket.state is not TicketState.NEW:
            raise ValueError(f"ticket {ticket.name} was in line already ({ticket.state}); make a new one")
        ticket.state = TicketState.WAITING
        ticket._joined = time.monotonic()
        self._waiting.append(ticket)
        self._grant()
        self._notify()
        try:
            await ticket._turn.wait()
            yield ticket
        finally:
            self._give_back(ticket)

    def _give_back(self, ticket: Ticket) -> None:
        if ticket.state is TicketState.WAITING:
            self._waiting.remove(ticket)
            ticket.state = TicketState.LEFT
        elif ticket.state is TicketState.STARTING:
            self._starting.discard(ticket)
            ticket.state = TicketState.DONE
        self._grant()
        self._notify()

    def _grant(self) -> None:
        granted = False
        while self._waiting and len(self._starting) < self._slots:
            ticket = self._waiting.popleft()
            ticket.state = TicketState.STARTING
            ticket.queued_s = time.monotonic() - ticket._joined
            self._starting.add(ticket)
            ticket._turn.set()
            granted = True
        if granted:
            self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()


def _checked(slots: int) -> int:
    if slots < 1:
        raise ValueError(f"a start queue needs at least one slot, not {slots}; "
                         "set ProjectSpawner.concurrent_starts to 1 or more")
    return slots
