"""Sign-in throttling on a clock the test moves: per account, per address, a wait that always ends."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from hub.auth.throttle import SignInRefused, Throttle, ThrottledSignIn


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_account_waits_after_its_failures_until_the_oldest_leaves_the_window():
    clock = Clock()
    throttle = Throttle(3, 300, clock)
    for _ in range(3):
        assert throttle.wait("bob") == 0
        throttle.failed("bob")
        clock.now += 10
    assert throttle.wait("bob") == pytest.approx(270)  # first failure at 1000, now 1030
    assert throttle.wait("carol") == 0
    clock.now += 270
    assert throttle.wait("bob") == 0


def test_a_success_clears_the_account():
    throttle = Throttle(2, 300, Clock())
    throttle.failed("bob")
    throttle.clear("bob")
    throttle.failed("bob")
    assert throttle.wait("bob") == 0


def handler(ip: str, language: str = "en"):
    return SimpleNamespace(request=SimpleNamespace(remote_ip=ip, headers={"Accept-Language": language}))


def test_the_refusal_says_when_to_retry_in_the_readers_language():
    signin = ThrottledSignIn(signin_failures_per_account=2, signin_failures_per_address=3)
    for _ in range(2):
        signin.sign_in_failed(handler("10.0.0.1"), "bob")
    with pytest.raises(SignInRefused) as refused:
        signin.check_throttle(handler("10.0.0.9", "fr-FR"), "bob")
    assert refused.value.status_code == 429
    assert "pour ce compte" in refused.value.jupyterhub_message and "Réessayez dans 5 minute(s)" in refused.value.jupyterhub_message
    signin.check_throttle(handler("10.0.0.9"), "carol")  # another account, another address: fine
    signin.sign_in_failed(handler("10.0.0.1"), "dave")
    with pytest.raises(SignInRefused, match="from your network address. Try again in"):
        signin.check_throttle(handler("10.0.0.1"), "erin")  # three failures from 10.0.0.1
