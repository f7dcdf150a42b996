"""The runtime's hand-written SQL: the hot path's writes in one round trip or one function.

- Postgres: a transition SQLAlchemy would send as several statements is one statement whose
  parts are data-modifying `WITH`s, run autocommitted (`START_ATTEMPT_PG`), or one call of a
  function of migration 0012 (`SETTLE_AND_WAKE_PG`, `NOTIFY_PG`).
- SQLite: the hottest writes are plain statements run together as one synchronous transaction
  on the driver's connection (`app.db.LoopSQLite.write`): a step's write
  (`START_ATTEMPT_SQLITE_*`, run by `records.write_start_attempt`) and taking a free lease
  (`LEASE_SQLITE`, `LOAD_STEPS_SQLITE`, run by `store._take_lease`).

Each writes what the SQLAlchemy Core statements of `records.py`, `store.py` and
`coordination.py` write for the same transition; `tests/runtime/test_step_writes.py`,
`test_wake_writes.py` and `test_lease.py` check them on their database.
"""

from __future__ import annotations

from sqlalchemy import text

from app.runtime.models import EVENT_LABELS, TERMINAL_RUN_STATUSES, RunStatus, StepStatus, WorkflowRun, WorkflowStep

# Postgres runs an inline step's write (`RunStore.start_attempt` with at most one earlier result)
# as one autocommitted statement: the fence, the earlier step's result, its `step.completed`
# event and this attempt's start, each conditional on the one before (the parts of a statement
# see each other only through RETURNING). One round trip instead of six (BEGIN, four statements,
# COMMIT), the largest single cost of a step. SQLite has no writes in a WITH; it runs the same
# writes as one transaction (`START_ATTEMPT_SQLITE_*` below). When a part is refused, the parts after
# it write nothing; the fence alone may stay, which only re-marks running a run the caller
# drives and extends the lease it holds until it gives it back.
_R, _S = RunStatus, StepStatus
START_ATTEMPT_PG = text(f"""
WITH fence AS (
    UPDATE workflow_runs
    SET status = CASE WHEN status = '{_R.FAILING}' THEN '{_R.FAILING}' ELSE '{_R.RUNNING}' END,
        updated_at = :now, lease_expires_at = COALESCE(:lease_expires_at, lease_expires_at)
    WHERE id = :run_id AND lease_owner = :owner AND status != '{_R.CANCELLED}'
    RETURNING labels
), done AS (
    UPDATE workflow_steps
    SET status = '{_S.COMPLETED}', error = NULL, result = CAST(:result AS JSONB), finished_at = :now
    WHERE run_id = :run_id AND position = :done_position AND EXISTS (SELECT FROM fence)
      AND (CAST(:done_attempt AS INTEGER) IS NULL OR (status = '{_S.RUNNING}' AND attempts = :done_attempt))
    RETURNING name
), event AS (
    INSERT INTO events (workflow_id, {", ".join(EVENT_LABELS)}, type, payload, created_at)
    SELECT :run_id, {", ".join(f"fence.labels ->> '{label}'" for label in EVENT_LABELS)}, 'step.completed',
           jsonb_build_object('step', done.name) || CAST(:event AS JSONB), :now
    FROM fence, done
), started AS (
    INSERT INTO workflow_steps (run_id, position, name, kind, status, attempts, started_at)
    SELECT :run_id, :position, :name, :kind, '{_S.RUNNING}', :attempt, :now
    WHERE EXISTS (SELECT FROM fence) AND (CAST(:done_position AS INTEGER) IS NULL OR EXISTS (SELECT FROM done))
    ON CONFLICT (run_id, position) DO UPDATE SET status = '{_S.RUNNING}', attempts = excluded.attempts, wake_at = NULL
)
SELECT EXISTS (SELECT FROM fence) AS fenced, EXISTS (SELECT FROM done) AS done
""")


