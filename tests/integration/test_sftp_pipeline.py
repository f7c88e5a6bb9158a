"""A partner's SFTP server through the whole pipeline, against a real OpenSSH sshd (issue #8).

The partner (acme) declares `channels.sftp` in its own file, pointing at a loopback sshd;
`edigw run` polls it beside the folder inbox. A file left in the partner's inbox reaches
the ERP once, its 997 is put in the partner's outbox and the file is archived; a crash
between the store's commit and the archive, a server killed mid-transfer, and runner or
worker kills during a flow of 200 files lose nothing and deliver nothing twice.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paramiko
import pytest
import yaml
from sqlalchemy import select

from channels import sftp_batch
from channels.erp_sim import running_simulator
from gateway.pipeline import inbound
from gateway.pipeline.context import Context
from gateway.store import db
from gateway.store.models import Message
from tests.conftest import REPO
from tests.crash_support import Gateway, Store, make_850s, open_store
from tests.pipeline_support import SAMPLES, Site
from tests.sshd_support import SshServer
from tests.store_support import migrated

pytestmark = pytest.mark.integration


class Remote:
    """The partner's side on the sshd: its inbox, archive and outbox folders."""

    def __init__(self, server: SshServer, root: Path) -> None:
        self.server = server
        self.inbox, self.archive, self.outbox = (root / "remote" / n for n in
                                                 ("outbound", "archive", "inbound"))
        self.spool = root / "spool"
        for d in (self.inbox, self.archive, self.outbox, self.spool):
            d.mkdir(parents=True)

    def put(self, name: str, data: bytes) -> None:
        """The partner's upload: written aside, then renamed in."""
        part = self.inbox / f"{name}.part"
        part.write_bytes(data)
        part.rename(self.inbox / name)

    def acks(self) -> list[str]:
        return sorted(p.read_text("ascii") for p in self.outbox.iterdir())


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def sftp_site(root: Path, remote: Remote, others: dict[str, Remote] | None = None,
              options: dict[str, dict[str, Any]] | None = None, **extra: Any) -> Site:
    """A site whose acme partner (and `others`) are reached over SFTP, and otherwise are as
    conf/partners says; `options` by partner change their channel's settings."""
    partners = root / "conf" / "partners"
    partners.mkdir(parents=True)
    for partner, where in {"acme": remote, **(others or {})}.items():
        doc = yaml.safe_load((REPO / "conf" / "partners" / f"{partner}.yaml").read_text("utf-8"))
        settings = {"inbox": str(where.inbox), "archive": str(where.archive),
                    "outbox": str(where.outbox), "spool_dir": str(where.spool),
                    "poll_interval": 0.2, "backoff_initial": 0.1, "backoff_max": 1,
                    "poll_budget": 3, **(options or {}).get(partner, {})}
        doc["channels"] = {"sftp": where.server.config_options(**settings)}
        (partners / f"{partner}.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    return Site(root, partners={"folder": str(partners), "mappings": str(REPO / "mappings")},
                **extra)


@pytest.fixture
def remote(sshd: SshServer, tmp_path: Path) -> Remote:
    return Remote(sshd, tmp_path)


