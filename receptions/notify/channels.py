"""Delivery channels: SMTP e-mail, and local log-file backends for e-mail and SMS in demos.

A real SMS gateway would be one more class with the same `send` method.
"""

from __future__ import annotations

import smtplib
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Protocol

from ..booking.identity import mask_contact
from ..database import utcnow
from ..logging_filters import redact


@dataclass(frozen=True)
class Message:
    recipient: str
    subject: str
    body: str


class DeliveryError(Exception):
    """The channel could not deliver; the outbox will try again later."""


class ChannelBackend(Protocol):
    def send(self, message: Message) -> None: ...


@dataclass(frozen=True)
class SmtpBackend:
    host: str
    port: int
    sender: str
    username: str | None = None
    password: str | None = None
    use_tls: bool = False
    timeout: float = 10.0
    # The right-hand side of each Message-ID: the site's own domain, never this host's name
    # (make_msgid's default, which also costs a DNS look-up).
    message_id_domain: str = "localhost"

    def send(self, message: Message) -> None:
        email = EmailMessage()
        email["From"] = self.sender
        email["To"] = message.recipient
        email["Subject"] = message.subject
        # Without them relays add their own or score the message as spam (RFC 5322 requires
        # Date; a Message-ID lets a reply or a bounce be matched to the message).
        email["Date"] = formatdate(localtime=False)
        email["Message-ID"] = make_msgid(domain=self.message_id_domain)
        email.set_content(message.body)
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                if self.use_tls:
                    smtp.starttls()
                if self.username:
                    smtp.login(self.username, self.password or "")
                smtp.send_message(email)
        except (OSError, smtplib.SMTPException) as error:
            raise DeliveryError(f"SMTP {type(error).__name__}: {error}") from error


@dataclass(frozen=True)
class LogFileBackend:
    """Appends each message to a file: the demo's stand-in for a gateway.

    The file is a log like any other: recipients are masked and the secret links inside a
    message (manage links, set-password links) are redacted, so it can be read and shipped
    without handing out anyone's booking.
    """

    path: Path

    def send(self, message: Message) -> None:
        recipient = mask_contact(message.recipient)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(
                f"--- {utcnow().isoformat()} to {recipient}\n"
                f"{message.subject}\n{redact(message.body)}\n"
            )
