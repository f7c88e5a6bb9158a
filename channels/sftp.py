"""SFTP inbound (and the partner's outbox): poll a remote inbox, hand over stable files, archive on ack.

A file is taken once its size and mtime are unchanged across two polls, downloaded to a
temporary file that is fsynced (small files in pipelined groups, one spool file per group:
channels/sftp_batch.py), and handed over; only ack() (after the store's commit)
moves it to the archive or deletes it. Every call runs under a timeout and each poll under
a watchdog that closes the connection if the server stops answering; after a failure the
channel waits (exponential backoff with jitter) before it connects again. Each partner
has its own channel, connection and budget, so one dead server does not hold up another.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import posixpath
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import paramiko
import pydantic
from tenacity import wait_random_exponential

from canonical import errors
from channels import sftp_batch, sftp_link, sftp_names
from channels.base import InboundMessage
from channels.config import ChannelConfig, EnvSecret, setting
from channels.sftp_link import HostKeyRefused, Link, Target, Watchdog

log = logging.getLogger(__name__)

# What a dropped connection, a timeout or a closed channel looks like from paramiko.
NETWORK_ERRORS = (OSError, EOFError, paramiko.SSHException)


class SftpInputConfig(ChannelConfig):
    """Settings of a partner's `sftp` channel (conf/partners/<id>.yaml, channels.sftp)."""

    host: str = setting(description="The partner's SFTP server.", example="sftp.partner.example")
    port: int = setting(22, ge=1, le=65535, example=22, description="Its SSH port.")
    username: str = setting(description="The account we log in as.", example="distributor")
    private_key_file: str | None = setting(
        None, secret=True, example="/etc/edigw/keys/partner_ed25519",
        description="Our private key (unencrypted, mode 0600); or give password.")
    password: EnvSecret | None = setting(
        None, secret=True, example={"env": "PARTNER_SFTP_PASSWORD"},
        description="The password, by environment variable; or give private_key_file.")
    host_key: str = setting(
        example="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ9H1xduh5ZUjEhBcIbXulSzQx8d2Cm9SqVjq9Hv1Xaa",
        description="The server's public key as in known_hosts: pinned; any other is refused.")
    inbox: str = setting(description="Remote folder where the partner leaves files for us.",
                         example="/outbound")
    archive: str | None = setting(
        None, example="/outbound/archive",
        description="Remote folder a file is moved to once stored; or delete_after_receive.")
    delete_after_receive: bool = setting(
        False, example=False, description="Delete a file once stored instead of archiving it.")
    outbox: str | None = setting(
        None, example="/inbound",
        description="Remote folder our 997/999/TA1 and outbound documents are put in.")
    poll_interval: float = setting(5.0, gt=0, example=5,
                                   description="Seconds between two polls of the inbox.")
    timeout: float = setting(30.0, gt=0, example=30,
                             description="Seconds any one network call may take.")
    poll_budget: float = setting(
        300.0, gt=0, example=300,
        description="Seconds one poll (connect, list, downloads) or one upload may take in all;"
                    " then the watchdog closes the connection.")
    max_bytes: int = setting(100_000_000, gt=0, example=100_000_000,
                             description="Larger files are left in the inbox, with a warning.")
    spool_dir: str | None = setting(
        None, example="var/spool/sftp",
        description="Local folder for downloads until they are acked; unset = the system's.")
    backoff_initial: float = setting(1.0, gt=0, example=1.0,
                                     description="Seconds of the first wait after a failure.")
    backoff_max: float = setting(300.0, gt=0, example=300.0,
                                 description="The longest wait between two connection attempts.")

    @pydantic.field_validator("host_key")
    @classmethod
    def _key_parses(cls, value: str) -> str:
        sftp_link.parse_host_key(value)
        return value

    @pydantic.field_validator("inbox", "archive", "outbox")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        if value is not None and "\x00" in value:
            raise ValueError("must not contain NUL")
        return value

    @pydantic.model_validator(mode="after")
    def _one_of_each(self) -> SftpInputConfig:
        if (self.private_key_file is None) == (self.password is None):
            raise ValueError("give exactly one of private_key_file and password")
        if (self.archive is None) == (not self.delete_after_receive):
            raise ValueError("give exactly one of archive and delete_after_receive: true")
        return self


class Session(Protocol):
    """What the channel needs of a connection (a Link; tests give a fake)."""

    def open(self) -> Any: ...
    def alive(self) -> bool: ...
    def abort(self) -> None: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class _Handed:
    """The channel's note of a message handed over and not yet acked."""

    path: str
    name: str
    size: int
    mtime: int
    spool: str


@dataclass(frozen=True)
class _Attempt:
    """The one field of tenacity's RetryCallState its wait strategies read."""

    attempt_number: int


