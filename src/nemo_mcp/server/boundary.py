"""The MCP edge: one error boundary for every tool, and every message written for the agent.

- `message_for` words every `NemoError`: what failed, why, what to do next. It
  chooses by exception class and attributes (`from_backend`: the message is the
  backend's own words and gets wrapped; `detail`: the facts the layers below raise,
  which only this module puts in words), never by searching the text.
- `tool_boundary(work)` wraps a tool handler once: a `NemoError` becomes a
  `ToolError` through `message_for`; anything unexpected is logged (redacted)
  and the agent gets one sentence naming the work that failed.
- `NemoServer.call_tool` turns invalid arguments into one plain sentence naming
  the argument and what is expected (`argument_problem`): no validator wording,
  no echoed input, no library links. When a free trial runs out of credits and the
  client supports URL elicitation, it also offers the registration link that way
  (`offer_registration`); the text answer is the same either way. Building one
  leaves the process's logging as it was: the SDK's constructor would install a
  root handler where there is none, and logging is the entry point's to configure
  (`cli.setup_logging`).
- `NemoServer.get_prompt` answers an unknown prompt name as invalid params (-32602),
  naming the prompts there are, as the SDK answers an unknown resource.

Every message passes through `redaction.redact`, so no token can reach the agent.
"""

from __future__ import annotations

import functools
import json
import logging
import sqlite3
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.shared.exceptions import MCPError
from mcp_types import (
    INVALID_PARAMS,
    CallToolResult,
    ElicitRequest,
    ElicitRequestURLParams,
    GetPromptResult,
    InputRequiredResult,
)
from mcp_types.version import is_version_at_least
from pydantic import ValidationError

from nemo_mcp import redaction
from nemo_mcp.errors import (
    AnswerTooLargeError,
    AuthError,
    CreditsError,
    FileTooLargeError,
    HomeBusyError,
    InputError,
    LedgerError,
    NemoError,
    OneTokenError,
    PartError,
    PlanError,
    RateLimitError,
    RenderSlowError,
    RenderUnclearError,
    ServerError,
    SessionDamagedError,
    SessionReplacedError,
    SharedStateError,
    TokenRefusedError,
    TransportError,
    UnsupportedFileError,
)
from nemo_mcp.ledger import healing

if TYPE_CHECKING:
    from nemo_mcp.backend.client import NemoClient
    from nemo_mcp.state_files import Damaged

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

ACCEPTED = "mp4, mov, avi, webm, mkv, jpg, png, gif, webp, mp3, wav, m4a, aac"


def message_for(err: NemoError, client: NemoClient | None) -> str:
    """The agent-facing text for `err` (not yet redacted)."""
    web = client.settings.web_url.rstrip("/") if client else "https://nemovideo.com"
    worded = _from_facts(err, web)
    if worded is not None:
        return worded
    if isinstance(err, CreditsError):
        if client is not None and client.anonymous:
            return (
                "Out of credits (the free trial's 100 credits are used up). Register for free at "
                f"{client.registration_link()} to keep this project and get more credits, then "
                "try again. Exports stay free."
            )
        return f"Out of credits. Top up in your NemoVideo account at {web}, then try again."
    if isinstance(err, PlanError):
        return (
            "Export is blocked on the free plan (a plan limit, not credits). Register or upgrade "
            f"at {web} to unlock export."
        )
    if isinstance(err, AnswerTooLargeError):
        return _sentence(err.message)
    if isinstance(err, ServerError):
        status = f" (HTTP {err.http_status})" if err.http_status else ""
        return f"NemoVideo had a server problem{status}: {err.message}. Try again in a minute."
    if isinstance(err, TransportError):
        return _sentence(err.message)
    if not err.from_backend:
        return err.message or type(err).__name__
    # The backend's own words: say what they mean for the user.
    if isinstance(err, AuthError):
        return (
            "NemoVideo refused the token twice (expired or invalid). Check NEMO_TOKEN, or remove "
            "it to use a free anonymous token, then try again."
        )
    if isinstance(err, RateLimitError):
        return "NemoVideo is rate limiting requests. Wait a minute and try again."
    if isinstance(err, UnsupportedFileError):
        return f"NemoVideo does not accept this file type ({err.message}). Accepted: {ACCEPTED}."
    if isinstance(err, FileTooLargeError):
        return (
            f"The file is too large for NemoVideo ({err.message}). Compress or trim it and "
            "upload again."
        )
    return f"NemoVideo refused the request: {err.message}."


_LEASE_WORDS = {"anonymous-token": "asking for the token", "session": "starting a project"}


