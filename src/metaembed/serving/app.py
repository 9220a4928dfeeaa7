"""The HTTP service over one index: `create_app(index_folder)` builds the FastAPI app.

    POST /search   {"text", "image" (base64), "budget" ("4x8" or [4, 8]), "k", "first_stage_k"}
    GET  /health   index size, model, dtype
    GET  /budgets  the model version's quality/cost per budget, from the registry

The model and index are loaded once, when the app is created. Every bad request is a 4xx with
{"error": "<what is wrong and what to send instead>"}; nothing a client sends stops the service.
Request bodies are capped before they are parsed (413), as are decoded images.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictInt
from starlette.exceptions import HTTPException

from metaembed.images import ImageDecodeError
from metaembed.serving.budget import BudgetError, format_budget, parse_budget
from metaembed.serving.limits import MAX_IMAGE_BYTES, MAX_K, SERVICE_MAX_K
from metaembed.serving.searcher import QueryError, Searcher

DEFAULT_K = 10
# Room in a request for everything but the image: the text, the other fields, JSON syntax.
_BODY_SLACK = 64 * 2**10


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field is an error, not silently ignored

    text: str | None = None
    image: str | None = Field(None, description="base64 image bytes (a data: URI prefix is accepted)")
    # Strict ints: true or "10" is a client bug to report, not a number to guess.
    budget: str | list[StrictInt] | None = Field(None, description='"RQxRC" or [r_q, r_c]; null: full size')
    k: StrictInt | None = Field(None, description=f"results wanted; null: {DEFAULT_K} (at most the service's max_k)")
    first_stage_k: StrictInt | None = None


class ImageTooLarge(ValueError):
    """A query image over the service's byte limit (413)."""


