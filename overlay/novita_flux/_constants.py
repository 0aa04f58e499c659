"""Defaults of the client: the only numbers the overlay chooses itself (the API's own ranges,
enums and prices live in the spec)."""

from typing import Final

API_KEY_ENV: Final = "NOVITA_API_KEY"
BASE_URL_ENV: Final = "NOVITA_BASE_URL"
KEY_HELP_URL: Final = "https://novita.ai/settings/key-management"

# Seconds one exchange (connect, send, answer) may take in all; an injected http_client keeps its
# own timeout only if its owner set one. Novita's own clients allow 120 s and its error guide
# asks for more than 60 s; a generation normally takes a few seconds.
DEFAULT_TIMEOUT: Final = 60.0
# Seconds: a longer timeout (inf included) means no limit, as None does. Sockets overflow past
# ~292 years; this bound (over three years) is far from that, and from any wait that matters.
LONGEST_TIMEOUT: Final = 1e8
DEFAULT_MAX_RETRIES: Final = 2
# A batch at high concurrency reuses its connections instead of reopening all but 20 (httpx's
# default keep-alive pool) after every wave.
MAX_CONNECTIONS: Final = 100
# Connections per pool when a batch spreads over several (see _BaseClient.lanes).
LANE_CONNECTIONS: Final = 8
DEFAULT_CONCURRENCY: Final = 4  # requests in flight in generate_many
# Each request in flight is a thread (or a task) and a connection: far more than any key's rate
# limit lets run at once, and few enough that a typo of 10**9 is refused, not attempted.
MAX_CONCURRENCY: Final = 256
# Paced requests are spaced 1% wider than the limit allows, so that network jitter on the way to
# the API cannot make a rolling minute count one image too many.
PACING_SLACK: Final = 1.01

DEFAULT_WIDTH: Final = 1024
DEFAULT_HEIGHT: Final = 1024
DEFAULT_STEPS: Final = 4  # FLUX.1 [schnell] is distilled for 1-4 steps
DEFAULT_IMAGE_NUM: Final = 1

INITIAL_RETRY_DELAY: Final = 0.5  # seconds; doubles each retry
MAX_RETRY_DELAY: Final = 8.0
MAX_RETRY_AFTER: Final = 60.0  # a longer Retry-After is not waited for: the error is raised

MAX_IMAGE_BYTES: Final = 64 * 1024 * 1024  # far above any 2048x2048 image the API returns
MAX_REDIRECTS: Final = 5  # of an image link; pre-signed links are not expected to redirect at all
# The only headers an image download sends, whatever an injected client's defaults hold: the
# storage host is another party, and needs nothing else (Host and Connection are HTTP's own).
IMAGE_HEADERS: Final = frozenset({"host", "connection", "user-agent", "accept", "accept-encoding"})

LOGGER_NAME: Final = "novita_flux"
