"""Workspace secrets: set (create or replace), list, delete, and their values for a launch.

A value is sealed with the control plane's key (AES-256-GCM, ``store/crypto.py``) with the
workspace id and the name as associated data, so a ciphertext copied to another row does not
open. No API answers a value: the only way out is into the environment of a job or replica
that names the secret, when it starts. The values given to a job or a deployment are also
kept, sealed, on its row (``secret_mask``), so its log is served with them masked
(``control/logs.py``) even after the secret is replaced or deleted.
"""

from __future__ import annotations

import builtins
import json
import uuid
from collections.abc import Callable, Iterable

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from lepton.control.context import Context
from lepton.control.logs import MIN_MASKED, Masker
from lepton.control.paging import Page, PageRequest, paged
from lepton.control.tokens import Principal
from lepton.errors import Conflict, InvalidRequest, NotFound
from lepton.names import fits
from lepton.schemas import ENV_NAME_PATTERN, Secret, SecretPut, secret_ref
from lepton.store.crypto import load_or_create_key, seal, unseal
from lepton.store.models import SecretRow

__all__ = ["SecretService", "check_name"]

_MASK_KEEP = 256
"""Most values a job or deployment keeps masking: the newest, when a deployment's secrets were
replaced more often than that (64 per launch at most)."""

Users = Callable[[Session, str, str], builtins.list[str]]
"""``(session, workspace_id, name) -> what still uses the secret`` (``deployment web``)."""


def check_name(name: str) -> None:
    """Refuse a name that is no variable name, or one of the platform's ``LEPTON_*``."""
    if not fits(ENV_NAME_PATTERN, name):
        raise InvalidRequest(
            f"'{name[:140]}' is not a secret name: letters, digits and _ (not first), at most "
            "128 characters, as an environment variable",
            fix="pick a name such as HF_TOKEN",
        )
    if name.startswith("LEPTON_"):
        raise InvalidRequest(
            f"secret '{name}' would be a LEPTON_* variable: those are the platform's own",
            fix=f"pick another name, e.g. {name.removeprefix('LEPTON_') or 'MY'}_SECRET",
        )


def _context(workspace_id: str, name: str) -> bytes:
    return b"lepton-secret\0" + workspace_id.encode() + b"\0" + name.encode()


def _mask_context(kind: str, owner_id: str) -> bytes:
    return b"lepton-secret-mask\0" + kind.encode() + b"\0" + owner_id.encode()


def _view(row: SecretRow) -> Secret:
    return Secret(
        name=row.name,
        created_at=row.created_at,
        updated_at=row.updated_at,
        created_by=row.created_by,
    )


