"""`POST /run_sse`: a message to the scripted agent, answered as a server-sent event stream.

Refusals come before the stream (422, 404 `Session not found`, 1001, 2001).
The stream forwards the job's events in the configured SSE style with
heartbeats whenever the agent is quiet for `heartbeat_interval`, and closes
when the job ends (no sentinel). The stream faults act here: `stream_drop`
cuts the connection mid-frame, `error_frame` ends with an error frame, and
`heartbeats_only` sends nothing else.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncIterator

from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import StreamingResponse

from nemo_mcp.sandbox.agent import Job, Work, plan
from nemo_mcp.sandbox.api import validated
from nemo_mcp.sandbox.config import Fault, SandboxConfig
from nemo_mcp.sandbox.events import AUTHOR, encode, frame, heartbeat_frame
from nemo_mcp.sandbox.protocol import ApiError, DetailError
from nemo_mcp.sandbox.routing import Call, endpoint

APP_NAME = "nemo_agent"
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class StreamCut(Exception):
    """Raised to make the server drop the connection without ending the response."""


class QuietStreamCut(logging.Filter):
    """Keeps the server's error log free of the cuts the sandbox makes on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, StreamCut)


class _Part(BaseModel):
    model_config = ConfigDict(extra="allow")
    text: str | None = None


class _Content(BaseModel):
    model_config = ConfigDict(extra="allow")
    parts: list[_Part] = Field(min_length=1)
    role: str | None = None


class RunBody(BaseModel):
    """The ADK `RunAgentRequest` body of `/run_sse`."""

    model_config = ConfigDict(extra="ignore")
    app_name: str
    user_id: str
    session_id: str
    new_message: _Content
    streaming: bool = False


def sse(frames: AsyncIterator[bytes]) -> StreamingResponse:
    return StreamingResponse(frames, media_type="text/event-stream", headers=SSE_HEADERS)


@endpoint("run_sse")
async def run_sse(call: Call) -> StreamingResponse:
    """Send one message to the agent of one of the caller's sessions."""
    body = validated(RunBody, await call.json())
    if body.app_name != APP_NAME:
        raise DetailError(404, f"App not found: {body.app_name}")
    session = call.session(body.session_id, detail=True)
    text = "".join(p.text for p in body.new_message.parts if p.text)
    call.world.messages.append({"session_id": session.session_id, "text": text})

    quiet = call.fault("heartbeats_only")
    if quiet is not None:
        return sse(heartbeats_only(float(quiet.param("duration")), call.config))
    if call.fault("out_of_credits") is not None:
        call.user.available = 0
        raise ApiError(2001, "out of credits: 0 available")

    work = Work(
        call.world, session, call.user, call.config, call.base_url, text, plan(text, session)
    )
    if work.cost:
        call.world.freeze(call.user, work.cost)
    job = Job(work)
    job.start()
    return sse(job_frames(job, call.config, call.fault("stream_drop"), call.fault("error_frame")))


async def job_frames(
    job: Job, config: SandboxConfig, drop: Fault | None, error: Fault | None
) -> AsyncIterator[bytes]:
    """The job's events as frames, with heartbeats while it is quiet."""
    beats = sent = 0
    while True:
        try:
            event = await asyncio.wait_for(job.queue.get(), config.heartbeat_interval)
        except asyncio.TimeoutError:
            yield heartbeat_frame(config.heartbeat, beats, config.sse)
            beats += 1
            continue
        if event is None:
            break
        for data in encode(event, config.sse, job.invocation):
            if drop is not None and sent >= int(drop.param("after")):
                yield data[: len(data) // 2]
                raise StreamCut()  # the job carries on without its listener
            yield data
            sent += 1
        if error is not None:
            yield failure_frame(error, job.invocation)
            job.cancel()
            return
    if drop is not None:
        yield b'data: {"content":{"parts":[{"te'
        raise StreamCut()


def failure_frame(fault: Fault, invocation: str) -> bytes:
    """The `error_frame` fault's frame: the gateway's error frame, or the model's failure
    as an ADK event (`errorCode`, `errorMessage`)."""
    message, code = str(fault.param("message")), fault.param("code")
    if fault.param("form") == "adk":
        return frame(
            {
                "errorCode": str(code),
                "errorMessage": message,
                "invocationId": invocation,
                "author": AUTHOR,
                "id": secrets.token_hex(8),
                "timestamp": time.time(),
            }
        )
    return frame({"error": message, "code": code})


async def heartbeats_only(duration: float, config: SandboxConfig) -> AsyncIterator[bytes]:
    """Keep-alives and nothing else for `duration` seconds, then the end of the stream."""
    loop = asyncio.get_running_loop()
    end = loop.time() + duration
    beats = 0
    while (left := end - loop.time()) > 0:
        await asyncio.sleep(min(config.heartbeat_interval, left))
        if end - loop.time() > 0:
            yield heartbeat_frame(config.heartbeat, beats, config.sse)
            beats += 1


__all__ = ["QuietStreamCut", "RunBody", "StreamCut", "run_sse"]
