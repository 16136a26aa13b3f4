"""The process building blocks of the local stack (start, stop, health checks, ports), without a server."""

import http.server
import sys
import threading
import time
from pathlib import Path

import pytest

from ops.supervisor import StackError, free_port, start_service, stop_service, wait_for_http


def test_free_port_can_be_bound() -> None:
    import socket

    port = free_port()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))


# -- processes -----------------------------------------------------------------------------------------------

_STUBBORN = """
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
print(child.pid, flush=True)
time.sleep(60)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_stop_kills_a_service_that_ignores_sigterm_and_its_children(tmp_path: Path) -> None:
    log = tmp_path / "stubborn.log"
    service = start_service(
        "stubborn",
        [sys.executable, "-c", _STUBBORN],
        env={"PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
        log_path=log,
    )
    deadline = time.monotonic() + 10
    while not log.read_text().strip() and time.monotonic() < deadline:
        time.sleep(0.05)
    grandchild = int(log.read_text().split()[0])
    started = time.monotonic()
    code = stop_service(service, grace_seconds=0.5)
    assert code == -9
    assert time.monotonic() - started < 5
    deadline = time.monotonic() + 5
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(grandchild)


def test_wait_for_http_fails_fast_when_the_service_dies(tmp_path: Path) -> None:
    service = start_service(
        "dies",
        [sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"],
        env={"PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
        log_path=tmp_path / "dies.log",
    )
    with pytest.raises(StackError, match="exited with code 3") as raised:
        wait_for_http(f"http://127.0.0.1:{free_port()}/health", timeout=20, service=service)
    assert "boom" in str(raised.value)
    stop_service(service)


def test_wait_for_http_returns_once_healthy_and_times_out_otherwise() -> None:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/health" else 503)
            self.end_headers()
            self.wfile.write(b"OK")

        def log_message(self, *args: object) -> None:
            return None

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        assert wait_for_http(f"{base}/health", timeout=5).text == "OK"
        with pytest.raises(StackError, match="HTTP 503"):
            wait_for_http(f"{base}/other", timeout=1, interval=0.2)
    finally:
        server.shutdown()
        server.server_close()
