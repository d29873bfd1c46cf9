"""Email to people something waits for, when the TRE has a mail server (``TRE_SMTP_*``).

Called after the act has been committed, so a mail server that is down delays nobody's work and
undoes nothing: the pages' counts say the same thing, and a failure is only logged.
"""

from __future__ import annotations

import smtplib
from collections.abc import Callable
from email.message import EmailMessage

from tre_core.settings import TRESettings


def smtp_sender(host: str, port: int, sender: str, timeout: float = 10.0) -> Callable[[list[str], str, str], None]:
    def send(to: list[str], subject: str, body: str) -> None:
        # one message per person: the checkers of a platform do not learn each other's addresses
        with smtplib.SMTP(host, port, timeout=timeout) as server:
            for address in to:
                message = EmailMessage()
                message["From"], message["To"], message["Subject"] = sender, address, subject
                message.set_content(body + "\n\nOpen the egress review pages of the TRE to act on it.\n")
                server.send_message(message)
    return send


def from_settings(settings: TRESettings) -> Callable[[list[str], str, str], None] | None:
    if not (settings.smtp_host and settings.smtp_from):
        return None
    return smtp_sender(settings.smtp_host, settings.smtp_port, settings.smtp_from)
