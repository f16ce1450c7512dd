"""The dashboard: a page and its scripts, served by the API process itself.

Everything ships in the package (`static/`): no build step, no CDN, nothing fetched at run
time. The page holds no data of its own: it signs in with an API key and asks the API,
which decides what the key's role and tenant may see; the page only hides what it cannot
do. Routes live in the URL's fragment, which never reaches a server or a log.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse
from starlette.responses import Response

router = APIRouter(include_in_schema=False)

STATIC = Path(str(resources.files("vigia.web") / "static"))

_TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html", ".svg": "image/svg+xml"}

#: The page runs only its own scripts and talks only to its own origin; it cannot be framed
#: (clickjacking a retry or purge button), and it sends no referrer (a job id is no one's business).
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _page() -> Response:
    headers = {**SECURITY_HEADERS, "Cache-Control": "no-cache"}
    return FileResponse(STATIC / "index.html", media_type="text/html", headers=headers)


@router.get("/")
async def root() -> Response:
    return RedirectResponse("/ui/", status_code=307)


@router.get("/ui")
@router.get("/ui/")
async def index() -> Response:
    return _page()


@router.get("/ui/assets/{name:path}")
async def asset(name: str) -> Response:
    path = (STATIC / name).resolve()
    if STATIC.resolve() not in path.parents or not path.is_file() or path.suffix not in _TYPES:
        return Response("not found", status_code=404, media_type="text/plain")
    headers = {**SECURITY_HEADERS, "Cache-Control": "no-cache"}
    return FileResponse(path, media_type=_TYPES[path.suffix], headers=headers)
