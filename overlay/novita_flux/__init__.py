"""novita-flux: a typed client for Novita AI's FLUX.1 [schnell] text-to-image API."""

import logging as _logging

from novita_flux._balance import Balance
from novita_flux._batch import BatchResult
from novita_flux._client import AsyncFluxSchnell, FluxSchnell
from novita_flux._constants import LOGGER_NAME as _LOGGER_NAME
from novita_flux._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    BudgetExceededError,
    ImageDownloadError,
    ImageExpiredError,
    InsufficientBalanceError,
    InternalServerError,
    MissingAPIKeyError,
    NotFoundError,
    NovitaError,
    PermissionDeniedError,
    RateLimitError,
    ResponseValidationError,
    SaveIncompleteError,
    ValidationError,
)
from novita_flux._models import GeneratedImage, Generation
from novita_flux._request import estimate_cost
from novita_flux._version import __version__

# A library says what it has to say on its logger and lets the application decide where it goes:
# without a handler of its own, Python's last-resort handler would print its warnings on stderr.
_logging.getLogger(_LOGGER_NAME).addHandler(_logging.NullHandler())

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncFluxSchnell",
    "AuthenticationError",
    "BadRequestError",
    "Balance",
    "BatchResult",
    "BudgetExceededError",
    "FluxSchnell",
    "GeneratedImage",
    "Generation",
    "ImageDownloadError",
    "ImageExpiredError",
    "InsufficientBalanceError",
    "InternalServerError",
    "MissingAPIKeyError",
    "NotFoundError",
    "NovitaError",
    "PermissionDeniedError",
    "RateLimitError",
    "ResponseValidationError",
    "SaveIncompleteError",
    "ValidationError",
    "__version__",
    "estimate_cost",
]
