"""`GET /rates` and `GET /rates/quote`: the latest rates; `GET /dev/rates`: an offline source.

The development rates source serves fixed rates in the shape `parse_answer` reads, so the
exchange-rate-refresh job runs with `make run` and no network (`RATES_URL` empty in
development points the job here).
"""

from __future__ import annotations

from fastapi import APIRouter, Query

from app.auth.dependencies import PrincipalDep
from app.dependencies import SessionDep
from app.errors import error_responses
from app.rates import service
from app.rates.schemas import QuoteRead, RatesRead

router = APIRouter(tags=["rates"], responses=error_responses(400, 401, 403, 404))
dev_router = APIRouter(tags=["development"])

DEV_RATES = {"EUR": 0.92, "GBP": 0.79, "INR": 83.2, "TRY": 32.4, "THB": 36.1, "AED": 3.6725}


@router.get("/rates")
async def read_rates(session: SessionDep, _: PrincipalDep) -> RatesRead:
    """The latest good exchange rates and their fetch time (404 before the first refresh)."""
    rates = await service.latest_rates(session)
    failure = await service.last_failure(session)
    return RatesRead(
        base=rates.base, fetched_at=rates.fetched_at, rates=rates.rates, last_failure=failure and failure.reason
    )


@router.get("/rates/quote")
async def quote(
    session: SessionDep,
    _: PrincipalDep,
    amount: float = Query(gt=0),
    source: str = Query(min_length=3, max_length=3, alias="from"),
    target: str = Query(min_length=3, max_length=3, alias="to"),
) -> QuoteRead:
    """`amount` converted `from` one quoted currency `to` another at the latest rates."""
    rates = await service.latest_rates(session)
    converted = service.convert(rates, amount, source.upper(), target.upper())
    return QuoteRead(
        amount=amount, source=source.upper(), target=target.upper(), converted=converted, fetched_at=rates.fetched_at
    )


@dev_router.get("/dev/rates")
async def development_rates(base: str = "USD") -> dict[str, object]:
    """Fixed rates for development (only served when ENV=development)."""
    return {"base": base.upper(), "rates": DEV_RATES}