def create_app(index_folder: str | Path, params_path: str | Path = "params.yaml", *,
               max_image_bytes: int = MAX_IMAGE_BYTES, max_k: int = SERVICE_MAX_K, device: str = "cpu") -> FastAPI:
    """The service over the index at `index_folder`, its model loaded (and checked) now."""
    searcher = Searcher.open(index_folder, params_path=params_path, device=device, max_k=min(max_k, MAX_K))
    app = FastAPI(title="metaembed search", description=f"MetaEmbed multi-vector search over {index_folder}")
    app.state.searcher = searcher
    _add_error_handlers(app)

    @app.post("/search")
    def search(request: SearchRequest) -> dict[str, Any]:
        started = time.perf_counter()
        budget = parse_budget(request.budget) if request.budget is not None else None
        image = decode_base64_image(request.image, max_image_bytes) if request.image is not None else None
        k = request.k if request.k is not None else min(DEFAULT_K, searcher.max_k)
        result = searcher.search(request.text, image, budget, k, request.first_stage_k)
        return {
            "results": [{"rank": h.rank, "id": h.id, "score": h.score, "display": h.display} for h in result.hits],
            "budget": list(result.budget),
            "k": result.k,
            "first_stage_k": result.first_stage_k,
            "timing_ms": {"encode": result.encode_ms, "search": result.search_ms,
                          "total": 1000 * (time.perf_counter() - started)},
        }

    @app.get("/health")
    def health() -> dict[str, Any]:
        index = searcher.index
        return {
            "status": "ok",
            "count": len(index),
            "model": searcher.pinned.pinned_uri,
            "model_sha256": searcher.pinned.sha256,
            "dtype": index.dtype,
            "first_stage": None if index.first_stage is None else index.first_stage.kind,
            "vectors": {"query": searcher.query_vectors, "candidate": searcher.candidate_vectors, "dim": index.dims[2]},
            "full_budget": format_budget(searcher.full_budget),
            "max_k": searcher.max_k,
        }

    @app.get("/budgets")
    def budgets() -> JSONResponse:
        return budgets_response(searcher)

    app.add_middleware(BodyLimit, limit=max_image_bytes * 4 // 3 + _BODY_SLACK)
    return app


def budgets_response(searcher: Searcher) -> JSONResponse:
    """The registry's table for the index's model version: 404 when none is known, 503 when the
    registry cannot be read."""
    from metaembed.registry.indexes import NoBudgetTable, client_for, version_budgets
    from metaembed.registry.store import RegistryError

    pinned = searcher.pinned
    if pinned.version is None:
        return _error(404, f"the index's model ({pinned.uri}) is not a registered version, so no quality/cost "
                           "table is stored for it; build the index from models:/<name>@<alias> to get one")
    try:
        table = version_budgets(client_for(pinned.store), pinned.name, pinned.version)
    except NoBudgetTable as error:
        return _error(404, str(error))
    except RegistryError as error:
        return _error(503, str(error))
    rows = [row.model_dump() | {"servable": _servable(searcher, row.budget)} for row in table.budgets]
    return JSONResponse({"model": pinned.pinned_uri, "quality_metric": table.quality_metric,
                         "index_dtype": searcher.index.dtype, "budgets": rows})


def _servable(searcher: Searcher, budget: tuple[int, int]) -> bool:
    try:
        searcher.check_budget(budget)
    except BudgetError:
        return False
    return True


def decode_base64_image(text: str, max_bytes: int) -> bytes:
    """The image's bytes from base64 (optionally a data: URI), at most `max_bytes` of them."""
    if text.startswith("data:"):
        text = text.partition(",")[2]
    if len(text) * 3 // 4 > max_bytes + 3:  # refuse before decoding: base64 is 4 chars per 3 bytes
        raise ImageTooLarge(f"image is about {len(text) * 3 // 4} bytes, over this service's limit of {max_bytes}")
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ImageDecodeError("image is not valid base64: send the file's bytes base64-encoded "
                               "(e.g. `base64 -w0 page.png`)") from None
    if len(data) > max_bytes:
        raise ImageTooLarge(f"image is {len(data)} bytes, over this service's limit of {max_bytes}")
    if not data:
        raise ImageDecodeError("image is empty: send the file's bytes base64-encoded, or leave image null")
    return data


# ---- errors --------------------------------------------------------------------------------------

def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _add_error_handlers(app: FastAPI) -> None:
    statuses = {BudgetError: 422, QueryError: 422, ImageDecodeError: 422, ImageTooLarge: 413}
    for kind, status in statuses.items():
        app.add_exception_handler(kind, lambda _, error, status=status: _error(status, str(error)))
    app.add_exception_handler(RequestValidationError, _invalid_request)
    # Unknown paths and methods: the same {"error": ...} shape as every other refusal.
    app.add_exception_handler(HTTPException, lambda _, error: _error(error.status_code, str(error.detail)))


async def _invalid_request(_: Request, error: RequestValidationError) -> JSONResponse:
    problems = error.errors()
    if any(problem.get("type") == "json_invalid" for problem in problems):
        return _error(400, "the body is not valid JSON: send an object such as "
                           '{"text": "a query", "budget": "4x8", "k": 10}')
    parts = []
    for problem in problems:
        where = ".".join(str(part) for part in problem.get("loc", ()) if part != "body") or "body"
        parts.append(f"{where}: {problem.get('msg')}")
    return _error(422, "invalid request: " + "; ".join(parts) +
                  ' (fields: text, image, budget, k, first_stage_k; e.g. {"text": "a query", "budget": "4x8"})')


class BodyLimit:
    """ASGI wrapper that refuses (413) a request body over `limit` bytes before the app reads it,
    whether or not the client declared its length."""

    def __init__(self, app, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await self._refuse(send)
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return None  # the client went away
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                return await self._refuse(send)
            chunks.append(chunk)
            more = message.get("more_body", False)
        body, replayed = b"".join(chunks), False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(self, send) -> None:
        payload = json.dumps({"error": f"request body is over this service's limit of {self.limit} bytes "
                                       "(images: see `metaembed serve --max-image-bytes`)"})
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": payload.encode()})
