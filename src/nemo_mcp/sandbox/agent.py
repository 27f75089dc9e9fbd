"""The scripted agent behind `/run_sse`: one `Job` per message.

A job runs as its own task, independent of the stream that asked for it:
it changes the session's state and settles credits as it goes, and queues
its events for the stream. If the stream breaks or the client leaves, the
work still completes, as it does on the real backend.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from nemo_mcp.sandbox import scripted_agent
from nemo_mcp.sandbox.config import SandboxConfig
from nemo_mcp.sandbox.events import AgentEvent, Call, Result, Say, Think, call_id, invocation_id
from nemo_mcp.sandbox.world import Session, User, World, new_id


@dataclass
class Work:
    """Everything a job needs: where, for whom, under which config, and what was asked."""

    world: World
    session: Session
    user: User
    config: SandboxConfig
    base_url: str
    text: str
    intent: scripted_agent.Intent

    @property
    def cost(self) -> int:
        if self.intent.kind == "generate":
            return self.config.generation_cost
        if self.intent.kind == "edit":
            return self.config.edit_cost
        return 0


def plan(text: str, session: Session) -> scripted_agent.Intent:
    return scripted_agent.classify(text, session.draft)


class Job:
    """One message being worked on. Credits for it must be frozen before `start`."""

    def __init__(self, work: Work) -> None:
        self.work = work
        self.invocation = invocation_id()
        self.queue: asyncio.Queue[AgentEvent | None] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None
        self._settled = False

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())
        self.work.world.jobs.add(self.task)
        self.task.add_done_callback(self.work.world.jobs.discard)

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()

    def emit(self, event: AgentEvent) -> None:
        self.queue.put_nowait(event)

    def _settle(self, *, spent: bool) -> None:
        if not self._settled:
            self._settled = True
            if self.work.cost:
                World.settle(self.work.user, self.work.cost, spent=spent)

    async def _run(self) -> None:
        try:
            kind = self.work.intent.kind
            if kind == "generate":
                await self._generate()
            elif kind == "edit":
                await self._edit()
            else:
                await self._chat()
        finally:
            self._settle(spent=False)  # a job that did not finish gives its credits back
            self.queue.put_nowait(None)

    def _say_last(self, text: str) -> None:
        self.emit(Say(text))
        if self.work.config.trailing_issue:
            self.emit(Say(scripted_agent.TEMPORARY_ISSUE))

    # generation ----------------------------------------------------------------------------
    async def _generate(self) -> None:
        w, session = self.work, self.work.session
        prompt, story = w.intent.prompt, w.intent.story
        head = scripted_agent.request_of(w.text)
        named = scripted_agent.named_title(w.text) or (story.title if story else None)
        label = named or scripted_agent.label_of(prompt)
        title = named or scripted_agent.title_of(label)
        asked = scripted_agent.asked_ms(head)
        length = scripted_agent.duration_of(head)
        sources = [i for i in session.video_infos if i.get("file_type") in ("video", "image")]
        audio = next((i for i in session.video_infos if i.get("file_type") == "audio"), None)
        music = (
            audio["filename"]
            if audio
            else scripted_agent.mood_music(w.text) or scripted_agent.LIBRARY[0]
        )

        self.emit(
            Think(
                f"The user wants a video: {prompt}. I will generate the raw clip first, "
                "then add background music and a title."
            )
        )
        generate = call_id()
        args: dict[str, Any] = {
            "prompt": prompt,
            "duration": length / 1000,
            "aspect_ratio": "16:9",
            "resolution": "1920x1080",
        }
        if sources:
            args["media"] = [i["filename"] for i in sources]
        self.emit(Call(((generate, "generate_video", args),)))
        await asyncio.sleep(w.config.generation_seconds / 2)

        if sources:
            lengths = [_length_of(i) for i in sources]
            if asked is not None and all(i["file_type"] == "image" for i in sources):
                lengths = scripted_agent.shares(asked, len(sources))  # photos share the length
            elif story is not None and asked is None:
                least = scripted_agent.TITLE_MS + scripted_agent.LINE_MS * len(story.lines)
                total = max(sum(lengths), least)
                lengths = _stretched(lengths, sources, total)
            clips = [
                (i["filename"], i["cdn_url"], ms, {"type": i["file_type"]})
                for i, ms in zip(sources, lengths, strict=True)
            ]
            response: dict[str, Any] = {"status": "success", "segments": len(clips)}
        elif story is not None:  # one generated scene per line
            clips, made = [], []
            for line, ms in zip(
                story.lines, scripted_agent.story_scenes(story, asked), strict=True
            ):
                media = self._new_clip(line, ms)
                made.append(media)
                clips.append((scripted_agent.label_of(line), media["url"], ms, {"prompt": line}))
            session.generated_media = [*session.generated_media, *made]
            response = {"status": "success", "clips": made}
        else:
            media = self._new_clip(prompt, length)
            clips = [(label, media["url"], length, {"prompt": prompt})]
            session.generated_media = [*session.generated_media, media]
            response = {"status": "success", "clip": media}
        raw = scripted_agent.raw_draft(title, clips)
        if story is not None:
            after = scripted_agent.captions_from(raw["d"])  # the title comes first
            raw = scripted_agent.with_captions(raw, story.lines, after)
        session.draft = raw
        self.emit(
            Result(
                ((generate, "generate_video", response),),
                {"draft": session.draft, "generated_media": session.generated_media},
            )
        )
        self.emit(
            Say(scripted_agent.RAW_READY.format(label=label, seconds=session.draft["d"] / 1000))
        )

        bgm, caption = call_id(), call_id()
        volume = scripted_agent.DEFAULT_VOLUME
        self.emit(
            Call(
                (
                    (bgm, "add_bgm", {"name": music, "volume": volume}),
                    (caption, "add_title", {"text": title}),
                )
            )
        )
        await asyncio.sleep(w.config.generation_seconds / 2)

        base = session.draft if scripted_agent.has_video(session.draft) else raw
        session.draft = scripted_agent.with_title(
            scripted_agent.with_music(
                base, music, audio["cdn_url"] if audio else None, library=self.work.base_url
            ),
            title,
        )
        self.emit(
            Result(
                (
                    (bgm, "add_bgm", {"status": "success", "name": music}),
                    (caption, "add_title", {"status": "success", "text": title}),
                ),
                {"draft": session.draft},
            )
        )
        self._settle(spent=True)
        self._say_last(scripted_agent.FINISHED)

    def _new_clip(self, prompt: str, length: int) -> dict[str, Any]:
        """A generated clip of `prompt`, served at its own URL: its `generated_media` entry."""
        clip_id = new_id("clip_")
        self.work.world.clips[clip_id] = (prompt, length)
        return {
            "id": clip_id,
            "type": "video",
            "url": f"{self.work.base_url}/files/clips/{clip_id}.mp4",
            "prompt": prompt,
            "duration": length / 1000,
            "width": 1920,
            "height": 1080,
        }

    # edits -------------------------------------------------------------------------------------
    async def _edit(self) -> None:
        w, session = self.work, self.work.session
        assert session.draft is not None
        draft = session.draft
        calls, outcomes, replies = [], [], []
        for edit in w.intent.edits:
            applied = scripted_agent.apply_edit(draft, edit, library=self.work.base_url)
            calls.append((call_id(), applied.tool, applied.args))
            outcomes.append(applied.draft is not None)
            replies.append(applied.reply)
            draft = applied.draft if applied.draft is not None else draft
        changed = any(outcomes)
        self.emit(Call(tuple(calls)))
        await asyncio.sleep(w.config.edit_seconds)
        if changed:
            session.draft = draft
        results = tuple(
            (cid, name, {"status": "success" if ok else "no_change"})
            for (cid, name, _), ok in zip(calls, outcomes, strict=True)
        )
        self.emit(Result(results, {"draft": draft} if changed else {}))
        self._settle(spent=changed)
        if not w.config.silent_edits:
            self._say_last(" ".join(replies))

    # chat ----------------------------------------------------------------------------------------
    async def _chat(self) -> None:
        await asyncio.sleep(self.work.config.edit_seconds / 2)
        self._say_last(scripted_agent.chat_reply(self.work.text, self.work.session.draft))


def _stretched(lengths: list[int], sources: list[dict[str, Any]], total: int) -> list[int]:
    """Photos lengthened evenly so the video lasts `total` ms; videos keep their own length."""
    photos = [n for n, i in enumerate(sources) if i["file_type"] == "image"]
    spare = total - sum(lengths)
    if not photos or spare <= 0:
        return lengths
    longer = list(lengths)
    for n, extra in zip(photos, scripted_agent.shares(spare, len(photos)), strict=True):
        longer[n] += extra
    return longer


def _length_of(info: dict[str, Any]) -> int:
    duration = info.get("duration")
    if info.get("file_type") == "video" and isinstance(duration, (int, float)) and duration > 0:
        return int(duration * 1000)
    return scripted_agent.IMAGE_MS if info.get("file_type") == "image" else scripted_agent.CLIP_MS


__all__ = ["Job", "Work", "plan"]
