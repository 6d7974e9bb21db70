"""``kiln serve``: the HTTP service over one or more campaigns (FastAPI; contract in DESIGN.md, section 4).

Each endpoint parses the request, calls one method of :class:`optimize.live.LiveCampaign` (the service functions
underneath are the CLI's) and returns its JSON document. Errors are ``{"error": {"file", "row", "column",
"value", "fix", "message"}}`` with a 4xx status. With keys, every endpoint but ``/health`` needs a bearer token:
``read`` keys may read and predict, ``write`` keys may also suggest and ingest. Request bodies must say their
length and are refused above ``max_body`` bytes before being read. OpenAPI docs at ``/docs``.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from optimize.errors import DataError, KilnError
from optimize.keys import KeyRing
from optimize.live import LiveCampaign, RetrainFailed
from optimize.local_service import announced, local_url
from optimize.server import is_loopback
from optimize.validation import MAX_BYTES


class SuggestBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n: int = Field(4, ge=1, le=64, description="number of recipes")
    seed: int = Field(0, description="same data + seed = same suggestions")


class RowsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rows: list[dict[str, Any]] = Field(description="experiments: column -> value, as in a batch CSV")


class RecipesBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    recipes: list[dict[str, Any]] = Field(min_length=1, description="recipes: input name -> value")


def _error(status: int, message: str, **where: Any) -> JSONResponse:
    fields = {k: where.get(k) for k in ("file", "row", "column", "value", "fix")}
    return JSONResponse({"error": {**fields, "message": message}}, status_code=status)


class _LimitBody:
    """ASGI middleware: a request with a body must give its Content-Length, at most ``limit`` bytes (411/413,
    answered before the body is read)."""

    def __init__(self, app, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["method"] in ("POST", "PUT", "PATCH"):
            headers = dict(scope["headers"])
            length = headers.get(b"content-length")
            if length is None or not length.isdigit():
                response = _error(411, "the request must say its Content-Length", fix="send the body with a length")
                return await response(scope, receive, send)
            if int(length) > self.limit:
                response = _error(
                    413, f"the body is {int(length)} bytes, above the {self.limit}-byte limit", fix="split the batch"
                )
                return await response(scope, receive, send)
        await self.app(scope, receive, send)


def create_app(campaigns: list[LiveCampaign], keys: KeyRing | None = None, max_body: int = MAX_BYTES) -> _LimitBody:
    """The service over ``campaigns`` (names unique), an ASGI app: the FastAPI app behind the body limit;
    ``keys`` None = no keys (loopback use)."""
    by_name = {c.name: c for c in campaigns}
    if len(by_name) != len(campaigns):
        raise KilnError("two served campaigns share a name; give each config its own `name`")
    app = FastAPI(
        title="kiln",
        summary="Bayesian optimization of syntheses: suggest the next experiments, ingest results.",
        version="1",
    )

    def need(role: str):
        def check(request: Request) -> None:
            if keys is None:
                return
            header = request.headers.get("authorization", "")
            scheme, _, token = header.partition(" ")
            challenge = {"WWW-Authenticate": "Bearer"}
            if scheme.lower() != "bearer" or not token:
                raise HTTPException(401, "a key is needed: send `Authorization: Bearer <token>`", challenge)
            have = keys.role_of(token.strip())
            if have is None:
                raise HTTPException(401, "unknown key", challenge)
            if role == "write" and have != "write":
                raise HTTPException(403, "this key may only read; suggesting and ingesting need a write key")

        return Depends(check)

    read, write = need("read"), need("write")

    def campaign(name: str) -> LiveCampaign:
        if name not in by_name:  # names are keys of this mapping, never paths: nothing outside can be reached
            raise HTTPException(404, f"no campaign {name!r}; GET /campaigns lists them")
        return by_name[name]

    @app.exception_handler(StarletteHTTPException)  # also the router's own 404 and 405
    async def http_error(request: Request, e: StarletteHTTPException) -> JSONResponse:
        response = _error(e.status_code, str(e.detail))
        response.headers.update(e.headers or {})
        return response

    @app.exception_handler(RequestValidationError)
    async def body_error(request: Request, e: RequestValidationError) -> JSONResponse:
        first = e.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        return _error(422, f"{where}: {first['msg']}", column=where, fix="see the request schema at /docs")

    @app.exception_handler(DataError)
    async def data_error(request: Request, e: DataError) -> JSONResponse:
        return _error(422, str(e), file=e.file, row=e.row, column=e.column, value=_plain(e.value), fix=e.fix)

    @app.exception_handler(RetrainFailed)
    async def retrain_failed(request: Request, e: RetrainFailed) -> JSONResponse:
        return _error(503, str(e), fix="read the error, fix the data or config, ingest or retrain again")

    @app.exception_handler(KilnError)
    async def kiln_error(request: Request, e: KilnError) -> JSONResponse:
        return _error(400, str(e))

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok"}

    @app.get("/campaigns", dependencies=[read])
    def list_campaigns() -> dict:
        return {"campaigns": [c.summary(short=True) for c in by_name.values()]}

    @app.get("/campaigns/{name}", dependencies=[read])
    def summary(name: str) -> dict:
        return campaign(name).summary()

    @app.post("/campaigns/{name}/suggestions", dependencies=[write])
    def suggestions(name: str, body: SuggestBody) -> dict:
        return campaign(name).suggest(body.n, body.seed).to_json()

    @app.post(
        "/campaigns/{name}/batches",
        dependencies=[write],
        openapi_extra={
            "requestBody": {
                "content": {
                    "text/csv": {"schema": {"type": "string"}},
                    "application/json": {"schema": RowsBody.model_json_schema()},
                },
                "required": True,
            }
        },
    )
    async def batches(name: str, request: Request) -> dict:
        """A filled batch: the CSV (``text/csv``) or ``{"rows": [...]}``; validated as ``kiln ingest`` does."""
        live = campaign(name)
        raw = await request.body()
        if request.headers.get("content-type", "").startswith("application/json"):
            from optimize.campaign import rows_csv
            from optimize.validation import table_columns

            try:
                rows = RowsBody.model_validate_json(raw).rows
            except ValueError as e:
                return _error(422, f"not a {{'rows': [...]}} document: {e}", file="request body", fix="see /docs")
            data, source = rows_csv(rows, table_columns(live.config)), "request body (rows)"
        else:
            data, source = raw, "request body (CSV)"
        result = await run_in_threadpool(live.ingest, data, source, True, _sender(request))
        return {
            "batch": result.batch_file.name,
            "rows": result.rows,
            "amended_cells": result.amended,
            "sha256": result.sha256,
            "data_version": result.data_version,
            "mlflow_run_id": result.mlflow_run_id,
        }

    @app.get("/campaigns/{name}/history", dependencies=[read])
    def history(name: str, format: str = "json") -> Any:
        result = campaign(name).history()
        if format == "csv":
            from optimize.campaign import csv_bytes

            return Response(csv_bytes(result.experiments), media_type="text/csv")
        if format != "json":
            raise HTTPException(422, f"format {format!r}: use json or csv")
        return result.to_json()

    @app.post("/campaigns/{name}/predictions", dependencies=[read])
    def predictions(name: str, body: RecipesBody) -> dict:
        from optimize.campaign import rows_csv

        live = campaign(name)
        return live.predict(rows_csv(body.recipes, list(live.config.input_names)), "request body (recipes)").to_json()

    return _LimitBody(app, max_body)


def _plain(v: Any) -> Any:
    return v if v is None or isinstance(v, (str, int, float, bool)) else str(v)


def _sender(request: Request) -> str:
    """Who sends a request, for a batch's provenance: the id of its key (``kiln_<id>_<secret>``), never the
    secret; else the client's address (a service without keys)."""
    token = request.headers.get("authorization", "").partition(" ")[2].strip()
    parts = token.split("_")
    if len(parts) >= 3 and parts[0] == "kiln":
        return f"key {parts[1]}"
    return f"kiln serve client {request.client.host if request.client else 'unknown'}"