# SQLite runs the same writes (with any number of earlier results) as one transaction of plain
# statements on the driver's connection (`LoopSQLite.write`, `records.write_start_attempt`): SQLite has
# no writes in a WITH, and a statement there takes microseconds, so SQLAlchemy's execution
# around each one (parameters, results, greenlet switches) was most of a step's cost.
START_ATTEMPT_SQLITE_FENCE = f"""
UPDATE workflow_runs
SET status = CASE WHEN status = '{_R.FAILING}' THEN '{_R.FAILING}' ELSE '{_R.RUNNING}' END,
    updated_at = :now, lease_expires_at = COALESCE(:lease_expires_at, lease_expires_at)
WHERE id = :run_id AND lease_owner = :owner AND status != '{_R.CANCELLED}'
RETURNING labels
"""
START_ATTEMPT_SQLITE_DONE = f"""
UPDATE workflow_steps
SET status = '{_S.COMPLETED}', error = NULL, result = :result, finished_at = :now
WHERE run_id = :run_id AND position = :done_position
  AND (:done_attempt IS NULL OR (status = '{_S.RUNNING}' AND attempts = :done_attempt))
RETURNING name
"""
START_ATTEMPT_SQLITE_EVENT = f"""
INSERT INTO events (workflow_id, {", ".join(EVENT_LABELS)}, type, payload, created_at)
VALUES (:run_id, {", ".join(f":{label}" for label in EVENT_LABELS)}, 'step.completed', :event, :now)
"""
START_ATTEMPT_SQLITE_START = f"""
INSERT INTO workflow_steps (run_id, position, name, kind, status, attempts, started_at)
VALUES (:run_id, :position, :name, :kind, '{_S.RUNNING}', :attempt, :now)
ON CONFLICT (run_id, position) DO UPDATE SET status = '{_S.RUNNING}', attempts = excluded.attempts, wake_at = NULL
"""

# Postgres settles a waiting step and wakes its run in one call of a function of migration 0012
# (`CoordinationStore._settle_and_wake`): the step's outcome, its event, and the wake-up exactly
# as `_wake` decides it. A notify is one call too (`CoordinationStore.notify`): the event's
# lock, its waiters taken and settled that way, the notification kept if nobody waited. A
# function, not a statement, because the lock must be taken before the waiters are read.
# SQLite runs the same writes one statement at a time. The rows: `settled` and the outbox row
# written (`outbox_id`, `outbox_workflow`, `outbox_key`, NULL if none); for a notify, one row
# per run woken (`woken_run_id`, `woken_position` and its outbox row).
SETTLE_AND_WAKE_PG = text(
    "SELECT * FROM workflow_settle_and_wake(:run_id, :position, :status, CAST(:result AS JSONB), :error,"
    " :error_type, :now, :event_type, CAST(:event AS JSONB), :key)"
)
NOTIFY_PG = text(
    "SELECT * FROM workflow_notify(:event_id, CAST(:data AS JSONB), :source, CAST(:result AS JSONB),"
    " CAST(:event AS JSONB), :now, :keep_until)"
)


TERMINAL_SQL = ", ".join(f"'{status}'" for status in sorted(TERMINAL_RUN_STATUSES))  # for `status NOT IN (...)`

# SQLite takes the lease and reads the steps as one synchronous transaction of plain statements
# (`store._take_lease`): `store._LEASE` and `store._LOAD_STEPS` (with `updated_at`, as its
# `onupdate` sets it), their rows read by `records.row_reader`.
LEASE_SQLITE = f"""
UPDATE workflow_runs SET lease_owner = :owner, lease_expires_at = :lease_expires_at, wake_pending = 0, updated_at = :now
WHERE id = :run_id AND status NOT IN ({TERMINAL_SQL}) AND (lease_owner IS NULL OR lease_expires_at < :now)
RETURNING {", ".join(WorkflowRun.__table__.c.keys())}
"""
LOAD_STEPS_SQLITE = f"SELECT {', '.join(WorkflowStep.__table__.c.keys())} FROM workflow_steps WHERE run_id = :run_id"
