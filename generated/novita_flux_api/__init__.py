"""A client library for accessing Novita AI FLUX.1 [schnell] Text to Image"""

from .client import AuthenticatedClient, Client

__all__ = (
    "AuthenticatedClient",
    "Client",
)
