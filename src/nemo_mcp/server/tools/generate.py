"""`generate`: any creative request or edit, sent once to the NemoVideo agent.

Before the tool body runs, two resolvers (the SDK's `Resolve`, the same on the
2026-07-28 protocol and the older handshake) read the script file, if one is given,
inside the client's roots, and ask the user before a request that costs credits
(`ask_before_spending`, rules in `server/spending.py`). Nothing is sent unless the user
agrees.
"""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING, Annotated, Any

import anyio
import anyio.to_thread
from mcp.server.elicitation import (
    AcceptedElicitation,
    CancelledElicitation,
    DeclinedElicitation,
)
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.resolve import Elicit, ListRoots, Resolve
from mcp_types import CallToolResult, ListRootsResult
from pydantic import Field, StringConstraints

from nemo_mcp.backend.budget import time_bound
from nemo_mcp.errors import BackendTimeoutError, NemoError
from nemo_mcp.ledger import Entry, clock
from nemo_mcp.server import spending, tasks
from nemo_mcp.server.icons import icon
from nemo_mcp.server.jobs import handle_of
from nemo_mcp.server.outputs import GenerateOutput
from nemo_mcp.server.paths import open_path
from nemo_mcp.server.previews import clip_poster
from nemo_mcp.server.spending import SpendConfirmation
from nemo_mcp.server.tools.common import (
    STUDIO_TOOL_META,
    budget,
    file_policy,
    get_roots,
    guarded,
    hints,
    reporter,
    result,
    served,
    service_of,
)
from nemo_mcp.server.work import Ticket, format_duration, status_line

if TYPE_CHECKING:
    from nemo_mcp.server.service import NemoService

log = logging.getLogger(__name__)

NAME = "generate"
TITLE = "Generate or edit a video"
DESCRIPTION = (
    "Send any creative request to the NemoVideo agent: make a new video from a prompt, "
    "animate uploaded images, turn a script into a video, or edit the current one (add "
    "music, titles, overlays, trim, change volume). Costs credits: about 100 for a new "
    "clip, about 50 for an edit. Returns the agent's reply, the exact timeline changes and "
    "the new timeline. Long work continues in the background: a 'running' result gives its "
    "request_id; call generate with that request_id (the words may be left out) to wait "
    "for it. The same words and flags asked while an identical request is unfinished, or "
    "before its result was returned, wait for it (even with again or new_project), so "
    "nothing is sent or charged twice; for several variations at once give each its own "
    "request_id. Do not use for export, credits, status or uploads (use those "
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


def wait_step(tool: str, handle: str) -> str:
    """How to wait for the work `handle` names."""
    return f'Call `{tool}` with request_id="{handle}" to wait for the result.'


def pending_output(entry: Entry, *, ahead: int, now: float) -> GenerateOutput:
    """What a caller gets while its request is queued or running."""
    queued = entry.state == "queued" and ahead > 0
    handle = handle_of(entry)
    return GenerateOutput(
        status="queued" if queued else "running",
        reply="",
        timeline=str(entry.progress.get("timeline") or ""),
        raw_clip_ready="raw_clip" in entry.progress.get("milestones", []),
        progress=status_line(entry, now),
        ahead=ahead if queued else 0,
        next_steps=[wait_step("generate", handle)],
        elapsed_seconds=round(now - entry.created_at, 1),
        session_id=entry.session_id,
        request_id=handle,
    )


def generate_text(out: GenerateOutput) -> str:
    """The agent's text for a `generate` result."""
    if out.status in ("not_sent", "declined"):
        return out.reply
    lines = list(out.notes)
    if out.status == "queued":
        earlier = "request" if out.ahead == 1 else "requests"
        lines.append(
            f"Queued: {out.ahead} earlier {earlier} on this project run first, and this one is "
            f'sent when they finish (once). Call `generate` with request_id="{out.request_id}" '
            "to wait for it (or `timeline` to see the queue)."
        )
        return "\n".join(lines)
    if out.status == "running":
        lines.append(
            f"Still working: {out.progress}. The work continues on NemoVideo and nothing more "
            f'is charged. Call `generate` with request_id="{out.request_id}" to wait for the '
            "result (the words may be left out; or `timeline` to look meanwhile)."
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
    if out.request_id:
        lines.append(f'(request_id "{out.request_id}")')
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
        description="Send these exact words again as a new request once the earlier identical "
        "request's result has been returned (while it is unfinished, or its result not yet "
        "returned, the call waits for it instead)"
    ),
]
RequestId = Annotated[
    str | None,
    Field(
        max_length=200,
        description="Optional handle of a request. With words: names this new request (a "
        "new id sends the same words anew; an id already used for other words is refused). "
        "Without words: waits for the request it names (as a 'running' result says)",
    ),
]


