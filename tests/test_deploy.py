"""The files in `deploy/` are the ones that work: Redis keeps what it acknowledged through
a SIGKILL, HAProxy accepts its configuration, and the guide names real settings and files.

(What HAProxy does with the configuration, stickiness and health checks, is shown in
`test_hosted.py` and `bench/bench_hosted.py`, which run it.)
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest

from nemo_mcp.hosted.local import DEPLOY, Haproxy, RedisServer, missing

ROOT = Path(__file__).resolve().parents[1]
GUIDE = (DEPLOY / "README.md").read_text(encoding="utf-8")


async def test_redis_keeps_what_it_acknowledged_through_a_kill(tmp_path: Path) -> None:
    if reason := missing("redis-server"):
        pytest.skip(reason)
    from redis.asyncio import Redis

    from nemo_mcp.ledger.redis import RedisLedger

    server = RedisServer(tmp_path).start()
    try:
        client = Redis.from_url(server.url, decode_responses=True)
        config = await client.config_get("*")
        assert config["appendonly"] == "yes" and config["appendfsync"] == "always"
        assert config["maxmemory-policy"] == "noeviction"
        ledger = RedisLedger(client, f"nemo:{{{uuid.uuid4().hex}}}:b")
        asked = await ledger.submit(
            user="", kind="message", key="k", session_id="s", request={"m": 1}
        )
        assert asked.entry is not None
        claimed = await ledger.claim_head("", "owner", lease=20)
        assert claimed is not None
        sending = await ledger.save(
            asked.entry.id, "owner", generation=claimed.generation, lease=20, state="sending"
        )
        assert sending is not None
        await client.aclose()
        server.kill()  # no shutdown save: only what was flushed survives
        server.start()
        client = Redis.from_url(server.url, decode_responses=True)
        found = await RedisLedger(client, ledger.prefix).get(asked.entry.id)
        await client.aclose()
    finally:
        server.stop()
    assert found is not None and found.state == "sending" and found.request == {"m": 1}


def test_haproxy_accepts_the_configuration(tmp_path: Path) -> None:
    if reason := missing("haproxy"):
        pytest.skip(reason)
    checked = Haproxy(tmp_path, ["127.0.0.1:8101", "127.0.0.1:8102", "127.0.0.1:8103"]).check()
    assert checked.returncode == 0, checked.stdout + checked.stderr
    text = (DEPLOY / "haproxy.cfg").read_text(encoding="utf-8")
    assert "option httpchk GET /healthz" in text


def test_the_guide_names_real_files_and_settings() -> None:
    source = "".join(
        (ROOT / "src" / "nemo_mcp" / name).read_text(encoding="utf-8")
        for name in ("settings.py", "scale.py", "cli.py")  # cli.py: the log settings
    )
    settings = set(re.findall(r'"(NEMO_[A-Z_]+)"', source))
    config_vars = set(re.findall(r"\$\{(NEMO_[A-Z_0-9]+)", (DEPLOY / "haproxy.cfg").read_text()))
    named = set(re.findall(r"\b(NEMO_[A-Z_0-9]+)\b", GUIDE))
    assert named, "the guide names no settings"
    assert named <= settings | config_vars, named - settings - config_vars
    for path in re.findall(r"`((?:deploy|bench|tests)/[\w./-]+)`", GUIDE):
        assert (ROOT / path).exists(), path
    assert {p.name for p in DEPLOY.iterdir()} == {"README.md", "haproxy.cfg", "redis.conf"}
