"""How the reference server answers: as Novita's docs page draws it, or as the API family has been
seen to answer (`../shared/api-evidence/OBSERVED.md` in the project; the spec says each of these
variants is allowed).

- `documented` (the default): integer TTLs, only the documented fields, `Retry-After` on every
  429, images served as `image/<type>`.
- `observed`: TTLs as strings of digits (row 2), extra fields everywhere (row 4:
  `nsfw_detection_result` per image, `extra` with large integers as strings, `videos`, `audios`,
  task status fields), no `Retry-After` on a 429 (row 8), images served as
  `application/octet-stream` (row 9), messages with a trailing space and
  BILLING_BALANCE_NOT_ENOUGH under 403 (row 7).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, Literal, get_args

ProfileName = Literal["documented", "observed"]
PROFILE_NAMES: Final[tuple[ProfileName, ...]] = get_args(ProfileName)


@dataclass(frozen=True)
class Profile:
    name: ProfileName
    ttl_as_string: bool = False
    extra_fields: bool = False
    retry_after_on_429: bool = True
    octet_stream_images: bool = False
    message_suffix: str = ""
    statuses: dict[str, int] = field(default_factory=dict)  # reason -> status, over the spec's

    def ttl(self, seconds: int) -> int | str:
        return str(seconds) if self.ttl_as_string else seconds

    def image_media_type(self, image_type: str) -> str:
        return "application/octet-stream" if self.octet_stream_images else f"image/{image_type}"

    def decorate(self, payload: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        """The 200 body as this profile sends it: with the fields the spec does not name."""
        if not self.extra_fields:
            return payload
        for index, image in enumerate(payload["images"]):
            # Null or a verdict, as the sibling endpoints send it.
            image["nsfw_detection_result"] = (
                None if index % 2 else {"valid": True, "confidence": 0.01}
            )
        payload["task"] |= {
            "task_type": "TXT_TO_IMG",
            "status": "TASK_STATUS_SUCCEED",
            "reason": "",
            "eta": 0,
            "progress_percent": 100,
        }
        # Large integers arrive as strings inside `extra`.
        payload["extra"] = {"seed": str(body["seed"]), "debug_info": {"request_info": ""}}
        payload["videos"] = []
        payload["audios"] = []
        return payload


PROFILES: Final[dict[str, Profile]] = {
    "documented": Profile("documented"),
    "observed": Profile(
        "observed",
        ttl_as_string=True,
        extra_fields=True,
        retry_after_on_429=False,
        octet_stream_images=True,
        message_suffix=" ",
        statuses={"BILLING_BALANCE_NOT_ENOUGH": 403},
    ),
}


def profile_named(name: str) -> Profile:
    try:
        return PROFILES[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"profile must be one of {', '.join(PROFILE_NAMES)}, not {name!r}"
        ) from None
