"""The operations console in a real browser: Debian's Chromium driven by Playwright.

Given dead letters and a running campaign made by a real worker against the emulator, an
operator signs in, walks every page, requeues and resolves an entry with notes, pauses and
resumes the campaign, and looks a job up; screenshots of each step are saved under the test's
temporary folder (and under ``$UNSIGN_SCREENSHOTS`` when set, for docs/console.md).

Nothing is downloaded at run time: the browser is ``/usr/bin/chromium``. Without it (or without
the ``playwright`` package) the tests are skipped with the command that installs it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.plugins.console_fixtures import PASSWORD, USER, ConsoleProcess
from tests.plugins.worker_fixtures import wait_for
from unsign_worker.emulator.agreements import Agreement

if TYPE_CHECKING:
    from tests.plugins.ops_fixtures import OpsEnv

pytest_plugins = ["tests.plugins.ops_fixtures"]

CHROMIUM = Path("/usr/bin/chromium")
INSTALL = ("browser tests skipped: no Chromium at /usr/bin/chromium; install it with "
           "`sudo apt-get install -y chromium` (Debian) and `make test` runs them")
if not CHROMIUM.exists():
    pytest.skip(INSTALL, allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="browser tests need the playwright "
                               "package: `make .venv/.installed` installs it")
pytestmark = pytest.mark.slow

EMAIL = "browser.buyer@example.com"
ROWS = 40


@pytest.fixture
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as play:
        chromium = play.chromium.launch(executable_path=str(CHROMIUM),
                                        args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield chromium
        chromium.close()


def _shots(tmp_path: Path) -> Callable[[Any, str], None]:
    folder = tmp_path / "screenshots"
    folder.mkdir()
    extra = os.environ.get("UNSIGN_SCREENSHOTS")

    def shoot(page: Any, name: str) -> None:
        path = folder / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 5000
        if extra:
            Path(extra).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(extra) / path.name)

    return shoot


def test_an_operator_works_the_console_in_a_browser(
        ops_env: Callable[..., OpsEnv], browser: Any, tmp_path: Path) -> None:
    # Given two dead letters and a slow campaign (1 job a second) run by a real worker
    env = ops_env([
        Agreement(id="s1", customer_code="C00000000001", script=("STATUS_TYPE_CODE",) * 5),
        Agreement(id="s2", biz_type="10004", user_email=EMAIL, user_id="2088002007018916",
                  script=("TOO_MUCH_TYPE_CODE",) * 5),
        *[Agreement(id=f"c{i}", customer_code=f"B{i:011d}") for i in range(ROWS)],
    ])
    env.workers.start_worker()
    stuck = env.cli("enqueue", "--customer-code", "C00000000001", "--reference", "order-1",
                    "--wait").stdout.split()[0]
    other = env.cli("enqueue", "--biz-type", "10004", "--user-email", EMAIL, "--reference",
                    "order-2", "--wait").stdout.split()[0]
    rows = tmp_path / "spring.csv"
    rows.write_text("customer_code,reference\n" + "".join(
        f"B{i:011d},spring-{i}\n" for i in range(ROWS)), encoding="utf-8")
    result = env.cli("campaign", "run", str(rows), "--name", "spring clean-up", "--rate", "1",
                     "--detach", "--json")
    assert result.exit_code == 0, result.output
    console = ConsoleProcess({**env.env, "UNSIGN_CONSOLE_AUTH": f"{USER}:{PASSWORD}"},
                             tmp_path / "console.log")
    shoot = _shots(tmp_path)
    try:
        # When an operator signs in
        context = browser.new_context(http_credentials={"username": USER, "password": PASSWORD},
                                      viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.goto(console.base + "/")
        # Then the escalations page lists both entries by code, masked
        assert page.url.endswith("/escalations")
        assert page.locator("h1").inner_text().startswith("Escalations")
        assert page.locator(f"#job-{stuck}").is_visible()
        assert "b***@example.com" in page.content() and EMAIL not in page.content()
        for job in (stuck, other):  # each entry is one line until opened
            page.locator(f"#job-{job} > summary").click()
        page.locator(f"#job-{stuck} details.attempts > summary").click()
        shoot(page, "escalations")
        # A requeue without a note is stopped by the browser (required field)
        page.locator(f"#job-{stuck} button[name=requeue]").click()
        assert page.url.endswith("/escalations")
        assert env.workers.redis.zscore(env.workers.keys.dlq, stuck) is not None
        # And with a note the job is requeued, then resolved when it comes back
        page.locator(f"#job-{stuck} form[action$=requeue] input[name=note]").fill(
            "agreement renewed by Alipay support")
        page.locator(f"#job-{stuck} button[name=requeue]").click()
        assert f"requeued {stuck}" in page.locator(".flash").inner_text()
        page.locator(f"#job-{other} > summary").click()
        page.locator(f"#job-{other} form[action$=resolve] input[name=note]").fill(
            "customer unsigned at the counter")
        page.locator(f"#job-{other} button[name=resolve]").click()
        assert f"resolved {other}" in page.locator(".flash").inner_text()
        assert "customer unsigned at the counter" in page.locator("table").last.inner_text()
        shoot(page, "escalations-after")

        # The campaign: pause needs the confirmation box, then pause and resume
        page.click("text=Campaigns")
        section = page.locator("section.campaign").first
        assert "spring clean-up" in section.inner_text()
        shoot(page, "campaigns")
        section.locator("form[action$=pause] input[name=note]").fill("checking the file")
        section.locator("form[action$=pause] input[name=confirm]").check()
        section.locator("button[name=pause]").click()
        assert "paused" in page.locator(".flash").inner_text()
        assert page.locator("section.campaign .state").first.inner_text() == "paused"
        shoot(page, "campaigns-paused")
        section = page.locator("section.campaign").first
        section.locator("form[action$=resume] input[name=confirm]").check()
        section.locator("button[name=resume]").click()
        assert "resumed" in page.locator(".flash").inner_text()
        assert page.locator("section.campaign .state").first.inner_text() == "running"
        assert "pause by ops (console)" in page.locator("section.campaign").first.inner_text()

        # Health and lookup
        page.click("text=Health")
        assert "Circuit breaker closed" in page.inner_text("#breaker")
        wait_for(lambda: page.reload() or "@test" in page.inner_text("main"), timeout=30,
                 what="the worker's heartbeat on the health page")
        shoot(page, "health")
        page.click("text=Lookup")
        page.fill("input[name=q]", "order-1")
        page.click("button:has-text('Find')")
        text = page.inner_text("main")
        assert stuck in text and "requeue by ops (console)" in text
        shoot(page, "lookup")
        for name in ("escalations", "campaigns", "campaigns-paused", "health", "lookup"):
            assert (tmp_path / "screenshots" / f"{name}.png").exists()
    finally:
        console.stop()
