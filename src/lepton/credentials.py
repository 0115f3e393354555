"""The credentials file: the control-plane URL and token the CLI and SDK use by default.

It holds a secret, so it is written atomically with mode 0600 and never widened.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from lepton.errors import ConfigError

__all__ = ["Credentials", "clean_token", "read_credentials", "write_credentials"]


@dataclass(frozen=True)
class Credentials:
    url: str
    token: str


def clean_token(token: str, source: str, *, fix: str) -> str:
    """``token`` without the whitespace around it (a pasted token keeps its newline, and httpx
    then refuses the header, which read as "cannot reach the server"). What is left must be
    printable ASCII without spaces, as an HTTP header needs: else a ConfigError naming ``source``
    and the character, never the secret."""
    token = token.strip()
    for i, char in enumerate(token):
        if not "!" <= char <= "~":
            raise ConfigError(
                f"{source} holds {char!r} at character {i + 1}, which an HTTP header cannot "
                "carry (a token is printable ASCII: lep_...)",
                fix=fix,
            )
    return token


def read_credentials(path: Path) -> Credentials | None:
    """The saved credentials, or ``None`` when the file does not exist."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"cannot read the credentials file {path}: {exc}",
            fix=f"log in again (lepton login --url URL --token T) or delete {path}",
        ) from None
    if not isinstance(data, dict) or not {"url", "token"} <= data.keys():
        raise ConfigError(
            f"the credentials file {path} lacks 'url' or 'token'",
            fix="log in again: lepton login --url URL --token T",
        )
    token = clean_token(
        str(data["token"]),
        f"the token in {path}",
        fix="log in again: lepton login --url URL --token T",
    )
    return Credentials(url=str(data["url"]).strip(), token=token)


def write_credentials(path: Path, credentials: Credentials) -> None:
    """Replace the file atomically; it is readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".credentials-")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"url": credentials.url, "token": credentials.token}, f)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
