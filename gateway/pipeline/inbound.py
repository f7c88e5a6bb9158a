"""When inbound channels are polled: the folder from the runner's loop, each partner's
remote channel (SFTP) in a thread of its own at its own poll_interval, so that one
partner's dead server holds up no one else (the channel backs off on its own after a
failure); with --once, each until it has nothing more to give.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from canonical import errors
from channels import registry
from channels.base import Input
from gateway.pipeline.context import Context
from gateway.pipeline.inbox import FolderInbox, poll

log = logging.getLogger(__name__)
# How long --once waits for files still being written before it leaves them for next time.
ONCE_STABLE_WAIT = 30.0
# --once stops reading a remote channel after this many polls in a row that took nothing
# (a remote file is taken on the second poll that sees it unchanged), or after the wait.
ONCE_QUIET_POLLS = 2
ONCE_GRACE = 10.0  # beyond ONCE_STABLE_WAIT, for the last poll's downloads


def partner_inputs(ctx: Context) -> list[Input]:
    """An input for each polled channel every partner declares (unconnected); a webhook
    is not polled: the HTTP server hands its requests to the intake."""
    return [registry.build_input(kind, settings, partner=p.id)
            for p in ctx.partners for kind, settings in p.channels.items()
            if registry.INPUTS[kind].polled]


def poll_logged(ctx: Context, source: Input) -> int:
    """poll(), its failure logged (channels' messages carry no secrets); how many were read."""
    try:
        return poll(ctx, source)[0]
    except errors.GatewayError as exc:
        log.warning("%r: %s", source, exc)
    except Exception:  # a bad poll must not stop the gateway; the next one tries again
        log.exception("%r: polling failed", source)
    return 0


def drain(ctx: Context, source: Input, *, quiet_polls: int = ONCE_QUIET_POLLS,
          wait: float = ONCE_STABLE_WAIT, clock: Callable[[], float] = time.monotonic,
          sleep: Callable[[float], object] = time.sleep) -> None:
    """Poll a remote input until `quiet_polls` polls in a row took nothing, or `wait` ends."""
    deadline, quiet = clock() + wait, 0
    interval = float(getattr(source, "poll_interval", 1.0))
    while True:
        quiet = 0 if poll_logged(ctx, source) else quiet + 1
        if quiet >= quiet_polls or clock() + interval > deadline:
            return
        sleep(interval)


class Inbound:
    """Every inbound channel of the gateway: the folder of all partners and theirs."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.folder = FolderInbox(ctx) if ctx.settings.inbox_enabled else None
        self.remote = partner_inputs(ctx)
        self._threads: list[threading.Thread] = []

    def __str__(self) -> str:
        parts = [f"folder {self.folder.root}" if self.folder else "folder off"]
        return ", ".join(parts + [repr(r) for r in self.remote])

    def prepare(self) -> None:
        """Create the partners' folders."""
        if self.folder is not None:
            self.folder.prepare()

    def drain(self) -> None:
        """--once: take what is in every channel now (remote ones side by side)."""
        threads = [threading.Thread(target=drain, args=(self.ctx, r), daemon=True,
                                    name=f"edigw-drain-{i}") for i, r in enumerate(self.remote)]
        for t in threads:
            t.start()
        if self.folder is not None:
            deadline = time.monotonic() + self.ctx.settings.stable_for + ONCE_STABLE_WAIT
            while True:
                self.folder.poll()
                if not self.folder.waiting() or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
        # A poll blocked on a server that stopped answering ends at its watchdog
        # (poll_budget); --once does not wait that long: the file stays for the next run.
        deadline = time.monotonic() + ONCE_STABLE_WAIT + ONCE_GRACE
        for t, source in zip(threads, self.remote, strict=True):
            t.join(max(0.0, deadline - time.monotonic()))
            if t.is_alive():
                log.warning("%r: still busy when --once ended; what it has not taken is"
                            " taken by the next run", source)

    def start(self, stop: threading.Event) -> None:
        """Poll each remote channel in its own thread until stop is set."""
        for i, source in enumerate(self.remote):
            def loop(source: Input = source) -> None:
                interval = float(getattr(source, "poll_interval", 1.0))
                while not stop.is_set():
                    poll_logged(self.ctx, source)
                    stop.wait(interval)
            t = threading.Thread(target=loop, daemon=True, name=f"edigw-poll-{i}")
            t.start()
            self._threads.append(t)

    def poll_folder(self) -> None:
        """One look at the folders (from the runner's loop); a failure is logged."""
        if self.folder is None:
            return
        try:
            self.folder.poll()
        except Exception:  # a bad poll must not stop the gateway; try again
            log.exception("polling %s failed", self.folder.root)

    def close(self, timeout: float = 5.0) -> None:
        """Wait a little for the pollers (they stop at their next turn), then disconnect.

        A poller still inside a network call is left to its watchdog (its thread is a
        daemon) and its channel is not closed under it; after --once every channel is
        closed, which ends a poll still blocked on a server that stopped answering.
        """
        for t, source in zip(self._threads, self.remote, strict=False):
            t.join(timeout)
            if not t.is_alive():
                source.close()
        if not self._threads:
            for source in self.remote:
                source.close()
        if self.folder is not None:
            self.folder.input.close()
