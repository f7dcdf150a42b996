"""`cleanup_batches`: what each batch of a cleanup run removed, written with the row deletes.

The row is committed in the same transaction that deletes the batch's rows; it names the
stored files those rows pointed at. A batch step that runs again (after a crash) finds it and
only finishes deleting those files: rows are removed once, files at least once, and never
before their rows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, JSONType, UTCDateTime, utcnow


class CleanupBatch(Base):
    __tablename__ = "cleanup_batches"

    run_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    batch: Mapped[int] = mapped_column(Integer, primary_key=True)
    cursor: Mapped[dict[str, Any]] = mapped_column(JSONType)
    documents: Mapped[int] = mapped_column(Integer, default=0)
    cases: Mapped[int] = mapped_column(Integer, default=0)
    file_keys: Mapped[list[str]] = mapped_column(JSONType, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    files_deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
