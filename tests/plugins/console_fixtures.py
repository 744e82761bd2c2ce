"""``unsign-worker console`` as a real process, and an HTTP client that behaves like a browser
(basic auth, cookies, the CSRF token read from the page's forms)."""

from __future__ import annotations

import base64
import html
import http.client
import http.cookiejar
import os
import re
import signal
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tests.plugins.worker_fixtures import BIN, wait_for

USER, PASSWORD = "ops", "console-test-password"
CREDS = f"{USER}:{PASSWORD}"
_TOKEN = re.compile(r'name="csrf_token" value="([0-9a-f]+)"')


@dataclass
class Reply:
    status: int
    body: str
    headers: dict[str, str]
    url: str


class ConsoleProcess:
    """The console on a free port, with the given environment."""

    def __init__(self, env: dict[str, str], log: Path, *args: str,
                 cwd: Path | None = None) -> None:
        self.log = log
        self.proc = subprocess.Popen([str(BIN / "unsign-worker"), "console", "--port", "0",
                                      *args], env=env, stdout=open(log, "wb"),
                                     stderr=subprocess.STDOUT, start_new_session=True, cwd=cwd)
        found = wait_for(lambda: self.proc.poll() is not None or re.search(
            r"console: (http://\S+?)/ ", log.read_text(errors="replace")), timeout=60,
            what="the console to print its URL")
        assert self.proc.poll() is None, log.read_text(errors="replace")
        self.base = found.group(1)

    def client(self, auth: str | None = CREDS) -> Browser:
        return Browser(self.base, auth)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=20)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


class Browser:
    """Basic auth and a cookie jar; POSTs carry the CSRF token of the last page read."""

    def __init__(self, base: str, auth: str | None) -> None:
        self.base = base
        self.auth = auth
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar),
                                                  _NoRedirect)
        self.token = ""

    def request(self, method: str, path: str, form: dict[str, str] | None = None,
                headers: dict[str, str] | None = None) -> Reply:
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if self.auth:
            req.add_header("Authorization",
                           "Basic " + base64.b64encode(self.auth.encode()).decode())
        for name, value in (headers or {}).items():
            req.add_header(name, value)
        try:
            with self.opener.open(req, timeout=60) as resp:
                reply = Reply(resp.status, resp.read().decode("utf-8", "replace"),
                              dict(resp.headers), resp.url)
        except urllib.error.HTTPError as exc:
            reply = Reply(exc.code, exc.read().decode("utf-8", "replace"), dict(exc.headers),
                          self.base + path)
        found = _TOKEN.search(reply.body)
        if found:
            self.token = found.group(1)
        return reply

    def get(self, path: str) -> Reply:
        return self.request("GET", path)

    def post(self, path: str, form: dict[str, str], *, token: bool = True) -> Reply:
        """POST ``form`` (with the CSRF token unless ``token`` is False); follows a 303."""
        if token:
            form = {"csrf_token": self.token, **form}
        reply = self.request("POST", path, form)
        if reply.status == 303:
            return self.get(urllib.parse.urlparse(reply.headers["Location"]).path + "?" +
                            urllib.parse.urlparse(reply.headers["Location"]).query)
        return reply


def send(base: str, method: str, path: str, *, host: str | None = None,
         source: str = "127.0.0.1", auth: str | None = None,
         headers: dict[str, str] | None = None, form: dict[str, str] | None = None) -> Reply:
    """One request as a hostile page (or another machine) would send it: any ``Host`` header,
    from the ``source`` address (any 127.x.x.x reaches a loopback console on Linux)."""
    parts = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=60,
                                      source_address=(source, 0))
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", host if host is not None else parts.netloc)
        if auth:
            conn.putheader("Authorization",
                           "Basic " + base64.b64encode(auth.encode()).decode())
        body = urllib.parse.urlencode(form).encode() if form is not None else b""
        if form is not None:
            conn.putheader("Content-Type", "application/x-www-form-urlencoded")
        for name, value in (headers or {}).items():
            conn.putheader(name, value)
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        return Reply(resp.status, resp.read().decode("utf-8", "replace"),
                     {k: v for k, v in resp.getheaders()}, base + path)
    finally:
        conn.close()


def text_of(page: str) -> str:
    """The page's visible text, roughly (tags dropped, entities decoded, spaces collapsed)."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())
