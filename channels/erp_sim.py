"""The ERP simulator: a real HTTP server that applies each Idempotency-Key once, with faults."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from channels import signing
from channels.erp_sim_state import Effect, FaultSpec, RequestRecord, SimState

log = logging.getLogger(__name__)

MAX_BODY = 10 * 1024 * 1024  # a simulator still refuses what no ERP would take
IN_FLIGHT_RETRY_AFTER = "1"


def create_app(state: SimState) -> FastAPI:
    """The simulator's web app over `state`: ERP endpoint on any path, controls under /_sim."""
    app = FastAPI(title="edigw ERP simulator", docs_url="/_sim/docs", openapi_url="/_sim/openapi.json")

    @app.post("/_sim/faults")
    async def set_faults(spec: FaultSpec) -> dict[str, Any]:  # async: on_refuse needs the loop
        """Set the fault switch (mode none turns it off)."""
        state.set_fault(spec)
        if spec.mode == "refuse" and state.on_refuse is not None:
            state.on_refuse()
        return {"fault": spec.model_dump()}

    @app.get("/_sim/faults")
    def get_faults() -> dict[str, Any]:
        return {"fault": state.fault().model_dump()}

    @app.get("/_sim/stats")
    def stats() -> dict[str, Any]:
        return state.stats()

    @app.get("/_sim/effects")
    def effects() -> list[dict[str, Any]]:
        return state.effect_list()

    @app.get("/_sim/requests")
    def requests() -> list[dict[str, Any]]:
        return state.request_list()

    @app.post("/_sim/reset")
    def reset() -> dict[str, str]:
        state.reset()
        return {"status": "reset"}

    @app.post("/{path:path}")
    async def receive(path: str, request: Request) -> JSONResponse:
        """Take one event, as an ERP with idempotency keys would."""
        return await _receive(state, "/" + path, request)

    return app


async def _receive(state: SimState, path: str, request: Request) -> JSONResponse:
    body = await request.body()
    key = request.headers.get("idempotency-key")
    digest = hashlib.sha256(body).hexdigest()
    with state.lock:
        seq = len(state.requests) + 1
    record = RequestRecord(seq=seq, at=time.time(), path=path, key=key, body_sha256=digest,
                           signature=_signature(state, request, body))
    state.record(record)

    def answer(status: int, outcome: str, headers: dict[str, str] | None = None) -> JSONResponse:
        record.status, record.outcome = status, outcome
        return JSONResponse({"status": outcome, "key": key}, status_code=status, headers=headers)

    fault = state.take_fault(key)
    if fault is not None:
        record.fault = fault.mode
        if fault.mode == "503":
            after = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
            return answer(503, "unavailable", after)
        if fault.mode == "400":
            return answer(400, "rejected")
        if fault.mode == "hang":
            await _hold(state, fault.hold())
            return answer(503, "released")  # whoever still listens learns nothing was applied
    if len(body) > MAX_BODY:
        return answer(413, "too-large")
    if record.signature not in ("ok", "absent"):
        return answer(401, "bad-signature")
    if not key:
        return answer(400, "no-idempotency-key")
    try:
        event = json.loads(body)
        event_id, event_type, subject = event.get("id"), event.get("type"), event.get("subject")
    except (ValueError, AttributeError):
        return answer(400, "not-json")
    with state.lock:
        known = state.effects.get(key)
        busy = key in state.in_flight
        if not busy and known is None:
            state.in_flight.add(key)  # claimed: a second request now sees 409
    if busy:
        return answer(409, "in-flight", {"Retry-After": IN_FLIGHT_RETRY_AFTER})
    if known is not None:
        if known.body_sha256 != digest:
            return answer(422, "key-reused")
        return answer(200, "replayed", {"Idempotent-Replayed": "true"})
    try:
        if fault is not None and fault.mode == "slow":
            await asyncio.sleep(fault.hold())  # the client may give up; the effect happens anyway
        with state.lock:
            state.effects[key] = Effect(seq=len(state.effects) + 1, key=key, event_id=event_id,
                                        event_type=event_type, body_sha256=digest,
                                        applied_at=time.time(), subject=subject)
    finally:
        with state.lock:
            state.in_flight.discard(key)
    return answer(201, "applied")


def _signature(state: SimState, request: Request, body: bytes) -> str:
    if not state.secrets:
        return "absent"
    h = request.headers
    problem = signing.verify(state.secrets, h.get("webhook-id"), h.get("webhook-timestamp"),
                             h.get("webhook-signature"), body, time.time())
    return problem or "ok"


