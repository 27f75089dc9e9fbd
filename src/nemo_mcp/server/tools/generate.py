"""`generate`: any creative request or edit, sent once to the NemoVideo agent."""

from __future__ import annotations

from typing import Annotated, Any

import anyio.to_thread
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.resolve import Resolve
from mcp_types import CallToolResult, ListRootsResult
from pydantic import Field, StringConstraints

from nemo_mcp.ledger import Entry, clock
from nemo_mcp.server.outputs import GenerateOutput
from nemo_mcp.server.paths import check_path
from nemo_mcp.server.tools.common import (
    allowed_folders,
    get_roots,
    guarded,
    hints,
    reporter,
    result,
    service_of,
)
from nemo_mcp.server.work import Ticket, error_from, format_duration, status_line

NAME = "generate"
TITLE = "Generate or edit a video"
DESCRIPTION = (
    "Send any creative request to the NemoVideo agent: make a new video from a prompt, "
    "animate uploaded images, turn a script into a video, or edit the current one (add "
    "music, titles, overlays, trim, change volume). Costs credits: about 100 for a new "
    "clip, about 50 for an edit. Returns the agent's reply, the exact timeline changes and "
    "the new timeline. Long work continues in the background: if the result says "
    "'running', call generate again with the same request to wait for it; it is never "
    "sent or charged twice. Do not use for export, credits, status or uploads (use those "
    "tools). Next: `export` to get the MP4."
)

#: Requests that belong to another tool: never sent to the agent (it would cost credits).
NOT_SENT = {
    "export": "This is an export request, so nothing was sent to the video agent (that would "
    "cost credits and do nothing). Call `export` to render and download the MP4 (free).",
    "credits": "This asks about credits, so nothing was sent to the video agent. Call `credits`.",
    "timeline": "This asks for the status, so nothing was sent to the video agent. Call "
    "`timeline`.",
    "upload": "This is an upload request, so nothing was sent to the video agent. Call `upload` "
    "with the file paths or http(s) URLs.",
}

Message = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=20_000),
    Field(
        description="What to make or change, in plain words, e.g. 'a 10-second video of a "
        "futuristic city at sunset' or 'add lo-fi background music at 40%'"
    ),
]
ScriptFile = Annotated[
    str | None,
    Field(
        description="Absolute path of a script (.txt, .md, .docx, .pdf) whose text is sent "
        "with the request, for script-to-video"
    ),
]
NewProject = Annotated[
    bool,
    Field(description="Start a fresh, empty project first instead of editing the current one"),
]


def answer_notes(ticket: Ticket, entry: Entry, *, now: float) -> list[str]:
    """Lines saying how this call was answered, when it was not simply sent now."""
    if ticket.submission.how != "finished":
        return []
    if ticket.delivered_before:
        ago = format_duration(now - (entry.finished_at or now))
        return [
            f"This exact request was already answered {ago} ago, so it was not sent again "
            "(nothing more was charged); that result is below. To send the same words again "
            "on purpose, call `generate` with `again: true`."
        ]
    return ["It finished while no call was waiting for it; nothing was sent again."]


def pending_output(entry: Entry, *, ahead: int, now: float) -> GenerateOutput:
    """What a caller gets while its request is queued or running."""
    queued = entry.state == "queued" and ahead > 0
    return GenerateOutput(
        status="queued" if queued else "running",
        reply="",
        timeline=str(entry.progress.get("timeline") or ""),
        raw_clip_ready="raw_clip" in entry.progress.get("milestones", []),
        progress=status_line(entry, now),
        ahead=ahead if queued else 0,
        next_steps=["Call `generate` again with the same request to wait for the result."],
        elapsed_seconds=round(now - entry.created_at, 1),
        session_id=entry.session_id,
    )


