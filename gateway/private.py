"""Folders and files the gateway creates are its user's alone: folders 0700, files 0600.

They hold partners' documents, the store and its secrets-adjacent errors; nobody else on
the machine needs to read them. Modes are set where each is created (not with a process
umask, which would change every other file the process and its callers write); what
exists already keeps the mode its owner gave it.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from channels.local_files import DIR_MODE, FILE_MODE, make_dirs

__all__ = ["DIR_MODE", "FILE_MODE", "make_dirs", "make_file"]


def make_file(path: Path) -> None:
    """Create an empty file 0600 unless it exists, so whatever fills it in later keeps it so."""
    make_dirs(path.parent)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
        os.chmod(path, FILE_MODE)