async def _hold(state: SimState, seconds: float) -> None:
    """Hold a request until `seconds` pass, the faults change, or the server stops."""
    generation, deadline = state.generation, time.monotonic() + seconds
    while time.monotonic() < deadline and state.generation == generation and not state.stopping:
        await asyncio.sleep(0.05)


@dataclass
class SimulatorHandle:
    """A running simulator: its base URL, its memory, and shortcuts to its controls."""

    url: str
    state: SimState

    @property
    def events_url(self) -> str:
        return self.url + "/events"

    def set_fault(self, mode: str, **options: Any) -> None:
        """Set the fault switch over HTTP, as any client would."""
        httpx.post(self.url + "/_sim/faults", json={"mode": mode, **options}).raise_for_status()

    def stats(self) -> dict[str, Any]:
        return self.state.stats()

    def effects(self) -> list[dict[str, Any]]:
        return self.state.effect_list()


class _Runner:
    """Runs uvicorn on a bound socket; stops listening while refusing, then listens again."""

    def __init__(self, state: SimState, host: str, port: int, access_log: bool,
                 log_config: Any) -> None:
        self.state, self.host, self.access_log, self.log_config = state, host, access_log, log_config
        self.app = create_app(state)
        self.sock = _bind(host, port)
        self.port = self.sock.getsockname()[1]
        self.server: uvicorn.Server | None = None
        self.stopped = threading.Event()
        state.on_refuse = self._refuse

    def run(self) -> None:
        """Serve until stopped, going deaf for each refuse period."""
        while not self.stopped.is_set():
            config = uvicorn.Config(self.app, lifespan="off", access_log=self.access_log,
                                    log_config=self.log_config, timeout_graceful_shutdown=1)
            self.server = uvicorn.Server(config)
            self.server.run(sockets=[self.sock])
            self.sock.close()
            refuse_until = self.state.refuse_until
            if self.stopped.is_set() or refuse_until is None:
                return
            self.stopped.wait(max(0.0, refuse_until - time.monotonic()))
            self.state.refuse_until = None
            if not self.stopped.is_set():
                self.sock = _bind(self.host, self.port)

    def stop(self) -> None:
        self.stopped.set()
        self.state.stopping = True
        if self.server is not None:
            self.server.should_exit = True

    def _refuse(self) -> None:
        # Closing the listener is what makes connect() fail with ECONNREFUSED, as a down ERP.
        # Closed here, on the loop, before the switch's answer goes out: the caller's next
        # request is refused for sure. The restart then happens at uvicorn's own pace.
        if self.server is not None:
            for listener in getattr(self.server, "servers", []):
                listener.close()
            self.server.should_exit = True


def _bind(host: str, port: int) -> socket.socket:
    # IPPROTO_TCP said out loud: asyncio sets TCP_NODELAY on accepted connections only when the
    # listener's proto is 6, and with Nagle on, every answer waited ~40 ms for a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    # Lets the port be bound again right after a refuse period, despite TIME_WAIT connections.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def serve(host: str = "127.0.0.1", port: int = 8088, *, secrets: Sequence[str] = (),
          access_log: bool = True,
          on_ready: Callable[[str], None] | None = None) -> None:
    """Run the simulator in this thread until interrupted (the `edigw erp-sim` command)."""
    state = SimState(secrets=[signing.Secret.parse(s) for s in secrets])
    runner = _Runner(state, host, port, access_log, uvicorn.config.LOGGING_CONFIG)
    url = f"http://{host}:{runner.port}"
    log.info("ERP simulator on %s (POST events to %s/events; controls under /_sim)", url, url)
    if on_ready is not None:
        on_ready(url)
    runner.run()


@contextmanager
def running_simulator(*, secrets: Sequence[str] = (), host: str = "127.0.0.1",
                      port: int = 0) -> Iterator[SimulatorHandle]:
    """A simulator on a free port in a background thread, for tests and demos."""
    state = SimState(secrets=[signing.Secret.parse(s) for s in secrets])
    # log_config=None: leave the caller's logging (pytest's capture) as it is.
    runner = _Runner(state, host, port, access_log=False, log_config=None)
    thread = threading.Thread(target=runner.run, name="erp-sim", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not (runner.server is not None and runner.server.started):
        if not thread.is_alive() or time.monotonic() > deadline:
            runner.stop()
            raise RuntimeError("the ERP simulator did not start")
        time.sleep(0.01)
    try:
        yield SimulatorHandle(f"http://{host}:{runner.port}", state)
    finally:
        runner.stop()
        thread.join(timeout=10)
