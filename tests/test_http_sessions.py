"""`SessionOwners`: an MCP session answers only to the bearer that opened it; memory bounded.

Driven through ASGI in process, around a stand-in for the SDK's session
manager that hands out a session id per opening request, answers its own 404
for ids it does not know, and ends a session on DELETE. The real manager,
behind a real process, is in `test_http_trust.py`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from itertools import count
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from starlette.types import Receive, Scope, Send

from nemo_mcp.server.http import BearerGate, SessionOwners

TOKENS = ("alice-secret-token-0123", "bob-secret-token-4567")


class Manager:
    """Answers like the SDK's manager: 200 + a new id without one, 404 for unknown ids."""

    def __init__(self) -> None:
        self.live: set[str] = set()
        self.served: list[tuple[str, str | None]] = []
        self._ids = count(1)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope["headers"])
        session = headers.get(b"mcp-session-id", b"").decode() or None
        self.served.append((scope["method"], session))
        extra: list[tuple[bytes, bytes]] = []
        status = 200
        if session is None:
            session = f"session-{next(self._ids)}"
            self.live.add(session)
            extra.append((b"mcp-session-id", session.encode()))
        elif session not in self.live:
            status = 404
        elif scope["method"] == "DELETE":
            self.live.discard(session)
        await send({"type": "http.response.start", "status": status, "headers": extra})
        await send({"type": "http.response.body", "body": b"{}"})


@pytest.fixture
async def stack() -> AsyncIterator[tuple[httpx.AsyncClient, SessionOwners, Manager]]:
    manager = Manager()
    owners = SessionOwners(manager, per_owner=3)
    app = BearerGate(owners, [SecretStr(t) for t in TOKENS])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1"
    ) as http:
        yield http, owners, manager


def _as(token: str, session: str | None = None) -> dict[str, str]:
    headers = {"authorization": f"Bearer {token}"}
    if session is not None:
        headers["mcp-session-id"] = session
    return headers


async def _open(http: httpx.AsyncClient, token: str) -> str:
    response = await http.post("/mcp", headers=_as(token), json={})
    assert response.status_code == 200
    return response.headers["mcp-session-id"]


@pytest.mark.parametrize("method", ["POST", "GET", "DELETE"])
async def test_another_bearer_gets_404_and_never_reaches_the_session(
    stack: Any, method: str
) -> None:
    http, _, manager = stack
    session = await _open(http, TOKENS[0])
    response = await http.request(method, "/mcp", headers=_as(TOKENS[1], session))
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "Session not found"
    assert [s for s in manager.served if s[1] == session] == []  # the manager never saw it
    owner = await http.post("/mcp", headers=_as(TOKENS[0], session), json={})
    assert owner.status_code == 200 and session in manager.live


async def test_an_unknown_session_is_404_for_everyone(stack: Any) -> None:
    http, _, manager = stack
    response = await http.post("/mcp", headers=_as(TOKENS[0], "made-up"), json={})
    assert response.status_code == 404 and manager.served == []


async def test_the_owners_delete_forgets_the_session(stack: Any) -> None:
    http, owners, manager = stack
    session = await _open(http, TOKENS[0])
    assert (await http.delete("/mcp", headers=_as(TOKENS[0], session))).status_code == 200
    assert len(owners) == 0 and session not in manager.live
    again = await http.post("/mcp", headers=_as(TOKENS[0], session), json={})
    assert again.status_code == 404 and len(manager.served) == 2  # not passed on again


async def test_a_session_the_manager_ended_is_forgotten(stack: Any) -> None:
    http, owners, manager = stack
    session = await _open(http, TOKENS[0])
    manager.live.clear()  # idle timeout inside the SDK
    assert (await http.post("/mcp", headers=_as(TOKENS[0], session), json={})).status_code == 404
    assert len(owners) == 0


async def test_memory_is_bounded_per_bearer(stack: Any) -> None:
    http, owners, _ = stack
    alice = [await _open(http, TOKENS[0]) for _ in range(3)]
    bob = await _open(http, TOKENS[1])
    # Using alice's oldest makes it her most recent; the next one she opens pushes out
    # her least recently used, never bob's.
    assert (await http.post("/mcp", headers=_as(TOKENS[0], alice[0]), json={})).status_code == 200
    alice.append(await _open(http, TOKENS[0]))
    assert len(owners) == 4
    kept = {
        s: (await http.post("/mcp", headers=_as(TOKENS[0], s), json={})).status_code for s in alice
    }
    assert kept == {alice[0]: 200, alice[1]: 404, alice[2]: 200, alice[3]: 200}
    assert (await http.post("/mcp", headers=_as(TOKENS[1], bob), json={})).status_code == 200


async def test_the_bearer_itself_is_never_kept(stack: Any) -> None:
    http, owners, _ = stack
    await _open(http, TOKENS[0])
    kept = repr(vars(owners))
    assert TOKENS[0] not in kept


async def test_refused_openings_record_nothing(stack: Any) -> None:
    http, owners, manager = stack
    response = await http.post("/mcp", headers={"authorization": "Bearer wrong"}, json={})
    assert response.status_code == 401 and manager.served == [] and len(owners) == 0
