"""Benchmark: files per second taken from a loopback sshd into the store, against `sftp -b`.

Issue #8, item 6. N small X12 files (default 500 of about 2 KB) are placed in the inbox of
an OpenSSH sshd on 127.0.0.1 (tests/sshd_support.py: key auth, internal-sftp). Two ways of
getting them, in the same run, on the same files:

(a) the gateway: `channels.sftp.SftpInput` polls the inbox (a file is taken once it is
    stable across two polls, downloaded to a spool file that is fsynced), and
    `gateway.pipeline.intake.accept` stores each poll's messages and enqueues their
    validation in one commit (a migrated SQLite store in a temporary folder), then acks
    each one, which moves the remote file to the archive. Timed from the first poll (which
    connects) until the last file is acked; the poll interval is small (--poll-interval)
    so that the wait for the second sighting costs little.
(b) the baseline: OpenSSH's own client, `sftp -b` with `get <inbox>/* <temp dir>`, timed
    as a whole process (start, key exchange, login, listing, downloads).

(b) only copies and (a) also stores, fsyncs and archives: the target is (a) >= 0.5x (b).
Each round places new files (new control numbers) and runs (b) then (a) on them; the
table shows every round (and of (a)'s time: in the channel's read(), in its ack(), and the
rest, which is storing plus the one wait between the two polls) and the medians.

    python bench/sftp_intake.py [--files 500] [--size 2000] [--rounds 3] [--poll-interval 0.05]
        [--profile out.pstats]
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import importlib.util
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import yaml  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from channels.sftp import SftpInput, SftpInputConfig  # noqa: E402
from gateway.pipeline import intake  # noqa: E402
from gateway.pipeline.context import Context  # noqa: E402
from gateway.store import db, migrate  # noqa: E402
from gateway.store.models import Message  # noqa: E402
from tests.sshd_support import SshServer, sshd_available  # noqa: E402

TARGET = 0.5
PARTNER = "acme"  # conf/partners/acme.yaml; the intake does not look inside the files


def _interchange_maker():  # type: ignore[no-untyped-def]
    """bench/pipeline.py's 850 generator (the benches are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location("pipeline_bench", REPO / "bench" / "pipeline.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module.make_interchange


make_interchange = _interchange_maker()


def place(inbox: Path, count: int, size: int, first_icn: int) -> dict[str, bytes]:
    """count files of about size bytes in the inbox (as the partner's server has them)."""
    sets = 1
    while len(make_interchange(first_icn, sets + 1)) <= size:
        sets += 1
    files = {}
    for n in range(count):
        icn = first_icn + n
        name = f"po-{icn:09d}.edi"
        data = make_interchange(icn, sets)
        (inbox / name).write_bytes(data)
        files[name] = data
    return files


@dataclass
class Round:
    files: int
    bytes: int
    gateway_s: float = 0.0
    polls: int = 0
    poll_s: float = 0.0  # in channel.read(): listing, downloading, spooling
    ack_s: float = 0.0  # in channel.ack(): archiving
    sftp_s: float = 0.0

    @property
    def gateway_rate(self) -> float:
        return self.files / self.gateway_s

    @property
    def sftp_rate(self) -> float:
        return self.files / self.sftp_s

    @property
    def ratio(self) -> float:
        return self.gateway_rate / self.sftp_rate


def openssh_get(server: SshServer, inbox: Path, into: Path) -> float:
    """Seconds `sftp -b` takes to fetch every file of inbox into `into`."""
    started = time.perf_counter()
    done = server.sftp(f"get {inbox}/* {into}/\n", timeout=600)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"sftp -b failed: {done.stderr}")
    return seconds


class TimedAcks:
    """The channel as intake.accept's source, with the time its acks take added up."""

    def __init__(self, channel: SftpInput) -> None:
        self.channel = channel
        self.seconds = 0.0

    def ack(self, message: Any) -> None:
        started = time.perf_counter()
        self.channel.ack(message)
        self.seconds += time.perf_counter() - started

    def __getattr__(self, name: str) -> Any:  # connect, read, close: the channel's own
        return getattr(self.channel, name)


def gateway_take(ctx: Context, channel: SftpInput, count: int, poll_interval: float,
                 profile: cProfile.Profile | None, r: Round) -> None:
    """Poll, store and ack until `count` messages are acked; first poll to last ack, with
    the time spent polling (listing, downloads, spooling) and acking."""
    taken = 0
    source = TimedAcks(channel)
    if profile is not None:
        profile.enable()
    started = time.perf_counter()
    while taken < count:
        polled = time.perf_counter()
        messages = channel.read()
        r.poll_s += time.perf_counter() - polled
        r.polls += 1
        if messages:
            taken += len(intake.accept(ctx, messages, source))  # type: ignore[arg-type]
        else:
            time.sleep(poll_interval)
        if r.polls > 1000:
            raise SystemExit(f"only {taken} of {count} files taken after {r.polls} polls")
    r.gateway_s = time.perf_counter() - started
    if profile is not None:
        profile.disable()
    r.ack_s = source.seconds


