"""Rotating every certificate of a running federation under load, with no
restart and no failed query.

A federation of its own (its certificates change): while partners query
without pause, the CA renews the broker's server and client certificates,
every adapter's and the partners', every process reloads on SIGHUP, and
then every old certificate is revoked. Old and new overlap until then: the
adapters accept the broker by name, and the partners and the broker trust
the CA, so each side may switch at its own moment.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from functools import partial
from typing import TYPE_CHECKING

import pytest

from accord.audit.search import search
from accord.client import BrokerClient
from accord.workdir import DEFAULT_FEDERATION, Workdir
from certs.ca import certificate_info
from certs.files import locked
from certs.lifecycle import renew, revoke
from tests.integration.conftest import start

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from tests.integration.conftest import Running

pytestmark = pytest.mark.integration

PARTNER = "crown_attorney"
SQL = "SELECT source, count(*) AS n FROM offenders GROUP BY source ORDER BY source"
#: Seconds any one reload may take to show in the trail or the log.
RELOAD_WITHIN_S = 20.0


@pytest.fixture(scope="module")
def rotating(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    yield from start(Workdir(tmp_path_factory.mktemp("accord-rotation")), DEFAULT_FEDERATION)


class Load:
    """Partners querying without pause on two threads: one keeps its channel
    (opened with the old certificate), one opens a new client each time
    (picking up whatever certificate files are there)."""

    def __init__(self, running: Running) -> None:
        self.running = running
        self.stop = threading.Event()
        self.keep_until = threading.Event()  # the partner moves to its new certificate
        self.answers = 0
        self.failures: list[str] = []
        self.expected = running.oracle(PARTNER).sql(SQL).fetchall()
        self._threads = [
            threading.Thread(target=self._kept, name="kept-channel"),
            threading.Thread(target=self._fresh, name="fresh-channels"),
        ]

    def _client(self) -> BrokerClient:
        return self.running.client(PARTNER, purpose="bail_hearing", case_ref="R-2026-0042")

    def _ask(self, client: BrokerClient) -> None:
        try:
            table = client.query(SQL, timeout=30).table
            got = list(zip(*(c.to_pylist() for c in table.columns), strict=True))
            if [tuple(r) for r in got] != [tuple(r) for r in self.expected]:
                self.failures.append(f"wrong answer: {got}")
        except Exception as exc:
            self.failures.append(f"{type(exc).__name__}: {exc}")
        else:
            self.answers += 1

    def _kept(self) -> None:
        with self._client() as client:
            while not (self.stop.is_set() or self.keep_until.is_set()):
                self._ask(client)

    def leave_old_channel(self) -> None:
        """Ends the thread on the old certificate's channel, before that
        certificate is revoked (after which it is rightly refused)."""
        self.keep_until.set()
        self._threads[0].join(timeout=60)

    def _fresh(self) -> None:
        while not self.stop.is_set():
            # A renewal writes the key and then the certificate: read the
            # pair while the CA is not writing it, as `accord certs` holds
            # the directory's lock for its changes (a half-renewed pair is
            # a reader's fault, not the broker's).
            with locked(self.running.workdir.pki):
                client = self._client()
            with client:
                self._ask(client)

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def wait_for_answers(self, more: int, within_s: float = 60.0) -> None:
        target, deadline = self.answers + more, time.monotonic() + within_s
        while self.answers < target:
            assert not self.failures, self.failures
            assert time.monotonic() < deadline, f"only {self.answers} answers, wanted {target}"
            time.sleep(0.05)


def audit_events(running: Running) -> list[dict[str, object]]:
    records = []
    for path in sorted(running.workdir.audit_dir().glob("*.jsonl")):
        for line in path.read_text().splitlines():
            records.append(json.loads(line))
    return records


def wait_until(condition: Callable[[], bool], what: str, within_s: float = RELOAD_WITHIN_S) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def reloaded(log: Path) -> bool:
    """The adapter took its new certificate and the broker's new pin (its last step)."""
    text = log.read_text()
    return "certificate reloaded" in text and "broker_identities reloaded" in text


def serial(path: Path) -> int:
    return certificate_info(path.read_bytes()).serial


def test_every_certificate_rotates_under_load_with_no_failed_query(rotating: Running) -> None:
    pki = rotating.workdir.pki
    sources = sorted(rotating.federation.sources)
    old = {
        "broker-server": serial(pki.broker_server()[0]),
        "broker-client": serial(pki.broker_client()[0]),
        "partner": serial(pki.partner(PARTNER)[0]),
        **{f"adapter {code}": serial(pki.adapter(code)[0]) for code in sources},
    }
    processes = rotating.launcher.processes
    with Load(rotating) as load:
        load.wait_for_answers(3)
        renew(pki, "broker-server")
        renew(pki, "broker-client")
        renew(pki, "partner", PARTNER)
        for code in sources:
            renew(pki, "adapter", code)
        reloads_before = len(
            [r for r in audit_events(rotating) if "reload" in str(r.get("event", ""))]
        )
        # The adapters first: they pin the broker's new certificate beside
        # the old one; only then does the broker present it.
        for code in sources:
            processes[f"adapter-{code.lower()}"].send_signal(signal.SIGHUP)
        for code in sources:
            log = rotating.workdir.logs / f"adapter-{code.lower()}.log"
            wait_until(partial(reloaded, log), f"adapter {code}'s reload")
        processes["broker"].send_signal(signal.SIGHUP)

        def broker_reloaded() -> bool:
            events = [r for r in audit_events(rotating) if "reload" in str(r.get("event", ""))]
            return len(events) - reloads_before >= 4  # policy, server, client, CRL

        wait_until(broker_reloaded, "the broker's reload records")
        load.wait_for_answers(3)
        load.leave_old_channel()
        for serial_number in old.values():
            revoke(pki, str(serial_number), "superseded")
        load.wait_for_answers(5)
    assert not load.failures, load.failures
    assert load.answers >= 14
    print(f"rotation: {load.answers} answers during the rotation, none failed")
    outcomes = {
        str(r.get("event", "")): r["outcome"]
        for r in audit_events(rotating)
        if str(r.get("event", "")).endswith("_reload")
    }
    assert outcomes == {
        "policy_reload": "OK",
        "certificate_reload": "OK",
        "client_certificate_reload": "OK",
        "revocation_list_reload": "OK",
    }
    for code in sources:  # each adapter's own trail has its reloads, the new pin added
        trail = {
            r["event"]: r
            for r in search(rotating.workdir.adapter_audit_dir(code))
            if str(r.get("event", "")).endswith("_reload")
        }
        assert trail["certificate_reload"]["outcome"] == "OK", code
        assert len(trail["broker_identities_reload"]["pins_added"]) == 1, code
    # After the old ones were revoked, a new partner client (new certificate) answers.
    with rotating.client(PARTNER, purpose="bail_hearing", case_ref="R-2026-0042") as client:
        assert client.query(SQL, timeout=30).table.num_rows == len(sources)
