"""Prometheus metrics (`NEMO_METRICS`: off by default; a port of their own, or a path on
the server's port), from PyPI `prometheus-client` (the `hosted` extra).

    nemo_tool_calls_total{tool,outcome}        calls answered: ok, error, waiting
    nemo_tool_call_seconds{tool}               how long each call took (histogram)
    nemo_messages_sent_total                   messages that left for the agent
    nemo_renders_started_total                 renders started
    nemo_queue_position                        how many requests ran ahead of each one
                                               accepted (histogram)
    nemo_users_open                            users open in this process now
    nemo_users_closed_total                    users closed (idle, or least recently used)
    nemo_users_working                         users whose work runs here now
    nemo_redis_errors_total                    Redis failures (refused, unreachable, stalled)

Each server has a registry of its own (never the process-wide default), so several
servers in one process never mix their figures. `Metrics.off()` counts nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nemo_mcp.errors import ConfigError


class Metrics:
    """The server's metrics, or nothing at all when off."""

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self.registry: Any = None
        if not enabled:
            return
        try:
            from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
        except ImportError:
            raise ConfigError(
                "NEMO_METRICS needs prometheus-client: pip install 'nemo-mcp[hosted]'"
            ) from None
        self.registry = CollectorRegistry()
        r = self.registry
        self._calls = Counter(
            "nemo_tool_calls", "Tool calls answered", ["tool", "outcome"], registry=r
        )
        self._seconds = Histogram(
            "nemo_tool_call_seconds",
            "Tool call duration",
            ["tool"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 45, 90, 300, 600),
            registry=r,
        )
        self._messages = Counter("nemo_messages_sent", "Messages sent to the agent", registry=r)
        self._renders = Counter("nemo_renders_started", "Renders started", registry=r)
        self._position = Histogram(
            "nemo_queue_position",
            "Requests ahead of each one accepted",
            buckets=(0, 1, 2, 3, 4, 5),
            registry=r,
        )
        self._open = Gauge("nemo_users_open", "Users open in this process", registry=r)
        self._closed = Counter("nemo_users_closed", "Users closed", registry=r)
        self._working = Gauge("nemo_users_working", "Users whose work runs here", registry=r)
        self._redis = Counter("nemo_redis_errors", "Redis failures", registry=r)

    @classmethod
    def off(cls) -> Metrics:
        return cls(enabled=False)

    # what the server reports -------------------------------------------------------
    def call(self, tool: str, outcome: str, seconds: float) -> None:
        if self.enabled:
            self._calls.labels(tool=tool, outcome=outcome).inc()
            self._seconds.labels(tool=tool).observe(seconds)

    def message_sent(self) -> None:
        if self.enabled:
            self._messages.inc()

    def render_started(self) -> None:
        if self.enabled:
            self._renders.inc()

    def accepted(self, ahead: int) -> None:
        if self.enabled:
            self._position.observe(ahead)

    def user_closed(self) -> None:
        if self.enabled:
            self._closed.inc()

    def redis_error(self) -> None:
        if self.enabled:
            self._redis.inc()

    def watch_users(self, open_now: Callable[[], int], working: Callable[[], int]) -> None:
        """Read the users open and working whenever the metrics are read."""
        if self.enabled:
            self._open.set_function(open_now)
            self._working.set_function(working)

    # exposition --------------------------------------------------------------------
    def text(self) -> tuple[bytes, str]:
        """The metrics in Prometheus's text format, and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def serve(self, port: int, host: str = "0.0.0.0") -> Callable[[], None]:
        """Serve the metrics on `port` of their own (a thread); returns how to stop it."""
        from prometheus_client import start_http_server

        server, thread = start_http_server(port, addr=host, registry=self.registry)

        def stop() -> None:
            server.shutdown()
            server.server_close()
            thread.join(5)

        return stop


__all__ = ["Metrics"]
