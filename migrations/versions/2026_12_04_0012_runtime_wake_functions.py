"""runtime wake functions: settling a waiting step and a notify, each one call (Postgres only)

`workflow_settle_and_wake` settles a waiting step and wakes its run in one statement: the step's
outcome, its `step.completed`/`step.failed` event, and the wake-up as
`CoordinationStore._wake` decides it (ring a live lease; nothing if a wake-up is on its way or
the run finished; else the doorbell and an outbox row; a run row another transaction holds is
not waited for, it gets a wake-up anyway). A child's end calls it for its parent's invoke step.

`workflow_notify` is `CoordinationStore.notify` as one call, so a notify costs one round trip
instead of five (BEGIN, the event's lock, taking the waiters, settling them, COMMIT). The
event's advisory lock must be taken before the statement that takes the waiters (under READ
COMMITTED a statement sees the commits from before it began), so no single statement can do
it; in a function each statement sees the commits from before it.

SQLite runs the same writes as Python statements (app/runtime/coordination.py);
tests/runtime/test_wake_writes.py checks both databases case by case. The status names, the
terminal run statuses and the event label columns (`EVENT_LABELS`) are written out here as
they are in app/runtime/models.py; a change to them needs these functions replaced.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 10:45:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SETTLE_AND_WAKE = """
CREATE FUNCTION workflow_settle_and_wake(
    p_run_id text, p_position integer, p_status text, p_result jsonb, p_error text, p_error_type text,
    p_now timestamptz, p_event_type text, p_event jsonb, p_key text
) RETURNS TABLE (settled boolean, outbox_id bigint, outbox_workflow text, outbox_key text)
LANGUAGE plpgsql AS $$
BEGIN
RETURN QUERY
WITH step AS (
    UPDATE workflow_steps
    SET status = p_status, result = p_result, error = p_error, error_type = p_error_type, finished_at = p_now
    WHERE run_id = p_run_id AND position = p_position AND status IN ('waiting', 'calling')
    RETURNING name
), run AS (
    SELECT id, workflow, labels, resumes FROM workflow_runs WHERE id = p_run_id AND EXISTS (SELECT FROM step)
), bell AS (
    SELECT status, lease_owner, lease_expires_at, wake_pending FROM workflow_runs
    WHERE id = p_run_id AND EXISTS (SELECT FROM step)
    FOR UPDATE SKIP LOCKED
), event AS (
    INSERT INTO events (workflow_id, case_id, document_id, type, payload, created_at)
    SELECT run.id, run.labels ->> 'case_id', run.labels ->> 'document_id', p_event_type,
           jsonb_build_object('step', step.name, 'position', p_position) || p_event, p_now
    FROM step, run
), rung AS (
    UPDATE workflow_runs SET wake_pending = TRUE
    WHERE id = p_run_id
      AND EXISTS (SELECT FROM bell WHERE status NOT IN ('cancelled', 'completed', 'failed')
                  AND NOT (wake_pending AND lease_owner IS NULL))
), sent AS (
    INSERT INTO workflow_outbox (run_id, workflow, position, key, created_at)
    SELECT run.id, run.workflow, p_position, p_key || '.r' || run.resumes, p_now FROM run
    WHERE NOT EXISTS (SELECT FROM bell)
       OR EXISTS (SELECT FROM bell WHERE status NOT IN ('cancelled', 'completed', 'failed') AND NOT wake_pending
                  AND (lease_owner IS NULL OR lease_expires_at < p_now))
    RETURNING id, workflow, key
)
SELECT EXISTS (SELECT FROM step), sent.id, sent.workflow::text, sent.key::text
FROM (SELECT) AS one LEFT JOIN sent ON TRUE;
END
$$
"""

# One row per run woken (its step settled here), with the wake-up written to the outbox if any.
# A `p_source` (the `ctx.notify` step sending it) already recorded: nothing is written, and the
# runs its first attempt woke are returned (with no wake-up).
NOTIFY = """
CREATE FUNCTION workflow_notify(
    p_event_id text, p_data jsonb, p_source text, p_result jsonb, p_event jsonb,
    p_now timestamptz, p_keep_until timestamptz
) RETURNS TABLE (woken_run_id text, woken_position integer, outbox_id bigint, outbox_workflow text, outbox_key text)
LANGUAGE plpgsql AS $$
DECLARE
    waiter record;
    wake record;
    sent jsonb;
    woken text[] := '{}';
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('event:' || p_event_id));  -- as CoordinationStore._lock_event
    IF p_source IS NOT NULL THEN
        SELECT n.woken INTO sent FROM workflow_notifications AS n WHERE n.source = p_source;
        IF FOUND THEN
            RETURN QUERY SELECT runs.value, NULL::integer, NULL::bigint, NULL::text, NULL::text
                         FROM jsonb_array_elements_text(COALESCE(sent, '[]')) AS runs;
            RETURN;
        END IF;
    END IF;
    FOR waiter IN
        WITH taken AS (DELETE FROM workflow_waiters AS w WHERE w.event_id = p_event_id RETURNING w.id, w.run_id, w.position)
        SELECT taken.run_id, taken.position FROM taken ORDER BY taken.id
    LOOP
        SELECT * INTO wake FROM workflow_settle_and_wake(
            waiter.run_id, waiter.position, 'completed', p_result, NULL, NULL, p_now, 'step.completed', p_event,
            'notify-' || waiter.position
        );
        IF wake.settled THEN
            woken := woken || waiter.run_id;
            woken_run_id := waiter.run_id;
            woken_position := waiter.position;
            outbox_id := wake.outbox_id;
            outbox_workflow := wake.outbox_workflow;
            outbox_key := wake.outbox_key;
            RETURN NEXT;
        END IF;
    END LOOP;
    IF cardinality(woken) = 0 OR p_source IS NOT NULL THEN  -- kept for a waiter, or an expired marker of its source
        INSERT INTO workflow_notifications (event_id, data, source, woken, created_at, expires_at)
        VALUES (p_event_id, p_data, p_source, to_jsonb(woken), p_now,
                CASE WHEN cardinality(woken) = 0 THEN p_keep_until ELSE p_now END);
    END IF;
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(SETTLE_AND_WAKE)
    op.execute(NOTIFY)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP FUNCTION IF EXISTS workflow_notify(text, jsonb, text, jsonb, jsonb, timestamptz, timestamptz)")
    op.execute(
        "DROP FUNCTION IF EXISTS workflow_settle_and_wake("
        "text, integer, text, jsonb, text, text, timestamptz, text, jsonb, text)"
    )
