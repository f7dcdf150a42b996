"""Provider, delivery and attempt schemas (DESIGN 5)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class ProviderCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    webhook_url: str = Field(min_length=1, max_length=2000, description="https URL the packets are POSTed to")
    ack_required: bool = Field(default=False, description="wait for POST /webhooks/ack/{delivery_id}")


class ProviderRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    webhook_url: str
    ack_required: bool
    circuit_state: str
    consecutive_failures: int
    created_at: datetime
    secret_rotated_at: datetime | None


class ProviderCreated(ProviderRead):
    webhook_secret: str = Field(description="the Standard Webhooks secret; shown this once")


class ProviderList(BaseModel):
    items: list[ProviderRead]


class SecretRotated(BaseModel):
    id: str
    webhook_secret: str = Field(description="the new secret; shown this once")
    previous_secret_valid_until: datetime


class AttemptRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    series: int
    attempt: int
    outcome: str
    status_code: int | None
    latency_ms: int | None
    error: str | None
    response_excerpt: str | None
    created_at: datetime


class DeliveryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    provider_id: str
    forwarding_id: str
    case_id: str
    status: str
    reason: str | None
    attempts: int
    last_status: int | None
    last_error: str | None
    series: int
    workflow_run_id: str | None
    created_at: datetime
    finished_at: datetime | None
    acknowledged_at: datetime | None


class DeliveryHistory(DeliveryRead):
    history: list[AttemptRead]


class DeliveryList(BaseModel):
    items: list[DeliveryHistory]


class Replayed(BaseModel):
    delivery_id: str
    series: int
    workflow_run_id: str


class AckCreate(BaseModel):
    token: str = Field(min_length=1, max_length=200, description="the `ack.token` of the delivery's payload")


class AckAccepted(BaseModel):
    delivery_id: str
    acknowledged: bool = True
