"""The rules every photo upload to the view follows (enroll, search): its content type, the header only
the page's own origin can send, and a body refused as soon as it passes the size limit."""

from __future__ import annotations

from starlette.requests import Request

from stream.errors import FacestreamError
from stream.web.guard import Refused

#: the page sets it on a photo upload; a cross-origin page cannot send it without a preflight we never answer
REQUEST_HEADER = "x-facestream-request"


def content_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def read_limited(request: Request, limit: int, filename: str) -> bytes:
    """The body, refused (413) as soon as it passes ``limit``: never read whole first."""
    too_large = Refused(413, f"{filename}: larger than {limit // 2**20} MB")
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large
    return bytes(body)


async def read_photo(request: Request, limit: int) -> tuple[bytes, str]:
    """An uploaded photo's bytes and its file name, after the type and header checks (415, 403, 413)."""
    kind = content_type(request)
    if not (kind.startswith("image/") or kind == "application/octet-stream"):
        raise Refused(415, f"a photo is sent as image/* or application/octet-stream, not {kind or 'untyped'}")
    if request.headers.get(REQUEST_HEADER) != "1":
        raise Refused(403, f"a photo upload needs the header {REQUEST_HEADER}: 1 (the page sends it)")
    filename = request.headers.get("x-filename", "photo")
    return await read_limited(request, limit, filename), filename


async def read_name(request: Request) -> str:
    """The name of a ``{"name": "..."}`` body; only as JSON: a form or a text/plain fetch is another site's
    (415), a body that is not JSON one line (400). The name itself is checked where it is used."""
    if content_type(request) != "application/json":
        raise Refused(415, 'send {"name": "..."} as application/json')
    try:
        body = await request.json()
    except ValueError:
        raise FacestreamError('the request body is not JSON: send {"name": "..."}') from None
    name = body.get("name", "") if isinstance(body, dict) else ""
    return name if isinstance(name, str) else ""
