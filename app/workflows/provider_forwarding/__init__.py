"""The provider-forwarding pipeline: `workflow.py` orders the steps, `stages.py` does their work."""

from app.workflows.provider_forwarding.workflow import (
    ProviderForwardingInput,
    mark_forwarding_failed,
    provider_forwarding,
)

__all__ = ["ProviderForwardingInput", "mark_forwarding_failed", "provider_forwarding"]
