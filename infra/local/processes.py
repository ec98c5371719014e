"""Child processes, ports, waits and loopback HTTP servers shared by the local run and the
benchmark.

Every wait polls a condition until a deadline (never a fixed sleep), and every process started
here is stopped with its whole process tree: `cargo lambda watch` starts `cargo run`, which starts
the function binary, and each of those may outlive a plain kill of the first.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, TypeVar

T = TypeVar("T")


class WaitTimeout(Exception):
    """A condition did not become true before its deadline."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(
    what: str,
    probe: Callable[[], T | None],
    timeout: float,
    interval: float = 0.05,
    alive: "ManagedProcess | None" = None,
) -> T:
    """Calls `probe` until it returns something other than None/False (returned) or `timeout`
    seconds pass (WaitTimeout naming `what` and the last error the probe raised). With `alive`,
    fails as soon as that process has exited."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            result = probe()
            if result is not None and result is not False:
                return result
        except Exception as e:  # noqa: BLE001 - the probe's failure is the "not yet"
            last_error = e
        if alive is not None and alive.exited():
            raise WaitTimeout(f"{what}: {alive.name} exited with status {alive.popen.returncode} (see {alive.log_path})")
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error})" if last_error else ""
            raise WaitTimeout(f"{what}: not ready after {timeout:.0f} s{detail}")
        time.sleep(interval)


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections on host:port."""
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def _children_map() -> dict[int, list[int]]:
    """Parent pid -> child pids, from /proc (Linux)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8", errors="replace") as f:
                stat = f.read()
        except OSError:
            continue
        # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    return children


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants (parents first)."""
    children = _children_map()
    tree, queue = [], [pid]
    while queue:
        p = queue.pop(0)
        tree.append(p)
        queue.extend(children.get(p, []))
    return tree


class ManagedProcess:
    """A child process with its output in a log file, stopped with all its descendants."""

    def __init__(self, name: str, argv: list[str], log_path: Path, env: dict[str, str] | None = None,
                 cwd: Path | None = None):
        self.name = name
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log_path, "wb")
        # Own session: a Ctrl-C in the terminal reaches only the script, which then stops the
        # children in order (the functions before moto) instead of all at once.
        self.popen = subprocess.Popen(
            argv, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, cwd=cwd, start_new_session=True,
        )

    def exited(self) -> bool:
        return self.popen.poll() is not None

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM to the process and every descendant, SIGKILL to what is left after `grace`."""
        if not self.exited():
            tree = process_tree(self.popen.pid)
            for pid in tree:
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and any(_alive(p) for p in tree):
                self.popen.poll()  # reap our direct child so it does not linger as a zombie
                time.sleep(0.05)
            for pid in tree:
                if _alive(pid):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
        try:
            self.popen.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
        self._log.close()

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def _alive(pid: int) -> bool:
    """Whether `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def terminate_on_sigterm() -> None:
    """Turns SIGTERM (and SIGINT, which a non-interactive shell may have set to ignored for a
    background job) into KeyboardInterrupt, so `finally` blocks stop the children."""

    def handler(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


class LoopbackHTTPServer(ThreadingHTTPServer):
    """A threaded HTTP server on 127.0.0.1 (port chosen by the OS) serving from a daemon thread.
    A client that disappears mid-connection (a function process stopped or killed while its
    keep-alive connection is open) is normal here, not an error worth a traceback."""

    daemon_threads = True

    def __init__(self, handler: type[BaseHTTPRequestHandler]):
        super().__init__(("127.0.0.1", 0), handler)
        self.port = self.server_address[1]
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05},
                         name=handler.__name__, daemon=True).start()

    def handle_error(self, request, client_address) -> None:
        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return
        super().handle_error(request, client_address)

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
