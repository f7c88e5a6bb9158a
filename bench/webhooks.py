"""Benchmark: signed webhook messages accepted per second by `edigw run`, against a bare endpoint.

Issue #9 item 6. Two servers on loopback, measured in the same run, round by round in
turn so that a busy machine slows both alike:

- the gateway: `edigw run --workers 1` (SQLite in a temp folder unless --store), whose
  POST /v1/partners/brightline/messages checks the Standard Webhooks signature, stores
  the message with its validate item and its webhook-id in one commit, and answers 202;
  its worker meanwhile works the messages as they come;
- the baseline: a FastAPI app with the same route that only answers 202, under the same
  server (gateway.api.serve.HttpServer: uvicorn in a thread of a process of its own, same
  settings, same logging);
- for the reader, the gateway's app alone under the same server on a SQLite store of its
  own with no worker: what the intake costs when nothing else wants the store's lock.

The load is the same for both: keep-alive HTTP/1.1 connections from one asyncio client,
each sending the next pre-signed request as soon as the last is answered (every body a
distinct invoice, so every one is a new message). Rate = 202 answers per second over the
round. Each round starts once the worker has worked off the messages of the one before.
At the end, the gateway's store must hold one message per 202.

Messages accepted per second is a capacity: what a server takes when partners send all it
can take. So the rounds are run at each of --connections (16 and 64 unless told): the bare
endpoint is bound by CPU and takes the same at both, while each gateway request waits for
its commit's disk flush, so with 16 clients in flight the gateway waits with idle CPU, and
group commit needs more requests at once to fill it. Per concurrency the medians and their
ratio are printed; the target is judged on each server's best: the gateway's best median
at least 0.3x the bare endpoint's best.

    python bench/webhooks.py [--seconds 5] [--rounds 3] [--connections 16,64] [--store URL]
        [--x12] [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import logging
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import yaml  # noqa: E402

sys.path.insert(0, str(REPO / "bench"))
from pipeline import make_interchange  # noqa: E402  (bench/pipeline.py)

from channels import signing  # noqa: E402

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

TARGET = 0.3
PATH = "/v1/partners/brightline/messages"
INVOICE = json.loads((REPO / "mappings/partners/brightline/examples/invoice-BL-20417.json")
                     .read_text("utf-8"))
STARTUP = 120.0


# -- the bare endpoint, in a process of its own -------------------------------------

def bare_main() -> None:
    """Serve a FastAPI app whose one route only answers 202, as `edigw run` serves its app."""
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    app = FastAPI()

    @app.post("/v1/partners/{partner}/messages", status_code=202)
    async def accept(partner: str) -> JSONResponse:
        return JSONResponse({"message_id": 1, "status_url": "/v1/messages/1"}, status_code=202)

    _serve_until_stopped(app)


def intake_main(store: str, partners: str) -> None:
    """Serve the gateway's own app on a store of its own, with no worker: what the intake
    costs when it has the store to itself (the gateway's figure includes its worker)."""
    from gateway.api.api_settings import ApiSettings
    from gateway.api.app import create_app
    from gateway.store import migrate

    migrate.upgrade(store)
    _serve_until_stopped(create_app(ApiSettings(store_url=store, partners_dir=Path(partners),
                                                mappings_root=REPO / "mappings")))


def _serve_until_stopped(app: object) -> None:
    from canonical import redact
    from gateway.api.serve import HttpServer

    # As `edigw run` logs: INFO to stderr through the redacting handlers.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: "
                        "%(message)s", stream=sys.stderr)
    redact.install(*logging.getLogger().handlers)
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    server = HttpServer(app, "127.0.0.1", 0)  # type: ignore[arg-type]
    server.start()  # logs "HTTP on http://127.0.0.1:<port>"
    while not done.wait(1.0):
        pass
    server.stop()


# -- the load -----------------------------------------------------------------------

class Requests:
    """Signed requests, each a distinct document under a distinct webhook-id: brightline's
    JSON invoice, or (x12) an 850 from acme with its own ISA13."""

    def __init__(self, secret: signing.Secret, host: str, port: int, tag: str,
                 x12: bool = False, first_icn: int = 1) -> None:
        self.secret, self.host, self.port, self.tag, self.x12 = secret, host, port, tag, x12
        self.n = 0
        self.icn = first_icn

    def body(self) -> tuple[str, str, bytes]:
        if self.x12:
            self.icn += 1
            return PATH.replace("brightline", "acme"), "application/edi-x12", make_interchange(
                self.icn, 1)
        doc = json.loads(json.dumps(INVOICE))
        doc["data"]["invoice"]["number"] = f"BL-{self.tag}-{self.n}"
        # Each invoice bills an order of its own, as a partner's invoices do: not the same
        # PO thousands of times over, whose chain would grow by one invoice per request.
        doc["data"]["invoice"]["purchase_order"]["number"] = f"PO-{self.tag}-{self.n}"
        return PATH, "application/json", json.dumps(doc).encode()

    def next(self) -> bytes:
        self.n += 1
        path, ctype, body = self.body()
        head = signing.headers(self.secret, f"msg_{self.tag}_{self.n}", int(time.time()), body)
        lines = [f"POST {path} HTTP/1.1", f"Host: {self.host}:{self.port}",
                 f"Content-Type: {ctype}", f"Content-Length: {len(body)}",
                 *(f"{k}: {v}" for k, v in head.items()), "", ""]
        return "\r\n".join(lines).encode() + body


