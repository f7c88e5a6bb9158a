"""`edigw run`: migrate the store, poll the inbound channels, keep N worker processes running.

The folder inbox is polled from the runner's loop, each partner's remote channel (SFTP) in
a thread of its own (gateway/pipeline/inbound.py). With once=True it takes every file now
in the inboxes, works the queue until nothing is ready or running, and returns: for
tests, demos and cron. Worker processes are started
with spawn (no fork of a process holding database connections and threads), and one that
dies is started again; its claimed item comes back when its lease runs out. Workers die
with the runner, even one killed outright (see lifeline).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
from multiprocessing.process import BaseProcess
from pathlib import Path

from canonical import redact
from gateway import private
from gateway.pipeline import lifeline
from gateway.pipeline.context import Context
from gateway.pipeline.inbound import Inbound
from gateway.pipeline.worker import Worker
from gateway.store import counts, db, migrate

log = logging.getLogger(__name__)


Summary = counts.Summary


def run(config: str | None = None, *, workers: int | None = None, once: bool = False,
        store_url: str | None = None, stop: threading.Event | None = None,
        listen: str | None = None) -> Summary:
    """Run the pipeline (until stop is set, or once until idle) and summarise the store;
    without once, HTTP is served meanwhile on listen (else http.listen; gateway.api.serve)."""
    ctx = Context.load(config, store_url=store_url)
    url = store_url or ctx.settings.store_url
    migrate.upgrade(url)
    count = workers or ctx.settings.workers.count
    stop = stop or threading.Event()
    inbound = Inbound(ctx)
    try:
        inbound.prepare()
        _prepare_files(ctx)
        if once:
            inbound.drain()
            if count == 1:
                Worker(ctx).run(until_idle=True)
            else:
                procs = [_start(config, url, once=True) for _ in range(count)]
                for p in procs:
                    p.join()
        else:
            from gateway.api import serve  # FastAPI and uvicorn only where HTTP is served

            # Before HTTP is served: a SIGTERM sent as soon as "HTTP on" is logged must stop
            # the gateway in order, not kill it with the default action.
            _on_signals(stop)
            with serve.serving(ctx.settings, url, listen):
                _serve(ctx, inbound, config, url, count, stop)
        return summary(ctx)
    finally:
        inbound.close()
        ctx.close()


def _prepare_files(ctx: Context) -> None:
    # The embedded default writes under ./var/erp/, which a fresh clone does not have.
    for dest in ctx.settings.destinations.values():
        if dest.type == "file" and dest.config.get("path"):
            private.make_dirs(Path(dest.config["path"]).parent)


def _serve(ctx: Context, inbound: Inbound, config: str | None, url: str, count: int,
           stop: threading.Event) -> None:
    procs = [_start(config, url, once=False) for _ in range(count)]
    inbound.start(stop)
    log.info("running: %d worker(s); inbound %s", count, inbound)
    try:
        while not stop.is_set():
            inbound.poll_folder()
            for i, p in enumerate(procs):
                if not p.is_alive():
                    log.warning("worker %s exited with %s; starting another", p.pid, p.exitcode)
                    procs[i] = _start(config, url, once=False)
            stop.wait(ctx.settings.poll_interval)
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()  # SIGTERM: the worker finishes its item and leaves
        for p in procs:
            p.join(timeout=ctx.settings.workers.lease_seconds)
            if p.is_alive():
                p.kill()
                p.join()


def _on_signals(stop: threading.Event) -> None:
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())


def _start(config: str | None, url: str, *, once: bool) -> BaseProcess:
    proc = multiprocessing.get_context("spawn").Process(
        target=worker_main, args=(config, url, once, os.getpid()), name="edigw-worker")
    proc.start()
    return proc


def worker_main(config: str | None, store_url: str, once: bool,
                parent_pid: int | None = None) -> None:
    """A worker process: work until SIGTERM, or its supervisor's death (or, once, until idle)."""
    if parent_pid is not None:
        # First thing: a supervisor killed while this one loads must still take it along.
        lifeline.set_death_signal()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(process)d %(levelname)s "
                        "%(name)s: %(message)s")
    redact.install(*logging.getLogger().handlers)
    ctx = Context.load(config, store_url=store_url)
    worker = Worker(ctx)
    worker.install_signals()
    if parent_pid is not None:
        lifeline.tie_to(parent_pid, worker.stopping.set, grace=ctx.settings.workers.lease_seconds)
    try:
        worker.run(until_idle=once)
    finally:
        ctx.close()


def summary(ctx: Context) -> Summary:
    """Counts from the store: messages, deliveries, parked dead letters, acks, waiting items."""
    with db.transaction(ctx.engine, write=False) as s:
        return counts.summary(s)
