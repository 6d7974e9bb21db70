"""``kiln suggest`` through a ``kiln serve`` that already runs the campaign, found through a file in its data folder.

A fresh ``kiln suggest`` process spends 10-15 s before and after the acquisition (importing torch, BoTorch and
MLflow, reading the models, drawing the Pareto figure); a server has all that loaded and logs after answering.
So ``kiln serve`` announces itself in each campaign's data folder (``.kiln-serve.json``: its URL and process id)
while it runs, and ``kiln suggest`` asks it when the file names a live process that answers ``/health``, with the
token in ``KILN_TOKEN`` if the server has keys. Same service function, same ledger, template and MLflow run;
otherwise (or with ``--local``) the command proposes in its own process as before.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from optimize.config import CampaignConfig
from optimize.errors import KilnError

SERVICE_FILE = ".kiln-serve.json"
TOKEN_ENV = "KILN_TOKEN"
_HEALTH_TIMEOUT_S = 1.0


def service_file(config: CampaignConfig) -> Path:
    return config.data_path / SERVICE_FILE


def local_url(host: str, port: int) -> str:
    """The URL this machine reaches a server bound to ``host:port`` at (a wildcard bind: loopback)."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


@contextmanager
def announced(configs: list[CampaignConfig], url: str) -> Iterator[None]:
    """Write each campaign's service file for the duration of the block; remove the ones still ours after."""
    from optimize.fileio import atomic_write

    doc = {"url": url, "pid": os.getpid()}
    for c in configs:
        atomic_write(service_file(c), (json.dumps(doc) + "\n").encode())
    try:
        yield
    finally:
        for c in configs:
            path = service_file(c)
            try:
                if json.loads(path.read_text()).get("pid") == os.getpid():
                    path.unlink()
            except (OSError, ValueError):
                pass


def running_service(config: CampaignConfig) -> str | None:
    """The URL of a live ``kiln serve`` of this campaign, or ``None`` (no file, a dead process, no answer)."""
    import httpx

    try:
        doc = json.loads(service_file(config).read_text())
        url, pid = str(doc["url"]), int(doc["pid"])
        os.kill(pid, 0)  # raises if no such process
        ok = httpx.get(f"{url}/health", timeout=_HEALTH_TIMEOUT_S).status_code == 200
    except (OSError, ValueError, KeyError, TypeError, httpx.HTTPError):
        return None
    return url if ok else None


def suggest_remote(url: str, config: CampaignConfig, n: int, seed: int) -> dict[str, Any]:
    """``POST /campaigns/<name>/suggestions`` on the server at ``url``: the same JSON as ``kiln suggest -f json``.

    Raises:
        KilnError: the server refused (its message, and what to do about a missing or wrong key).
    """
    import httpx

    token = os.environ.get(TOKEN_ENV)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        r = httpx.post(
            f"{url}/campaigns/{config.name}/suggestions", json={"n": n, "seed": seed}, headers=headers, timeout=None
        )
    except httpx.HTTPError as e:
        raise KilnError(f"kiln serve at {url} did not answer ({e}); rerun with --local to propose here") from None
    if r.status_code in (401, 403):
        raise KilnError(
            f"kiln serve at {url} needs a write key: set {TOKEN_ENV} to a token from `kiln keys create --role write`, "
            "or rerun with --local"
        )
    if r.status_code != 200:
        try:
            message = r.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = r.text
        raise KilnError(f"kiln serve at {url}: {message}")
    return r.json()