def generate_text(out: GenerateOutput) -> str:
    """The agent's text for a `generate` result."""
    if out.status == "not_sent":
        return out.reply
    lines = list(out.notes)
    if out.status == "queued":
        earlier = "request" if out.ahead == 1 else "requests"
        lines.append(
            f"Queued: {out.ahead} earlier {earlier} on this project run first, and this one is "
            "sent when they finish (once). Call `generate` again with the same request to wait "
            "for it (or `timeline` to see the queue)."
        )
        return "\n".join(lines)
    if out.status == "running":
        lines.append(
            f"Still working: {out.progress}. The work continues on NemoVideo and nothing more "
            "is charged. Call `generate` again with the same request to wait for the result "
            "(or `timeline` to look meanwhile)."
        )
        if out.raw_clip_ready:
            lines.append("The raw clip has already landed; music and titles are being added.")
        if out.timeline:
            lines.append(out.timeline)
        return "\n".join(lines)
    lines.append(out.reply)
    if out.changes:
        lines.append("Changes:\n" + "\n".join(f"- {c}" for c in out.changes))
    if out.timeline:
        lines.append(out.timeline)
    fresh = [s for s in out.next_steps if _tool_named(s) not in out.reply]
    if fresh:
        lines.append("Next: " + " ".join(fresh))
    return "\n\n".join(lines)


def _tool_named(step: str) -> str:
    """The backticked tool name a next-step sentence is about."""
    start = step.find("`")
    end = step.find("`", start + 1)
    return step[start : end + 1] if start >= 0 and end > start else step


def _route(text: str) -> str:
    from nemo_mcp.replies.routing import route  # loaded on first use, not at start-up

    return route(text)


Again = Annotated[
    bool,
    Field(
        description="Send these exact words again even though the same request was answered "
        "in the last 30 minutes (without it, asking again returns the earlier result)"
    ),
]
RequestId = Annotated[
    str | None,
    Field(
        max_length=200,
        description="Optional id for this request: the same id returns the same request's "
        "result, a new id makes a new request even with the same words",
    ),
]


@guarded("Sending the request to NemoVideo")
async def generate(
    ctx: Context,
    message: Message,
    script_file: ScriptFile = None,
    new_project: NewProject = False,
    again: Again = False,
    request_id: RequestId = None,
    roots: Annotated[ListRootsResult | None, Resolve(get_roots)] = None,
) -> Annotated[CallToolResult, GenerateOutput]:
    service = await service_of(ctx)
    text = message
    if script_file:
        from nemo_mcp.documents import read_script

        checked = check_path(script_file, allowed_folders(service, roots))
        script = await anyio.to_thread.run_sync(read_script, checked)
        text = f"{text}\n\nScript:\n{script}"
    elif (intent := _route(text)) != "message":
        out = GenerateOutput(
            status="not_sent", reply=NOT_SENT[intent], next_steps=[f"Call `{intent}`."]
        )
        return result(generate_text(out), out, notices=service.take_notices())
    ticket = await service.submit_message(
        text, new_project=new_project, again=again, request_id=request_id
    )
    entry = await service.work.wait(ticket.entry.id, service.settings.tool_timeout, reporter(ctx))
    now = clock()
    if not entry.finished:
        queue = [e.id for e in await service.work.unfinished()]
        ahead = queue.index(entry.id) if entry.id in queue else 0
        out = pending_output(entry, ahead=ahead, now=now)
        return result(generate_text(out), out, notices=service.take_notices())
    await service.work.deliver(ticket)
    if entry.error is not None:
        raise error_from(entry.error)
    out = GenerateOutput.model_validate(entry.outcome)
    out.notes = [*answer_notes(ticket, entry, now=now), *out.notes]
    return result(generate_text(out), out, notices=service.take_notices())


def register(mcp: MCPServer[Any]) -> None:
    mcp.add_tool(
        generate,
        name=NAME,
        title=TITLE,
        description=DESCRIPTION,
        annotations=hints(read_only=False, idempotent=False),
    )
