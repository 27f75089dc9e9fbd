"""The one retry module: named policies as data, and which failed sends are unclear."""

from __future__ import annotations

import subprocess
import sys

import pytest

from nemo_mcp import retrying
from nemo_mcp.errors import (
    BackendError,
    BackendTimeoutError,
    CreditsError,
    ServerError,
    StreamBrokenError,
    TransportError,
)
from nemo_mcp.retrying import Policy


def test_a_policy_paces_its_tries() -> None:
    policy = Policy("p", attempts=5, first=1.0, factor=2.0, cap=3.0)
    assert list(policy.waits()) == [1.0, 2.0, 3.0, 3.0]
    assert list(policy.tries()) == [0.0, 1.0, 2.0, 3.0, 3.0]


def test_jitter_stays_within_its_spread() -> None:
    policy = Policy("p", attempts=200, first=1.0, factor=1.0, jitter=0.25)
    waits = list(policy.waits())
    assert all(0.75 <= w <= 1.25 for w in waits) and len(set(waits)) > 1


def test_a_pace_from_the_settings() -> None:
    looks = retrying.every(retrying.ARRIVAL, 0.2)
    assert list(looks.tries()) == [0.0, 0.2]


@pytest.mark.parametrize(
    ("err", "unclear"),
    [
        (ServerError("bad gateway", http_status=502), True),
        (BackendError("gateway timeout", http_status=504), True),
        (BackendTimeoutError("no answer"), True),
        (StreamBrokenError("dropped"), True),
        (TransportError("reset"), True),
        (CreditsError("out of credits", code=2001, http_status=402), False),
        (BackendError("render not found", code=404, http_status=404), False),
    ],
)
def test_which_failures_are_unclear(err: BackendError | TransportError, unclear: bool) -> None:
    assert retrying.unclear(err) is unclear


def test_it_stands_below_backend_and_ledger() -> None:
    code = (
        "import sys, nemo_mcp.retrying; "
        "print(sorted(m for m in sys.modules if m.startswith(('nemo_mcp.backend', "
        "'nemo_mcp.ledger'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
