"""Run labels: the runtime's generic correlation keys (it knows no cases or documents)."""

from __future__ import annotations

from app.runtime.ids import derived_run_id
from tests.runtime.coordination_workflows import COORDINATION
from tests.runtime.workflows import Recorder
from tests.support.service import live_service


async def test_labels_are_kept_inherited_indexed_and_copied_onto_events(database_url):
    async with live_service(database_url, COORDINATION, deps=Recorder()) as svc:
        labels = {"case_id": "case_L1", "document_id": "doc_L1", "tenant": "t-9", "unused": None}
        parent_id = await svc.runtime.trigger("invoke-sleeper", {}, labels=labels)
        assert (await svc.wait(parent_id)).status == "completed"
        child_id = derived_run_id(parent_id, "0", "slow-child")
        kept = {"case_id": "case_L1", "document_id": "doc_L1", "tenant": "t-9"}
        assert (await svc.run(parent_id)).labels == kept
        assert (await svc.run(child_id)).labels == kept
        found = await svc.runtime.store.runs_labelled("tenant", "t-9")
        assert {run.id for run in found} == {parent_id, child_id}
        assert await svc.runtime.store.runs_labelled("tenant", "t-0") == []
        for run_id in (parent_id, child_id):
            events = await svc.events(run_id)
            assert events and all((e.case_id, e.document_id) == ("case_L1", "doc_L1") for e in events)