async def _connection(reqs: Requests, until: float, counts: dict[int, int]) -> None:
    reader, writer = await asyncio.open_connection(reqs.host, reqs.port)
    try:
        while time.perf_counter() < until:
            writer.write(reqs.next())
            status_line = await reader.readline()
            status = int(status_line.split()[1])
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            counts[status] = counts.get(status, 0) + 1
    finally:
        writer.close()


def load(reqs: Requests, seconds: float, connections: int) -> tuple[float, dict[int, int]]:
    """202s per second over `seconds` of `connections` connections, and every status seen."""
    counts: dict[int, int] = {}

    async def run() -> float:
        started = time.perf_counter()
        until = started + seconds
        await asyncio.gather(*(_connection(reqs, until, counts) for _ in range(connections)))
        return time.perf_counter() - started

    elapsed = asyncio.run(run())
    return counts.get(202, 0) / elapsed, counts


# -- the servers --------------------------------------------------------------------

def _edigw() -> list[str]:
    exe = shutil.which("edigw") or str(Path(sys.executable).with_name("edigw"))
    return [exe] if Path(exe).is_file() else [sys.executable, "-m", "gateway.cli"]


def _started(proc: subprocess.Popen[bytes], log: Path) -> int:
    deadline = time.monotonic() + STARTUP
    while time.monotonic() < deadline:
        found = re.search(r"HTTP on http://127\.0\.0\.1:(\d+)", log.read_text(errors="replace"))
        if found:
            return int(found.group(1))
        if proc.poll() is not None:
            sys.exit(f"a server exited with {proc.returncode}; see {log}")
        time.sleep(0.05)
    sys.exit(f"a server did not start in {STARTUP:g} s; see {log}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _stored(url: str) -> int:
    from sqlalchemy import func, select

    from gateway.store import db
    from gateway.store.models import Message

    engine = db.make_engine(url)
    try:
        with db.transaction(engine, write=False) as s:
            return int(s.scalar(select(func.count()).select_from(Message)) or 0)
    finally:
        engine.dispose()


def _waiting(engine: Engine, kind: str | None = None) -> int:
    """Work items (of kind, else any) pending or claimed: what the worker has not done yet."""
    from sqlalchemy import func, select

    from gateway.store import db
    from gateway.store.models import WorkItem, WorkStatus

    query = select(func.count()).select_from(WorkItem).where(
        WorkItem.status.in_((WorkStatus.PENDING, WorkStatus.CLAIMED)))
    if kind is not None:
        query = query.where(WorkItem.kind == kind)
    with db.transaction(engine, write=False) as s:
        return int(s.scalar(query) or 0)


def _unworked(url: str) -> int:
    """Messages whose first stage (validate) the worker has not done yet."""
    from gateway.store import db

    engine = db.make_engine(url)
    try:
        return _waiting(engine, "validate")
    finally:
        engine.dispose()


def _drained(url: str, timeout: float = 300.0) -> bool:
    """Wait until the gateway's worker has no work left (each round starts from the same
    state: the worker idle, then working the round's messages as they come)."""
    from gateway.store import db

    engine = db.make_engine(url)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not _waiting(engine):
                return True
            time.sleep(0.2)
        return False
    finally:
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per server (in turn)")
    parser.add_argument("--connections", default="16,64",
                        help="concurrent connections, or several (comma-separated): rounds at each")
    parser.add_argument("--store", help="store URL (default: SQLite in the temp folder)")
    parser.add_argument("--x12", action="store_true",
                        help="acme's 850s as application/edi-x12 instead of brightline's JSON "
                             "invoices (validated, acknowledged, mapped and delivered)")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder")
    parser.add_argument("--bare-server", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--intake-server", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_server:
        bare_main()
        return
    if args.intake_server:
        intake_main(*args.intake_server)
        return

    tmp = Path(tempfile.mkdtemp(prefix="edigw-bench-webhooks-"))
    key = os.urandom(32)
    env = {**os.environ, "BRIGHTLINE_WEBHOOK_SECRET": "whsec_" + base64.b64encode(key).decode()}
    store = args.store or f"sqlite:///{tmp / 'edigw.db'}"
    partners = tmp / "partners"  # the shipped partners, acme with a webhook as well
    shutil.copytree(REPO / "conf" / "partners", partners)
    acme = yaml.safe_load((partners / "acme.yaml").read_text("utf-8"))
    acme["channels"] = {"webhook": {"secret": {"env": "BRIGHTLINE_WEBHOOK_SECRET"}}}
    (partners / "acme.yaml").write_text(yaml.safe_dump(acme), encoding="utf-8")
    (tmp / "gateway.yaml").write_text(yaml.safe_dump({
        "store": {"url": store},
        "partners": {"folder": str(partners), "mappings": str(REPO / "mappings")},
        "inbound": {"folder": {"root": str(tmp / "inbox")}},
        "acks": {"folder": str(tmp / "outbox")},
        "destinations": {"erp": {"type": "file", "config": {"path": str(tmp / "events.jsonl")}}},
        "http": {"listen": "127.0.0.1:0"},
        "workers": {"count": 1},
    }), encoding="utf-8")
    names = ("bare", "intake", "gateway")
    logs = {name: (tmp / f"{name}.log").open("wb") for name in names}
    procs = {
        "bare": subprocess.Popen([sys.executable, __file__, "--bare-server"], cwd=tmp, env=env,
                                 stdout=logs["bare"], stderr=subprocess.STDOUT),
        "intake": subprocess.Popen([sys.executable, __file__, "--intake-server",
                                    f"sqlite:///{tmp / 'intake.db'}", str(partners)], cwd=tmp,
                                   env=env, stdout=logs["intake"], stderr=subprocess.STDOUT),
        "gateway": subprocess.Popen([*_edigw(), "run", "--config", str(tmp / "gateway.yaml")],
                                    cwd=tmp, env=env, stdout=logs["gateway"],
                                    stderr=subprocess.STDOUT),
    }
    secret = signing.Secret(key)
    levels = [int(n) for n in str(args.connections).split(",") if n.strip()]
    rates: dict[tuple[int, str], list[float]] = {(c, n): [] for c in levels for n in names}
    statuses: dict[str, dict[int, int]] = {name: {} for name in names}
    try:
        ports = {name: _started(p, tmp / f"{name}.log") for name, p in procs.items()}
        reqs = {name: Requests(secret, "127.0.0.1", port, f"{name[0]}{os.getpid()}",
                               x12=args.x12, first_icn=n * 100_000_000)
                for n, (name, port) in enumerate(ports.items())}
        warm = 0
        for name in names:  # warm-up, not counted
            warm = load(reqs[name], 1.0, levels[0])[1].get(202, 0)
        print(f"{'conns':>5} {'round':>5} {'bare 202/s':>11} {'intake alone':>13} "
              f"{'gateway 202/s':>14} {'ratio':>7}  worker meanwhile")
        for conns in levels:
            for r in range(1, args.rounds + 1):
                for name in names:
                    if not _drained(store):
                        print("the worker did not finish the last round's messages in time")
                    rate, counts = load(reqs[name], args.seconds, conns)
                    if name == "gateway":  # how far the worker kept up during the round
                        kept = 1 - _unworked(store) / max(counts.get(202, 0), 1)
                    rates[conns, name].append(rate)
                    for status, n in counts.items():
                        statuses[name][status] = statuses[name].get(status, 0) + n
                print(f"{conns:>5} {r:>5} {rates[conns, 'bare'][-1]:>11.0f} "
                      f"{rates[conns, 'intake'][-1]:>13.0f} {rates[conns, 'gateway'][-1]:>14.0f} "
                      f"{rates[conns, 'gateway'][-1] / rates[conns, 'bare'][-1]:>6.2f}x  "
                      f"validated {kept:.0%} of them", flush=True)
        accepted = statuses["gateway"].get(202, 0)
        stored = _stored(store)
    finally:
        for p in procs.values():
            _stop(p)
        for f in logs.values():
            f.close()
    median = {key: statistics.median(got) for key, got in rates.items()}
    for conns in levels:
        bare, gateway = median[conns, "bare"], median[conns, "gateway"]
        intake = median[conns, "intake"]
        print(f"median at {conns} connections: bare {bare:.0f}/s, gateway {gateway:.0f}/s "
              f"({gateway / bare if bare else 0:.2f}x); the same app on a SQLite store of its "
              f"own, no worker: {intake:.0f}/s ({intake / bare if bare else 0:.2f}x)")
    best = {name: max(levels, key=lambda c, name=name: median[c, name]) for name in names}
    bare, gateway = median[best["bare"], "bare"], median[best["gateway"], "gateway"]
    ratio = gateway / bare if bare else 0.0
    others = {k: v for k, v in statuses["gateway"].items() if k != 202}
    whole = stored == accepted + warm
    print(f"best: bare {bare:.0f}/s ({best['bare']} connections), gateway {gateway:.0f}/s "
          f"({best['gateway']} connections; signature checked, message stored): {ratio:.2f}x, "
          f"target >= {TARGET}x {'MET' if ratio >= TARGET and not others and whole else 'MISSED'}")
    print(f"intake alone answers: {statuses['intake']}")
    print(f"gateway answers: {statuses['gateway']}; messages stored {stored} "
          f"({'=' if whole else '!='} 202s {accepted} + warm-up {warm})")
    if others:
        print(f"other answers than 202 from the gateway: {others} (see {tmp / 'gateway.log'})")
    if args.keep:
        print(f"kept {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
