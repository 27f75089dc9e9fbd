"""One creative request to the backend agent, from message to an exact report.

The message is sent once. While the stream runs, tool calls become progress
words and state deltas reveal the raw clip the moment it lands. When the
stream closes, the state is read and compared with the state before: that
comparison is the report when the agent said nothing (about 30% of edits),
and the proof of what happened when the stream broke, in which case the
state is read on the documented schedule instead of sending anything again.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import anyio

from nemo_mcp.backend.client import NemoClient
from nemo_mcp.backend.events import (
    ErrorEvent,
    ReplyAssembler,
    StateDeltaEvent,
    StreamEvent,
    TextEvent,
    ToolCallEvent,
    ToolResultEvent,
)
from nemo_mcp.backend.stream import StreamLimits, send_message
from nemo_mcp.errors import (
    AgentError,
    BackendError,
    BackendTimeoutError,
    NemoError,
    SessionNotFoundError,
    StreamBrokenError,
    TransportError,
)
from nemo_mcp.server.jobs import Job, format_duration
from nemo_mcp.server.outputs import GenerateOutput
from nemo_mcp.settings import Settings
from nemo_mcp.store import GenerationRecord
from nemo_mcp.timeline import diff, parse_draft, summarize

log = logging.getLogger(__name__)

_TOOL_WORDS = {
    "generate": "generating the clip",
    "video": "generating the clip",
    "bgm": "adding music",
    "music": "adding music",
    "audio": "adding audio",
    "title": "adding a title",
    "text": "adding text",
    "subtitle": "adding subtitles",
    "caption": "adding captions",
    "trim": "trimming",
    "cut": "cutting",
    "volume": "changing the volume",
    "effect": "adding effects",
    "transition": "adding transitions",
    "remove": "removing",
    "upload": "reading the upload",
}
_TEMPORARY_ISSUE = "i encountered a temporary issue"


def tool_words(name: str) -> str:
    """A backend tool's name in words a person understands."""
    low = name.lower()
    for key, words in _TOOL_WORDS.items():
        if key in low:
            return words
    return name.replace("_", " ").strip() or "working"


def _has_video(draft: Any) -> bool:
    return any(t.kind == "video" and t.segments for t in parse_draft(draft).tracks)


def _same_draft(a: Any, b: Any) -> bool:
    return not diff(parse_draft(a), parse_draft(b))


@dataclass
class GenerationRun:
    """The live state of one message while it streams."""

    message: str
    before: Any = None
    reply: ReplyAssembler = field(default_factory=ReplyAssembler)
    errors: list[str] = field(default_factory=list)


async def run_generation(
    client: NemoClient,
    settings: Settings,
    job: Job[GenerateOutput],
    message: str,
    *,
    resumed: GenerationRecord | None = None,
) -> GenerateOutput:
    """Send `message` once and return the report; used as the job's work.

    The message is recorded on disk, with the timeline before it, from just
    before it is sent until its outcome is known. `resumed` is such a record
    left by a server that stopped mid-way: its outcome is read from the
    timeline, and nothing is sent.
    """
    store = client.store
    try:
        if resumed is not None:
            run = GenerationRun(message=message, before=resumed.before)
            restarted = StreamBrokenError("the server restarted while the agent was working")
            output = await _recover(client, settings, job, run, restarted)
        else:
            output = await _generate(client, settings, job, message)
    except anyio.get_cancelled_exc_class():
        raise  # shutting down: keep the record, so a restart recovers instead of re-sending
    except BaseException:
        store.clear_generation()
        raise
    store.clear_generation()
    return output


