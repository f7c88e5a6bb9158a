"""Partners who push: an OpenSSH internal-sftp jail per partner onto var/inbox/<id>/.

Set up with the very commands and sshd_config of docs/channels/sftp.md ("Partners who
push", read from the page), served by a real sshd on a loopback port; the partner is
OpenSSH's `sftp` client in batch mode, the gateway `edigw run --once`. Needs root (system
accounts, a bind mount, sshd's chroot): skipped without it locally, failed in CI.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import missing
from tests.pipeline_support import SAMPLES, Site
from tests.sshd_support import SshServer, doc_block, keygen, sshd_available

pytestmark = pytest.mark.integration

ACME = SAMPLES / "acme-850-4010.edi"
SETUP = doc_block("drop setup")
SSHD_CONFIG = doc_block("drop sshd_config")
ASSIGNMENT = re.compile(r"^(\w+)=(\S+)", re.MULTILINE)
# ChrootDirectory wants root's folders from / down: not under /tmp (world-writable).
JAILS_UNDER = Path("/srv")


def defaults() -> dict[str, str]:
    """The variables the page's setup script starts with, and their values there."""
    return {m[1]: m[2] for m in ASSIGNMENT.finditer(SETUP)}


class Jails:
    """Partners set up as the page says, in a place and under names of this test's own."""

    def __init__(self, site: Site, work: Path) -> None:
        tag = uuid.uuid4().hex[:8]
        self.site, self.work, self.tag = site, work, tag
        self.base = JAILS_UNDER / f"edigw-test-{tag}"
        self.values = {"group": f"edigw-t{tag}", "gateway_group": "root",
                       "inbox": str(site.root / "var" / "inbox"),
                       "jails": str(self.base / "jails"), "keys": str(self.base / "keys")}
        self.accounts: dict[str, str] = {}  # partner -> account
        self.keys: dict[str, Path] = {}  # partner -> its private key
        self.server: SshServer | None = None

    def sshd_config(self) -> str:
        """The page's sshd_config with this test's group and folders for the page's."""
        text = SSHD_CONFIG
        for name in ("group", "jails", "keys"):
            default = defaults()[name]
            assert default in text, f"the page's sshd_config does not use its {name} {default}"
            text = text.replace(default, self.values[name])
        return text

    def add(self, partner: str) -> str:
        """Run the page's setup script for a partner; its account name."""
        account = f"edigw-t{self.tag}-{partner}"
        key = self.work / f"{partner}_ed25519"
        keygen(key)
        values = {**self.values, "partner": partner, "account": account,
                  "key": str(key.with_suffix(".pub"))}
        assert set(values) == set(defaults()), "the page's setup script changed its variables"
        script = ASSIGNMENT.sub(lambda m: f"{m[1]}={_quote(values[m[1]])}", SETUP)
        self.base.mkdir(mode=0o755, parents=True, exist_ok=True)
        self.accounts[partner], self.keys[partner] = account, key
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True,
                              text=True, check=False)
        assert done.returncode == 0, f"the page's setup failed for {partner}: {done.stderr}"
        return account

    def upload(self, partner: str) -> Path:
        return Path(self.values["jails"]) / self.accounts[partner] / "upload"

    def sftp(self, partner: str, commands: str) -> subprocess.CompletedProcess[str]:
        """The partner's `sftp -b` session running these commands."""
        assert self.server is not None
        return self.server.sftp(commands, user=self.accounts[partner], key=self.keys[partner],
                                cwd=self.work)

    def ssh(self, partner: str, *options: str, command: str | None = None,
            ) -> subprocess.CompletedProcess[bytes]:
        """The partner's `ssh` asking for more than SFTP (a command, a forwarding)."""
        assert self.server is not None
        argv = ["ssh", "-F", "/dev/null", "-p", str(self.server.port),
                "-i", str(self.keys[partner]), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
                "-o", "StrictHostKeyChecking=yes",
                "-o", f"UserKnownHostsFile={self.server.known_hosts()}",
                *options, f"{self.accounts[partner]}@127.0.0.1", *([command] if command else [])]
        return subprocess.run(argv, capture_output=True, stdin=subprocess.DEVNULL, timeout=60,
                              check=False)

    def remove(self) -> None:
        """Unmount, delete the accounts and the group, then the jails (never through a mount)."""
        problems = []
        for point in sorted(_mounts_under(self.base), reverse=True):
            done = subprocess.run(["umount", point], capture_output=True, text=True, check=False)
            if done.returncode:
                problems.append(f"umount {point}: {done.stderr.strip()}")
        for account in self.accounts.values():
            subprocess.run(["userdel", account], capture_output=True, check=False)
        subprocess.run(["groupdel", self.values["group"]], capture_output=True, check=False)
        left = _mounts_under(self.base)
        if problems or left:
            raise RuntimeError(f"left {self.base} in place: {problems or left}")
        shutil.rmtree(self.base, ignore_errors=True)


