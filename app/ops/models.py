"""Tables of the ops domain: QStash usage counted where we publish.

- `ops_usage`: one row per UTC day and workflow, `messages` (QStash messages we published,
  deduplicated ones excluded) and `inline_steps` (step attempts that ran by inline
  continuation, each a message saved).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base


class OpsUsage(Base):
    __tablename__ = "ops_usage"

    day: Mapped[str] = mapped_column(String(10), primary_key=True)  # YYYY-MM-DD, UTC
    workflow: Mapped[str] = mapped_column(String(100), primary_key=True)
    messages: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    inline_steps: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
