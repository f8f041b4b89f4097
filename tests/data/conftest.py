"""A local HTTP server for the download tests: files are served from a temporary folder on 127.0.0.1."""

import dataclasses
import functools
import http.server
import socket
import threading
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

_TIMEOUT_S = 10


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        """Clients that close early (torchvision's redirect probe does) are not errors worth printing."""


class _Handler(http.server.SimpleHTTPRequestHandler):
    timeout = _TIMEOUT_S

    def do_GET(self):
        self.server.requests.append(self.path)
        name = urllib.parse.unquote(self.path.lstrip("/"))
        if name not in self.server.truncated:
            super().do_GET()
            return
        data = (Path(self.directory) / name).read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        self.close_connection = True

    def log_message(self, format, *args):
        pass


@dataclasses.dataclass
class LocalServer:
    """``url``: base URL ending in ``/``; ``directory``: the folder served; ``requests``: paths asked for."""

    url: str
    directory: Path
    requests: list
    truncated: set

    def add(self, name, data):
        """Serve ``data`` (bytes) at ``url + name``; return that URL."""
        path = self.directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return self.url + name

    def truncate(self, name):
        """Answer ``name`` with its full Content-Length but only the first half of its bytes."""
        self.truncated.add(name)


@pytest.fixture
def local_server(tmp_path_factory, monkeypatch):
    """An HTTP server on 127.0.0.1 in a thread, stopped at teardown. Every URL opened during the test must
    be on this server (others raise), and sockets time out after 10 s."""
    directory = tmp_path_factory.mktemp("served")
    server = _Server(("127.0.0.1", 0), functools.partial(_Handler, directory=str(directory)))
    server.requests, server.truncated = [], set()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    urlopen = urllib.request.urlopen

    def local_only(request, *args, **kwargs):
        url = request.full_url if isinstance(request, urllib.request.Request) else request
        if not url.startswith(base):
            raise AssertionError(f"a test opened {url}, which is not on the local server {base}")
        return urlopen(request, *args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", local_only)
    old_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(_TIMEOUT_S)
    try:
        yield LocalServer(base, directory, server.requests, server.truncated)
    finally:
        socket.setdefaulttimeout(old_timeout)
        server.shutdown()
        server.server_close()
        thread.join(_TIMEOUT_S)
