"""First-run habits of the CLI: global flags anywhere, terminal logs, `heteroflow chat`."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import Any

import pytest
import respx

from bridge.cli.chat import _delta, resolve_key, run_chat
from bridge.cli.client import ApiError
from bridge.cli.main import build_parser
from bridge.logs import CHATTY, TERMINAL_WARNINGS_ONLY, configure_logging, resolve_format


@pytest.mark.parametrize("argv", [
    ["-json", "service", "list"],
    ["service", "list", "-json"],
    ["service", "-json", "list"],
    ["service", "list", "--json"],
])
def test_global_flags_before_or_after_the_subcommand(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    assert args.json is True and args.action == "list"


def test_flags_after_the_subcommand_do_not_reset_those_before() -> None:
    args = build_parser().parse_args(["-token", "t1", "-address", "http://a", "key", "list",
                                      "ep-1"])
    assert (args.token, args.address, args.json) == ("t1", "http://a", False)
    args = build_parser().parse_args(["key", "list", "ep-1", "-token", "t2"])
    assert args.token == "t2" and args.address is None


@pytest.fixture(autouse=True)
def _restore_logging() -> Any:
    """configure_logging points the root handler at this test's captured stderr; put the
    process's logging back, or later tests log into a closed stream."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {n: logging.getLogger(n).level for n in (*CHATTY, *TERMINAL_WARNINGS_ONLY)}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, lvl in levels.items():
        logging.getLogger(name).setLevel(lvl)


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_terminal_gets_human_lines_unless_a_format_is_asked(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HETEROFLOW_LOG_FORMAT", raising=False)
    assert resolve_format("json", stream=_Tty()) == "console"
    assert resolve_format("json", stream=io.StringIO()) == "json"  # a pipe or a file
    monkeypatch.setenv("HETEROFLOW_LOG_FORMAT", "json")
    assert resolve_format("json", stream=_Tty()) == "json"


def test_console_lines_are_short_and_drop_access_lines(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("HETEROFLOW_LOG_FORMAT", "console")
    monkeypatch.delenv("HETEROFLOW_LOG_ACCESS", raising=False)
    configure_logging("INFO", "console")
    logging.getLogger("bridge.x").info("demo deployed", extra={"task_group_id": "tg-1"})
    logging.getLogger("sanic.access").info("", extra={"path": "/api/v1/task-groups"})
    logging.getLogger("httpx").info("HTTP Request: GET http://x")
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "info" in err[0] and "bridge.x: demo deployed" in err[0]
    assert "task_group_id=tg-1" in err[0] and not err[0].startswith("{")


def test_json_keeps_access_lines(monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("HETEROFLOW_LOG_FORMAT", "json")
    configure_logging("INFO", "json")
    logging.getLogger("sanic.access").info("", extra={"path": "/api/v1/task-groups"})
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["event"] == "request" and line["path"] == "/api/v1/task-groups"


def test_chat_reads_stream_deltas() -> None:
    chunk = {"choices": [{"delta": {"content": "Hel"}}]}
    assert _delta("data: " + json.dumps(chunk)) == "Hel"
    assert _delta("data: [DONE]") == "" and _delta(": keep-alive") == ""
    assert _delta('data: {"choices": [{"delta": {}}]}') == ""


def test_chat_key_comes_from_flag_env_or_the_demo_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HETEROFLOW_API_KEY", raising=False)
    with pytest.raises(ApiError) as missing:
        resolve_key(None, tmp_path)
    assert missing.value.code == "no_api_key"
    (tmp_path / "demo-api-key").write_text("sk-demo\n")
    assert resolve_key(None, tmp_path) == "sk-demo"
    monkeypatch.setenv("HETEROFLOW_API_KEY", "sk-env")
    assert resolve_key(None, tmp_path) == "sk-env"
    assert resolve_key("sk-flag", tmp_path) == "sk-flag"


def _sse(*contents: str) -> bytes:
    events = [{"choices": [{"delta": {"role": "assistant"}}]}]
    events += [{"choices": [{"delta": {"content": c}}]} for c in contents]
    return b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events) + (
        b"data: [DONE]\n\n")


def _chat_args(prompt: str = "Say hello.") -> Any:
    return build_parser().parse_args(["chat", "demo", prompt, "-key", "sk-test"])


def test_chat_streams_the_answer_to_stdout(capsys: pytest.CaptureFixture[str],
                                           tmp_path: Path) -> None:
    with respx.mock:
        route = respx.post("http://hf.test/v1/chat/completions").respond(
            200, content=_sse("Hel", "lo!"), headers={"content-type": "text/event-stream"})
        run_chat("http://hf.test", _chat_args(), tmp_path)
    sent = json.loads(route.calls[0].request.content)
    assert sent["stream"] is True and sent["model"] == "demo"
    assert route.calls[0].request.headers["authorization"] == "Bearer sk-test"
    assert capsys.readouterr().out == "Hello!\n"


def test_chat_says_so_when_the_answer_is_empty(capsys: pytest.CaptureFixture[str],
                                               tmp_path: Path) -> None:
    with respx.mock:
        respx.post("http://hf.test/v1/chat/completions").respond(
            200, content=_sse(), headers={"content-type": "text/event-stream"})
        run_chat("http://hf.test", _chat_args(), tmp_path)
    assert "no text" in capsys.readouterr().err


def test_chat_shows_the_gateway_refusal(tmp_path: Path) -> None:
    with respx.mock:
        respx.post("http://hf.test/v1/chat/completions").respond(
            401, json={"error": {"code": "invalid_api_key", "message": "unknown key"}})
        with pytest.raises(ApiError) as refused:
            run_chat("http://hf.test", _chat_args(), tmp_path)
    assert refused.value.status == 401 and refused.value.message == "unknown key"