def stored(ctx: Context) -> int:
    with db.transaction(ctx.engine, write=False) as s:
        return int(s.scalar(select(func.count()).select_from(Message)) or 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=500)
    parser.add_argument("--size", type=int, default=2000, help="bytes per file, about")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--poll-interval", type=float, default=0.05)
    parser.add_argument("--profile", help="write a cProfile of the gateway's side (a) here")
    args = parser.parse_args()
    why = sshd_available()
    if why:
        raise SystemExit(why)
    logging.basicConfig(level=logging.WARNING)
    tmp = Path(tempfile.mkdtemp(prefix="edigw-bench-sftp-"))
    (tmp / "sshd").mkdir()
    server = SshServer(tmp / "sshd")
    profile = cProfile.Profile() if args.profile else None
    rounds: list[Round] = []
    try:
        server.start()
        remote = tmp / "remote"
        inbox, archive, spool = remote / "outbound", remote / "archive", tmp / "spool"
        for d in (inbox, archive, spool):
            d.mkdir(parents=True)
        url = f"sqlite:///{tmp / 'edigw.db'}"
        config = tmp / "gateway.yaml"
        config.write_text(yaml.safe_dump({
            "store": {"url": url},
            "partners": {"folder": str(REPO / "conf" / "partners"),
                         "mappings": str(REPO / "mappings")},
        }), encoding="utf-8")
        migrate.upgrade(url)
        ctx = Context.load(str(config))
        channel_config = SftpInputConfig.model_validate(server.config_options(
            inbox=str(inbox), archive=str(archive), spool_dir=str(spool),
            poll_interval=args.poll_interval))
        print(f"SFTP intake from a loopback OpenSSH sshd, {args.files} files of about "
              f"{args.size} bytes, {args.rounds} rounds, {os.cpu_count()} CPUs, load "
              f"{os.getloadavg()[0]:.1f}, {datetime.date.today()}", flush=True)
        print(f"{'round':>5} {'sftp -b s':>10} {'files/s':>9} {'gateway s':>10} {'files/s':>9}"
              f" {'ratio':>7} {'polls':>6} {'in read s':>10} {'in ack s':>9} {'rest s':>7}",
              flush=True)
        icn = 100_000_001
        for n in range(1, args.rounds + 1):
            files = place(inbox, args.files, args.size, icn)
            icn += args.files
            r = Round(len(files), sum(len(d) for d in files.values()))
            fetched = tmp / f"fetched-{n}"
            fetched.mkdir()
            r.sftp_s = openssh_get(server, inbox, fetched)
            if sorted(p.name for p in fetched.iterdir()) != sorted(files):
                raise SystemExit("sftp -b did not fetch every file")
            before = stored(ctx)
            channel = SftpInput(channel_config, partner=PARTNER)
            try:
                gateway_take(ctx, channel, len(files), args.poll_interval, profile, r)
            finally:
                channel.close()
            # What (a) claims it did: every file stored once, archived, nothing left behind.
            if stored(ctx) - before != len(files):
                raise SystemExit(f"stored {stored(ctx) - before} messages, not {len(files)}")
            if any(inbox.iterdir()) or any(spool.iterdir()):
                raise SystemExit("files left in the inbox or the spool after the acks")
            if sorted(p.name for p in archive.iterdir()) != sorted(files):
                raise SystemExit("the archive does not hold exactly the files taken")
            for p in archive.iterdir():
                p.unlink()
            shutil.rmtree(fetched)
            rounds.append(r)
            rest = r.gateway_s - r.poll_s - r.ack_s  # storing, and the wait between polls
            print(f"{n:>5} {r.sftp_s:>10.3f} {r.sftp_rate:>9.1f} {r.gateway_s:>10.3f} "
                  f"{r.gateway_rate:>9.1f} {r.ratio:>6.2f}x {r.polls:>6} {r.poll_s:>10.3f} "
                  f"{r.ack_s:>9.3f} {rest:>7.3f}", flush=True)
        ctx.close()
        sftp_rate = statistics.median(r.sftp_rate for r in rounds)
        gateway_rate = statistics.median(r.gateway_rate for r in rounds)
        ratio = statistics.median(r.ratio for r in rounds)
        verdict = "met" if ratio >= TARGET else "missed"
        print(f"median: sftp -b {sftp_rate:.1f} files/s, gateway {gateway_rate:.1f} files/s, "
              f"ratio {ratio:.2f}x (target >= {TARGET}x: {verdict})")
        if profile is not None:
            profile.dump_stats(args.profile)
            print(f"profile of (a) written to {args.profile}")
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
