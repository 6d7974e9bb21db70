"""``kiln ui``: the MLflow server's command line (loopback unless authenticated), run as a child that never
outlives ``kiln ui``.

``mlflow server`` starts uvicorn workers and job consumers that survive a SIGTERM to their parent,
so the server gets a session (process group) of its own, and when ``kiln ui`` ends for any reason
(the server exits, Ctrl-C, SIGTERM from a service manager or a test) the whole group is sent SIGTERM
and, after ``grace`` seconds, SIGKILL.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import signal
import subprocess
import sys
import time
from typing import Sequence

from optimize.config import CampaignConfig
from optimize.errors import KilnError

AUTH_INI = """[mlflow]
default_permission = READ
database_uri = {database}
admin_username = admin
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
"""


def is_loopback(host: str) -> bool:
    """``host`` is a loopback address or ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def mlflow_server_command(
    config: CampaignConfig,
    host: str,
    port: int,
    auth: bool,
    backend_store_uri: str | None = None,
    artifacts_destination: str | None = None,
) -> tuple[list[str], dict]:
    """The ``mlflow server`` command line and environment for ``kiln ui``.

    The store is ``backend_store_uri`` (e.g. ``postgresql+psycopg://kiln@db:5432/kiln``; the password from
    ``PGPASSWORD`` or ``~/.pgpass``), else the campaign's (``MLFLOW_TRACKING_URI`` or its SQLite file). On a
    SQLite store the runs' files stay where kiln's own commands write them (``<tracking_dir>/artifacts``); on any
    other store the server serves the artifacts and keeps them in ``artifacts_destination`` (a folder or an
    object-store URI; default ``<tracking_dir>/artifacts``), so clients need only its URL.

    With ``auth``, MLflow's basic-auth app guards it; its users live in ``basic_auth.db`` beside a SQLite store, or
    in tables of their own in the same database otherwise, and its first start creates ``admin`` with the password
    in ``MLFLOW_AUTH_ADMIN_PASSWORD``. The login forms' CSRF key is ``MLFLOW_FLASK_SERVER_SECRET_KEY``, else one
    kept in ``flask_secret`` (0600) in ``tracking_dir``.

    Raises:
        KilnError: a non-loopback ``host`` without ``auth``, a first ``auth`` start without that password, or a
            store that is itself a tracking server's URL.
    """
    if not is_loopback(host) and not auth:
        raise KilnError(
            f"--host {host} opens the MLflow UI (and its delete buttons) to the network: add --auth for MLflow's "
            "login (set MLFLOW_AUTH_ADMIN_PASSWORD for its first start)"
        )
    uri = backend_store_uri or config.tracking_uri
    if uri.startswith(("http://", "https://")):
        raise KilnError(
            f"the store {uri} is a tracking server, not a database: unset MLFLOW_TRACKING_URI for kiln ui, or pass "
            "--backend-store-uri (e.g. postgresql+psycopg://USER@HOST:5432/DB)"
        )
    sqlite = uri.startswith("sqlite:///")
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri, "--host", host, "--port", str(port)]
    env = {**os.environ}
    config.tracking_path.mkdir(parents=True, exist_ok=True)
    if sqlite and artifacts_destination is None:
        cmd += ["--default-artifact-root", (config.tracking_path / "artifacts").as_uri()]
    else:
        cmd += ["--artifacts-destination", artifacts_destination or (config.tracking_path / "artifacts").as_uri()]
    if auth:
        database = f"sqlite:///{config.tracking_path / 'basic_auth.db'}" if sqlite else uri
        first = not (config.tracking_path / "basic_auth.db").exists() if sqlite else False
        if first and not env.get("MLFLOW_AUTH_ADMIN_PASSWORD"):
            raise KilnError(
                "--auth: the first start creates the MLflow user 'admin'; set MLFLOW_AUTH_ADMIN_PASSWORD first"
            )
        if not env.get("MLFLOW_FLASK_SERVER_SECRET_KEY"):  # CSRF key of the login forms: one per store, kept
            secret = config.tracking_path / "flask_secret"
            if not secret.exists():
                secret.touch(mode=0o600)
                secret.write_text(secrets.token_urlsafe(32))
            env["MLFLOW_FLASK_SERVER_SECRET_KEY"] = secret.read_text().strip()
        ini = config.tracking_path / "basic_auth.ini"
        ini.write_text(AUTH_INI.format(database=database))
        ini.chmod(0o600)  # it may hold the database's password
        env["MLFLOW_AUTH_CONFIG_PATH"] = str(ini)
        cmd += ["--app-name", "basic-auth"]
    return cmd, env


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a member we cannot signal still exists
        return True
    return True


def _gone(proc: subprocess.Popen, seconds: float) -> bool:
    """Wait up to ``seconds`` for every process of ``proc``'s group to exit (reaping ``proc``)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        proc.poll()
        if not _group_alive(proc.pid):
            return True
        time.sleep(0.1)
    return False


def stop_group(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM the process group led by ``proc``, SIGKILL what is left after ``grace`` seconds, reap ``proc``."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        if _gone(proc, wait):
            break
    proc.poll()


def serve(cmd: Sequence[str], env: dict[str, str] | None = None, grace: float = 10.0) -> int:
    """Run ``cmd`` in a new session until it exits or this process is interrupted or terminated;
    returns its exit code, or 130 after Ctrl-C; after SIGTERM raises ``SystemExit(143)``. The
    server's process group is stopped in every case."""
    proc = subprocess.Popen(list(cmd), env=env, start_new_session=True)

    def on_sigterm(signum, frame):
        raise SystemExit(143)

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        return 130
    finally:
        stop_group(proc, grace)
        signal.signal(signal.SIGTERM, previous)
