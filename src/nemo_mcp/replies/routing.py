"""Intent routing: keep export, credits, status and upload requests away from the video agent.

The `generate` tool takes free text, and sending "export my video" to the backend agent costs
credits and achieves nothing. `route` recognises a message that is *essentially* one of those
requests ("download it", "how many credits do I have?", "show tracks", "导出视频") and sends
everything else, including creative requests that merely mention such a word ("a video about
the export business", "make a video explaining credit scores"), to the agent.

A message routes to a tool only when it carries a trigger word for that tool and every other
word is a filler, an object such as "the video", or a politeness: a creative request always
brings words of its own. Chinese is matched the same way, by removing known phrases.
"""

from __future__ import annotations

import re
from typing import Literal

Intent = Literal["export", "credits", "timeline", "upload", "message"]

# A request for a tool is short; a long message is a conversation for the agent.
_MAX_WORDS = 14
_PATH = "<path>"


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


def _longest_first(*texts: str) -> tuple[str, ...]:
    return tuple(sorted({w for text in texts for w in text.split()}, key=len, reverse=True))


# Words any tool request may carry: pronouns, politeness, question words, approval.
_FILLER = _words(
    """a an the it its this that these those them my our me i we us you your please pls plz
    can could would will may might shall do does did is are am be was just now ok okay right
    hey hi hello thanks thank so then go ahead and let want wanna need like to for of in on as
    with also again already yet still first quick quickly up all whole entire current what how
    where when which there here have has got get any some more yes yeah sure cool great good
    nice perfect awesome looks look happy fine alright well done"""
)
# What a request may be about.
_OBJECTS = _words(
    """video videos clip clips movie film mp4 mov file files result results project final
    finished complete completed edited version cut output render copy thing one 1080p 720p 4k
    hd format resolution quality link url"""
)
_ZH_FILLER = _longest_first(
    """请 帮我 帮忙 麻烦 给我 我要 我想 想要 我的 我 你 您 把 将 这个 那个 这 那 一下 吧 呢 吗 嘛 啊 了 的
    现在 马上 立即 立刻 可以 能 能否 能不能 可不可以 怎么 如何 要 想 好的 好 谢谢 一共 总共 目前 当前
    视频 影片 成片 文件 最终 最后 完整 作品 项目 个 下 是 什么 还 有 么"""
)


class _Rule:
    """One intent: words that trigger it, and the words it allows besides the fillers."""

    def __init__(
        self,
        intent: Intent,
        triggers: str,
        allowed: str = "",
        *,
        weak: str = "",
        zh_triggers: str = "",
        zh_allowed: str = "",
    ) -> None:
        self.intent = intent
        self.triggers = _words(triggers)
        # Weak triggers ("send", "give") count only together with an object ("the video").
        self.weak = _words(weak)
        self.allowed = _words(allowed) | self.triggers | self.weak | _FILLER | _OBJECTS
        self.zh_triggers = tuple(zh_triggers.split())
        # Longest first, fillers included, so "成片" is removed whole before "成" could split it.
        self.zh_phrases = _longest_first(zh_triggers, zh_allowed, " ".join(_ZH_FILLER))

    def matches(self, words: list[str], zh: list[str]) -> bool:
        """True when the message triggers this rule and says nothing else."""
        if any(w not in self.allowed for w in words):
            return False
        if any(not self._zh_covered(run) for run in zh):
            return False
        has_object = any(w in _OBJECTS or w in ("it", "them", _PATH) for w in words)
        return (
            any(w in self.triggers for w in words)
            or (has_object and any(w in self.weak for w in words))
            or any(t in run for run in zh for t in self.zh_triggers)
        )

    def _zh_covered(self, run: str) -> bool:
        """True when the Chinese run is made only of this rule's phrases and common fillers."""
        for phrase in self.zh_phrases:
            run = run.replace(phrase, "")
        return not run


_RULES = (
    _Rule(
        "upload",
        "upload uploads uploading import",
        f"image images photo photos picture pictures pic pics audio song songs music track logo "
        f"footage media asset assets these those files from computer device {_PATH}",
        zh_triggers="上传 导入",
        zh_allowed="图片 照片 素材 音频 音乐 歌曲 文件 几张 一张 一些 这些 张 段 首",
    ),
    _Rule(
        "export",
        "export download render mp4",
        f"to into {_PATH} ready done finished",
        weak="save send give share deliver",
        zh_triggers="导出 下载 发给我 发我 保存到本地 渲染",
        zh_allowed="成 为 高清 格式 本地 到",
    ),
    _Rule(
        "credits",
        "credit credits balance quota billing account",
        "many much left remaining available check show see view my plan usage spend spent points",
        zh_triggers="积分 余额 额度 点数",
        zh_allowed="剩余 剩下 剩 多少 查看 看看 看 查询 查 显示 账户 账号",
    ),
    _Rule(
        "timeline",
        "status state tracks track timeline progress",
        "show see view check list display going far tell ready finished",
        zh_triggers="状态 进度 轨道 时间线 时间轴",
        zh_allowed="查看 看看 看 显示 列出 查询 查 怎么样 如何 进展 所有",
    ),
)
# "is it done?" and "is the video ready yet?" ask for the status without a trigger word.
_STATUS_QUESTION = re.compile(
    r"^(?:is|are|has)\s+(?:it|the\s+(?:video|clip|render|generation|edit)|my\s+(?:video|clip))"
    r"\s+(?:done|ready|finished|complete|completed)(?:\s+yet)?$"
)

_CONTRACTIONS = (
    ("n't", " not"),
    ("'re", " are"),
    ("'ve", " have"),
    ("'ll", " will"),
    ("'d", " would"),
    ("'m", " am"),
    ("what's", "what is"),
    ("how's", "how is"),
    ("where's", "where is"),
    ("let's", "let us"),
    ("it's", "it is"),
    ("that's", "that is"),
)
_PATH_TOKEN = re.compile(
    r"(?<!\S)(?:https?://\S+|file://\S+|~?/\S+|[A-Za-z]:\\\S+"
    r"|\S+\.(?:mp4|mov|avi|webm|mkv|m4v|jpe?g|png|gif|webp|heic|mp3|wav|m4a|aac|flac|ogg)\b)",
    re.IGNORECASE,
)
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|<path>")
_ZH_RUN = re.compile(r"[\u4e00-\u9fff]+")


def route(text: str) -> Intent:
    """Which tool a `generate` message really asks for; "message" sends it to the agent."""
    words, zh = _tokens(text)
    if not words and not zh:
        return "message"
    if len(words) + sum(len(run) // 2 for run in zh) > _MAX_WORDS:
        return "message"
    if not zh and set(words) <= {_PATH}:
        return "upload"
    for rule in _RULES:
        if rule.matches(words, zh):
            return rule.intent
    if not zh and _STATUS_QUESTION.match(" ".join(words)):
        return "timeline"
    return "message"


def _tokens(text: str) -> tuple[list[str], list[str]]:
    """Lower-case English words (paths and URLs become one token) and the Chinese runs."""
    text = _PATH_TOKEN.sub(f" {_PATH} ", text.replace("’", "'").replace("‘", "'"))
    text = text.lower()
    for short, long in _CONTRACTIONS:
        text = text.replace(short, long)
    zh = _ZH_RUN.findall(text)
    ascii_text = _ZH_RUN.sub(" ", text)
    # Hyphenated words count as their parts: "upload-themed" is "upload" + "themed".
    words = _WORD.findall(ascii_text.replace("-", " ").replace("_", " "))
    return words, zh