def _mounts_under(folder: Path) -> list[str]:
    """Mount points at or below folder (a bind mount on the same disk: os.path.ismount misses it)."""
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        # The fifth field, with spaces and the like written as octal escapes.
        point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), line.split()[4])
        if point == str(folder) or point.startswith(f"{folder}/"):
            points.append(point)
    return points


def _quote(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"


@pytest.fixture
def jails(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory,
          ) -> Iterator[Callable[..., Jails]]:
    """Partners' jails set up as the page says, served by an sshd with the page's config."""
    why = sshd_available()
    if why:
        missing("OpenSSH sshd", why)
    if os.geteuid() != 0:
        missing("root", "a chrooted sshd, system accounts and a bind mount need root")
    if not _capability(21):  # CAP_SYS_ADMIN, which mount needs
        missing("mount --bind", "this container lacks CAP_SYS_ADMIN")
    for tool in ("useradd", "userdel", "groupadd", "groupdel", "mount", "umount", "sftp", "ssh"):
        if shutil.which(tool) is None:
            missing(tool, "not on PATH")
    made: list[Jails] = []
    servers: list[SshServer] = []

    def make(*partners: str) -> Jails:
        site = Site(tmp_path / "site")
        j = Jails(site, tmp_path)
        made.append(j)
        for partner in partners:
            j.add(partner)
        j.server = SshServer(tmp_path_factory.mktemp("sshd"), config=j.sshd_config())
        servers.append(j.server)
        j.server.start()
        return j

    try:
        yield make
    finally:
        for server in servers:
            server.stop()
        for j in made:
            j.remove()


def _capability(bit: int) -> bool:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> bit & 1)
    return False


def listing(result: subprocess.CompletedProcess[str]) -> list[str]:
    """What `ls -1a` printed in an sftp batch (its echoed commands left out), sorted."""
    return sorted(line.strip() for line in result.stdout.splitlines()
                  if line.strip() and not line.startswith("sftp>"))


