"""The message executor: one creative request to the backend agent, from a ledger
entry to an exact report, sent at most once.

The entry's state says how far an earlier run got, and so what may happen now:

- `queued`: nothing has left. Read the timeline and the credits as they are before the
  request (the evidence a later recovery needs), record `sending`, then send.
- `sending`: the request may have left, but no answer began (a crash, or a connection
  that failed before the stream opened). Evidence decides: if the timeline changed or
  credits were taken or frozen since the recorded baseline, the backend has it, and its
  outcome is read from the state; if nothing at all shows it arrived, it is sent now,
  once, and the answer says so.
- `streaming` / `recovering`: the backend has it. Its outcome is read from the state on
  the documented schedule; nothing is ever sent again.

An unclear send (any 5xx, a gateway's 502/503/504 included, a timeout after the body
left, a dropped connection, an unreadable answer) is never taken as "not sent": it is
recorded (`unclear`, before anything else happens) and resolved by the same evidence as
a crash, read on the documented schedule. While that is open the answer says the
message may have been taken and that nothing will be sent again; when the window
closes with no sign of it, the answer says so and offers `again: true`. The server
never sends it again by itself, not even after a restart.

While the stream runs, tool calls become progress words and state deltas reveal the raw
clip the moment it lands. When the stream closes, the state is read and compared with
the state before: that comparison is the report when the agent said nothing (about 30%
of edits), and the proof of what happened when the stream broke.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import anyio

from nemo_mcp import retrying
from nemo_mcp.backend.client import NemoClient
from nemo_mcp.backend.events import (
    ErrorEvent,
    OpenedEvent,
    ReplyAssembler,
    StateDeltaEvent,
    StreamEvent,
    TextEvent,
    ToolCallEvent,
    ToolResultEvent,
)
from nemo_mcp.backend.models import Credits
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
from nemo_mcp.retrying import unclear
from nemo_mcp.server.jobs import MessageJob, message
from nemo_mcp.server.outputs import GenerateOutput
from nemo_mcp.server.work import Run, format_duration
from nemo_mcp.settings import Settings
from nemo_mcp.timeline import diff, parse_draft, summarize

log = logging.getLogger(__name__)

#: The longest a message waits for the credits read that recovery may use as evidence.
BASELINE_SECONDS = 5.0

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


def tool_words(name: str) -> str:
    """A backend tool's name in words a person understands."""
    low = name.lower()
    for key, words in _TOOL_WORDS.items():
        if key in low:
            return words
    return name.replace("_", " ").strip() or "working"


def _has_video(draft: Any) -> bool:
    return any(t.kind == "video" and t.segments for t in parse_draft(draft).tracks)


def _video_urls(draft: Any) -> list[str]:
    """The media links of the clips on the video tracks (`m.url`, else `url`), in order."""
    urls: list[str] = []
    for track in parse_draft(draft).tracks:
        if track.kind != "video":
            continue
        for segment in track.segments:
            meta = segment.raw.get("m")
            for value in (
                meta.get("url") if isinstance(meta, dict) else None,
                segment.raw.get("url"),
            ):
                if isinstance(value, str) and value.startswith(("http://", "https://")):
                    urls.append(value)
                    break
    return urls


def new_clip_url(before: Any, after: Any) -> str | None:
    """The media link of the first video clip on the timeline that was not there before."""
    seen = set(_video_urls(before))
    return next((url for url in _video_urls(after) if url not in seen), None)


def _same_draft(a: Any, b: Any) -> bool:
    return not diff(parse_draft(a), parse_draft(b))


@dataclass
class GenerationRun:
    """The live state of one message while it streams."""

    message: str
    before: Any = None
    reply: ReplyAssembler = field(default_factory=ReplyAssembler)
    errors: list[str] = field(default_factory=list)


def _credits_record(balance: Credits | None) -> dict[str, float] | None:
    if balance is None:
        return None
    return {"available": balance.available, "frozen": balance.frozen}


def arrived(
    before: Any, now: Any, baseline: dict[str, float] | None, credits: Credits | None
) -> bool:
    """Whether anything shows the backend received a message sent from `before`:
    the timeline changed, or credits were frozen or spent since the baseline."""
    if not _same_draft(before, now):
        return True
    if baseline is None or credits is None:
        return False
    return held(baseline, credits) or credits.available < baseline.get("available", 0)


def held(baseline: dict[str, float], credits: Credits) -> bool:
    """Whether the backend holds more credits than at `baseline`: work is under way."""
    return credits.frozen > baseline.get("frozen", 0)


async def _balance(client: NemoClient, why: str) -> Credits | None:
    """The credits now; None (logged) when they cannot be read."""
    try:
        return await client.credits()
    except (TransportError, BackendError) as err:
        log.info("could not read credits %s (%s)", why, err)
        return None


