"""One SSH connection to a partner's SFTP server: pinned host key, timeouts, a watchdog."""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import socket
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

import paramiko

from canonical import errors


class HostKeyRefused(errors.PermanentError):
    """The server's host key is not the pinned one; nothing was sent or read."""


def fingerprint(key: paramiko.PKey) -> str:
    """The key's SHA256 fingerprint as ssh-keygen -l prints it."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


def parse_host_key(text: str) -> paramiko.PKey:
    """A public key written as in known_hosts ("ssh-ed25519 AAAA...", a host name first is
    allowed); ValueError saying what is wrong otherwise."""
    fields = text.split()
    if len(fields) >= 3 and not fields[0].startswith(("ssh-", "ecdsa-", "sk-")):
        fields = fields[1:]  # a whole known_hosts line: "host type base64"
    if len(fields) < 2:
        raise ValueError('expected "<key type> <base64 key>", e.g. "ssh-ed25519 AAAAC3Nz..."')
    kind, b64 = fields[0], fields[1]
    try:
        blob = base64.b64decode(b64, validate=True)
        return paramiko.PKey.from_type_string(kind, blob)
    except (binascii.Error, paramiko.SSHException, ValueError) as exc:
        raise ValueError(f"not a usable {kind} public key: {exc}") from None


def load_private_key(path: str) -> paramiko.PKey:
    """The client key from `path`; ConfigError if missing, unreadable or open to others."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise errors.ConfigError(f"private_key_file {path}: {exc.strerror}") from None
    if stat.S_IMODE(mode) & 0o077:
        # As ssh itself refuses: a key others can read is no longer only ours.
        raise errors.ConfigError(f"private_key_file {path}: permissions "
                                 f"{stat.S_IMODE(mode):04o} are too open; chmod 600 it")
    try:
        return paramiko.PKey.from_path(path)
    except (OSError, paramiko.SSHException, ValueError) as exc:
        raise errors.ConfigError(f"private_key_file {path}: cannot be loaded: "
                                 f"{type(exc).__name__}") from None


@dataclass(frozen=True)
class Target:
    """Where to connect and how to log in; password is the value, read from the environment."""

    host: str
    port: int
    username: str
    host_key: paramiko.PKey
    timeout: float
    pkey: paramiko.PKey | None = None
    password: str | None = None

    def __repr__(self) -> str:  # never the password or the key
        return f"Target({self.username}@{self.host}:{self.port})"


def refused_message(target: Target, presented: paramiko.PKey) -> str:
    """Why a host key was refused, and how an operator accepts a new one on purpose."""
    pinned = target.host_key
    return (
        f"{target.host}:{target.port} presented host key {presented.get_name()} "
        f"{fingerprint(presented)}, but {pinned.get_name()} {fingerprint(pinned)} is pinned; "
        "refused before logging in, nothing was read. If the partner changed its key on "
        "purpose, confirm the new fingerprint with them by another channel (phone, signed "
        f"mail), compare it with `ssh-keyscan -p {target.port} {target.host} | ssh-keygen -lf -`,"
        " then put that key line in host_key of the partner's channels.sftp and reload")


class _Refuse(paramiko.RejectPolicy):
    """RejectPolicy with our message: an unpinned key is never added, only refused."""

    def __init__(self, target: Target) -> None:
        self.target = target

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str,
                         key: paramiko.PKey) -> None:
        raise HostKeyRefused(refused_message(self.target, key))