class SecretService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._key: bytes | None = None
        self.users: builtins.list[Users] = []
        """Checks that refuse a deletion while something needs the secret to start."""

    @property
    def key(self) -> bytes:
        if self._key is None:  # the blob store already made it on first start
            self._key = load_or_create_key(self.ctx.settings)
        return self._key

    def _row(self, session: Session, workspace_id: str, name: str) -> SecretRow | None:
        return session.scalars(
            select(SecretRow).where(SecretRow.workspace_id == workspace_id, SecretRow.name == name)
        ).first()

    # --- the secrets API ----------------------------------------------------------------------

    def put(self, principal: Principal, name: str, body: SecretPut) -> Secret:
        """Create the secret, or replace its value. Jobs and replicas that start afterwards get
        the new value; running ones keep the one they started with."""
        check_name(name)
        sealed = seal(self.key, body.value.encode(), _context(principal.workspace_id, name))
        for attempt in range(2):  # a second try only when a concurrent put created the name
            now = self.ctx.clock()
            with self.ctx.sessions() as session:
                row = self._row(session, principal.workspace_id, name)
                if row is None:
                    row = SecretRow(
                        id=uuid.uuid4().hex,
                        workspace_id=principal.workspace_id,
                        name=name,
                        ciphertext=sealed,
                        created_at=now,
                        updated_at=now,
                        created_by=principal.token_id,
                    )
                    session.add(row)
                else:
                    row.ciphertext, row.updated_at = sealed, now
                try:
                    session.commit()
                except IntegrityError:
                    if attempt:
                        raise
                    continue
                return _view(row)
        raise AssertionError("unreachable: the second attempt returns or raises")

    def list(self, principal: Principal, page: PageRequest) -> Page[Secret]:
        """The workspace's secrets by name: names and times, never values."""
        query = select(SecretRow).where(SecretRow.workspace_id == principal.workspace_id)
        with self.ctx.sessions() as session:
            return paged(session, query, [SecretRow.name], page, _view)

    def delete(self, principal: Principal, name: str) -> Secret:
        """Delete a secret; refused while a deployment's replicas need it to start. A queued
        job that names it fails when it would start, saying so."""
        with self.ctx.sessions() as session:
            row = self._row(session, principal.workspace_id, name)
            if row is None:
                raise NotFound(
                    f"secret '{name}' does not exist in workspace '{principal.workspace}'",
                    fix="list them: lepton secret list",
                )
            users = [u for check in self.users for u in check(session, row.workspace_id, name)]
            if users:
                raise Conflict(
                    f"secret '{name}' is used by {', '.join(users)}",
                    fix="give them other secrets first (lepton deployment update NAME --secret "
                    "... or --clear-secrets), or replace its value: lepton secret create " + name,
                )
            session.delete(row)
            session.commit()
            return _view(row)

    # --- launch time ------------------------------------------------------------------------

    def require(self, session: Session, principal: Principal, refs: Iterable[str]) -> None:
        """Refuse references to secrets the workspace does not have (at submit)."""
        names = sorted({secret_ref(ref)[1] for ref in refs})
        if not names:
            return
        found = set(
            session.scalars(
                select(SecretRow.name).where(
                    SecretRow.workspace_id == principal.workspace_id, SecretRow.name.in_(names)
                )
            )
        )
        missing = [n for n in names if n not in found]
        if missing:
            raise InvalidRequest(
                f"no secret {', '.join(repr(n) for n in missing)} in workspace "
                f"'{principal.workspace}'",
                fix="create it first: " + "; ".join(f"lepton secret create {n}" for n in missing),
            )

    def resolve(self, session: Session, workspace_id: str, refs: Iterable[str]) -> dict[str, str]:
        """``{variable: value}`` for ``refs`` (``NAME`` or ``ENV=NAME``), decrypted for a launch.

        Raises:
            NotFound: a secret was deleted since it was named (the message says which).
            BlobIntegrityError: a value does not decrypt (another key, or an altered row).
        """
        env: dict[str, str] = {}
        for ref in refs:
            variable, name = secret_ref(ref)
            row = self._row(session, workspace_id, name)
            if row is None:
                raise NotFound(
                    f"secret '{name}' was deleted after it was named here",
                    fix=f"create it again (lepton secret create {name}), or drop --secret {ref}",
                )
            plain = unseal(
                self.key, row.ciphertext, _context(workspace_id, name), name=f"secret '{name}'"
            )
            env[variable] = plain.decode()
        return env

    # --- masking --------------------------------------------------------------------------------

    def add_mask(
        self, kind: str, owner_id: str, sealed: bytes | None, values: Iterable[str]
    ) -> bytes | None:
        """``sealed`` (an owner's masked values) with ``values`` added, sealed again."""
        new = [v for v in values if len(v) >= MIN_MASKED]
        if not new:
            return sealed
        kept = self._mask_values(kind, owner_id, sealed)
        merged = [v for v in kept if v not in new] + new
        payload = json.dumps(merged[-_MASK_KEEP:]).encode()
        return seal(self.key, payload, _mask_context(kind, owner_id))

    def masker(self, kind: str, owner_id: str, sealed: bytes | None) -> Masker | None:
        """What masks the values given to a job (``kind`` ``job``) or a deployment."""
        values = self._mask_values(kind, owner_id, sealed)
        return Masker(values) if values else None

    def _mask_values(self, kind: str, owner_id: str, sealed: bytes | None) -> builtins.list[str]:
        if sealed is None:
            return []
        plain = unseal(self.key, sealed, _mask_context(kind, owner_id), name=f"{kind} {owner_id}")
        values: builtins.list[str] = json.loads(plain)
        return values
