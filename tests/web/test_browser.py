"""The web UI in a real browser (Debian's Chromium, driven by Playwright) against a real
`heteroflow up --demo`: the llama.cpp engine on the CPU, the gateway, embedded PostgreSQL.

One walk through what an operator does on a first day, in order, with a screenshot of each
page under the test's own tmp folder (``screenshots/``). Any console error fails the test.
Every wait is on a condition in the page or the API, with generous timeouts: a busy
two-core machine loads a model slowly, and that is not a failure.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from bridge.cli.demo import MODEL_FILE
from tests.support.pg import free_port

playwright_sync = pytest.importorskip("playwright.sync_api")
expect = playwright_sync.expect

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]
CHROMIUM = os.environ.get("HETEROFLOW_CHROMIUM", "/usr/bin/chromium")
DIST = Path(__file__).resolve().parents[2] / "web" / "dist" / "index.html"
# Running as root needs --no-sandbox; the rest keeps Chromium from phoning anywhere.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-quic", "--disable-dev-shm-usage"]
SLOW = 240_000  # ms: an engine start, or a state change the reconciler makes
UI = 30_000  # ms: something the page shows after a click


class Up:
    """`heteroflow up --demo` as a user starts it, on a free port and its own home."""

    def __init__(self, home: Path) -> None:
        self.home, self.port = home, free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "HETEROFLOW_HOME": str(self.home), "HETEROFLOW_LOG_FORMAT": "json"}
        env.pop("HETEROFLOW_DATABASE_URL", None)
        self.log = open(self.home.parent / "up.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bridge.cli.main", "up", "--demo", "--port", str(self.port)],
            env=env, stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, (self.home.parent / "up.log").read_text()[-4000:]
            try:
                if httpx.get(self.base + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        else:
            raise AssertionError("heteroflow up did not answer within 120 s")
        self.token = (self.home / "admin-token").read_text().strip()
        self.api = httpx.Client(base_url=self.base + "/api/v1", timeout=60,
                                headers={"Authorization": f"Bearer {self.token}"})

    def group_named(self, name: str) -> dict[str, Any] | None:
        items = self.api.get("/task-groups", params={"name": name}).json()["items"]
        return next((g for g in items if g["name"] == name), None)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _leftovers(home: Path) -> list[psutil.Process]:
    """Engines and PostgreSQL processes started for this home."""
    found = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            cmd = " ".join(p.info["cmdline"] or [])
        except psutil.Error:
            continue
        if str(home) in cmd and ("llama_cpp.server" in cmd or "postgres" in cmd):
            found.append(p)
    return found


@pytest.fixture
def up() -> Iterator[Up]:
    if not DIST.is_file():
        pytest.fail("the web UI is not built: make web (the test rule builds it first)")
    # Not under pytest's tmp tree: every pytest session on the machine resets that tree's
    # root to mode 0700, which locks out the postgres user the embedded server runs as.
    top = Path(tempfile.mkdtemp(prefix="heteroflow-web-"))
    server = Up(top / "home")
    server.home.mkdir()
    try:
        server.start()
        yield server
    finally:
        server.stop()
        for p in _leftovers(server.home):
            p.kill()
        shutil.rmtree(top, ignore_errors=True)


@pytest.fixture
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"no Chromium at {CHROMIUM}: bash scripts/install-chromium.sh")
    pw = playwright_sync.sync_playwright().start()
    try:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()
    finally:
        pw.stop()


class Shots:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def take(self, page: Any, name: str) -> None:
        page.screenshot(path=str(self.folder / f"{name}.png"), full_page=True)


# Refusals the walk provokes on purpose or that the server answers by design; Chromium logs
# every 4xx/5xx fetch as a console error, so each failing response must be one of these.
EXPECTED_REFUSALS = [
    # On one machine the model lies under HETEROFLOW_HOME/models, which is no Nomad model
    # root: the jobspec tab shows the server's reason instead of HCL.
    (re.compile(r"/api/v1/task-groups/[^/]+/jobspec$"), 422),
    (re.compile(r"/api/v1/task-groups/jobspec-preview$"), 422),
]


def watch_console(page: Any, errors: list[str]) -> None:
    def on_console(m: Any) -> None:
        # Resource failures are checked by status below, with their URL.
        if m.type == "error" and not m.text.startswith("Failed to load resource"):
            errors.append(f"console: {m.text}")

    def on_response(r: Any) -> None:
        if r.status < 400:
            return
        path = r.url.split("?", 1)[0].split("//", 1)[-1]
        path = path[path.find("/"):]
        if not any(rx.search(path) and r.status == code for rx, code in EXPECTED_REFUSALS):
            errors.append(f"response: {r.status} {r.request.method} {path}")

    page.on("console", on_console)
    page.on("response", on_response)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))


def sign_in(page: Any, base: str, token: str) -> None:
    page.goto(base + "/")
    page.get_by_label("Token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Services")).to_be_visible(timeout=UI)


def row(page: Any, name: str) -> Any:
    return page.locator(f'[data-service="{name}"]')


def status_of(page: Any, name: str) -> Any:
    return row(page, name).locator("[data-status]")


def pick(page: Any, label: str, option: str | re.Pattern[str], scope: Any = None) -> None:
    """Choose an option of a Mantine Select by keyboard-reachable controls."""
    (scope or page).get_by_role("combobox", name=label, exact=True).click()
    page.get_by_role("option", name=option).first.click()


def first_run_from_the_terminal(up: Up) -> None:
    """What the banner tells a new user to type works as printed."""
    env = {**os.environ, "HETEROFLOW_HOME": str(up.home)}
    env.pop("HETEROFLOW_TOKEN", None)
    cli = [sys.executable, "-m", "bridge.cli.main"]
    listed = subprocess.run([*cli, "service", "list", "-json", "-address", up.base], env=env,
                            capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert "demo" in listed.stdout and listed.stdout.lstrip().startswith("{")
    # A 135M model now and then samples its end token first: ask again, a few times.
    for _ in range(5):
        chat = subprocess.run([*cli, "-address", up.base, "chat", "demo", "Say hello.",
                               "-max-tokens", "16"], env=env, capture_output=True, text=True,
                              timeout=120)
        assert chat.returncode == 0, chat.stderr
        if chat.stdout.strip():
            break
        assert "no text" in chat.stderr
    assert chat.stdout.strip(), "five empty answers in a row"


def test_operator_first_day_in_the_browser(up: Up, browser: Any, tmp_path: Path) -> None:
    shots = Shots(tmp_path / "screenshots")
    try:
        walk(up, browser, shots)
    finally:
        # The server's log beside the screenshots, for whoever reads a failure.
        shutil.copyfile(up.home.parent / "up.log", tmp_path / "up.log")


def walk(up: Up, browser: Any, shots: Shots) -> None:
    errors: list[str] = []
    context = browser.new_context(viewport={"width": 1280, "height": 800}, color_scheme="light")
    page = context.new_page()
    watch_console(page, errors)

    # Sign in; the demo service comes up running.
    page.goto(up.base + "/")
    shots.take(page, "01-login")
    sign_in(page, up.base, up.token)
    expect(status_of(page, "demo")).to_have_text("running", timeout=SLOW)
    shots.take(page, "02-services")
    first_run_from_the_terminal(up)

    # Create a second llama.cpp service through the form; a bad value is refused first.
    page.get_by_role("button", name="Create service").click()
    dialog = page.get_by_role("dialog", name="Create service")
    dialog.get_by_label("Name", exact=False).first.fill("Bad Name")
    dialog.get_by_label("Model name").click()  # leaves the name field: checked on blur
    expect(dialog.get_by_text("String should match pattern")).to_be_visible(timeout=UI)
    shots.take(page, "03-create-field-error")
    dialog.get_by_label("Name", exact=False).first.fill("smol2")
    dialog.get_by_label("GPUs per task").fill("0")
    pick(page, "Model", re.compile("SmolLM2"), dialog)
    model_path = str(up.home / "models" / MODEL_FILE)
    expect(dialog.get_by_label("Model path")).to_have_value(model_path, timeout=UI)
    expect(dialog.get_by_role("textbox", name="Image")).to_have_value(
        "ghcr.io/ggml-org/llama.cpp:server")
    expect(dialog.get_by_label("Health check path")).to_have_value("/v1/models")
    dialog.get_by_role("button", name="Preview jobspec").click()
    expect(dialog.get_by_test_id("jobspec-preview")).to_contain_text(
        re.compile(r"\njob |model roots"), timeout=UI)
    shots.take(page, "04-create-form")
    dialog.get_by_role("button", name="Create", exact=True).click()
    secret = dialog.get_by_test_id("secret")
    expect(secret).to_have_text(re.compile(r"^sk-"), timeout=UI)
    expect(dialog.get_by_text("client = OpenAI(")).to_be_visible()
    shots.take(page, "05-create-key-once")
    dialog.get_by_role("button", name="Done").click()
    expect(status_of(page, "smol2")).to_have_text("running", timeout=SLOW)
    created = up.group_named("smol2")
    assert created is not None and created["engine"] == "llamacpp"

    # The detail page: tasks, jobspec.
    row(page, "smol2").get_by_role("link", name="smol2").click()
    expect(page.get_by_role("heading", name="smol2")).to_be_visible(timeout=UI)
    expect(page.get_by_role("table", name="Tasks").locator("[data-status]")).to_have_text(
        "running", timeout=UI)
    shots.take(page, "06-detail-tasks")
    page.get_by_role("tab", name="Jobspec").click()
    expect(page.get_by_test_id("jobspec")).to_contain_text(
        re.compile(r'job "|model roots'), timeout=UI)
    shots.take(page, "07-detail-jobspec")
    page.get_by_role("tab", name="Audit").click()
    expect(page.get_by_role("table", name="Audit trail")).to_contain_text(
        "task_group.create", timeout=UI)

    # Chat in the playground: the answer streams in, with TTFT and tokens/s.
    page.get_by_role("link", name="Playground").click()
    pick(page, "Service", re.compile(r"^smol2 "))
    page.get_by_role("button", name="New playground key").click()
    expect(page.get_by_label("API key of this service")).to_have_value(
        re.compile(r"^sk-"), timeout=UI)
    # Greedy decoding: the small model's answer is then the same, and not empty, every run.
    page.get_by_label("Temperature").fill("0")
    page.get_by_label("Message").fill("What is the capital of France?")
    # Count the page's updates while the answer comes in: streamed text arrives in pieces.
    page.evaluate("""() => { window.__updates = 0; new MutationObserver(() => window.__updates++)
        .observe(document.querySelector('[aria-label="Conversation"]'),
                 {subtree: true, childList: true, characterData: true}); }""")
    page.get_by_role("button", name="Send").click()
    answer = page.locator('[data-role="assistant"]')
    expect(answer).to_have_text(re.compile(r"smol2:\s*\S+"), timeout=SLOW)
    expect(page.get_by_label("Speed")).to_contain_text("tokens/s", timeout=SLOW)
    assert page.evaluate("window.__updates") > 3, "the answer arrived in one piece"
    shots.take(page, "08-playground")

    # Its usage, as a chart (the chart library loads with this tab only).
    page.get_by_role("link", name="Services").click()
    row(page, "smol2").get_by_role("link", name="smol2").click()
    page.get_by_role("tab", name="Usage").click()
    # The gateway flushes usage every few seconds; the tab polls until the chart shows it.
    expect(page.get_by_text("Requests", exact=True)).to_be_visible(timeout=SLOW)
    expect(page.locator(".recharts-bar-rectangle").first).to_be_visible(timeout=UI)
    shots.take(page, "08b-detail-usage")

    # Sleep it with the button and watch the state change; wake it again.
    page.get_by_role("link", name="Services").click()
    page.get_by_role("button", name="Sleep smol2").click()
    expect(status_of(page, "smol2")).to_have_text("sleeping", timeout=SLOW)
    expect(page.get_by_role("button", name="Sleep smol2")).to_have_count(0)
    shots.take(page, "09-services-sleeping")
    page.get_by_role("button", name="Wake smol2").click()
    expect(status_of(page, "smol2")).to_have_text("running", timeout=SLOW)

    # Move a route weight with the keyboard.
    page.get_by_role("link", name="Control panel").click()
    page.get_by_role("tab", name="Model routes").click()
    routes = page.get_by_role("table", name="Routes of smol2")
    slider = routes.get_by_role("slider", name="Weight of v1")
    expect(slider).to_have_attribute("aria-valuenow", "100", timeout=UI)
    slider.focus()
    for _ in range(5):
        page.keyboard.press("ArrowLeft")
    expect(slider).to_have_attribute("aria-valuenow", "95", timeout=UI)
    route_id = created["tasks"] and up.api.get(
        "/model-routes", params={"task_group_id": created["id"]}).json()[0]["id"]
    deadline = time.monotonic() + 30
    while up.api.get(f"/model-routes/{route_id}").json()["weight"] != 95:
        assert time.monotonic() < deadline, "the weight never reached the server"
        time.sleep(0.3)
    # A canary: smol2's model also served by the demo service, at weight 10; then removed.
    pick(page, "Model", "smol2")
    pick(page, "Served by", "demo")
    page.get_by_role("button", name="Add route").click()
    expect(routes).to_contain_text("canary", timeout=UI)
    expect(routes.get_by_role("slider", name="Weight of canary")).to_have_attribute(
        "aria-valuenow", "10", timeout=UI)
    shots.take(page, "10-routes")
    routes.get_by_role("button", name="Remove route canary").click()
    page.get_by_role("dialog").get_by_role("button", name="Remove").click()
    expect(routes).not_to_contain_text("canary", timeout=UI)

    # Create a key (shown once) and revoke it.
    page.get_by_role("tab", name="API keys").click()
    pick(page, "Endpoint", re.compile(r"^smol2 "))
    page.get_by_label("New key name").fill("ci-key")
    page.get_by_role("button", name="Create key").click()
    expect(page.get_by_test_id("secret")).to_have_text(re.compile(r"^sk-"), timeout=UI)
    key_row = page.locator('tr[data-key-name="ci-key"]')
    expect(key_row.locator("[data-status]")).to_have_text("active", timeout=UI)
    shots.take(page, "11-keys-created")
    key_row.get_by_role("button", name="Revoke key ci-key").click()
    page.get_by_role("dialog").get_by_role("button", name="Revoke").click()
    expect(key_row.locator("[data-status]")).to_have_text("revoked", timeout=UI)
    shots.take(page, "12-keys-revoked")

    page.get_by_role("tab", name="Nodes").click()
    expect(page.get_by_role("heading", level=3).first).to_be_visible(timeout=UI)
    shots.take(page, "13-nodes")
    page.get_by_role("tab", name="Users").click()
    expect(page.get_by_role("table", name="Users")).to_contain_text("admin", timeout=UI)
    shots.take(page, "14-users")

    # A viewer sees everything and no write button.
    made = up.api.post("/users", json={"name": "watcher", "role": "viewer"})
    assert made.status_code == 201, made.text
    viewer_ctx = browser.new_context(viewport={"width": 1280, "height": 800},
                                     color_scheme="dark")
    viewer = viewer_ctx.new_page()
    watch_console(viewer, errors)
    sign_in(viewer, up.base, made.json()["token"]["token"])
    expect(status_of(viewer, "smol2")).to_have_text("running", timeout=UI)
    write = re.compile(r"^(Create|Sleep|Wake|Stop|Retry|Scale|Delete|Revoke|New|Add|Remove)")
    expect(viewer.get_by_role("button", name=write)).to_have_count(0)
    shots.take(viewer, "15-viewer-services-dark")
    viewer.get_by_role("link", name="Control panel").click()
    expect(viewer.get_by_role("tab", name="Users")).to_have_count(0)
    expect(viewer.get_by_role("table", name="API keys")).to_be_visible(timeout=UI)
    expect(viewer.get_by_role("button", name=write)).to_have_count(0)
    viewer.get_by_role("tab", name="Model routes").click()
    expect(viewer.get_by_role("table", name="Routes of smol2")).to_contain_text("95",
                                                                           timeout=UI)
    expect(viewer.get_by_role("slider")).to_have_count(0)
    expect(viewer.get_by_role("textbox", name=re.compile("^Priority"))).to_have_count(0)
    viewer_ctx.close()

    # Phone width: the same list, readable.
    page.set_viewport_size({"width": 390, "height": 844})
    page.get_by_role("button", name="Toggle navigation").click()
    page.get_by_role("link", name="Services").click()
    expect(status_of(page, "smol2")).to_be_visible(timeout=UI)
    shots.take(page, "16-services-phone")
    page.set_viewport_size({"width": 1280, "height": 800})

    # Delete it: stop first (the seed offers delete for completed and failed services).
    row(page, "smol2").get_by_role("button", name="Stop smol2").click()
    page.get_by_role("dialog").get_by_role("button", name="Stop").click()
    expect(status_of(page, "smol2")).to_have_text(re.compile("completed|failed"), timeout=SLOW)
    row(page, "smol2").get_by_role("button", name="Delete smol2").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    expect(row(page, "smol2")).to_have_count(0, timeout=SLOW)
    assert up.group_named("smol2") is None
    shots.take(page, "17-services-after-delete")
    context.close()

    assert errors == [], errors
    print(f"\nscreenshots in {shots.folder}")
    # Keep them where a CI run can collect them, when asked.
    if os.environ.get("HETEROFLOW_SCREENSHOTS"):
        shutil.copytree(shots.folder, os.environ["HETEROFLOW_SCREENSHOTS"], dirs_exist_ok=True)