async def _generate(
    client: NemoClient, settings: Settings, job: Job[GenerateOutput], message: str
) -> GenerateOutput:
    run = GenerationRun(message=message)
    job.set_phase("reading the timeline before the change")
    try:
        run.before = (await client.state()).state.draft
    except (TransportError, BackendError) as err:
        if isinstance(err, SessionNotFoundError):
            raise
        log.info("could not read the state before sending (%s); diff will be partial", err)
    had_video = _has_video(run.before)
    session = await client.session()
    client.store.save_generation(
        GenerationRecord(
            message=message,
            session_id=session.session_id,
            started_at=time.time(),
            before=run.before,
        )
    )

    async def on_event(event: StreamEvent) -> None:
        if isinstance(event, TextEvent):
            run.reply.add(event)
            job.set_phase("the agent is answering")
        elif isinstance(event, ToolCallEvent):
            job.set_phase(tool_words(event.name))
        elif isinstance(event, ToolResultEvent):
            job.set_phase(f"{tool_words(event.name)}: done")
        elif isinstance(event, StateDeltaEvent):
            draft = event.delta.get("draft")
            if draft is not None:
                # A waiting caller is shown the timeline as it is so far.
                job.timeline = summarize(parse_draft(draft))
                if not had_video and "raw_clip" not in job.milestones and _has_video(draft):
                    job.milestones.add("raw_clip")
                    job.set_phase(
                        f"raw clip ready after {format_duration(job.elapsed)}; finishing touches"
                    )
        elif isinstance(event, ErrorEvent):
            run.errors.append(event.message)

    job.set_phase("sending the request")
    limits = StreamLimits(total=settings.stream_total, idle=settings.stream_idle)
    try:
        outcome = await send_message(client, message, on_event, limits=limits)
    except (StreamBrokenError, BackendTimeoutError) as err:
        return await _recover(client, settings, job, run, err)
    if outcome.meaningful == 0:
        # Closed cleanly with nothing but heartbeats: the agent may still be working
        # behind the gateway. Read the state on the schedule, as after a break.
        empty = StreamBrokenError("the agent stream closed without an answer")
        return await _recover(client, settings, job, run, empty)
    job.set_phase("reading the timeline after the change")
    after = (await client.state()).state.draft
    changes = [c.text for c in diff(parse_draft(run.before), parse_draft(after))]
    text = _reply_text(run)
    if not text and not changes and run.errors:
        raise AgentError(f"The NemoVideo agent reported a problem: {run.errors[-1]}")
    if not text and not changes:
        # A silent edit may land a moment after the stream closes.
        await anyio.sleep(min(2.0, settings.recovery_delays[0]))
        after = (await client.state()).state.draft
        changes = [c.text for c in diff(parse_draft(run.before), parse_draft(after))]
    return _report(job, client, run, after, changes, text, recovered=False)


def _reply_text(run: GenerationRun) -> str:
    messages = run.reply.messages
    if len(messages) > 1 and messages[-1].strip().lower().startswith(_TEMPORARY_ISSUE):
        messages = messages[:-1]
    return "\n\n".join(m.strip() for m in messages if m.strip())


def _report(
    job: Job[GenerateOutput],
    client: NemoClient,
    run: GenerationRun,
    after: Any,
    changes: list[str],
    text: str,
    *,
    recovered: bool,
) -> GenerateOutput:
    from nemo_mcp.replies import gui  # its pattern tables compile on import; only replies need them

    translation = gui.translate(text) if text else None
    reply = translation.text if translation else ""
    if not reply:
        reply = (
            "Done."
            if changes
            else "The agent finished without a reply, and the timeline did not change."
        )
    # The timeline is shown with every result, so "look at the timeline" is no step.
    actions = [a for a in (translation.actions if translation else []) if a != "timeline"]
    draft = parse_draft(after)
    if draft.ready and "export" not in actions:
        actions.append("export")
    steps = [_STEP.get(action, f"Call `{action}`.") for action in actions]
    return GenerateOutput(
        status="completed",
        reply=reply,
        changes=changes,
        timeline=summarize(draft),
        raw_clip_ready=_has_video(after),
        recovered=recovered,
        next_steps=steps,
        elapsed_seconds=round(job.elapsed, 1),
        session_id=client.session_id,
    )


_STEP = {
    "export": "Call `export` to render and download the MP4 (free).",
    "timeline": "Call `timeline` to see every track.",
    "credits": "Call `credits` to see the balance.",
    "generate": "Call `generate` with the change you want (an edit costs about 50 credits).",
    "upload": "Call `upload` with the file paths or URLs.",
}


async def _recover(
    client: NemoClient,
    settings: Settings,
    job: Job[GenerateOutput],
    run: GenerationRun,
    err: NemoError,
) -> GenerateOutput:
    """The stream broke: read the state on the documented schedule; never re-send."""
    log.info("stream ended abnormally (%s); recovering from the state", err)
    seen: Any = None
    checks = len(settings.recovery_delays)
    for n, delay in enumerate(settings.recovery_delays, start=1):
        job.set_phase(
            f"no answer from the agent; checking the timeline ({n}/{checks}), nothing is re-sent"
        )
        await anyio.sleep(delay)
        try:
            draft = (await client.state()).state.draft
        except (TransportError, BackendError) as read_err:
            if isinstance(read_err, SessionNotFoundError):
                raise
            continue
        if _same_draft(draft, run.before):
            continue
        if seen is not None and _same_draft(draft, seen):
            break  # changed, and settled
        seen = draft
    if seen is None:
        what = "stopped answering" if isinstance(err, BackendTimeoutError) else "dropped"
        raise StreamBrokenError(
            f"The connection to NemoVideo {what} ({err.message}) and the timeline has not "
            f"changed after {checks} checks over {format_duration(sum(settings.recovery_delays))}. "
            "The request was not sent twice. Call `timeline` to check later, or `generate` again "
            "to retry (that sends it again and may cost credits)."
        )
    changes = [c.text for c in diff(parse_draft(run.before), parse_draft(seen))]
    text = _reply_text(run)
    output = _report(job, client, run, seen, changes, text, recovered=True)
    output.reply = (
        "The connection dropped before the agent finished, but the work went through "
        "(read from the timeline; nothing was sent twice). " + output.reply
    ).strip()
    return output
