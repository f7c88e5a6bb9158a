"""The portal's guards on their own: signed sessions, CSRF, the sign-in throttle, formula
cells neutralised, password hashes and portal users in the store."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gateway.cli import app as cli
from gateway.portal import cells, passwords, sessions, throttle
from gateway.store import db, users
from tests.pipeline_support import Site
from tests.portal_support import Clock
from tests.store_support import migrated, schema_diff

pytestmark = pytest.mark.unit
KEY = b"k" * 32


# ---- sessions and CSRF ---------------------------------------------------------------

def test_session_round_trip_and_signed_in_rotates_the_token() -> None:
    clock = Clock()
    codec = sessions.Sessions(KEY, max_age=3600, clock=clock)
    anon = codec.new()
    assert not anon.signed_in
    back = codec.load(codec.dump(anon))
    assert back == anon
    signed = codec.sign_in("ana", "evergreen")
    assert signed.signed_in and signed.csrf != anon.csrf
    assert codec.load(codec.dump(signed)) == signed


@pytest.mark.parametrize("tamper", [
    lambda v: v[:-2] + ("AA" if not v.endswith("AA") else "BB"),  # signature changed
    lambda v: "x" + v,  # payload changed
    lambda v: "",
    lambda v: "not.a.cookie",
    lambda v: v * 200,  # absurdly long
])
def test_a_tampered_cookie_is_no_session(tamper) -> None:  # type: ignore[no-untyped-def]
    codec = sessions.Sessions(KEY, max_age=3600, clock=Clock())
    assert codec.load(tamper(codec.dump(codec.sign_in("ana", "evergreen")))) is None


def test_a_cookie_signed_with_another_key_is_no_session() -> None:
    clock = Clock()
    theirs = sessions.Sessions(b"z" * 32, max_age=3600, clock=clock)
    ours = sessions.Sessions(KEY, max_age=3600, clock=clock)
    assert ours.load(theirs.dump(theirs.sign_in("ana", "evergreen"))) is None


def test_a_session_expires_by_the_injected_clock() -> None:
    clock = Clock()
    codec = sessions.Sessions(KEY, max_age=3600, clock=clock)
    value = codec.dump(codec.sign_in("ana", "evergreen"))
    clock.now += 3600
    assert codec.load(value) is not None
    clock.now += 1
    assert codec.load(value) is None


def test_a_session_issued_in_the_future_is_refused() -> None:
    clock = Clock()
    codec = sessions.Sessions(KEY, max_age=3600, clock=clock)
    clock.now += 3600
    value = codec.dump(codec.new())
    clock.now -= 3600
    assert codec.load(value) is None


def test_a_signed_payload_of_the_wrong_shape_is_no_session() -> None:
    codec = sessions.Sessions(KEY, max_age=3600, clock=Clock())
    signer = codec._signer
    for bad in [[1, 2], {"c": 5, "t": 1}, {"c": "x", "t": Clock()(), "u": "ana", "p": None},
                {"c": "x", "t": "yesterday"}]:
        assert codec.load(signer.dumps(bad)) is None


def test_csrf_token_must_match_the_session() -> None:
    codec = sessions.Sessions(KEY, max_age=3600, clock=Clock())
    s = codec.new()
    assert sessions.csrf_ok(s, s.csrf)
    assert not sessions.csrf_ok(s, codec.new().csrf)
    assert not sessions.csrf_ok(s, "")
    assert not sessions.csrf_ok(s, None)
    assert not sessions.csrf_ok(None, s.csrf)


def test_a_short_key_is_refused() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        sessions.Sessions(b"short", max_age=1, clock=Clock())


def test_signing_key_is_made_once_privately_and_kept(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(sessions.KEY_ENV, raising=False)
    key_file = tmp_path / "var" / "portal" / "session.key"
    first = sessions.signing_key(key_file)
    assert len(first) == 64
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
    assert sessions.signing_key(key_file) == first  # kept across restarts
    monkeypatch.setenv(sessions.KEY_ENV, "from-the-environment-0123456789")
    assert sessions.signing_key(key_file) == b"from-the-environment-0123456789"
    monkeypatch.setenv(sessions.KEY_ENV, "short")
    with pytest.raises(ValueError, match="shorter than 16"):
        sessions.signing_key(key_file)


def test_an_emptied_key_file_is_an_error_not_an_empty_key(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(sessions.KEY_ENV, raising=False)
    key_file = tmp_path / "session.key"
    key_file.write_text("abc\n")
    with pytest.raises(ValueError, match="too short"):
        sessions.signing_key(key_file)


# ---- the sign-in throttle ------------------------------------------------------------

def test_five_failures_block_that_user_from_that_client_for_the_window() -> None:
    clock = Clock()
    t = throttle.Throttle(clock, per_user=5, per_client=30, window=900)
    for _ in range(4):
        t.failed("ana", "10.0.0.1")
        clock.now += 1
    assert t.wait("ana", "10.0.0.1") == 0
    t.failed("Ana ", "10.0.0.1")  # the same name, however typed
    assert t.wait("ana", "10.0.0.1") == pytest.approx(900 - 4)
    assert t.wait("ana", "10.0.0.2") == 0  # another client
    assert t.wait("ben", "10.0.0.1") == 0  # another user
    clock.now += 900 - 4
    assert t.wait("ana", "10.0.0.1") == 0  # the first failure left the window


def test_success_clears_the_users_count_but_not_the_clients() -> None:
    clock = Clock()
    t = throttle.Throttle(clock, per_user=3, per_client=4, window=60)
    for _ in range(3):
        t.failed("ana", "c")
    assert t.wait("ana", "c") > 0
    t.succeeded("ana", "c")
    assert t.wait("ana", "c") == 0
    t.failed("ben", "c")  # the client's fourth failure, over any names
    assert t.wait("carla", "c") == pytest.approx(60)


def test_a_client_spraying_many_names_is_blocked() -> None:
    clock = Clock()
    t = throttle.Throttle(clock, per_user=5, per_client=30, window=900)
    for i in range(30):
        t.failed(f"user{i}", "203.0.113.9")
    assert t.wait("someone-new", "203.0.113.9") > 0
    assert t.wait("someone-new", "203.0.113.10") == 0


def test_the_throttle_remembers_a_bounded_number_of_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(throttle, "MAX_KEYS", 10)
    t = throttle.Throttle(Clock())
    for i in range(50):
        t.failed(f"u{i}", f"c{i}")
    assert len(t._failures) == 10


# ---- formula cells -------------------------------------------------------------------

@pytest.mark.parametrize(("cell", "shown"), [
    ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
    ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
    ("-2+3", "'-2+3"),
    ("@SUM(A1:A2)", "'@SUM(A1:A2)"),
    ("\t=1", "'\t=1"),
    ("\r=1", "'\r=1"),
    ("-12", "-12"),  # a plain number stays a number
    ("+3.5", "+3.5"),
    ("-1e5", "-1e5"),
    ("asn.csv", "asn.csv"),
    ("a=b", "a=b"),
    ("", ""),
    (None, ""),
    (42, "42"),
])
def test_neutralise(cell: object, shown: str) -> None:
    assert cells.neutralise(cell) == shown


def test_csv_export_neutralises_every_cell() -> None:
    text = cells.to_csv(["=h"], [["=1+1", "ok", -3], ["@x", "+y", "-z"]])
    assert text.splitlines() == ["'=h", "'=1+1,ok,-3", "'@x,'+y,'-z"]


# ---- passwords and users -------------------------------------------------------------

def test_password_hash_is_argon2id_and_verifies() -> None:
    hashed = passwords.hash_password("correct horse battery")
    assert hashed.startswith("$argon2id$")
    assert passwords.verify(hashed, "correct horse battery")
    assert not passwords.verify(hashed, "correct horse batterY")
    assert not passwords.verify(None, "correct horse battery")  # no such user
    assert not passwords.verify("not a hash", "correct horse battery")
    assert not passwords.verify(hashed, "x" * 5000)


@pytest.mark.parametrize(("password", "why"), [
    ("short", "at least 12"), ("x" * 1025, "longer than"), (" padded password ", "white space")])
def test_weak_or_odd_passwords_are_refused(password: str, why: str) -> None:
    with pytest.raises(passwords.BadPassword, match=why):
        passwords.hash_password(password)


@pytest.mark.parametrize("name", ["", "Ana", "a b", "../x", "x" * 65, "-ana", "ana\n"])
def test_bad_usernames_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="username"):
        passwords.check_username(name)


def test_users_in_the_store(tmp_path: Path) -> None:
    engine = migrated(f"sqlite:///{tmp_path / 'edigw.db'}")
    assert schema_diff(engine) == []  # the migration makes what the models say
    with db.transaction(engine) as s:
        users.add(s, username="ana", partner="evergreen", password_hash="h1")
    with db.transaction(engine) as s, pytest.raises(users.UserExists):
        users.add(s, username="ana", partner="brightline", password_hash="h2")
    with db.transaction(engine) as s:
        assert users.active(s, "ana").partner == "evergreen"  # type: ignore[union-attr]
        assert users.disable(s, "ana") and not users.disable(s, "nobody")
    with db.transaction(engine, write=False) as s:
        assert users.active(s, "ana") is None
        assert users.find(s, "ana") is not None
    engine.dispose()


def test_cli_users_add_hashes_the_password_from_stdin(tmp_path: Path) -> None:
    site = Site(tmp_path)
    runner = CliRunner()
    args = ["users", "add", "--partner", "evergreen", "ana", "--password-stdin",
            "-c", str(site.config)]
    # Like every command but `db upgrade` and `run`, it does not make a store of its own.
    first = runner.invoke(cli, args, input="correct horse battery\n")
    assert first.exit_code == 2 and "edigw db upgrade" in first.output, first.output
    assert not Path(site.store_url.removeprefix("sqlite:///")).exists()
    migrated(site.store_url).dispose()
    done = runner.invoke(cli, args, input="correct horse battery\n")
    assert done.exit_code == 0, done.output
    again = runner.invoke(cli, args, input="correct horse battery\n")
    assert again.exit_code == 2 and "exists already" in again.output
    for bad_args, stdin, says in [
            (["--partner", "nobody", "bob"], "correct horse battery\n", "no partner 'nobody'"),
            (["--partner", "evergreen", "Bob"], "correct horse battery\n", "username 'Bob'"),
            (["--partner", "evergreen", "bob"], "short\n", "at least 12"),
            (["--partner", "evergreen", "bob"], "", "at least 12")]:
        out = runner.invoke(cli, ["users", "add", *bad_args, "--password-stdin", "-c",
                                  str(site.config)], input=stdin)
        assert out.exit_code == 2 and says in out.output, out.output
    no_flag = runner.invoke(cli, ["users", "add", "--partner", "evergreen", "bob", "-c",
                                  str(site.config)])
    assert no_flag.exit_code == 2 and "--password-stdin" in no_flag.output
    listed = runner.invoke(cli, ["users", "list", "-c", str(site.config)])
    assert listed.exit_code == 0 and listed.output.startswith("ana\tevergreen")
    engine = db.make_engine(site.store_url)
    with db.transaction(engine, write=False) as s:
        user = users.find(s, "ana")
        assert user is not None and passwords.verify(user.password_hash, "correct horse battery")
        assert "correct horse" not in user.password_hash
    engine.dispose()
    assert runner.invoke(cli, ["users", "disable", "ana", "-c", str(site.config)]).exit_code == 0
    assert "disabled" in runner.invoke(cli, ["users", "list", "-c", str(site.config)]).output
