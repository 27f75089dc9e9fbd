"""Asking before spending credits, through the SDK's real `Client` in both protocol modes:
the question, no and cancel (nothing sent), yes (sent once), clients that cannot be asked,
the setting's modes, and the registration link by URL elicitation."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp_types import ElicitRequestFormParams, ElicitRequestURLParams, ElicitResult

from nemo_mcp.errors import ConfigError
from nemo_mcp.server import create_server
from nemo_mcp.server.spending import estimate, question, should_ask
from nemo_mcp.settings import Settings, SpendingRule, settings_from_env

from mcp_harness import make_settings, text_of

MODES = ["auto", "legacy"]
PROMPT = "a 10-second video of a city at night"


@dataclass
class User:
    """The person behind the client: answers every question the same way, and keeps them."""

    answer: str = "yes"  # yes | no-button | decline | cancel
    forms: list[ElicitRequestFormParams] = field(default_factory=list)
    links: list[ElicitRequestURLParams] = field(default_factory=list)

    async def __call__(self, _context: Any, params: Any) -> ElicitResult:
        if isinstance(params, ElicitRequestURLParams):
            self.links.append(params)
            return ElicitResult(action="accept")
        self.forms.append(params)
        if self.answer in ("decline", "cancel"):
            return ElicitResult(action=self.answer)  # type: ignore[arg-type]
        return ElicitResult(action="accept", content={"send": self.answer == "yes"})


def client(settings: Settings, mode: str, user: User | None) -> Client:
    return Client(create_server(settings), mode=mode, elicitation_callback=user)


def sent(sandbox: Any) -> int:
    """Messages that reached the backend's agent (`/run_sse` requests)."""
    return int(sandbox.control.stats()["requests"].get("run_sse", 0))


@pytest.fixture(autouse=True)
def quick(sandbox: Any) -> None:
    sandbox.control.set(generation_seconds=0.1, edit_seconds=0.05)


@pytest.mark.parametrize("mode", MODES)
async def test_yes_sends_the_request_once(tmp_path: Path, sandbox: Any, mode: str) -> None:
    user = User("yes")
    async with client(make_settings(tmp_path, sandbox.url), mode, user) as c:
        made = await c.call_tool("generate", {"message": PROMPT})
    assert not made.is_error, text_of(made)
    assert made.structured_content is not None
    assert made.structured_content["status"] == "completed"
    [asked] = user.forms
    assert f'"{PROMPT}"' in asked.message
    assert "It is a new clip: about 100 credits." in asked.message
    assert "Balance (free trial): 100 credits; about 0 after this request." in asked.message
    assert asked.requested_schema["properties"]["send"]["type"] == "boolean"
    assert sent(sandbox) == 1


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("answer", ["decline", "cancel", "no-button"])
async def test_no_or_cancel_sends_nothing(
    tmp_path: Path, sandbox: Any, mode: str, answer: str
) -> None:
    user = User(answer)
    async with client(make_settings(tmp_path, sandbox.url), mode, user) as c:
        refused = await c.call_tool("generate", {"message": PROMPT})
        again = await c.call_tool("generate", {"message": PROMPT})  # nothing recorded: asked again
        credits = await c.call_tool("credits", {})
    assert not refused.is_error and refused.structured_content is not None
    assert refused.structured_content["status"] == "declined"
    why = "dismissed the question about" if answer == "cancel" else "declined to spend"
    assert text_of(refused).startswith(f"Not sent: the user {why} the credits")
    assert "nothing was sent or charged" in text_of(refused)
    assert text_of(again) == text_of(refused) and len(user.forms) == 2
    assert sent(sandbox) == 0
    assert credits.structured_content is not None
    assert credits.structured_content["available"] == 100


@pytest.mark.parametrize("mode", MODES)
async def test_clients_without_elicitation_are_not_asked(
    tmp_path: Path, sandbox: Any, mode: str
) -> None:
    async with client(make_settings(tmp_path, sandbox.url), mode, None) as c:
        made = await c.call_tool("generate", {"message": PROMPT})
    # Asking a client that cannot answer would fail the call (a missing capability).
    assert not made.is_error, text_of(made)
    assert made.structured_content is not None
    assert made.structured_content["status"] == "completed"
    assert sent(sandbox) == 1


@pytest.mark.parametrize("mode", MODES)
async def test_requests_already_answered_are_not_asked_about(
    tmp_path: Path, sandbox: Any, mode: str
) -> None:
    sandbox.control.set(initial_credits=1000)
    user = User("yes")
    async with client(make_settings(tmp_path, sandbox.url), mode, user) as c:
        await c.call_tool("generate", {"message": PROMPT})
        repeated = await c.call_tool("generate", {"message": f"  {PROMPT.upper()} "})
        assert len(user.forms) == 1  # the ledger answers it: it costs nothing
        assert "already answered" in text_of(repeated)
        edit = await c.call_tool("generate", {"message": "add lo-fi music at 40%"})
        forced = await c.call_tool("generate", {"message": PROMPT, "again": True})
        sorted_out = await c.call_tool("generate", {"message": "export the video"})
    assert not edit.is_error and not forced.is_error, (text_of(edit), text_of(forced))
    assert len(user.forms) == 3  # the edit and the new request on purpose, not the export
    edit_question = user.forms[1].message
    assert "It is an edit of the current video: about 50 credits." in edit_question
    assert "Balance (free trial): 900 credits; about 850 after" in edit_question
    assert "It is an edit of the current video" in user.forms[2].message  # a video is there now
    assert sorted_out.structured_content is not None
    assert sorted_out.structured_content["status"] == "not_sent"
    assert sent(sandbox) == 3


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("rule", "asks"),
    [("always", True), ("never", False), ("below:200", False), ("below:950", True)],
)
async def test_the_setting_decides_when_to_ask(
    tmp_path: Path, sandbox: Any, mode: str, rule: str, asks: bool
) -> None:
    sandbox.control.set(initial_credits=1000)  # 900 left after a new clip
    settings = make_settings(tmp_path, sandbox.url, confirm_spending=SpendingRule.parse(rule))
    user = User("yes")
    async with client(settings, mode, user) as c:
        made = await c.call_tool("generate", {"message": PROMPT})
    assert not made.is_error, text_of(made)
    assert len(user.forms) == (1 if asks else 0)
    assert sent(sandbox) == 1


