"""The image host: serves pre-signed links without an API key, as S3 does, and answers like S3
(403 with an XML error) when a link is tampered with or has expired."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from novita_flux.testing._envelope import dripping
from novita_flux.testing._links import NEVER, verified_link
from novita_flux.testing._render import render
from novita_flux.testing._settings import Endpoint, Settings

SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided."
)


def image_endpoint(settings: Settings) -> Endpoint:
    faults = settings.faults

    async def download(request: Request) -> Response:
        authorized = "authorization" in request.headers
        link = verified_link(settings.secret, request.url.path, request.query_params.multi_items())
        if link is None:
            faults.count_image_request(authorized=authorized, served=False)
            return s3_error("SignatureDoesNotMatch", SIGNATURE_MISMATCH)
        if link.expires != NEVER and settings.clock() > link.expires:
            faults.count_image_request(authorized=authorized, served=False)
            return s3_error("AccessDenied", "Request has expired")
        # Encoding a large image takes a while: off the event loop, so other requests go on.
        content = await run_in_threadpool(render, link)
        faults.count_image_request(authorized=authorized, served=True)
        media_type = settings.profile.image_media_type(link.image_type)
        fault = faults.next_image_fault()
        if fault is not None and fault[0] == "drip":
            return dripping(content, fault[1], media_type)
        if fault is not None:  # cut: the answer is whole, the image is not
            content = content[: len(content) // 2]
        return Response(content, media_type=media_type)

    return download


def s3_error(code: str, message: str) -> Response:
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    )
    return Response(xml, 403, media_type="application/xml")