class Link:
    """An SSH client and its SFTP session, which another thread may abort at any time."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._client: paramiko.SSHClient | None = None
        self.sftp: paramiko.SFTPClient | None = None
        self.aborted = False

    def open(self) -> paramiko.SFTPClient:
        """Connect, check the host key, log in and start SFTP, each step under the timeout."""
        t = self.target
        sock = socket.create_connection((t.host, t.port), timeout=t.timeout)
        client = paramiko.SSHClient()
        with self._lock:
            self._sock, self._client = sock, client
            if self.aborted:
                self.close()
                raise EOFError("aborted while connecting")
        client.set_missing_host_key_policy(_Refuse(t))
        name = t.host if t.port == 22 else f"[{t.host}]:{t.port}"
        client.get_host_keys().add(name, t.host_key.get_name(), t.host_key)
        try:
            client.connect(t.host, t.port, username=t.username, pkey=t.pkey,
                           password=t.password, sock=sock, timeout=t.timeout,
                           banner_timeout=t.timeout, auth_timeout=t.timeout,
                           channel_timeout=t.timeout, look_for_keys=False, allow_agent=False)
        except paramiko.BadHostKeyException as exc:
            raise HostKeyRefused(refused_message(t, exc.key)) from None
        # open_sftp waits for the server's version with no timeout: the watchdog covers it.
        sftp = client.open_sftp()
        channel = sftp.get_channel()
        assert channel is not None
        channel.settimeout(t.timeout)  # each read of an answer after this
        self.sftp = sftp
        return sftp

    def alive(self) -> bool:
        """Whether the connection still stands (paramiko notices a peer's close by itself)."""
        transport = self._client.get_transport() if self._client is not None else None
        return transport is not None and transport.is_active() and not self.aborted

    def abort(self) -> None:
        """Close the connection under whatever call is blocked on it (the watchdog's move)."""
        with self._lock:
            self.aborted = True
        self.close()

    def close(self) -> None:
        """Close all that was opened; safe twice and from another thread."""
        for closer in (self.sftp, self._client, self._sock):
            if closer is not None:
                with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
                    closer.close()  # already gone is what we want


class _Alarms:
    """One daemon thread that fires every watchdog whose time is up.

    A thread started per guarded call (threading.Timer) costs more than the SFTP round trip
    it guards when a poll acks hundreds of files; this one thread sleeps until the
    earliest deadline of the watchdogs armed now (few: one per partner at most).
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._armed: dict[int, tuple[float, Watchdog]] = {}
        self._next = 0
        self._waiting_until = float("inf")  # the deadline the thread sleeps towards
        self._thread: threading.Thread | None = None

    def arm(self, dog: Watchdog) -> int:
        with self._cond:
            key = self._next
            self._next += 1
            deadline = time.monotonic() + dog.seconds
            self._armed[key] = (deadline, dog)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="sftp-watchdog",
                                                 daemon=True)
                self._thread.start()
            elif deadline < self._waiting_until:
                self._cond.notify()
            return key

    def disarm(self, key: int) -> None:
        with self._cond:
            self._armed.pop(key, None)

    def _run(self) -> None:
        while True:
            due = []
            with self._cond:
                now = time.monotonic()
                for key, (deadline, dog) in list(self._armed.items()):
                    if deadline <= now:
                        del self._armed[key]
                        due.append(dog)
                if not due:
                    self._waiting_until = min((d for d, _ in self._armed.values()),
                                              default=now + 60.0)
                    self._cond.wait(self._waiting_until - now)
                    self._waiting_until = float("inf")
                    continue
            for dog in due:  # outside the lock: an abort closes sockets
                dog._fire()


_ALARMS = _Alarms()


def _fresh_alarms() -> None:
    # A forked child has no alarm thread, and the lock may have been held at the fork.
    global _ALARMS
    _ALARMS = _Alarms()


os.register_at_fork(after_in_child=_fresh_alarms)


class Watchdog:
    """Calls `abort` if the block has not finished within `seconds`."""

    def __init__(self, seconds: float, abort: Callable[[], None]) -> None:
        self.seconds = seconds
        self._abort = abort
        self.fired = False
        self._key: int | None = None

    def _fire(self) -> None:
        self.fired = True
        self._abort()

    def __enter__(self) -> Watchdog:
        self._key = _ALARMS.arm(self)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._key is not None:
            _ALARMS.disarm(self._key)