def _from_facts(err: NemoError, web: str) -> str | None:
    """The sentence for an error the layers below raise as facts (`err.detail`); None for
    any other error, or one whose facts were not kept."""
    facts = err.detail
    if isinstance(err, TokenRefusedError):
        return (
            "NEMO_TOKEN was refused by NemoVideo (expired or invalid). Set a valid token, "
            "or unset NEMO_TOKEN to use a free anonymous one."
        )
    if isinstance(err, SessionReplacedError) and "session_id" in facts:
        return (
            "The NemoVideo session expired or was removed on the server, so its timeline is "
            f"gone. A new empty project was started (session {facts['session_id']}); generate "
            "the video again."
        )
    if isinstance(err, HomeBusyError) and "lease" in facts:
        lease = str(facts["lease"])
        return (
            f"Another nemo-mcp process has been {_LEASE_WORDS.get(lease, lease)} for over "
            f"{float(facts.get('waited') or 0):.0f} s ({facts.get('where')}); try again."
        )
    if isinstance(err, SessionDamagedError) and "path" in facts:
        sid = facts.get("session_id")
        was = f" (it was session {sid})" if sid else ""
        return (
            f"The saved project in {facts['path']} was damaged ({facts.get('problem')}) and was "
            f"moved aside to {facts.get('moved_to')}, so its timeline cannot be reached from "
            f"here{was}. Nothing was sent. Ask again to continue in a new, empty project; the "
            f"old one, if it still exists, stays in your NemoVideo account ({web})."
        )
    if isinstance(err, OneTokenError) and "gone" in facts:
        return _one_token_sentence(facts)
    if isinstance(err, RenderUnclearError) and "reason" in facts:
        return (
            f"NemoVideo's answer to the render start was lost ({facts['reason']}), and whether "
            "it started cannot be told yet. Call `export` again to check on it: it is followed "
            "by its id, never started twice."
        )
    if isinstance(err, RenderSlowError) and "render_id" in facts:
        return (
            f"The render {facts['render_id']} has not finished after {facts.get('minutes')} "
            "minutes; call `export` again later to check on it (no new render is started)."
        )
    return None


def _one_token_sentence(facts: Mapping[str, Any]) -> str:
    """The 7-day rule in one sentence: which token is gone, the rule, what to do."""
    if facts["gone"] == "refused":
        gone = "NemoVideo refused this computer's saved token (expired or invalid)"
    elif facts["gone"] == "damaged":
        moved = facts.get("moved_to")
        aside = f"moved aside to {moved}" if moved else "left in place"
        gone = (
            f"The saved NemoVideo token in {facts.get('path')} was damaged "
            f"({facts.get('problem')}) and {aside}"
        )
    else:
        gone = f"The saved NemoVideo token is missing from {facts.get('where')}"
    until = facts.get("until")
    wait = (
        f"wait until {until} and try again"
        if until
        else "try again once 7 days have passed since its token was fetched"
    )
    return (
        f"{gone}, and NemoVideo gives one free token per computer every 7 days, so set "
        f"NEMO_TOKEN to your NemoVideo account's token, or {wait}."
    )


def token_replaced(damaged: Damaged) -> str:
    """The one-time notice that a damaged token file was replaced by a new free token."""
    return (
        f"The saved NemoVideo token ({damaged.path}) was damaged ({damaged.problem}) and was "
        f"moved aside to {damaged.moved_to}; a new free token was fetched for this computer "
        "with its client id."
    )


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] if text else text


class RegistrationNeededError(ToolError):
    """Out of credits on the free trial: the message names `link`, where registering
    keeps the project and brings more credits."""

    def __init__(self, message: str, *, link: str) -> None:
        super().__init__(message)
        self.link = link


def tool_error(err: NemoError, client: NemoClient | None) -> ToolError:
    message = redaction.redact(message_for(err, client))
    if isinstance(err, CreditsError) and client is not None and client.anonymous:
        return RegistrationNeededError(message, link=client.registration_link())
    return ToolError(message)


def _causes(err: BaseException) -> list[BaseException]:
    """`err` and what caused it, outermost first (each once)."""
    chain: list[BaseException] = []
    found: BaseException | None = err
    while found is not None and all(found is not seen for seen in chain):
        chain.append(found)
        found = found.__cause__ or found.__context__
    return chain


def _from_redis(err: BaseException) -> bool:
    """A redis-py error (told by its module: redis is imported only when hosted)."""
    return any(
        k.__module__.split(".")[0] == "redis" and k.__name__ in ("RedisError", "ConnectionError")
        for k in type(err).__mro__
    )