@pytest.mark.parametrize("mode", MODES)
async def test_out_of_credits_hands_over_the_registration_link(
    tmp_path: Path, sandbox: Any, mode: str
) -> None:
    sandbox.control.set(initial_credits=0)
    settings = make_settings(tmp_path, sandbox.url)
    plain = tmp_path / "plain"
    plain.mkdir()
    user = User("yes")
    async with client(settings, mode, user) as c:
        refused = await c.call_tool("generate", {"message": PROMPT})
    async with client(make_settings(plain, sandbox.url), mode, None) as c:
        as_text = await c.call_tool("generate", {"message": PROMPT})
    assert refused.is_error and as_text.is_error
    assert user.forms == []  # nothing to confirm: the balance cannot pay for it
    [link] = user.links
    assert link.url.startswith("https://web.test/register?bind=")
    assert "free trial" in link.message
    assert f"Register for free at {link.url}" in text_of(refused)

    # Everyone gets the same text (each user its own id); the link went by elicitation too.
    def same(text: str) -> str:
        return re.sub(r"bind=\S+", "bind=*", text)

    assert same(text_of(as_text)) == same(text_of(refused))
    assert sent(sandbox) == 2  # one refused request each; the retry after the link sent nothing


# The rules alone ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("always", SpendingRule("always")),
        (" NEVER ", SpendingRule("never")),
        ("below:200", SpendingRule("below", 200)),
        ("below:0", SpendingRule("below", 0)),
        ("Below:12.5", SpendingRule("below", 12.5)),
    ],
)
def test_spending_rule_parses(text: str, rule: SpendingRule) -> None:
    assert SpendingRule.parse(text) == rule
    assert settings_from_env({"NEMO_CONFIRM_SPENDING": text}).confirm_spending == rule


@pytest.mark.parametrize("text", ["sometimes", "below", "below:", "below:-5", "below:inf", "200"])
def test_bad_spending_rules_are_refused(text: str) -> None:
    with pytest.raises(ConfigError, match="NEMO_CONFIRM_SPENDING must be always, never or below"):
        settings_from_env({"NEMO_CONFIRM_SPENDING": text})


@pytest.mark.parametrize(
    ("rule", "available", "cost", "asks"),
    [
        ("always", 1000, 100, True),
        ("always", 100, 100, True),
        ("always", 99, 100, False),  # cannot pay: the backend refuses it for free
        ("always", None, 100, True),
        ("never", 1000, 100, False),
        ("never", None, 50, False),
        ("below:200", 300, 100, False),
        ("below:200", 299, 100, True),
        ("below:200", None, 50, True),
        ("below:0", 100, 100, False),
    ],
)
def test_should_ask(rule: str, available: float | None, cost: int, asks: bool) -> None:
    assert should_ask(SpendingRule.parse(rule), available=available, cost=cost) is asks


def test_question_words() -> None:
    long = "a video " * 40
    text = question(long, estimate(edit=True), available=None, anonymous=False)
    assert text.splitlines()[0].endswith('…"') and len(text.splitlines()[0]) < 200
    assert "It is an edit of the current video: about 50 credits." in text
    assert "The balance could not be read just now." in text
    assert text.endswith("Nothing is sent or charged unless you agree.")
    paid = question("x", estimate(edit=False), available=40, anonymous=False)
    assert "Balance: 40 credits; about 0 after this request." in paid


async def test_waits_never_ask_before_spending(tmp_path: Path, sandbox: Any) -> None:
    """A wait by id, and the same words repeated with `again: true` while they run, are
    waits: the user is asked once, for the one request that is sent."""
    sandbox.control.set(generation_seconds=1.5, initial_credits=1000)
    user = User("yes")
    settings = make_settings(tmp_path, sandbox.url, tool_timeout=0.3)
    async with client(settings, "auto", user) as c:
        first = await c.call_tool("generate", {"message": PROMPT, "again": True})
        assert first.structured_content is not None, text_of(first)
        handle = first.structured_content["request_id"]
        repeat = await c.call_tool("generate", {"message": PROMPT, "again": True})
        assert not repeat.is_error, text_of(repeat)
        for _ in range(100):
            waited = await c.call_tool("generate", {"request_id": handle})
            assert waited.structured_content is not None, text_of(waited)
            if waited.structured_content["status"] == "completed":
                break
    assert waited.structured_content["status"] == "completed"
    assert len(user.forms) == 1
    assert sent(sandbox) == 1
