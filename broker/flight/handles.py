"""Flight SQL handles: the tickets GetFlightInfo issues and the prepared
statements CreatePreparedStatement opens.

A handle is 32 random bytes naming an entry kept here, in the broker; the
SQL, purpose and parameters never travel in it, so a client has nothing
to tamper with. Each entry is bound to the certificate that asked for it
(its SHA-256 fingerprint): another certificate presenting it is refused
PERMISSION_DENIED, as if it named another partner's data. A ticket is
redeemed once and expires after ``ACCORD_FLIGHT_TICKET_S``; a prepared
statement lives until closed or ``ACCORD_FLIGHT_STATEMENT_IDLE_S`` unused.
One partner holds at most ``ACCORD_FLIGHT_HANDLES`` of them.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from accord.errors import InvalidQuery, PolicyDenied, ResourceExhausted

if TYPE_CHECKING:
    from collections.abc import Callable

    from accord.v1 import broker_pb2
    from broker.identity import Principal
    from broker.settings import FlightSettings

HANDLE_BYTES = 32


@dataclass
class PreparedStatement:
    """A statement's SQL with placeholders, and the parameters last bound."""

    sql: str
    placeholders: int
    parameters: list[object] | None = None


@dataclass
class _Entry:
    fingerprint: str
    partner: str
    expires: float  # monotonic
    value: broker_pb2.QueryRequest | PreparedStatement  # a ticket's request, or a statement


class Handles:
    """Tickets and prepared statements of every caller, by handle."""

    def __init__(
        self, settings: FlightSettings, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.settings = settings
        self.clock = clock
        self._entries: dict[bytes, _Entry] = {}

    def ticket(self, principal: Principal, request: broker_pb2.QueryRequest) -> bytes:
        """A single-use handle for one run of ``request`` by this certificate."""
        return self._add(principal, request, self.settings.ticket_s)

    def prepare(self, principal: Principal, statement: PreparedStatement) -> bytes:
        return self._add(principal, statement, self.settings.statement_idle_s)

    def redeem(self, handle: bytes, principal: Principal) -> broker_pb2.QueryRequest:
        """The request a ticket was issued for; the ticket is spent."""
        entry = self._owned(handle, principal, "ticket")
        if not isinstance(entry.value, PreparedStatement):
            del self._entries[handle]
            return entry.value
        raise InvalidQuery("this handle is a prepared statement, not a ticket", field="ticket")

    def statement(self, handle: bytes, principal: Principal) -> PreparedStatement:
        """A prepared statement of this certificate; its idle time starts over."""
        entry = self._owned(handle, principal, "prepared statement")
        if not isinstance(entry.value, PreparedStatement):
            raise InvalidQuery(
                "this handle is a ticket, not a prepared statement", field="prepared_statement"
            )
        entry.expires = self.clock() + self.settings.statement_idle_s
        return entry.value

    def close(self, handle: bytes, principal: Principal) -> None:
        self.statement(handle, principal)  # only its owner closes it
        del self._entries[handle]

    def _owned(self, handle: bytes, principal: Principal, kind: str) -> _Entry:
        self._expire()
        entry = self._entries.get(handle)
        if entry is None:
            lifetime = (
                f"single-use and redeemable for {self.settings.ticket_s:g} s"
                if kind == "ticket"
                else f"closed after {self.settings.statement_idle_s:g} s unused"
            )
            raise InvalidQuery(
                f"unknown or expired {kind} (they are {lifetime}): ask again",
                field=kind.replace(" ", "_"),
            )
        if entry.fingerprint != principal.fingerprint:
            raise PolicyDenied(f"this {kind} was issued to another certificate", reason="partner")
        return entry

    def _add(
        self,
        principal: Principal,
        value: broker_pb2.QueryRequest | PreparedStatement,
        lifetime_s: float,
    ) -> bytes:
        self._expire()
        name = principal.partner.name
        held = sum(1 for e in self._entries.values() if e.partner == name)
        if held >= self.settings.handles:
            raise ResourceExhausted(
                f"{held} Flight SQL tickets and prepared statements are open "
                f"(ACCORD_FLIGHT_HANDLES): close prepared statements you no longer use"
            )
        handle = secrets.token_bytes(HANDLE_BYTES)
        self._entries[handle] = _Entry(
            principal.fingerprint, name, self.clock() + lifetime_s, value
        )
        return handle

    def _expire(self) -> None:
        now = self.clock()
        for handle in [h for h, e in self._entries.items() if e.expires <= now]:
            del self._entries[handle]
