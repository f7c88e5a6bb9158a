"""A real OpenSSH sshd on 127.0.0.1 for the SFTP tests (key auth only, internal-sftp), and
OpenSSH's `sftp` client in batch mode, as a partner or a baseline uses it."""

from __future__ import annotations

import contextlib
import getpass
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import psutil

SSHD = "/usr/sbin/sshd"

DOCS = Path(__file__).resolve().parents[1] / "docs" / "channels" / "sftp.md"

# What every test server has: where it listens, its key, no PAM (no system login rules).
BASE = """\
ListenAddress 127.0.0.1
Port {port}
HostKey {host_key}
PidFile none
UsePAM no
LogLevel VERBOSE
"""

CONFIG = BASE + """\
StrictModes no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
AuthorizedKeysFile {authorized_keys}
AllowUsers {user}
Subsystem sftp internal-sftp
"""


def keygen(path: Path) -> str:
    """A new ed25519 key pair at path (and path.pub); the public key line."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(path)],
                   check=True, stdin=subprocess.DEVNULL)
    return path.with_suffix(".pub").read_text().strip()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SshServer:
    """sshd -D in a temp dir; stop, kill, freeze and restart it on the same port and key."""

    def __init__(self, root: Path, config: str | None = None) -> None:
        """config: the sshd_config after BASE (default: CONFIG's, our user by key)."""
        self.root = root
        self._config = config
        self.user = getpass.getuser()
        self.host_key_path = root / "host_ed25519"
        self.host_key = keygen(self.host_key_path)  # "ssh-ed25519 AAAA..."
        self.client_key = root / "client_ed25519"
        (root / "authorized_keys").write_text(keygen(self.client_key) + "\n")
        self.log = root / "sshd.log"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def config_options(self, **extra: object) -> dict[str, object]:
        """An sftp channel's settings for this server (with `extra` over them)."""
        return {"host": "127.0.0.1", "port": self.port, "username": self.user,
                "private_key_file": str(self.client_key), "host_key": self.host_key,
                "timeout": 10, **extra}

    def start(self) -> None:
        cfg = self.root / "sshd_config"
        if self._config is None:
            text = CONFIG.format(port=self.port, host_key=self.host_key_path,
                                 authorized_keys=self.root / "authorized_keys", user=self.user)
        else:
            text = BASE.format(port=self.port, host_key=self.host_key_path) + self._config
        cfg.write_text(text)
        Path("/run/sshd").mkdir(exist_ok=True)  # its privilege separation directory
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(cfg)], stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log, start_new_session=True)
        for _ in range(200):
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited {self.proc.returncode}: {self.log.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    if s.recv(4).startswith(b"SSH-"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"sshd did not answer on {self.port}: {self.log.read_text()}")

    def processes(self) -> list[psutil.Process]:
        """The listener and every connection's process."""
        if self.proc is None or self.proc.poll() is not None:
            return []
        main = psutil.Process(self.proc.pid)
        return [main, *main.children(recursive=True)]

    def signal(self, sig: int) -> None:
        for p in self.processes():
            with contextlib.suppress(psutil.NoSuchProcess):
                p.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL the server and every session it serves, as a crash or a pulled plug would."""
        procs = self.processes()
        for p in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
        psutil.wait_procs(procs, timeout=10)
        if self.proc is not None:
            self.proc.wait(timeout=10)
        self.proc = None

    def freeze(self) -> None:
        self.signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self.signal(signal.SIGCONT)

    def known_hosts(self) -> Path:
        """A known_hosts file holding this server's key, for OpenSSH's clients."""
        path = self.root / "known_hosts"
        path.write_text(f"[127.0.0.1]:{self.port} {self.host_key}\n")
        return path

    def sftp(self, commands: str, *, user: str | None = None, key: Path | None = None,
             cwd: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """OpenSSH's `sftp -b -` with these batch commands, as `user` with `key` (default: the
        server's own user and client key); the host key checked, no config file read."""
        argv = ["sftp", "-b", "-", "-F", "/dev/null", "-P", str(self.port),
                "-i", str(key or self.client_key), "-o", "IdentitiesOnly=yes",
                "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
                "-o", f"UserKnownHostsFile={self.known_hosts()}",
                "-o", "GlobalKnownHostsFile=/dev/null", f"{user or self.user}@127.0.0.1"]
        return subprocess.run(argv, input=commands, capture_output=True, text=True, cwd=cwd,
                              timeout=timeout, check=False)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        self.thaw()
        self.kill()


def doc_block(name: str) -> str:
    """The fenced block of docs/channels/sftp.md between `<!-- name: begin -->` and
    `<!-- name: end -->`: tests run what the page tells users to run."""
    text = DOCS.read_text("utf-8")
    begin, end = f"<!-- {name}: begin -->", f"<!-- {name}: end -->"
    if begin not in text or end not in text:
        raise LookupError(f"{DOCS}: no {begin} ... {end}")
    inner = text.split(begin, 1)[1].split(end, 1)[0].strip()
    lines = inner.splitlines()
    if not (lines[0].startswith("```") and lines[-1] == "```"):
        raise LookupError(f"{DOCS}: {name} is not one fenced block")
    return "\n".join(lines[1:-1]) + "\n"


def sshd_available() -> str | None:
    """Why no sshd can be started here, or None."""
    if not os.access(SSHD, os.X_OK):
        return f"{SSHD} is not installed (apt-get install openssh-server)"
    return None