def test_a_partner_pushes_an_850_over_sftp_and_the_gateway_takes_it(
        jails: Callable[..., Jails]) -> None:
    j = jails("acme")
    site = j.site
    # As the page tells partners: upload under a name the inbox skips, then rename.
    pushed = j.sftp("acme", f"put {ACME} {ACME.name}.part\n"
                            f"rename {ACME.name}.part {ACME.name}\npwd\n")
    assert pushed.returncode == 0, pushed.stderr + j.server.log_text()  # type: ignore[union-attr]
    assert "Remote working directory: /upload" in pushed.stdout
    inbox = site.root / "var" / "inbox" / "acme"
    landed = inbox / ACME.name
    assert landed.read_bytes() == ACME.read_bytes()  # in the gateway's own inbox folder
    assert landed.stat().st_uid == pwd.getpwnam(j.accounts["acme"]).pw_uid
    mode = landed.stat().st_mode
    assert mode & 0o040 and not mode & 0o007  # -u 0007: the gateway's group reads, no one else

    out = site.run()
    events = site.events()
    assert len(events) == 1, out
    assert events[0]["type"] == "com.edi-gateway.purchase_order.v1"
    assert events[0]["partner"] == "acme"
    [ack] = [a for a in site.acks("acme") if a.name.startswith("997_")]
    assert "AK5*A~" in ack.read_text("ascii")
    assert not landed.exists() and (inbox / ".done" / ACME.name).exists()
    assert site.dead_letters() == []

    # The partner sees its file gone; .done/ is there but the gateway's alone.
    after = j.sftp("acme", "ls -1a\n")
    assert after.returncode == 0, after.stderr
    assert ACME.name not in after.stdout and ".done" in after.stdout
    peek = j.sftp("acme", "ls .done\n")
    assert peek.returncode != 0 and "Permission denied" in peek.stderr

    site.run()  # nothing new: no second event
    assert len(site.events()) == 1


def test_a_partner_cannot_leave_its_jail_or_reach_another_partner(
        jails: Callable[..., Jails], tmp_path: Path) -> None:
    j = jails("acme", "globex")
    other = j.sftp("globex", "put /etc/hostname globex-order.edi\n")
    assert other.returncode == 0, other.stderr
    secret = j.upload("globex") / "globex-order.edi"
    assert secret.exists()

    where = j.sftp("acme", "cd ..\npwd\n")
    assert "Remote working directory: /\n" in where.stdout, where.stderr
    top = j.sftp("acme", "cd ..\nls -1a\n")
    assert top.returncode == 0, top.stderr
    assert listing(top) == [".", "..", "upload"]  # the jail's top: its own inbox, nothing else
    root = j.sftp("acme", "ls -1a /\n")
    assert [n.removeprefix("/") for n in listing(root)] == [".", "..", "upload"]
    assert "globex-order.edi" not in j.sftp("acme", "ls -1a /upload\n").stdout

    real_inbox = j.site.root / "var" / "inbox"
    for path in (f"/{j.accounts['globex']}", f"../{j.accounts['globex']}",
                 f"/upload/../../{j.accounts['globex']}/upload",
                 str(j.upload("globex")), str(real_inbox / "globex"), str(real_inbox),
                 "/etc", "/srv"):
        got = j.sftp("acme", f"ls {path}\n")
        assert got.returncode != 0, f"acme reached {path}: {got.stdout}"
        assert "not found" in got.stderr, got.stderr
    stolen = j.sftp("acme", f"get {secret} {tmp_path / 'stolen'}\n")
    assert stolen.returncode != 0 and not (tmp_path / "stolen").exists()

    # The jail's top is root's: nothing lands beside the inbox, nor a folder there.
    for command in ("put /etc/hostname /x.edi", "put /etc/hostname ../x.edi", "mkdir /evil",
                    f"rename /upload /{j.accounts['globex']}"):
        got = j.sftp("acme", command + "\n")
        assert got.returncode != 0, f"{command}: {got.stdout}"
        assert "denied" in got.stderr.lower() or "failure" in got.stderr.lower(), got.stderr
    jail_top = Path(j.values["jails"]) / j.accounts["acme"]
    assert sorted(p.name for p in jail_top.iterdir()) == ["upload"]

    # No shell, no forwarding: a command is answered by internal-sftp, a tunnel refused.
    shell = j.ssh("acme", command="echo escaped-the-jail")
    assert b"escaped-the-jail" not in shell.stdout
    tunnel = j.ssh("acme", "-W", f"127.0.0.1:{j.server.port}")  # type: ignore[union-attr]
    assert not tunnel.stdout.startswith(b"SSH-"), tunnel.stdout
    assert b"prohibited" in tunnel.stderr, tunnel.stderr
    assert secret.read_bytes() == Path("/etc/hostname").read_bytes()  # untouched
