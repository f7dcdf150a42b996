"""Imports every module that defines tables, so Alembic and tests see the whole schema."""

from app.cases import models as cases_models  # noqa: F401
from app.consents import models as consents_models  # noqa: F401
from app.devqstash import models as devqstash_models  # noqa: F401
from app.documents import models as documents_models  # noqa: F401
from app.ehr import models as ehr_models  # noqa: F401
from app.forwardings import models as forwardings_models  # noqa: F401
from app.notifications import models as notifications_models  # noqa: F401
from app.ops import models as ops_models  # noqa: F401
from app.patients import models as patients_models  # noqa: F401
from app.providers import models as providers_models  # noqa: F401
from app.rates import models as rates_models  # noqa: F401
from app.retention import models as retention_models  # noqa: F401
from app.runtime import models as runtime_models  # noqa: F401
