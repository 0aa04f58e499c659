"""Contains all the data models used in inputs/outputs"""

from .balance_detail import BalanceDetail
from .error_response import ErrorResponse
from .error_response_metadata import ErrorResponseMetadata
from .flux_1_schnell_request import Flux1SchnellRequest
from .flux_1_schnell_response import Flux1SchnellResponse
from .image import Image
from .image_type import ImageType
from .task import Task

__all__ = (
    "BalanceDetail",
    "ErrorResponse",
    "ErrorResponseMetadata",
    "Flux1SchnellRequest",
    "Flux1SchnellResponse",
    "Image",
    "ImageType",
    "Task",
)
