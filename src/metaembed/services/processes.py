"""Detached server processes owned through pid files: start once, find again, stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

from metaembed.services.settings import HOST, ServicesError


def port_open(port: int) -> bool:
    """Something accepts connections on 127.0.0.1:port."""
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((HOST, port)) == 0


def running_pid(pid_file: Path) -> int | None:
    """The pid in `pid_file` when that process is alive, else None (a stale file is removed)."""
    try:
        pid = int(pid_file.read_text().split()[0])
        os.kill(pid, 0)
    except (FileNotFoundError, IndexError, ValueError, ProcessLookupError):
        pid_file.unlink(missing_ok=True)
        return None
    except PermissionError:  # alive, owned by another user (PostgreSQL as `postgres`)
        pass
    return pid


def check_port_free(name: str, port: int, variable: str) -> None:
    if port_open(port):
        raise ServicesError(f"{name}: port {port} on {HOST} is taken by another program (not this project's "
                            f"{name}): stop it, or pick another port with {variable}=<port>")


def launch(command: list[str], pid_file: Path, log: Path, env: dict[str, str]) -> subprocess.Popen:
    """Start `command` in its own session (it outlives this process), output appended to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as sink:
        process = subprocess.Popen(command, env=env, stdout=sink, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    pid_file.write_text(f"{process.pid}\n")
    return process


def wait_healthy(name: str, url: str, process: subprocess.Popen, log: Path, timeout_s: float) -> None:
    """Poll `url` until it answers 200; a process that exits first fails with its log's tail."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServicesError(f"{name} exited with code {process.returncode} while starting; its log "
                                f"{log} ends with:\n{_tail(log)}")
        if answers(url):
            return
        time.sleep(0.5)
    stop_group(process.pid)
    raise ServicesError(f"{name} did not answer {url} within {timeout_s:.0f} s; its log {log} ends with:\n{_tail(log)}")


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def stop_group(pid: int, timeout_s: float = 20) -> None:
    """SIGTERM the process group `pid` leads (servers fork workers), SIGKILL what outlives it."""
    for sig, wait in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 10)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not _alive(pid):
                return
            time.sleep(0.2)


def _alive(pid: int) -> bool:
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)  # reap it when it is our child
        if done:
            return False
    except ChildProcessError:
        pass
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _tail(log: Path, chars: int = 2000) -> str:
    return log.read_text(errors="replace")[-chars:] if log.is_file() else "(no log)"
