"""The console rides out a Redis outage: a page asked for meanwhile says "Redis unavailable
since ..., retrying" (503, said once in the log, no traceback), and pages work again once Redis
is back, without a restart."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.plugins.worker_fixtures import BIN, wait_for
from tests.private_redis import PrivateRedis, needs_redis_server

pytestmark = [pytest.mark.slow, needs_redis_server]
AUTH = "ops:a-long-password"


def fetch(url: str) -> tuple[int, str]:
    token = base64.b64encode(AUTH.encode()).decode()
    request = urllib.request.Request(url, headers={"Authorization": f"Basic {token}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_the_console_says_redis_is_unavailable_and_carries_on_when_it_is_back(tmp_path: Path):
    # Given a console on a private Redis, serving the health page
    server = PrivateRedis(tmp_path / "redis").start()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALIPAY_", "UNSIGN_"))}
    env.update(UNSIGN_REDIS_URL=server.url, UNSIGN_KEY_PREFIX="t:", UNSIGN_CONSOLE_AUTH=AUTH)
    log = tmp_path / "console.log"
    proc = subprocess.Popen([str(BIN / "unsign-worker"), "console", "--port", "0"], env=env,
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT)
    try:
        found = wait_for(lambda: re.search(r"console: (http://\S+/) \(", log.read_text()),
                         timeout=60, what="the console to listen")
        base = found.group(1)
        assert fetch(base + "health")[0] == 200
        # When Redis goes away
        server.stop()
        status, page = wait_for(lambda: (lambda r: r if r[0] == 503 else None)(
            fetch(base + "health")), timeout=60, what="a page during the outage")
        # Then the page says so, and the console is still up
        assert "Redis unavailable since" in page and "retrying" in page
        assert fetch(base + "escalations")[0] == 503 and proc.poll() is None
        # And once Redis is back, the same console serves pages again
        server.start()
        wait_for(lambda: fetch(base + "health")[0] == 200, timeout=60,
                 what="pages again after the outage")
        text = log.read_text()
        assert text.count("Redis unavailable since") == 1, text
        assert "Redis available again" in text and "Traceback" not in text
    finally:
        proc.terminate()
        proc.wait(30)
        server.close()
