"""Another version of the policy directory, for ``accord policy diff``:
a directory as it is, or the policy files at a git ref of the repository
holding them (``git archive``, written into a scratch directory)."""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
from pathlib import Path

from accord.errors import ConfigError


def policies_at(against: str, policies: Path, scratch: Path) -> Path:
    """The policy directory ``against`` names: itself if it is a directory,
    else ``policies`` as committed at the git ref ``against``."""
    candidate = Path(against)
    if candidate.is_dir():
        return candidate
    git = shutil.which("git")
    if git is None:
        raise ConfigError(f"{against!r} is no directory, and git is not installed to read a ref")
    here = policies.resolve()
    top = _git(git, here, "rev-parse", "--show-toplevel").decode().strip()
    inside = here.relative_to(top).as_posix()
    archive = _git(git, Path(top), "archive", "--format=tar", f"{against}:{inside}")
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(scratch, filter="data")  # plain files only, nothing outside scratch
    return scratch


def _git(git: str, where: Path, *arguments: str) -> bytes:
    try:
        done = subprocess.run(  # noqa: S603 (fixed git arguments; the ref is one argument)
            [git, "-C", str(where), *arguments], capture_output=True, check=True, timeout=30
        )
    except subprocess.CalledProcessError as exc:
        detail = exc.stderr.decode(errors="replace").strip().splitlines()
        raise ConfigError(
            f"cannot read the policy at {arguments[-1]!r}: {detail[0] if detail else exc}"
        ) from None
    except subprocess.TimeoutExpired:
        raise ConfigError("git took longer than 30 s to read the policy") from None
    return done.stdout
