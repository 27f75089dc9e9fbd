"""The anonymous token's 7-day rule, as the contract states it: one token per client id
per 7 days, refused afterwards with a 429 that promises no `Retry-After`.

With the saved token deleted or damaged, the first call answers at once, in one
sentence: what is missing, the rule, and what to do (set NEMO_TOKEN, or wait until
the date when it is known). Other 429s keep the contract's wait-and-retry, but only
where the wait fits the tool's budget."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from test_damaged_state import DAMAGES, FIRST_CALL_SECONDS, prepared, state_file, timed

from mcp_harness import connect, text_of


def one_sentence(text: str) -> bool:
    return re.search(r"[.!?]\s+[A-Z]", text.strip()) is None


def credit_reads(sandbox: Any) -> list[int]:
    return [r["status"] for r in sandbox.control.requests() if r["route"] == "credits"]


def expiry_of(auth: Path) -> datetime:
    found = re.search(r'"expires_at"\s*:\s*"([^"]+)"', auth.read_text())
    assert found is not None
    return datetime.fromisoformat(found.group(1).replace("Z", "+00:00"))


#: The 429's wire forms: its HTTP status, or HTTP 200 with the code, or (the documented
#: success envelope) HTTP 200 with only the words.
WIRE_FORMS = {
    "http-429": {},
    "code-in-200": {"error_status": "ok"},
    "words-in-200": {"error_status": "ok", "envelope": "success", "success_error_code": False},
}


@pytest.mark.parametrize("form", sorted(WIRE_FORMS))
async def test_a_deleted_token_meets_the_bare_429_in_one_fast_sentence(
    tmp_path: Path, sandbox: Any, form: str
) -> None:
    settings = await prepared(tmp_path, sandbox)
    sandbox.control.set(**WIRE_FORMS[form])
    auth = state_file(settings, "auth.json")
    auth.unlink()
    async with connect(settings) as session:
        first, took = await timed(session, "credits")
        again, _ = await timed(session, "credits")
    text = text_of(first)
    assert took < FIRST_CALL_SECONDS, f"{took:.1f} s: {text}"
    assert first.is_error and one_sentence(text), text
    assert "missing" in text and str(auth.parent) in text
    assert "one free token per computer every 7 days" in text and "NEMO_TOKEN" in text
    assert "did not answer" not in text and "network" not in text
    # The bare 429 was met: the backend sent no wait, and none was invented.
    log = [r for r in sandbox.control.requests() if r["route"] == "anonymous_token"]
    # One token, then one refused ask per call: the next call tried again.
    refusal = 429 if form == "http-429" else 200
    assert [r["status"] for r in log] == [200, refusal, refusal]
    assert again.is_error and "one free token" in text_of(again)


@pytest.mark.parametrize("damage", ["truncated", "empty"])
async def test_a_damaged_token_names_where_it_went_and_the_date_when_known(
    tmp_path: Path, sandbox: Any, damage: str
) -> None:
    settings = await prepared(tmp_path, sandbox)
    auth = state_file(settings, "auth.json")
    expires = expiry_of(auth)
    if damage == "truncated":  # cut after the expiry, which can still be read
        raw = auth.read_text()
        auth.write_text(raw[: raw.index('"anonymous"')])
    else:
        DAMAGES[damage](auth)
    async with connect(settings) as session:
        first, took = await timed(session, "credits")
    text = text_of(first)
    assert took < FIRST_CALL_SECONDS, f"{took:.1f} s: {text}"
    assert first.is_error and one_sentence(text), text
    assert "damaged" in text and ".damaged-" in text and "NEMO_TOKEN" in text
    assert "one free token per computer every 7 days" in text
    day = expires.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    if damage == "truncated":
        assert f"wait until {day}" in text, text
    else:
        assert "wait until" not in text and "7 days" in text


async def test_a_retry_after_on_the_token_429_gives_the_date(tmp_path: Path, sandbox: Any) -> None:
    settings = await prepared(tmp_path, sandbox)
    sandbox.control.set(token_retry_after=True)
    auth = state_file(settings, "auth.json")
    expires = expiry_of(auth)
    auth.unlink()
    async with connect(settings) as session:
        first, took = await timed(session, "credits")
    text = text_of(first)
    assert took < FIRST_CALL_SECONDS and first.is_error and one_sentence(text), text
    # The header's seconds, counted from now, land on the old token's expiry (give or
    # take the minute the date is rounded to).
    found = re.search(r"wait until (\d{4}-\d\d-\d\d \d\d:\d\d) UTC", text)
    assert found is not None, text
    named = datetime.strptime(found.group(1), "%Y-%m-%d %H:%M").replace(tzinfo=timezone.utc)
    assert abs((named - expires).total_seconds()) <= 120


async def test_a_bare_429_elsewhere_waits_only_when_the_wait_fits_the_budget(
    tmp_path: Path, sandbox: Any
) -> None:
    """The contract's 30 s wait does not fit a 20 s tool budget: the 429 is said at once
    (never a false "did not answer"); a short Retry-After is waited and retried once."""
    settings = await prepared(tmp_path, sandbox)
    before = len(credit_reads(sandbox))
    sandbox.control.fault("rate_limited", route="credits", retry_after=None)
    async with connect(settings) as session:
        bare, took = await timed(session, "credits")
        sandbox.control.fault("rate_limited", route="credits", retry_after="0.2")
        short, _ = await timed(session, "credits")
    assert took < FIRST_CALL_SECONDS and bare.is_error, text_of(bare)
    assert "rate limiting" in text_of(bare) and "did not answer" not in text_of(bare)
    assert not short.is_error, text_of(short)
    assert credit_reads(sandbox)[before:] == [429, 429, 200]


async def test_a_refused_token_whose_renewal_meets_the_429_says_so(
    tmp_path: Path, sandbox: Any
) -> None:
    """1001, then the renewal refused by the 7-day rule: the token was refused (not
    missing), in one sentence, at once; the call was not sent again."""
    settings = await prepared(tmp_path, sandbox)
    expires = expiry_of(state_file(settings, "auth.json"))
    sandbox.control.fault("token_expired", route="credits")
    sandbox.control.fault("rate_limited", route="anonymous_token", retry_after=None)
    async with connect(settings) as session:
        refused, took = await timed(session, "credits")
    text = text_of(refused)
    assert took < FIRST_CALL_SECONDS and refused.is_error and one_sentence(text), text
    assert "refused this computer's saved token" in text and "missing" not in text
    day = expires.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    assert f"wait until {day}" in text and "NEMO_TOKEN" in text