class SftpInput:
    """One partner's SFTP inbox (and outbox), polled over one connection at a time."""

    def __init__(self, config: SftpInputConfig, *, partner: str,
                 connector: Callable[[Target], Session] = Link,
                 clock: Callable[[], float] = time.monotonic,
                 wait: Callable[[Any], float] | None = None) -> None:
        self.config = config
        self.partner = partner
        self.endpoint = f"sftp://{config.username}@{config.host}:{config.port}{config.inbox}"
        self._connector = connector
        self._clock = clock
        self._wait = wait or wait_random_exponential(multiplier=config.backoff_initial,
                                                     max=config.backoff_max)
        self._link: Session | None = None
        self._sftp: Any = None
        self._stability = sftp_names.Stability()
        self._handed: dict[str, _Handed] = {}
        self._spools: dict[str, int] = {}  # spool file -> messages in it not yet acked
        self._warned: set[tuple[str, str]] = set()
        self._failures = 0
        self._next_wait = 0.0
        self.retry_at = float("-inf")  # no connection attempt before this clock reading
        # The partner id is checked by the partner schema; the dash ends it in the prefix.
        self._spool_prefix = f"edigw-sftp-{partner}-"

    def __repr__(self) -> str:
        return f"SftpInput({self.partner}, {self.endpoint})"

    @property
    def poll_interval(self) -> float:
        return self.config.poll_interval

    # -- the Input interface

    def connect(self) -> None:
        """Open the connection now (whatever the backoff says); errors schedule the next try."""
        if self._sftp is not None:
            return
        c = self.config
        try:
            target = Target(host=c.host, port=c.port, username=c.username,
                            host_key=sftp_link.parse_host_key(c.host_key), timeout=c.timeout,
                            pkey=sftp_link.load_private_key(c.private_key_file)
                            if c.private_key_file else None,
                            password=c.password.value() if c.password else None)
        except errors.ConfigError as exc:
            # A key file or a variable missing: backed off like a network failure, so a
            # poller does not say so again at every poll_interval.
            self._back_off()
            raise errors.ConfigError(f"{self.endpoint}: {exc}") from None
        link = self._connector(target)
        try:
            with self._guard(link, "connecting", settles=False):
                self._sftp = link.open()
        except errors.GatewayError:
            link.close()
            raise
        self._link = link
        self._sweep_spool()
        log.info("%s: connected", self.endpoint)

    def read(self) -> list[InboundMessage]:
        """One poll: the files stable since the previous poll, downloaded; [] while backing off."""
        if self._link is not None and not self._link.alive():
            # Closed by the server since the last poll (a restart, an idle timeout): not a
            # failure of this poll, so connect again at once. Unacked files come again.
            log.info("%s: the server closed the connection; connecting again", self.endpoint)
            self.close()
        if self._sftp is None:
            if self._clock() < self.retry_at:
                return []
            self.connect()
        assert self._link is not None
        with self._guard(self._link, "polling the inbox"):
            return self._poll()

    def unchanged(self, message: InboundMessage) -> bool:
        """Always: the download was checked against the listing; ack() checks it again."""
        return True

    def ack(self, message: InboundMessage) -> None:
        """The store has committed it: archive (or delete) the remote file, drop the spool copy."""
        handed = message.token
        if not isinstance(handed, _Handed):
            raise errors.PermanentError(f"{self.endpoint}: ack of a message this channel did not"
                                        f" hand over: {message.source_name!r}")
        if self._sftp is None:
            self.connect()
        assert self._link is not None
        with self._guard(self._link, f"archiving {handed.name}"):
            self._archive(handed)
        self._handed.pop(handed.name, None)
        self._release(handed.spool)

    def close(self) -> None:
        """Disconnect; files handed over but not acked stay remote and are offered again."""
        if self._link is not None:
            self._link.close()
        self._link = self._sftp = None
        for handed in self._handed.values():
            _unlink(handed.spool)
        self._handed.clear()
        self._spools.clear()
        self._stability = sftp_names.Stability()

    # -- the outbox

    def put(self, name: str, data: bytes) -> str:
        """Upload to the outbox as name.part, then rename it to name; the remote path."""
        if self.config.outbox is None:
            raise errors.ConfigError(f"{self.endpoint}: no outbox is configured")
        why = sftp_names.refusal(name) or ("is hidden or partial" if sftp_names.skipped(name)
                                          else None)
        if why:
            raise errors.PermanentError(f"{self.endpoint}: outbox name {name!r} {why}")
        if self._sftp is None:
            self.connect()
        assert self._link is not None
        final = posixpath.join(self.config.outbox, name)
        part = final + ".part"
        with self._guard(self._link, f"uploading {name}"):
            # The partner never sees a half-written file under its real name.
            self._sftp.putfo(io.BytesIO(data), part, file_size=len(data), confirm=True)
            try:
                self._sftp.posix_rename(part, final)  # replaces a copy left by a crash
            except OSError:
                self._sftp.rename(part, final)  # a server without the OpenSSH extension
        log.info("%s: put %s (%d bytes)", self.endpoint, final, len(data))
        return final

    # -- inside

    @contextlib.contextmanager
    def _guard(self, link: Session, doing: str, *, settles: bool = True) -> Iterator[None]:
        """Run a network step under the watchdog; a failure drops the link and backs off."""
        dog = Watchdog(self.config.poll_budget, link.abort)
        try:
            with dog:
                yield
            if settles:
                # Only work done, not a mere login, starts the backoff over: a server that
                # lets us in and then fails every listing still backs off further each time.
                self._failures = 0
        except HostKeyRefused:
            self._failed(link)
            raise
        except paramiko.AuthenticationException as exc:
            self._failed(link)
            raise errors.PermanentError(
                f"{self.endpoint}: {doing}: login refused for {self.config.username}"
                f" ({type(exc).__name__}); check the key or password given") from None
        except NETWORK_ERRORS as exc:  # socket timeouts are OSErrors
            self._failed(link)
            if dog.fired:
                raise errors.TransientError(
                    f"{self.endpoint}: {doing}: no answer within poll_budget"
                    f" {self.config.poll_budget:g} s; the watchdog closed the connection;"
                    f" next try in {self._next_wait:.1f} s") from exc
            raise errors.TransientError(
                f"{self.endpoint}: {doing}: {type(exc).__name__}: {exc or 'connection lost'};"
                f" next try in {self._next_wait:.1f} s") from exc

    def _failed(self, link: Session) -> None:
        link.close()
        if link is self._link:
            self.close()
        self._back_off()

    def _back_off(self) -> None:
        self._failures += 1
        self._next_wait = float(self._wait(_Attempt(self._failures)))
        self.retry_at = self._clock() + self._next_wait

    def _poll(self) -> list[InboundMessage]:
        listing: dict[str, sftp_names.Signature] = {}
        for entry in self._sftp.listdir_attr(self.config.inbox):
            name = entry.filename
            why = sftp_names.refusal(name)  # before skipped(): "../x" is no hidden file
            if why is None and (sftp_names.skipped(name) or name in self._handed):
                continue
            if why is None and not stat.S_ISREG(entry.st_mode or 0):
                why = "is not a regular file (a link, folder or device is never taken)"
            if why is None and (entry.st_size or 0) > self.config.max_bytes:
                why = f"has {entry.st_size} bytes, over max_bytes {self.config.max_bytes}"
            if why:
                self._warn_once(name, why)
                continue
            listing[name] = (int(entry.st_size or 0), int(entry.st_mtime or 0))
        ready = self._stability.observe(listing)
        small = []
        if sftp_batch.supported(self._sftp):
            small = [n for n in ready if listing[n][0] <= sftp_batch.SMALL]
        out = []
        # Small files in groups, their requests pipelined; each checked as one alone is.
        paths = [(posixpath.join(self.config.inbox, n), listing[n][0]) for n in small]
        for group in sftp_batch.groups(paths):
            out += self._fetch_group(group, listing)
        taken = set(small)
        for name in ready:
            if name not in taken:
                message = self._fetch(name, listing[name])
                if message is not None:
                    out.append(message)
        return out

    def _fetch_group(self, group: list[tuple[str, int]],
                     listing: dict[str, sftp_names.Signature]) -> list[InboundMessage]:
        kept: list[tuple[str, sftp_names.Signature, bytes]] = []
        alone: list[str] = []
        for read in sftp_batch.read_group(self._sftp, group):
            name = posixpath.basename(read.path)
            signature = listing[name]
            if read.data is None:
                continue  # taken away meanwhile (by another poller, or the partner)
            if read.after != signature:
                log.info("%s: %s changed while downloading; taken when stable",
                         self.endpoint, name)
                self._stability.forget(name)
            elif not read.whole or len(read.data) != signature[0]:
                alone.append(name)  # a short read from an odd server: fetched on its own
            else:
                kept.append((name, signature, read.data))
        out = []
        if kept:
            spool = self._spool([data for _, _, data in kept])
            for name, signature, data in kept:
                out.append(self._hand_over(name, signature, data, spool))
        for name in alone:
            message = self._fetch(name, listing[name])
            if message is not None:
                out.append(message)
        return out

    def _spool(self, contents: list[bytes]) -> str:
        """Write contents, back to back, to one new spool file and fsync it; its path."""
        # The local name never comes from the remote one.
        fd, spool = tempfile.mkstemp(prefix=self._spool_prefix, dir=self.config.spool_dir)
        try:
            with os.fdopen(fd, "wb") as f:
                for data in contents:
                    f.write(data)
                f.flush()
                os.fsync(f.fileno())
        except BaseException:
            _unlink(spool)
            raise
        return spool

    def _hand_over(self, name: str, signature: sftp_names.Signature, data: bytes,
                   spool: str) -> InboundMessage:
        path = posixpath.join(self.config.inbox, name)
        handed = _Handed(path=path, name=name, size=signature[0], mtime=signature[1],
                         spool=spool)
        self._handed[name] = handed
        self._spools[spool] = self._spools.get(spool, 0) + 1
        metadata = {"channel": "sftp", "endpoint": self.endpoint, "remote_path": path,
                    "size": str(signature[0]), "mtime": str(signature[1])}
        log.info("%s: took %s (%d bytes)", self.endpoint, name, len(data))
        return InboundMessage(self.partner, name, data, metadata, token=handed)

    def _release(self, spool: str) -> None:
        """One message of a spool file is acked; the file goes with its last one."""
        left = self._spools.get(spool, 1) - 1
        if left > 0:
            self._spools[spool] = left
            return
        self._spools.pop(spool, None)
        _unlink(spool)

    def _fetch(self, name: str, signature: sftp_names.Signature) -> InboundMessage | None:
        path = posixpath.join(self.config.inbox, name)  # name checked: no separator, no '..'
        # The local name never comes from the remote one.
        fd, spool = tempfile.mkstemp(prefix=self._spool_prefix, dir=self.config.spool_dir)
        try:
            with os.fdopen(fd, "w+b") as f:
                got = self._sftp.getfo(path, f)
                f.flush()
                os.fsync(f.fileno())
                after = self._sftp.stat(path)
                now = (int(after.st_size or 0), int(after.st_mtime or 0))
                if got != signature[0] or now != signature:
                    log.info("%s: %s changed while downloading; taken when stable",
                             self.endpoint, name)
                    self._stability.forget(name)
                    _unlink(spool)
                    return None
                f.seek(0)
                data = f.read()
        except FileNotFoundError:
            _unlink(spool)  # taken away meanwhile (by another poller, or the partner)
            return None
        except BaseException:
            _unlink(spool)
            raise
        return self._hand_over(name, signature, data, spool)

    def _archive(self, handed: _Handed) -> None:
        try:
            st = self._sftp.stat(handed.path)
        except FileNotFoundError:
            log.info("%s: %s already gone from the inbox", self.endpoint, handed.name)
            return
        if (int(st.st_size or 0), int(st.st_mtime or 0)) != (handed.size, handed.mtime):
            # Replaced since we read it: the new content is another message, left to be read.
            log.warning("%s: %s changed after it was read; left in the inbox",
                        self.endpoint, handed.name)
            return
        if self.config.delete_after_receive:
            self._sftp.remove(handed.path)
            log.info("%s: deleted %s", self.endpoint, handed.name)
            return
        assert self.config.archive is not None
        target = posixpath.join(self.config.archive, handed.name)
        try:
            # SFTP's rename never replaces a file (the protocol forbids it; OpenSSH links
            # and unlinks): taken at once when the name is new, one round trip fewer.
            self._sftp.rename(handed.path, target)
        except OSError:
            if not _exists(self._sftp, target):
                raise
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
            target = f"{target}.{stamp}"  # the same name came before: keep both
            self._sftp.rename(handed.path, target)
        log.info("%s: archived %s to %s", self.endpoint, handed.name, target)

    def _sweep_spool(self) -> None:
        """Remove this partner's downloads left by a process that died before their ack.

        Harmless to a live process of the same partner: its bytes are in memory once read,
        and a file still being written stays open to its writer after the unlink.
        """
        folder = self.config.spool_dir or tempfile.gettempdir()
        ours = {h.spool for h in self._handed.values()}
        with contextlib.suppress(OSError):
            for entry in os.scandir(folder):
                if (entry.name.startswith(self._spool_prefix)
                        and os.path.abspath(entry.path) not in ours
                        and entry.is_file(follow_symlinks=False)):
                    _unlink(entry.path)

    def _warn_once(self, name: str, why: str) -> None:
        if (name, why) not in self._warned:
            self._warned.add((name, why))
            log.warning("%s: %r refused: %s; left where it is", self.endpoint, name, why)


def _exists(sftp: Any, path: str) -> bool:
    try:
        sftp.stat(path)
    except FileNotFoundError:
        return False
    return True


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


__all__ = ["EnvSecret", "HostKeyRefused", "SftpInput", "SftpInputConfig"]