async def run_message(run: Run, client: NemoClient, settings: Settings) -> dict[str, Any]:
    """Execute a message entry from whatever state it was left in; the outcome's JSON."""
    job = _job(run)
    gen = GenerationRun(message=job.message, before=job.before)
    if run.state in ("streaming", "recovering"):
        run.sticky = True
        restarted = StreamBrokenError("the server restarted while the agent was working")
        output = await _recover(client, settings, run, gen, restarted)
        return output.model_dump(mode="json")
    if run.state == "sending" and job.unclear:
        lost = StreamBrokenError(job.unclear)
        return (await _unclear(client, settings, run, gen, lost)).model_dump(mode="json")
    if run.state == "sending" and await _received(client, settings, run, gen):
        run.sticky = True
        interrupted = StreamBrokenError("the connection ended before the agent answered")
        output = await _recover(client, settings, run, gen, interrupted)
        return output.model_dump(mode="json")
    # In `sending` still: nothing showed it arrived, so it is sent now, once.
    output = await _send(client, settings, run, gen, resend=run.state == "sending")
    if _job(run).resent:
        output.notes.insert(
            0,
            "An earlier attempt was interrupted before NemoVideo received it (nothing on the "
            "timeline or in the credits showed it), so it was sent now, once.",
        )
    return output.model_dump(mode="json")


def _job(run: Run) -> MessageJob:
    """The message as the run knows it now (its newest facts)."""
    return message.message_of(run)


async def _received(client: NemoClient, settings: Settings, run: Run, gen: GenerationRun) -> bool:
    """After an interruption in `sending`: did the request reach the backend?

    Looked at twice, one recovery delay apart: a gateway may hold a request a moment
    before the agent takes it, and sending twice costs the user money."""
    run.phase("checking whether the interrupted request reached NemoVideo")
    for wait in retrying.every(retrying.ARRIVAL, settings.recovery_delays[0]).tries():
        await anyio.sleep(wait)
        if await _shows_arrival(client, run, gen):
            return True
    return False


async def _shows_arrival(client: NemoClient, run: Run, gen: GenerationRun) -> bool:
    now = (await client.state()).state.draft
    if not _same_draft(gen.before, now):
        return True
    balance = await _balance(client, "to check an interrupted request")
    baseline = _job(run).credits
    if balance is None or baseline is None:
        # Nothing can tell: assume it arrived. Reading the state costs time; sending
        # twice costs the user money.
        return True
    return arrived(gen.before, now, baseline, balance)


async def _still_held(client: NemoClient, run: Run) -> bool:
    """Whether the backend still holds more credits than before the message: the work is
    then under way (a generation lands its raw clip first and adds music and titles after),
    so a draft that held still between two reads is not yet its result. Unknown (no
    baseline, credits unreadable) counts as not held: the draft alone decides then."""
    baseline = _job(run).credits
    if baseline is None:
        return False
    balance = await _balance(client, "while recovering")
    return balance is not None and held(baseline, balance)


async def _unclear(
    client: NemoClient, settings: Settings, run: Run, gen: GenerationRun, err: NemoError
) -> GenerateOutput:
    """The send's answer was lost: look for the message's arrival on the documented
    schedule (the timeline, the credits); report what it did if it arrived, else say it
    was not seen and offer to send it again. Never send it again here."""
    await message.unclear(run, err.message)
    checks = len(settings.recovery_delays)
    for n, delay in enumerate(settings.recovery_delays, start=1):
        run.phase(
            f"NemoVideo's answer to the message was lost ({err.message}): it may have been "
            f"taken, so the server is checking the timeline and credits ({n}/{checks}); "
            "nothing will be sent again"
        )
        try:
            seen = await _shows_arrival(client, run, gen)
        except (TransportError, BackendError) as read_err:
            if isinstance(read_err, SessionNotFoundError):
                raise
            seen = False
        if seen:
            run.sticky = True
            return await _recover(client, settings, run, gen, err)
        await anyio.sleep(delay)
    run.sticky = True  # unclear to the end: it may still have arrived, so never re-sent
    raise StreamBrokenError(
        f"NemoVideo's answer to the message was lost ({err.message}), and after {checks} "
        f"checks over {format_duration(sum(settings.recovery_delays))} nothing shows it "
        "arrived (the timeline and the credits did not change); it was not sent again. Call "
        "`generate` with `again: true` to send it (that may cost credits), or `timeline` to "
        "look first."
    )


