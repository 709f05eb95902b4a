"""The course secret from which per-student hidden-test inputs are derived (instructor side only).

The secret is the environment variable ``CNNCOURSE_SECRET`` when set, otherwise the file
``<course root>/.cnncourse/secret`` (kept out of git by ``.gitignore``), created with mode 0600 and a note
on stderr the first time it is needed. It never enters a notebook or a student's kernel: the grader
derives seeds from it and hands the kernel only the inputs.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import sys
import tempfile
from pathlib import Path

__all__ = ["course_secret", "secret_path", "student_seed", "ENV_VAR"]

ENV_VAR = "CNNCOURSE_SECRET"


def secret_path(root: str | Path) -> Path:
    """Where the course secret file lives: ``<root>/.cnncourse/secret``."""
    return Path(root) / ".cnncourse" / "secret"


def course_secret(root: str | Path) -> bytes:
    """The course secret: ``$CNNCOURSE_SECRET``, else the secret file (created on first use)."""
    value = os.environ.get(ENV_VAR)
    if value:
        return value.encode("utf-8")
    path = secret_path(root)
    if not path.exists():
        _create(path)
    text = path.read_text(encoding="utf-8").strip()
    if not text:
        raise ValueError(f"the course secret file {path} is empty: delete it to create a new one, or set "
                         f"{ENV_VAR}")
    return text.encode("utf-8")


def _create(path: Path) -> None:
    """Write a new random secret to ``path`` (0600) atomically: grader workers starting together all end up
    reading the one that was linked first."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".secret-")  # mode 0600
    try:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
        os.link(tmp, path)
    except FileExistsError:
        return  # another worker created it first
    finally:
        os.unlink(tmp)
    print(f"cnncourse: created the course secret {path} (mode 0600). Hidden-test inputs of every student derive "
          "from it: keep it, back it up, never commit or share it.", file=sys.stderr)


def student_seed(secret: bytes, assignment: str, student: str, test: str) -> int:
    """A 64-bit seed from HMAC-SHA256(secret, "assignment/student/test"): the same for every grading of one
    student, different between students, unpredictable without the secret."""
    digest = hmac.new(secret, f"{assignment}/{student}/{test}".encode("utf-8"), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big")
