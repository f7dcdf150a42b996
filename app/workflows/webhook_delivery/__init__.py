"""The webhook-delivery pipeline: `workflow.py` orders the steps, `stages.py` does their work."""

from app.workflows.webhook_delivery.workflow import WebhookDeliveryInput, mark_delivery_failed, webhook_delivery

__all__ = ["WebhookDeliveryInput", "mark_delivery_failed", "webhook_delivery"]
