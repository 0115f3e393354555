"""The named parents of versioned resources (a dataset, a model): found by workspace and name,
created on their first version."""

from __future__ import annotations

import uuid
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from lepton.control.context import Context
from lepton.store.models import DatasetRow, ModelRow

__all__ = ["named_row"]

Named = TypeVar("Named", DatasetRow, ModelRow)


def named_row(ctx: Context, kind: type[Named], workspace_id: str, name: str) -> Named:
    """The ``kind`` row called ``name`` in the workspace, created (in its own transaction) if
    there is none yet; a concurrent creation of the same name answers the one that won."""
    query = select(kind).where(kind.workspace_id == workspace_id, kind.name == name)
    with ctx.sessions() as session:
        found = session.scalars(query).first()
        if found is not None:
            return found
        row = kind(
            id=uuid.uuid4().hex, workspace_id=workspace_id, name=name, created_at=ctx.clock()
        )
        session.add(row)
        try:
            session.commit()
        except IntegrityError:  # created concurrently
            session.rollback()
            found = session.scalars(query).first()
            assert found is not None
            return found
        return row