def serve_campaigns(
    configs: list[Path], host: str, port: int, keys_file: Path | None, max_body: int = MAX_BYTES
) -> None:
    """Open the campaigns (each a config file, or a folder of them) and serve them until interrupted; request
    bodies up to ``max_body`` bytes (default: the data files' own limit).

    Raises:
        KilnError: a non-loopback ``host`` without a keys file holding at least one key.
    """
    import uvicorn

    keys = KeyRing(keys_file) if keys_file is not None and Path(keys_file).exists() else None
    if not is_loopback(host) and not (keys and keys.keys()):
        raise KilnError(
            f"--host {host} opens the service to the network: create a key first "
            "(`kiln keys create --role write`) and pass --keys-file"
        )
    paths: list[Path] = []
    for p in configs:
        p = Path(p)
        paths += sorted(p.glob("*.yaml")) + sorted(p.glob("*.yml")) if p.is_dir() else [p]
    if not paths:
        raise KilnError(f"no campaign YAML files in {', '.join(map(str, configs))}")
    # uvicorn re-raises SIGTERM after its graceful shutdown, under the handler it found: make that an exit that
    # runs the clean-up below (the service files go, queued MLflow logging is written) rather than a kill
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    campaigns = [LiveCampaign.open(p) for p in paths]
    try:
        # `kiln suggest` on this machine finds the server through each campaign's data folder (optimize.local_service)
        with announced([c.config for c in campaigns], local_url(host, port)):
            uvicorn.run(create_app(campaigns, keys, max_body), host=host, port=port, log_level="info")
    finally:
        for c in campaigns:
            c.close()
