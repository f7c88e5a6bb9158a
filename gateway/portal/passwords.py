"""Portal passwords: argon2id hashes (argon2-cffi), names and the rules a new one must meet."""

from __future__ import annotations

import functools
import re

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_LENGTH, MAX_LENGTH = 12, 1024
USERNAME = re.compile(r"[a-z0-9][a-z0-9._@-]{0,63}")
_hasher = PasswordHasher()


class BadPassword(ValueError):
    """A new password that does not meet the rules."""


def check_username(name: str) -> str:
    """The name if it is one a portal user may have; ValueError saying why not."""
    if not USERNAME.fullmatch(name):
        raise ValueError(f"username {name!r}: use 1 to 64 of a-z 0-9 . _ @ - (lower case), "
                         "starting with a letter or digit")
    return name


def check_new(password: str) -> str:
    if len(password) < MIN_LENGTH:
        raise BadPassword(f"the password is {len(password)} characters; at least {MIN_LENGTH} "
                          "are needed")
    if len(password) > MAX_LENGTH:
        raise BadPassword(f"the password is longer than {MAX_LENGTH} characters")
    if password != password.strip():
        raise BadPassword("the password starts or ends with white space (a stray newline?)")
    return password


def hash_password(password: str) -> str:
    return _hasher.hash(check_new(password))


def verify(stored: str | None, password: str) -> bool:
    """Whether password matches the stored hash. Without a hash (no such user) the same
    work is done against a dummy one, so the answer takes as long either way."""
    if len(password) > MAX_LENGTH:
        return False
    try:
        return _hasher.verify(stored or _dummy(), password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    return _hasher.check_needs_rehash(stored)


def rehash(password: str) -> str:
    """A verified password's hash with today's parameters (the rules for new ones aside:
    a user whose password predates them must still be able to sign in)."""
    return _hasher.hash(password)


@functools.cache
def _dummy() -> str:
    return _hasher.hash("not anyone's password, only spent time")
