"""Helpers for the crash and outage tests (issue #4): generated 850s, a runner subprocess, the store.

`Gateway` runs `edigw run --workers N` (serve mode: the runner restarts a worker that dies)
in its own process group, so that a test can SIGKILL one worker, or lose the runner itself
to a crash point and start it again, and never leaves a process behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from gateway.pipeline.context import KINDS
from gateway.store import db
from gateway.store.models import (
    Acknowledgment,
    DeadLetter,
    Delivery,
    DeliveryStatus,
    Message,
    WorkItem,
    WorkStatus,
)
from tests.pipeline_support import Site

SENDER = "ACMERETAIL"  # conf/partners/acme.yaml


def make_850s(isa13: int, sets: int) -> bytes:
    """One acme interchange, one group, `sets` small 850s with their own ST02 and PO numbers."""
    icn = f"{isa13:09d}"
    gs06 = str(isa13)
    out = [f"ISA*00*          *00*          *ZZ*{SENDER:<15}*ZZ*DISTRIBUTOR    *261120*0930*U*"
           f"00401*{icn}*0*P*>",
           f"GS*PO*{SENDER}*DISTRIBUTOR*20261120*0930*{gs06}*X*004010"]
    for n in range(1, sets + 1):
        st02 = f"{n:04d}"
        body = [f"BEG*00*SA*PO{isa13:05d}{n:04d}**20261120", "CUR*BY*USD",
                "N1*ST*Acme Store 118*92*0118",
                f"PO1*1*{n % 90 + 1}*EA*4.25**BP*ACME-{n:04d}*VP*W-{n:04d}", "CTT*1"]
        out += [f"ST*850*{st02}", *body, f"SE*{len(body) + 2}*{st02}"]
    out += [f"GE*{sets}*{gs06}", f"IEA*1*{icn}"]
    return ("~\n".join(out) + "~\n").encode("ascii")


def crash_site(root: Path, url: str, *, store_url: str | None = None,
               retry: dict[str, Any] | None = None, lease: float = 3.0,
               heartbeat: float = 1.0, max_claims: int = 3, batch: int = 50,
               receive_batch: int = 100) -> Site:
    """A site delivering over HTTP to `url`, with short leases so that recovery is quick."""
    dest: dict[str, Any] = {"type": "http", "config": {"url": url, "read_timeout": 10.0}}
    if retry is not None:
        dest["retry"] = retry
    return Site(root, store_url=store_url, destinations={"erp": dest},
                inbound={"folder": {"stable_for": 0, "poll_interval": 0.2,
                                    "batch": receive_batch}},
                workers={"lease_seconds": lease, "heartbeat_seconds": heartbeat,
                         "idle_sleep": 0.2, "max_claims": max_claims, "batch": batch})


def children(pid: int) -> list[int]:
    """The direct children of pid (Linux /proc)."""
    out: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            text = Path(f"/proc/{pid}/task/{task}/children").read_text()
            out += [int(p) for p in text.split()]
    except (FileNotFoundError, ProcessLookupError):
        pass
    return out


def is_worker(pid: int) -> bool:
    """Whether pid is a spawned edigw worker (and not a resource tracker or a zombie)."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return b"spawn_main" in cmd and state != "Z"


