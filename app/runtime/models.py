"""Tables of the workflow runtime and the Curaway `events` table (names are a contract).

- `workflow_runs`: one row per run, keyed by its `wfr_` ID, with the labels its workflow set;
  carries the per-run lease
  (`lease_owner`, `lease_expires_at`) that serialises deliveries across processes.
- `workflow_steps`: one row per step, unique on `(run_id, position)`: a step can be recorded
  once only, however many deliveries race for it.
- `events`: every run and step transition, and the domains' progress events, each tagged with
  the run's `workflow_id`; indexed for "all events of one run, oldest first".
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.expression import false

from app.db import Base, JSONType, UTCDateTime, utcnow

BigIntPK = BigInteger().with_variant(Integer(), "sqlite")


class RunStatus(StrEnum):
    PENDING = "pending"  # created, first delivery not yet made
    RUNNING = "running"  # deliveries are driving it
    SLEEPING = "sleeping"  # waiting for a delayed message (sleep or step retry backoff)
    WAITING = "waiting"  # waiting for an outside answer (a call, an event, a child run)
    FAILING = "failing"  # failed; its on_failure handler has not finished yet
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL_RUN_STATUSES = frozenset({RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED})


class StepKind(StrEnum):
    RUN = "run"
    SLEEP = "sleep"
    CALL = "call"
    WAIT = "wait"  # ctx.wait_for_event
    INVOKE = "invoke"  # ctx.invoke (a child run)
    ON_FAILURE = "on_failure"


class StepStatus(StrEnum):
    RUNNING = "running"  # an attempt started; a crash leaves it here and it is tried again
    RETRY_SCHEDULED = "retry_scheduled"
    SLEEPING = "sleeping"
    CALLING = "calling"
    WAITING = "waiting"  # for an event or a child run
    COMPLETED = "completed"
    FAILED = "failed"


ON_FAILURE_POSITION = -1


class WorkflowRun(Base):
    __tablename__ = "workflow_runs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    workflow: Mapped[str] = mapped_column(String(100), index=True)
    status: Mapped[str] = mapped_column(String(20), index=True, default=RunStatus.PENDING)
    payload: Mapped[Any] = mapped_column(JSONType)
    result: Mapped[Any | None] = mapped_column(JSONType, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    failure: Mapped[Any | None] = mapped_column(JSONType, nullable=True)  # errors.Failure's fields
    # Correlation keys the workflow sets (`trigger(labels=...)`), inherited by child runs; also
    # in `workflow_run_labels`, indexed, to find runs by them.
    labels: Mapped[dict[str, str]] = mapped_column(JSONType, default=dict)
    parent_run_id: Mapped[str | None] = mapped_column(String(64), index=True, nullable=True)
    parent_position: Mapped[int | None] = mapped_column(Integer, nullable=True)
    schedule_id: Mapped[str | None] = mapped_column(String(100), index=True, nullable=True)
    resumes: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # times resumed after failing
    lease_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # The doorbell. Leased: a delivery or a resolution rang, so the holder drives the run once
    # more before it lets go. Idle: a wake-up is on its way, so resolutions send no other one.
    # Cleared by whoever takes the lease (or answers the doorbell), as it reads the steps.
    wake_pending: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class WorkflowStep(Base):
    __tablename__ = "workflow_steps"
    __table_args__ = (UniqueConstraint("run_id", "position"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("workflow_runs.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    result: Mapped[Any | None] = mapped_column(JSONType, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)  # `Type: message`
    error_type: Mapped[str | None] = mapped_column(String(200), nullable=True)
    wake_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class WorkflowRunLabel(Base):
    """One label of a run, for finding runs by label (`RunStore.runs_labelled`)."""

    __tablename__ = "workflow_run_labels"
    __table_args__ = (Index("ix_workflow_run_labels_key_value", "key", "value"),)

    run_id: Mapped[str] = mapped_column(ForeignKey("workflow_runs.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))


# Run labels with these names are copied onto every event row of the run, into the `events`
# table's correlation columns of the same name (a contract of the table, DESIGN 3.3).
EVENT_LABELS = ("case_id", "document_id")


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_workflow_id_id", "workflow_id", "id"),
        Index("ix_events_case_id_id", "case_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    workflow_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    case_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    document_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    type: Mapped[str] = mapped_column(String(100))
    payload: Mapped[Any] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WorkflowWaiter(Base):
    """A run waiting at `position` for `notify(event_id)`; removed when resolved."""

    __tablename__ = "workflow_waiters"
    __table_args__ = (UniqueConstraint("run_id", "position"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(200), index=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("workflow_runs.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    workflow: Mapped[str] = mapped_column(String(100))
    deadline: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WorkflowNotification(Base):
    """A notification that arrived before anyone waited; the first waiter consumes it."""

    __tablename__ = "workflow_notifications"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(200), index=True)
    data: Mapped[Any | None] = mapped_column(JSONType, nullable=True)
    # The `ctx.notify` step that sent it (a retried step sends nothing twice); a notification that
    # woke waiters at once is kept as an expired marker with its source.
    source: Mapped[str | None] = mapped_column(String(200), nullable=True, unique=True)
    woken: Mapped[Any | None] = mapped_column(JSONType, nullable=True)  # run IDs it woke at once
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class WorkflowOutbox(Base):
    """A continuation to publish, written in the transaction of the change that calls for it.

    Sent right after that commit and deleted once QStash accepted it; the watchdog re-sends
    rows left behind (a crash or a failed publish in between), so a wake-up committed is a
    wake-up delivered. The deduplication ID (`run_id.position.key`) makes re-sending harmless.
    """

    __tablename__ = "workflow_outbox"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("workflow_runs.id", ondelete="CASCADE"), index=True)
    workflow: Mapped[str] = mapped_column(String(100))
    position: Mapped[int] = mapped_column(Integer)
    key: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