def request_text(message: str, script: str | None) -> str:
    """The words sent to the agent: the request, then the script when there is one."""
    return f"{message}\n\nScript:\n{script}" if script else message


def elicits_forms(ctx: Context) -> bool:
    """Whether the client can be asked a question (form elicitation)."""
    caps = ctx.client_capabilities
    found = caps.elicitation if caps is not None else None
    return found is not None and (found.form is not None or found.url is None)


# resolvers: run before the body, on either protocol ---------------------------------
async def script_roots(ctx: Context, script_file: str | None) -> ListRoots | None:
    """The client's roots, asked for only when a script file is given."""
    return await get_roots(ctx) if script_file else None


@guarded("Reading the script")
async def script_text(
    ctx: Context,
    script_file: str | None,
    roots: Annotated[ListRootsResult | None, Resolve(script_roots)],
) -> str | None:
    """The script's text, from a file inside the client's roots (or NEMO_UPLOAD_DIRS)."""
    if not script_file:
        return None
    from nemo_mcp.documents import read_script

    service = await service_of(ctx)
    opened = open_path(script_file, file_policy(ctx, service, roots), "script")
    with opened.handle:  # read once, from what was checked
        return await anyio.to_thread.run_sync(
            functools.partial(read_script, opened.path, handle=opened.handle)
        )


@guarded("Checking the cost of the request")
async def ask_before_spending(
    ctx: Context,
    message: str | None,
    script_file: str | None,
    new_project: bool,
    again: bool,
    request_id: str | None,
    script: Annotated[str | None, Resolve(script_text)],
) -> Elicit[SpendConfirmation] | None:
    """The question to ask before a request that costs credits, or None to send it as is.

    Asked only when the client supports elicitation, `NEMO_CONFIRM_SPENDING` says so,
    the request is for the agent, and it is not in the ledger already (asking again
    costs nothing)."""
    if not elicits_forms(ctx):
        return None
    service = await service_of(ctx)
    rule = service.settings.confirm_spending
    if rule.mode == "never":
        return None
    if not message:
        return None  # a wait for a named request (or refused): nothing to pay for
    if not script_file and _route(message) != "message":
        return None  # answered without the agent (`not_sent`)
    text = request_text(message, script)
    client = service.client
    budget = service.settings.tool_timeout
    with time_bound(budget, api_url=client.api_url, what="opening the project"):
        found = await service.find_message(
            text, new_project=new_project, again=again, request_id=request_id
        )
    if found is not None:
        return None
    draft: Any = None
    available: float | None = None

    async def read_draft() -> None:
        nonlocal draft
        try:
            draft = (await client.state()).state.draft
        except NemoError as err:  # unknown: priced as a new clip, the higher estimate
            log.info("could not read the timeline to price the request: %s", err)

    async def read_balance() -> None:
        nonlocal available
        try:
            available = (await client.credits()).available
        except NemoError as err:
            log.info("could not read the balance before asking: %s", err)

    try:
        with time_bound(budget, api_url=client.api_url, what="reading the balance"):
            async with anyio.create_task_group() as reads:
                reads.start_soon(read_draft)
                reads.start_soon(read_balance)
    except BackendTimeoutError as err:  # what was not read in time stays unknown
        log.info("%s", err.message)
    cost = spending.estimate(edit=spending.is_edit(draft, new_project=new_project))
    if not spending.should_ask(rule, available=available, cost=cost.cost):
        return None
    words = spending.question(message, cost, available=available, anonymous=client.anonymous)
    return Elicit(words, SpendConfirmation)