class Gateway:
    """`edigw run --workers N` as a subprocess of its own process group; restartable."""

    def __init__(self, site: Site, workers: int, env: dict[str, str] | None = None) -> None:
        self.site, self.workers = site, workers
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.runner_deaths = 0
        self.logs: list[Path] = []

    def start(self) -> None:
        log = self.site.root / f"runner-{self.starts}.log"
        self.logs.append(log)
        self.starts += 1
        with open(log, "wb") as f:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gateway.cli", "run", "--config", str(self.site.config),
                 "--workers", str(self.workers)],
                cwd=self.site.root, env=self.env, stdout=f, stderr=subprocess.STDOUT,
                start_new_session=True)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def keep_alive(self) -> bool:
        """Start the runner again if a crash point killed it (its workers die with it); True if so."""
        assert self.proc is not None
        if self.proc.poll() is None:
            return False
        self.runner_deaths += 1
        self._kill_group()
        self.start()
        return True

    def worker_pids(self) -> list[int]:
        return [p for p in children(self.proc.pid) if is_worker(p)] if self.alive() else []

    def kill_worker(self, pick: Callable[[list[int]], int], wait: float = 15.0) -> int | None:
        """SIGKILL one live worker (chosen by pick); its pid, or None if none came up in time."""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            self.keep_alive()
            pids = self.worker_pids()
            if pids:
                pid = pick(pids)
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    continue
                return pid
            time.sleep(0.05)
        return None

    def stop(self) -> None:
        """SIGTERM the runner (it stops its workers), then SIGKILL whatever is left of the group."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=20)
        self._kill_group()

    def _kill_group(self) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def log_text(self) -> str:
        return "\n".join(p.read_text("utf-8", "replace") for p in self.logs if p.exists())

    def worker_deaths(self) -> int:
        """Workers the runner saw die of SIGKILL."""
        return self.log_text().count("exited with -9")


@dataclass
class Held:
    """What one worker holds: the kinds of its claimed items, and their most lost leases."""

    kinds: set[str] = field(default_factory=set)
    most_lost: int = 0

    def stage(self) -> str:
        """The stage it is running: a batch runs its kinds in pipeline order, finishing each."""
        return min(self.kinds, key=KINDS.index)


class Store:
    """Read-only queries on the site's store."""

    def __init__(self, url: str) -> None:
        self.engine = db.make_engine(url)

    def close(self) -> None:
        self.engine.dispose()

    def counts(self) -> dict[str, int]:
        with db.transaction(self.engine, write=False) as s:
            def n(model: type, *where: Any) -> int:
                return int(s.scalar(select(func.count()).select_from(model).where(*where)) or 0)

            return {
                "messages": n(Message),
                "deliveries": n(Delivery),
                "delivered": n(Delivery, Delivery.status == DeliveryStatus.DELIVERED),
                "dead_deliveries": n(Delivery, Delivery.status == DeliveryStatus.DEAD),
                "waiting": n(WorkItem, WorkItem.status.in_((WorkStatus.PENDING,
                                                            WorkStatus.CLAIMED))),
                "dead_letters": n(DeadLetter),
                "acks": n(Acknowledgment),
                "acks_unsent": n(Acknowledgment, Acknowledgment.sent_at.is_(None)),
            }

    def attempts(self) -> dict[str, int]:
        """Delivery attempts by event id."""
        with db.transaction(self.engine, write=False) as s:
            return {e: a for e, a in s.execute(select(Delivery.event_id, Delivery.attempts))}

    def items(self) -> list[tuple[str, str, int]]:
        with db.transaction(self.engine, write=False) as s:
            return [tuple(r) for r in s.execute(
                select(WorkItem.kind, WorkItem.status, WorkItem.attempts))]

    def held(self) -> dict[int, Held]:
        """The claimed items by the pid of the worker holding them (from its lease owner id)."""
        out: dict[int, Held] = {}
        with db.transaction(self.engine, write=False) as s:
            for owner, kind, lost in s.execute(
                    select(WorkItem.lease_owner, WorkItem.kind, WorkItem.lost_leases)
                    .where(WorkItem.status == WorkStatus.CLAIMED)):
                pid = int(owner.rsplit(":", 2)[1])  # worker ids are host:pid:random
                held = out.setdefault(pid, Held())
                held.kinds.add(kind)
                held.most_lost = max(held.most_lost, lost)
        return out

    def dead_letters(self) -> list[DeadLetter]:
        with db.transaction(self.engine, write=False) as s:
            return list(s.scalars(select(DeadLetter).order_by(DeadLetter.id)))


def open_store(url: str, gw: Gateway, timeout: float = 60) -> Store:
    """The store once the gateway's runner has migrated it (it is kept alive meanwhile)."""
    deadline = time.monotonic() + timeout
    while True:
        store = Store(url)
        try:
            store.counts()
            return store
        except Exception:
            store.close()
            if time.monotonic() > deadline:
                raise
            gw.keep_alive()
            time.sleep(0.2)


def inbox_files(site: Site) -> list[Path]:
    """Files still waiting in the inbox folders (not the archives)."""
    root = site.root / "var" / "inbox"
    return [f for d in root.iterdir() if d.is_dir() for f in d.iterdir() if f.is_file()
            and not f.name.startswith(".")] if root.is_dir() else []