def part_that_failed(err: BaseException) -> PartError | None:
    """The part named when `err`, or what caused it, is a part on this side failing: a
    full disk (wherever it was written), the work ledger, Redis. None otherwise (then
    NemoVideo's, or the caller's, side is what the message names)."""
    for cause in _causes(err):
        if isinstance(cause, PartError):
            return cause
        if healing.full(cause):
            where = getattr(cause, "filename", None) or "a file nemo-mcp writes"
            return healing.full_error(where)
        if isinstance(cause, sqlite3.Error):
            return LedgerError(
                f"The work ledger could not be used ({type(cause).__name__}: "
                f"{' '.join(str(cause).split())[:80]}); try again, and if it keeps failing, run "
                "`nemo-mcp doctor`."
            )
        if _from_redis(cause):
            return SharedStateError(
                "Redis (NEMO_STATE_URL) stopped answering in the middle of the call "
                f"({type(cause).__name__}); it may be restarting: try again in a moment, and "
                "if it keeps failing, check that Redis is up."
            )
    return None


def unexpected_message(work: str, err: BaseException) -> str:
    """One sentence for a failure nobody planned for; the details stay in the log."""
    if (part := part_that_failed(err)) is not None:
        return f"{work} failed: {part.message}"
    if isinstance(err, OSError):
        reason = f" ({err.strerror})" if err.strerror else ""
        return (
            f"{work} failed: a file could not be read or written{reason}. Check that the file "
            "or folder still exists and can be used, then try again."
        )
    return (
        f"{work} failed because of an unexpected problem in nemo-mcp (the details are in the "
        "server's log). Try again; if it keeps failing, run `nemo-mcp doctor`."
    )


ClientLookup = Callable[[Context], "NemoClient | None"]