def run_once(site: Site, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`edigw run --once` as a process of its own (a crash point kills it, not the test)."""
    return subprocess.run([sys.executable, "-m", "gateway.cli", "run", "--once", "--config",
                           str(site.config)], cwd=site.root, env={**os.environ, **(env or {})},
                          capture_output=True, text=True, timeout=300)


def test_an_sftp_file_reaches_the_erp_once_its_997_goes_back_and_it_is_archived(
        remote: Remote, tmp_path: Path) -> None:
    site = sftp_site(tmp_path, remote)
    sample = SAMPLES / "acme-850-4010.edi"
    remote.put("po1.edi", sample.read_bytes())
    site.run()
    events = site.events()
    assert events and len({e["id"] for e in events}) == len(events)
    assert names(remote.inbox) == [] and names(remote.archive) == ["po1.edi"]
    assert (remote.archive / "po1.edi").read_bytes() == sample.read_bytes()
    # The sample asks for a TA1 (ISA14 = 1) beside its group's 997.
    assert [n.split("_")[0] for n in names(remote.outbox)] == ["997", "TA1"]
    ack = (remote.outbox / names(remote.outbox)[0]).read_text("ascii")
    assert "ST*997*" in ack and "AK9*A*1*1*1~" in ack
    assert site.acks("acme") == []  # not the local outbox: the partner's own
    assert names(remote.spool) == []  # downloads dropped once acked
    # The same bytes left again (a partner's resend): the same message, no second effect.
    remote.put("po1-again.edi", sample.read_bytes())
    site.run()
    assert site.events() == events
    assert names(remote.archive) == ["po1-again.edi", "po1.edi"]


def test_a_crash_between_the_commit_and_the_remote_archive_delivers_once(
        remote: Remote, tmp_path: Path) -> None:
    site = sftp_site(tmp_path, remote)
    remote.put("po.edi", make_850s(700, 3))
    crashed = run_once(site, {"EDIGW_CRASH": "after_commit_before_archive:1"})
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-2000:]
    assert names(remote.inbox) == ["po.edi"] and names(remote.archive) == []  # not archived
    assert site.events() == []
    again = run_once(site)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "po.edi: repeat of message 1" in again.stderr  # the same message, recognised
    assert (names(remote.inbox), names(remote.archive)) == ([], ["po.edi"])
    pos = Counter(e["subject"] for e in site.events())
    assert pos == Counter({f"PO00700{n:04d}": 1 for n in (1, 2, 3)})
    [ack] = remote.acks()
    assert "AK9*A*3*3*3~" in ack


def test_a_server_killed_mid_transfer_loses_nothing_and_the_next_run_takes_it(
        remote: Remote, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    site = sftp_site(tmp_path, remote)
    # Over sftp_batch.SMALL, so downloaded alone by getfo (a group read's kill has its own
    # test, tests/integration/test_sftp_batch_sshd.py), in several of paramiko's reads.
    data = make_850s(710, 2000)
    assert len(data) > sftp_batch.SMALL
    remote.put("big.edi", data)
    real_getfo = paramiko.SFTPClient.getfo
    written: list[int] = []

    class KillingWriter:
        """The download's file: the server is killed once the first bytes have arrived."""

        def __init__(self, f: Any) -> None:
            self.f = f

        def write(self, chunk: bytes) -> int:
            written.append(len(chunk))
            if len(written) == 1:
                remote.server.kill()
            return self.f.write(chunk)

    def getfo(self: paramiko.SFTPClient, path: str, fl: Any, *args: Any, **kw: Any) -> int:
        return real_getfo(self, path, KillingWriter(fl), *args, **kw)

    monkeypatch.setattr(paramiko.SFTPClient, "getfo", getfo)
    ctx = Context.load(str(site.config))
    try:
        migrated(site.store_url).dispose()
        [channel] = inbound.partner_inputs(ctx)
        assert inbound.poll_logged(ctx, channel) == 0  # the first poll only sees the file
        assert inbound.poll_logged(ctx, channel) == 0  # the second downloads it: killed
        channel.close()
    finally:
        ctx.close()
    monkeypatch.undo()
    assert written and sum(written) < len(data)  # it was cut off mid-transfer
    assert "polling the inbox: " in caplog.text  # logged, and the runner goes on
    assert names(remote.inbox) == ["big.edi"] and names(remote.spool) == []
    store = Store(site.store_url)
    assert store.counts()["messages"] == 0
    store.close()
    remote.server.start()  # back, same port and key
    site.run()
    pos = Counter(e["subject"] for e in site.events())
    assert len(pos) == 2000 and set(pos.values()) == {1}
    assert (names(remote.inbox), names(remote.archive)) == ([], ["big.edi"])


def test_a_frozen_server_holds_up_only_its_own_partner(
        sshd_factory: Callable[[], SshServer], tmp_path: Path) -> None:
    frozen = Remote(sshd_factory(), tmp_path / "acme")
    live = Remote(sshd_factory(), tmp_path / "globex")
    # acme's channel would wait for its server far longer than the test: were the partners
    # polled one after the other, globex's file would never come in.
    site = sftp_site(tmp_path / "site", frozen, {"globex": live},
                     {"acme": {"timeout": 3600, "poll_budget": 3600}})
    migrated(site.store_url).dispose()
    frozen.put("a.edi", make_850s(720, 1))
    live.put("g.edi", (SAMPLES / "globex-855-4010.edi").read_bytes())
    frozen.server.freeze()  # accepts connections (the kernel does) and never answers
    ctx = Context.load(str(site.config))
    polling, stop = inbound.Inbound(ctx), threading.Event()
    store = Store(site.store_url)
    try:
        polling.start(stop)
        deadline = time.monotonic() + 60
        while store.counts()["messages"] == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert partners_stored(store) == ["globex"]  # while acme's server is frozen
        assert names(frozen.inbox) == ["a.edi"]  # still waiting on its own server
        frozen.server.thaw()
        while store.counts()["messages"] < 2 and time.monotonic() < deadline + 60:
            time.sleep(0.1)
        assert partners_stored(store) == ["acme", "globex"]
    finally:
        stop.set()
        frozen.server.thaw()
        polling.close()
        ctx.close()
        store.close()


def test_once_does_not_wait_for_a_frozen_server_and_takes_the_others(
        sshd_factory: Callable[[], SshServer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    frozen = Remote(sshd_factory(), tmp_path / "acme")
    live = Remote(sshd_factory(), tmp_path / "globex")
    site = sftp_site(tmp_path / "site", frozen, {"globex": live},
                     {"acme": {"timeout": 3600, "poll_budget": 3600}})
    migrated(site.store_url).dispose()
    frozen.put("a.edi", make_850s(730, 1))
    live.put("g.edi", (SAMPLES / "globex-855-4010.edi").read_bytes())
    frozen.server.freeze()
    monkeypatch.setattr(inbound, "ONCE_STABLE_WAIT", 2.0)
    monkeypatch.setattr(inbound, "ONCE_GRACE", 1.0)
    ctx = Context.load(str(site.config))
    polling = inbound.Inbound(ctx)
    store = Store(site.store_url)
    try:
        polling.drain()  # returns although acme's poll is still blocked
        assert partners_stored(store) == ["globex"] and names(live.archive) == ["g.edi"]
        assert "still busy when --once ended" in caplog.text
    finally:
        polling.close()  # closes the blocked connection under its poll
        frozen.server.thaw()
        ctx.close()
        store.close()
    assert names(frozen.inbox) == ["a.edi"]  # left for the next run


def partners_stored(store: Store) -> list[str]:
    with db.transaction(store.engine, write=False) as s:
        return sorted(s.scalars(select(Message.partner)))


FILES, WAVES, FIRST = 200, 5, 800


def test_200_files_with_runner_and_worker_kills_each_po_once(remote: Remote,
                                                              tmp_path: Path) -> None:
    with running_simulator() as sim:
        site = sftp_site(
            tmp_path, remote,
            destinations={"erp": {"type": "http", "config": {"url": sim.events_url,
                                                             "read_timeout": 10.0}}},
            inbound={"folder": {"stable_for": 0, "poll_interval": 0.2}},
            workers={"lease_seconds": 3.0, "heartbeat_seconds": 1.0, "idle_sleep": 0.2,
                     "max_claims": 20})
        gw = Gateway(site, workers=2)
        gw.start()
        store: Store | None = None
        kills = Counter[str]()
        try:
            per_wave = FILES // WAVES
            for wave in range(WAVES):
                for f in range(wave * per_wave, (wave + 1) * per_wave):
                    remote.put(f"po-{f:03d}.edi", make_850s(FIRST + f, 1))
                store = store or open_store(site.store_url, gw)
                # Some of this wave in the store, then a kill: the runner (it polls the
                # server and commits) on even waves, a worker on odd ones.
                before = wave * per_wave
                _wait(lambda s=store, n=before: s.counts()["messages"] > n, gw, 60)
                if wave % 2 == 0:
                    os.kill(gw.proc.pid, signal.SIGKILL)  # type: ignore[union-attr]
                    kills["runner"] += 1
                    gw.keep_alive()
                else:
                    assert gw.kill_worker(lambda pids: pids[0]) is not None
                    kills["worker"] += 1

            def done() -> bool:
                c = store.counts()  # type: ignore[union-attr]
                return (not names(remote.inbox) and c["messages"] == FILES
                        and c["waiting"] == 0 and c["acks_unsent"] == 0)
            _wait(done, gw, 120)
            c = store.counts()
            effects = Counter(e["subject"] for e in sim.effects())
            assert effects == Counter({f"PO{FIRST + f:05d}0001": 1 for f in range(FILES)}), c
            assert c["deliveries"] == c["delivered"] == FILES and c["dead_letters"] == 0, c
            assert len(names(remote.archive)) == FILES
            acks = remote.acks()
            assert len(acks) == FILES and all("AK9*A*1*1*1~" in a for a in acks)
            assert sum(kills.values()) == WAVES
            assert gw.worker_deaths() >= kills["worker"] and gw.starts == 1 + kills["runner"]
            assert names(remote.spool) == []  # downloads of killed runners swept
        finally:
            gw.stop()
            if store is not None:
                store.close()


def _wait(ready: Any, gw: Gateway, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        gw.keep_alive()
        if time.monotonic() > deadline:
            pytest.fail(f"not done after {timeout:.0f} s; log tail: {gw.log_text()[-3000:]}")
        time.sleep(0.2)