Consent = AcceptedElicitation[SpendConfirmation] | DeclinedElicitation | CancelledElicitation | None


def refusal(consent: Consent) -> str | None:
    """`declined` or `cancelled` when the user did not agree to spend; None to send."""
    if isinstance(consent, DeclinedElicitation):
        return "declined"
    if isinstance(consent, CancelledElicitation):
        return "cancelled"
    answer = consent.data if isinstance(consent, AcceptedElicitation) else None
    if isinstance(answer, SpendConfirmation) and not answer.send:
        return "declined"
    return None


@guarded("Sending the request to NemoVideo")
async def generate(
    ctx: Context,
    message: Message | None = None,
    script_file: ScriptFile = None,
    new_project: NewProject = False,
    again: Again = False,
    request_id: RequestId = None,
    script: Annotated[str | None, Resolve(script_text)] = None,
    consent: Annotated[Consent, Resolve(ask_before_spending)] = None,
) -> Annotated[CallToolResult, GenerateOutput]:
    service = await service_of(ctx)
    text = request_text(message, script) if message else None
    if text and not script_file and (intent := _route(text)) != "message":
        out = GenerateOutput(
            status="not_sent", reply=NOT_SENT[intent], next_steps=[f"Call `{intent}`."]
        )
        return result(generate_text(out), out, notices=service.take_notices())
    if (refused := refusal(consent)) is not None:
        out = GenerateOutput(
            status="declined",
            reply=spending.not_sent_reply(refused),
            next_steps=["Ask the user before calling `generate` again."],
        )
        return result(generate_text(out), out, notices=service.take_notices())
    waits = budget(ctx, service)  # longer for clients known to keep the call open
    end = anyio.current_time() + waits
    inline = min(waits, service.settings.tool_timeout)
    with time_bound(inline, api_url=service.client.api_url, what="opening the project"):
        ticket = await service.submit_message(
            text, new_project=new_project, again=again, request_id=request_id
        )
    if (task := await tasks.offer(ctx, service, ticket, remote=served(ctx))) is not None:
        return task
    left = max(0.0, end - anyio.current_time())
    entry, ahead = await service.work.follow(ticket, left, reporter(ctx))
    now = clock()
    if not entry.finished:
        out = pending_output(entry, ahead=ahead, now=now)
        return result(generate_text(out), out, notices=service.take_notices())
    notes = answer_notes(ticket, entry, now=now)
    return await finished_result(
        service, entry, served(ctx), end - anyio.current_time(), notes=notes
    )


async def finished_result(
    service: NemoService, entry: Entry, remote: bool, left: float, *, notes: list[str] | None = None
) -> CallToolResult:
    """A finished message's result (also a task's): the reply, changes, timeline, and a
    look at the new clip when its link answers within `left` seconds."""
    out = GenerateOutput.model_validate(entry.outcome)
    out.request_id = handle_of(entry)
    out.notes = [*(notes or []), *out.notes]
    # A look at the new clip when its link answers quickly; else nothing (logged at debug).
    poster = None
    if out.status == "completed" and out.clip_url:
        poster = await clip_poster(out.clip_url, left=left)
    extra = [poster.block()] if poster is not None else []
    return result(generate_text(out), out, *extra, notices=service.take_notices())


def register(mcp: MCPServer[Any]) -> None:
    mcp.add_tool(
        generate,
        name=NAME,
        title=TITLE,
        description=DESCRIPTION,
        annotations=hints(read_only=False, idempotent=False),
        icons=[icon("generate")],
        meta=STUDIO_TOOL_META,
    )