def tool_boundary(
    work: str, client_of: ClientLookup
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    """Wrap a tool handler so every failure reaches the agent as one written sentence.

    `work` names the work in words ("Exporting the video"); `client_of(ctx)`
    finds the caller's client, if it has one yet, for messages that need it
    (the registration link).
    """

    def wrap(handler: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        @functools.wraps(handler)
        async def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return await handler(*args, **kwargs)
            except ToolError:
                raise
            except NemoError as err:
                ctx = kwargs.get("ctx")
                client = client_of(ctx) if isinstance(ctx, Context) else None
                # A full disk or Redis under a connection or stream error: name the part.
                part = part_that_failed(err) if not isinstance(err, InputError) else None
                raise tool_error(part or err, client) from None
            except Exception as err:
                log.error("%s failed unexpectedly", work, exc_info=True)
                raise ToolError(redaction.redact(unexpected_message(work, err))) from None

        return guarded

    return wrap


# invalid arguments -----------------------------------------------------------------
_KIND_WORDS = {
    "string": "text",
    "boolean": "true or false",
    "array": "a list",
    "integer": "a whole number",
    "number": "a number",
    "object": "an object",
}


_PLURALS = {"string": "texts", "integer": "whole numbers", "number": "numbers"}


def _expected(prop: Mapping[str, Any]) -> str:
    """What a parameter takes, in words, from its JSON schema."""
    if "enum" in prop or "const" in prop:
        values = prop.get("enum") or [prop["const"]]
        return "one of: " + ", ".join(str(v) for v in values)
    kinds = [p.get("type") for p in prop.get("anyOf", [])] or [prop.get("type")]
    words = [_KIND_WORDS[k] for k in kinds if isinstance(k, str) and k in _KIND_WORDS]
    if prop.get("type") == "array":
        items = prop.get("items", {})
        words = [f"a list of {_PLURALS.get(items.get('type', ''), 'items')}"]
    text = " or ".join(words) or "a valid value"
    description = str(prop.get("description") or "")
    short = description.split(", e.g.")[0].split(" e.g.")[0].strip().rstrip(".")
    if short:
        text += f" ({short[:1].lower() + short[1:]})"
    return text


def argument_problem(tool: str, err: ValidationError, schema: Mapping[str, Any]) -> str:
    """One plain sentence for the first invalid argument of a `tool` call."""
    properties: Mapping[str, Any] = schema.get("properties", {})
    problems = err.errors(include_url=False, include_input=False, include_context=True)
    first = problems[0]
    loc = [str(part) for part in first["loc"]]
    name = loc[0] if loc else "arguments"
    prop = properties.get(name, {})
    expected = _expected(prop)
    kind = first["type"]
    limits = first.get("ctx") or {}
    where = f"`{name}`" if len(loc) < 2 else f"Item {int(loc[1]) + 1} of `{name}`"
    if kind == "missing":
        text = f"`{name}` is required: give {expected}."
    elif kind in ("string_too_short",):
        text = f"`{name}` is empty: give {expected}."
    elif kind == "string_too_long":
        text = f"{where} is too long: at most {limits.get('max_length')} characters."
    elif kind == "too_short":
        text = f"`{name}` needs at least {limits.get('min_length')} item(s): {expected}."
    elif kind == "too_long":
        text = f"`{name}` takes at most {limits.get('max_length')} items."
    elif kind in ("literal_error", "enum", "string_pattern_mismatch"):
        text = f"{where} must be {expected}."
    elif len(loc) >= 2 and prop.get("type") == "array":
        inner = _KIND_WORDS.get(prop.get("items", {}).get("type", ""), "valid")
        text = f"{where} must be {inner}: `{name}` takes {expected}."
    else:
        text = f"{where} must be {expected}."
    more = len(problems) - 1
    if more:
        text += f" ({more} more argument problem{'s' if more > 1 else ''} after this one.)"
    return f"Invalid arguments for `{tool}`: {text}"


# the registration link by URL elicitation -------------------------------------------
#: The key of the registration question in an `InputRequiredResult` (2026-07-28).
REGISTER_KEY = "nemo-register"
_REGISTER_STATE = "nemo-register"
REGISTER_MESSAGE = (
    "NemoVideo's free trial credits are used up. Register for free to keep this project "
    "and get more credits."
)


def supports_url_elicitation(context: Context[Any, Any]) -> bool:
    caps = context.client_capabilities
    return caps is not None and caps.elicitation is not None and caps.elicitation.url is not None


def _modern(context: Context[Any, Any]) -> bool:
    version = context.protocol_version
    return version is not None and is_version_at_least(version, "2026-07-28")


async def offer_registration(
    context: Context[Any, Any], err: RegistrationNeededError, answer: str
) -> InputRequiredResult | None:
    """Show the registration link through URL elicitation, when the client supports it.

    On 2026-07-28 the question rides an `InputRequiredResult`; the client's retry gets
    `answer` (`registration_answer`) and nothing runs again. On the older handshake it is
    asked mid-call, and None is returned: the caller answers with the text as before.
    """
    if not supports_url_elicitation(context):
        return None
    if _modern(context):
        return InputRequiredResult(
            input_requests={
                REGISTER_KEY: ElicitRequest(
                    params=ElicitRequestURLParams(message=REGISTER_MESSAGE, url=err.link)
                )
            },
            request_state=json.dumps({"nemo": _REGISTER_STATE, "answer": answer}),
        )
    if not context.session.can_send_request:
        return None
    try:
        await context.elicit_url(REGISTER_MESSAGE, err.link, uuid.uuid4().hex)
    except Exception:  # the text answer below carries the link anyway
        log.info("the client did not take the registration link", exc_info=True)
    return None


def registration_answer(context: Context[Any, Any]) -> str | None:
    """On the retry after the registration question: the answer it was asked with."""
    if not _modern(context) or REGISTER_KEY not in (context.input_responses or {}):
        return None
    try:
        state = json.loads(context.request_state or "")
    except ValueError:
        return None
    if not isinstance(state, dict) or state.get("nemo") != _REGISTER_STATE:
        return None
    answer = state.get("answer")
    return answer if isinstance(answer, str) else None


class NemoServer(MCPServer[Any]):
    """`MCPServer` whose argument errors read as one plain sentence for the agent, and
    which offers the registration link by URL elicitation when the trial runs out."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # The SDK's constructor calls `logging.basicConfig`, which gives a root logger
        # without handlers one of its own, printing unredacted: put the root back.
        root = logging.getLogger()
        handlers, level = list(root.handlers), root.level
        try:
            super().__init__(*args, **kwargs)
        finally:
            for handler in [h for h in root.handlers if h not in handlers]:
                root.removeHandler(handler)
            root.setLevel(level)

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        if context is not None and (answer := registration_answer(context)) is not None:
            raise ToolError(answer)  # the request failed already; it is not run again
        try:
            return await super().call_tool(name, arguments, context)
        except UnexpectedToolError:
            raise
        except ToolError as err:
            cause = err.__cause__
            if isinstance(cause, RegistrationNeededError) and context is not None:
                asked = await offer_registration(context, cause, str(err))
                if asked is not None:
                    return asked
                raise
            if not isinstance(cause, ValidationError):
                raise
            schemas = {tool.name: tool.input_schema for tool in await self.list_tools()}
            raise ToolError(argument_problem(name, cause, schemas.get(name, {}))) from None

    async def get_prompt(
        self,
        name: str,
        arguments: dict[str, Any] | None = None,
        context: Context[Any, Any] | None = None,
    ) -> GetPromptResult | InputRequiredResult:
        """An unknown prompt is the caller's mistake (invalid params, like an unknown
        resource), answered with the names there are; not a server error with a traceback."""
        known = [prompt.name for prompt in await self.list_prompts()]
        if name not in known:
            raise MCPError(
                code=INVALID_PARAMS,
                message=f"Unknown prompt: {name}; the prompts are {', '.join(known)}",
                data={"name": name},
            )
        return await super().get_prompt(name, arguments, context)
