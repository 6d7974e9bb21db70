"""A suggestion's MLflow tracking in a process of its own, so that a fresh ``kiln suggest`` does not wait for it.

In a fresh ``kiln suggest`` at 100 experiments, importing MLflow and opening its store took 2 s and filling the
suggestion's run (params, timings, the suggestions, the Pareto figure) 1.5 s more, of 8.6 s in all.
:class:`TrackingProcess` starts ``python -m optimize.tracking_process`` as the command begins; it imports MLflow
and opens the campaign's experiment on the other core while the command imports torch and loads its models.
The command asks for its run (``open_run``) as soon as it knows the data version, and reads the id when it writes
the ledger (the id is in the ledger and the output before the command returns, as before); ``defer`` hands over
the logging (:func:`optimize.service.log_suggestion`) and lets the process go: the command returns, the process
fills and ends the run (FINISHED, or FAILED if logging raised) about a second later and exits. The run is
RUNNING until then (:func:`optimize.tracking.wait_for_run` waits for it).

Once the run is open the process lowers its priority (the command, and the next one, come first) and imports
what logging needs. It ignores Ctrl-C and a closed terminal (they do not stop its logging half-way) and writes
nothing to the terminal: what it prints goes to ``<tracking_dir>/tracking_process.log``. Requests are pickled
through the pipe between the command and the child it started, never read from anywhere else. If the command
ends without handing over the logging (it failed after opening the run), the run is ended FAILED.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
from typing import Any, Callable

from optimize.config import CampaignConfig
from optimize.errors import KilnError


class TrackingProcess:
    """The tracking process of one command (see the module docstring); start it as early as possible."""

    def __init__(self, config: CampaignConfig) -> None:
        config.tracking_path.mkdir(parents=True, exist_ok=True)
        self.log_path = config.tracking_path / "tracking_process.log"
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "optimize.tracking_process"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
            )
        self._send(config)

    def _send(self, message: Any) -> None:
        try:
            pickle.dump(message, self._proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            self._proc.stdin.flush()
        except BrokenPipeError:
            raise KilnError(f"the MLflow tracking process ended early; see {self.log_path}") from None

    def open_run(self, kind: str, data_version: str) -> Callable[[], str]:
        """Ask the process to open a run (:func:`optimize.tracking.start_run`); a function that returns its id
        (waiting for it if need be). Ask early: the process opens it while the command works."""
        self._send(("open", kind, data_version))
        return self._run_id

    def _run_id(self) -> str:
        try:
            reply = pickle.load(self._proc.stdout)
        except EOFError:
            raise KilnError(f"the MLflow tracking process ended early; see {self.log_path}") from None
        if isinstance(reply, str) and reply.startswith("error:"):
            raise KilnError(f"MLflow could not open a run: {reply[6:]} (details in {self.log_path})")
        return reply

    def defer(self, fn: Callable[..., Any], *args: Any) -> None:
        """Hand ``fn(*args)`` (module-level, picklable; it fills and ends the open run) to the process and let it
        go: it finishes after this command has returned."""
        self._send(("call", fn, args))
        self.close()

    def close(self) -> None:
        """Let the process go (it ends a run still open FAILED, then exits)."""
        for pipe in (self._proc.stdin, self._proc.stdout):
            try:
                pipe.close()
            except BrokenPipeError:
                pass
        # Detached: nobody waits for it (the command is about to exit), so Python need not warn that it runs on.
        self._proc.returncode = 0


def _warm_up() -> None:
    """Import what logging a suggestion needs (the Pareto figure's matplotlib, the service's data handling) while
    the command still works, so that little is left to do after it has returned."""
    import matplotlib.backends.backend_agg  # noqa: F401
    import matplotlib.figure  # noqa: F401

    import optimize.service  # noqa: F401


def _serve() -> None:
    """The process's side: the config, then ("open", kind, data version) and ("call", fn, args) requests."""
    import os
    import signal

    # Ctrl-C at the terminal, or closing it, stops the command, not its logging half-way. In the command's session
    # still: a session of its own is, for Linux's scheduler (autogroups), a peer of the command whatever its nice.
    for name in ("SIGINT", "SIGHUP"):  # (no SIGHUP on Windows)
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    config: CampaignConfig = pickle.load(inp)
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    from optimize.tracking import attach_run, client_and_experiment, start_run

    client_and_experiment(config)  # import MLflow and open the store while the command works
    opened: str | None = None
    while True:
        try:
            message = pickle.load(inp)
        except EOFError:
            break
        if message[0] == "open":
            try:
                opened = start_run(config, message[1], message[2]).id
                pickle.dump(opened, out)
            except Exception as e:
                pickle.dump(f"error:{e}", out)
                out.flush()
                raise
            out.flush()
            if hasattr(os, "nice"):
                os.nice(10)  # the run is open: the rest can wait for the command, and the next one
            _warm_up()
        else:
            out.close()  # the command has gone
            _, fn, args = message
            fn(*args)
            opened = None
    if opened is not None:  # the command failed after opening the run
        run = attach_run(config, opened)
        run.tags({"kiln.error": "the command ended before logging its suggestion"})
        run.client.set_terminated(run.id, status="FAILED")


if __name__ == "__main__":
    _serve()