async def _send(
    client: NemoClient, settings: Settings, run: Run, gen: GenerationRun, *, resend: bool = False
) -> GenerateOutput:
    job = _job(run)
    if job.new_project and not job.new_session:
        run.phase("starting a new project")
        session = await client.new_session()
        await message.new_project(run, session.session_id)
    session = await client.session()
    await client.token()  # fetched now, not between recording `sending` and sending
    run.phase("reading the timeline before the change")
    try:
        gen.before = (await client.state()).state.draft
    except (TransportError, BackendError) as err:
        if isinstance(err, SessionNotFoundError):
            raise
        log.info("could not read the state before sending (%s); diff will be partial", err)
    baseline = None
    try:
        # Evidence for a later recovery, not a condition for sending: never wait long.
        with anyio.move_on_after(BASELINE_SECONDS):
            baseline = _credits_record(await client.credits())
    except (TransportError, BackendError) as err:
        log.info("could not read credits before sending (%s)", err)
    had_video = _has_video(gen.before)
    await message.sending(
        run, session_id=session.session_id, before=gen.before, credits=baseline, resent=resend
    )

    async def on_event(event: StreamEvent | OpenedEvent) -> None:
        if isinstance(event, OpenedEvent):
            await message.opened(run)  # durable before the stream's first event is read
        elif isinstance(event, TextEvent):
            gen.reply.add(event)
            run.phase("the agent is answering")
        elif isinstance(event, ToolCallEvent):
            run.phase(tool_words(event.name))
        elif isinstance(event, ToolResultEvent):
            run.phase(f"{tool_words(event.name)}: done")
        elif isinstance(event, StateDeltaEvent):
            draft = event.delta.get("draft")
            if draft is not None:
                # A waiting caller is shown the timeline as it is so far.
                timeline = summarize(parse_draft(draft))
                if not had_video and _has_video(draft):
                    run.phase(
                        f"raw clip ready after {format_duration(run.elapsed)}; finishing touches",
                        timeline=timeline,
                        milestone="raw_clip",
                    )
                else:
                    run.phase(str(run.progress.get("phase") or "working"), timeline=timeline)
        elif isinstance(event, ErrorEvent):
            gen.errors.append(event.message)

    run.phase("sending the request")
    limits = StreamLimits(total=settings.stream_total, idle=settings.stream_idle)
    try:
        outcome = await send_message(client, gen.message, on_event, limits=limits)
    except NemoError as err:
        if run.sticky and isinstance(err, TransportError):
            return await _recover(client, settings, run, gen, err)
        if run.sticky or not unclear(err):
            raise  # a clean refusal: the backend answered, and said no
        return await _unclear(client, settings, run, gen, err)
    await message.recovering(run)
    if outcome.meaningful == 0:
        # Closed cleanly with nothing but heartbeats: the agent may still be working
        # behind the gateway. Read the state on the schedule, as after a break.
        empty = StreamBrokenError("the agent stream closed without an answer")
        return await _recover(client, settings, run, gen, empty)
    run.phase("reading the timeline after the change")
    after = (await client.state()).state.draft
    changes = [c.text for c in diff(parse_draft(gen.before), parse_draft(after))]
    text = _reply_text(gen)
    if not text and not changes and gen.errors:
        raise AgentError(f"The NemoVideo agent reported a problem: {gen.errors[-1]}")
    if not text and not changes:
        # A silent edit may land a moment after the stream closes.
        await anyio.sleep(min(2.0, settings.recovery_delays[0]))
        after = (await client.state()).state.draft
        changes = [c.text for c in diff(parse_draft(gen.before), parse_draft(after))]
    return _report(run, client, gen, after, changes, text, recovered=False)


def _reply_text(gen: GenerationRun) -> str:
    # A trailing "I encountered a temporary issue" is dropped by the GUI translation.
    return "\n\n".join(m.strip() for m in gen.reply.messages if m.strip())


def _report(
    run: Run,
    client: NemoClient,
    gen: GenerationRun,
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
        clip_url=new_clip_url(gen.before, after),
        recovered=recovered,
        next_steps=steps,
        elapsed_seconds=round(run.elapsed, 1),
        session_id=run.entry.session_id or client.session_id,
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
    run: Run,
    gen: GenerationRun,
    err: NemoError,
) -> GenerateOutput:
    """The backend has the request but no answer came: read the state on the documented
    schedule, report what changed; never send again."""
    log.info("no full answer (%s); recovering from the state", err)
    await message.recovering(run)
    seen: Any = None
    checks = len(settings.recovery_delays)
    for n, delay in enumerate(settings.recovery_delays, start=1):
        run.phase(
            f"no answer from the agent; checking the timeline ({n}/{checks}), nothing is re-sent"
        )
        await anyio.sleep(delay)
        try:
            draft = (await client.state()).state.draft
        except (TransportError, BackendError) as read_err:
            if isinstance(read_err, SessionNotFoundError):
                raise
            continue
        if _same_draft(draft, gen.before):
            continue
        if seen is not None and _same_draft(draft, seen) and not await _still_held(client, run):
            break  # changed, and settled
        seen = draft
    if seen is None:
        what = "stopped answering" if isinstance(err, BackendTimeoutError) else "dropped"
        raise StreamBrokenError(
            f"The connection to NemoVideo {what} ({err.message}) and the timeline has not "
            f"changed after {checks} checks over {format_duration(sum(settings.recovery_delays))}. "
            "The request was not sent twice. Call `timeline` to check later, or `generate` "
            "with `again: true` to send it again (that may cost credits)."
        )
    changes = [c.text for c in diff(parse_draft(gen.before), parse_draft(seen))]
    text = _reply_text(gen)
    output = _report(run, client, gen, seen, changes, text, recovered=True)
    output.reply = (
        "The connection dropped before the agent finished, but the work went through "
        "(read from the timeline; nothing was sent twice). " + output.reply
    ).strip()
    return output
