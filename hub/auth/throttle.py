"""Sign-in attempts throttled per account and per address, with a message saying when to retry.

A password guesser (the demo's one password) or a script replaying an OpenID callback is slowed to
a few tries per window: after ``per_account`` failures for one account, or ``per_address`` from one
address (higher: many people share an institution's NAT), within ``window`` seconds, further
attempts are refused until the oldest of those failures leaves the window. Refused attempts are not
counted, so waiting is always enough; a success clears the account's failures. Kept in the hub's
memory: the hub is one process, and a restart forgetting the counts costs an attacker a restart.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections import defaultdict, deque
from collections.abc import Callable

from tornado import web
from traitlets import Float, Integer
from traitlets.config import LoggingConfigurable

from tre_core.i18n import negotiate, translate

TOO_MANY = ("Too many failed sign-in attempts {whom}. Try again in {minutes} minute(s), after {time} UTC.")
WHOM = {"account": "for this account", "address": "from your network address"}


class Throttle:
    """Failures per key in a sliding window; ``wait`` says how long a key must wait, 0 if none."""

    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.window, self.clock = limit, window, clock
        self._failures: dict[str, deque[float]] = defaultdict(deque)

    def _recent(self, key: str) -> deque[float]:
        failures, now = self._failures[key], self.clock()
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if not failures:
            self._failures.pop(key, None)
        return failures

    def wait(self, key: str) -> float:
        failures = self._recent(key)
        if len(failures) < self.limit:
            return 0.0
        return failures[-self.limit] + self.window - self.clock()

    def failed(self, key: str) -> None:
        self._failures[key].append(self.clock())

    def clear(self, key: str) -> None:
        self._failures.pop(key, None)


class SignInRefused(web.HTTPError):
    """429 with the message on the login form (JupyterHub shows ``jupyterhub_message`` as is)."""

    def __init__(self, message: str) -> None:
        super().__init__(429, "%s", message)
        self.jupyterhub_message = message


class ThrottledSignIn(LoggingConfigurable):
    """Mixed into both authenticators: ``check_throttle`` before an attempt, ``sign_in_failed`` and
    ``sign_in_succeeded`` after it."""

    signin_failures_per_account = Integer(5, help="Failed sign-ins of one account before it waits.").tag(config=True)
    signin_failures_per_address = Integer(20, help="Failed sign-ins from one address before it waits.").tag(config=True)
    signin_throttle_window = Float(300.0, help="Seconds over which failed sign-ins are counted.").tag(config=True)

    _throttles: dict[str, Throttle] | None = None

    @property
    def throttles(self) -> dict[str, Throttle]:
        if self._throttles is None:
            self._throttles = {"account": Throttle(self.signin_failures_per_account, self.signin_throttle_window),
                               "address": Throttle(self.signin_failures_per_address, self.signin_throttle_window)}
        return self._throttles

    def check_throttle(self, handler: web.RequestHandler, account: str | None) -> None:
        """Refuse (429, in the reader's language) while the account or the address must wait."""
        keys = {"address": handler.request.remote_ip or "?", "account": account}
        for whom, key in keys.items():
            seconds = self.throttles[whom].wait(key) if key else 0.0
            if seconds > 0:
                self.log.warning("Sign-in throttled: %s %s for %.0f s", whom, key, seconds)
                language = negotiate(handler.request.headers.get("Accept-Language"))
                at = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)).strftime("%H:%M:%S")
                raise SignInRefused(translate(language, TOO_MANY, whom=translate(language, WHOM[whom]),
                                              minutes=max(1, math.ceil(seconds / 60)), time=at))

    def sign_in_failed(self, handler: web.RequestHandler, account: str | None) -> None:
        self.throttles["address"].failed(handler.request.remote_ip or "?")
        if account:
            self.throttles["account"].failed(account)

    def sign_in_succeeded(self, account: str) -> None:
        self.throttles["account"].clear(account)
