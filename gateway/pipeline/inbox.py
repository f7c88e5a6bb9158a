"""An inbound channel read into the intake: read, accept (one commit), then the channel's acks.

The channels (channels/folder.py for var/inbox/<partner>/, channels/sftp.py per partner)
know how to find and hand over a partner's input; the intake (intake.accept) stores it
and tells the channel when it may archive. This module only joins the two; when each
is polled is gateway/pipeline/inbound.py's business.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from channels.base import Input
from channels.folder import FolderInput, FolderInputConfig
from gateway.pipeline import intake
from gateway.pipeline.context import Context
from gateway.settings import Settings
from gateway.store import payloads


def poll(ctx: Context, source: Input) -> tuple[int, list[intake.Accepted]]:
    """One read of source into the store: (messages read, what became of them).

    A failure after the read closes source, so what it handed over comes again.
    """
    messages = source.read()
    try:
        return len(messages), intake.accept(ctx, messages, source)
    except BaseException:
        source.close()
        raise


def folder_config(settings: Settings) -> FolderInputConfig:
    """The folder channel's settings from conf/gateway.yaml's inbound.folder."""
    return FolderInputConfig(enabled=settings.inbox_enabled, root=str(settings.inbox_root),
                             poll_interval=settings.poll_interval,
                             stable_for=settings.stable_for, batch=settings.receive_batch)


class FolderInbox:
    """The folder channel of every partner, read in batches into the intake."""

    def __init__(self, ctx: Context, clock: Callable[[], float] = time.monotonic) -> None:
        self.ctx = ctx
        self.input = FolderInput(folder_config(ctx.settings),
                                 max_bytes=ctx.settings.max_input_bytes,
                                 large_bytes=payloads.PART_BYTES, clock=clock)
        self.root = self.input.root

    def prepare(self) -> None:
        """Create the folder of every configured partner, so operators see where files go."""
        self.input.prepare(p.id for p in self.ctx.partners)

    def waiting(self) -> int:
        """How many files are in the folders (stable or not)."""
        return self.input.waiting()

    def poll(self) -> list[intake.Accepted]:
        """Take every stable file once, a batch (one commit) at a time."""
        out: list[intake.Accepted] = []
        while True:
            read, accepted = poll(self.ctx, self.input)
            out += accepted
            if read < self.input.config.batch:
                return out
