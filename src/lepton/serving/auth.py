"""Bearer-token checks on a replica, without a database.

The control plane hands a replica the sha256 hex digests of the tokens it may accept
(``LEPTON_REPLICA_TOKEN_HASHES``, comma-separated). A Lepton token ``lep_<id>_<secret>`` is
checked by the hash of its secret, exactly as the control plane stores it; any other bearer
string by the hash of the whole string. Every allowed hash is compared in constant time, and
all of them are compared whatever matched first, so timing says nothing about which one did.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from lepton.errors import ConfigError

__all__ = ["TokenCheck", "parse_hashes", "token_hash"]


def token_hash(token: str) -> str:
    """The hash a replica compares: of the secret for ``lep_<id>_<secret>``, else of it all."""
    parts = token.split("_", 2)
    secret = parts[2] if len(parts) == 3 and parts[0] == "lep" else token
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_hashes(raw: str) -> frozenset[str]:
    """``LEPTON_REPLICA_TOKEN_HASHES``: comma-separated sha256 hex digests."""
    hashes = [h.strip().lower() for h in raw.split(",") if h.strip()]
    for h in hashes:
        if len(h) != 64 or any(c not in "0123456789abcdef" for c in h):
            raise ConfigError(
                f"LEPTON_REPLICA_TOKEN_HASHES holds {h[:12]!r}..., which is not a sha256 hex digest",
                fix="pass the sha256 hex digests of the accepted tokens' secrets, comma-separated",
            )
    return frozenset(hashes)


class TokenCheck:
    """Accepts a bearer token whose hash is allowed; ``None`` hashes means public."""

    def __init__(self, hashes: Iterable[str] | None) -> None:
        self.public = hashes is None
        self._hashes = tuple(sorted(hashes or ()))

    def allows(self, authorization: bytes | None) -> bool:
        """Whether an ``Authorization`` header value lets the request in."""
        if self.public:
            return True
        if not authorization or authorization[:7].lower() != b"bearer ":
            return False
        try:
            token = authorization[7:].strip().decode("ascii")
        except UnicodeDecodeError:
            return False
        digest = token_hash(token)
        found = False
        for allowed in self._hashes:
            found |= hmac.compare_digest(digest, allowed)
        return found
