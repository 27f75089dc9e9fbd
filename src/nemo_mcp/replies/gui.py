"""GUI translation: rewrite the backend agent's GUI steps into this server's five tools.

The backend agent believes its user sits in front of the NemoVideo editor, so its replies say
"click Export", "open the Music panel", "drag the clip", "点击导出". None of that may reach the
calling agent. `translate` works line by line and sentence by sentence: a sentence that is only a
GUI step becomes one tool instruction ("Call `export` ..."); a sentence that mixes content and a
GUI step keeps its content clauses and gains the instruction. Each tool is suggested once.

Detection is deliberately anchored (imperative position, a button or panel noun, a quoted button
name) so that content words such as "open-air", "a dragon" or "the export business" pass through.
`has_gui_phrasing` applies the same detection, so `translate(x).text` never contains a GUI step.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

Action = Literal["export", "timeline", "credits", "generate", "upload"]
# What a GUI step amounts to; several kinds lead to the same tool.
Kind = Literal["export", "preview", "state", "edit", "confirm", "credits", "upload", "none"]


@dataclass(frozen=True)
class Translation:
    """A rewritten reply for the calling agent.

    `text` holds no GUI step; `actions` names the suggested tools in order, each once; `changed`
    says whether anything was rewritten or dropped (tidying whitespace alone does not count).
    `fell_back` is True when clause-by-clause rewriting left a GUI step, so the whole reply was
    replaced by the tool instructions alone (the content was lost: a rewriting gap).
    """

    text: str
    actions: list[Action] = field(default_factory=list)
    changed: bool = False
    fell_back: bool = False


# Each kind of GUI step becomes one sentence addressed to the calling agent. These sentences
# name a tool in backticks, which also exempts them from detection (see `_TOOL_MENTION`).
_INSTRUCTIONS: dict[Kind, tuple[Action, str] | None] = {
    "export": ("export", "Call `export` to render and save the MP4 (free)."),
    "preview": ("timeline", "See the timeline summary below, or call `timeline` for every track."),
    "state": ("timeline", "Call `timeline` to read the current tracks."),
    # An offer, not a request: the reply this replaces usually tells of a change just made
    # ("I changed the title ... Drag the text to move it"), so it must not read as pending.
    "edit": ("generate", "To change anything else, describe it with `generate`."),
    "confirm": ("generate", "Ask for it with `generate`."),
    "credits": ("credits", "Call `credits` for the balance."),
    "upload": ("upload", "Call `upload` with the file paths or URLs."),
    "none": None,
}

_FALLBACK: dict[Action, str] = {}
for _entry in _INSTRUCTIONS.values():
    if _entry is not None:
        _FALLBACK.setdefault(_entry[0], _entry[1])

# A sentence naming one of our tools in backticks already speaks the API, not the GUI.
_TOOL_MENTION = re.compile(r"`(?:export|generate|timeline|credits|upload)`")
_TEMPORARY_ISSUE = re.compile(
    r"(?:^|(?<=[.!?。！？\n]))\s*(?:(?i:I(?:'ve| have)? encountered a temporary issue)|我遇到了(?:一个)?临时问题)"
    r"[^\n]*$"
)
_LIST_PREFIX = re.compile(r"^(\s*(?:[-*+•]|\d{1,3}[.)]|#{1,6}|>)\s+)")
_NUMBERED = re.compile(r"^(\s*)(\d{1,3})([.)]\s+)")
_SENTENCE_END = re.compile(r"[.!?…]+[\"'”’)\]*_]*(?=\s|$)|[。！？]+[\"'”’」』)\]]*")
_TERMINAL = re.compile(r"(?:[.!?…]+|[。！？]+)[\"'”’」』)\]*_]*$")
_CJK = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")
_WORDISH = re.compile(r"[A-Za-z0-9\u4e00-\u9fff]")
_LABEL = re.compile(
    r"(?i)^(?:(?:pro |quick )?tips?|note|hint|next(?: steps?)?|steps?(?: \d+)?|how to|"
    r"to do (?:it|this)|what to do|提示|注意|小贴士|下一步|步骤\S{0,2}|操作方法)$"
)
_LEADING_CONJUNCTION = re.compile(r"^(?i:and then|and|but|so|then|or)\s+")


def translate(text: str) -> Translation:
    """Rewrite a backend reply for tool use: no GUI steps, tool instructions in their place."""
    original = _tidy(text)
    state = _State()
    result = _translate_once(_drop_temporary_issue(original), state)
    # Re-joining kept clauses can, rarely, bring two harmless fragments together into a
    # phrase that reads as a GUI step; a further pass removes it. Each pass only drops text.
    for _ in range(3):
        if not has_gui_phrasing(result):
            break
        result = _translate_once(result, state)
    fell_back = has_gui_phrasing(result)
    if fell_back:
        result = " ".join(_FALLBACK[action] for action in state.actions)
    return Translation(
        text=result, actions=list(state.actions), changed=result != original, fell_back=fell_back
    )


def has_gui_phrasing(text: str) -> bool:
    """True when any GUI step (click, open a panel, drag, preview, 点击, 导出...) remains."""
    for line in text.splitlines():
        body = _LIST_PREFIX.sub("", line, count=1)
        for sentence, _ in _sentences(body):
            if _TOOL_MENTION.search(sentence):
                continue
            if any(_detect(clause) for clause, _ in _clauses(_strip_terminal(sentence)[0])):
                return True
    return False


@dataclass
class _State:
    """What one pass has suggested so far, so each tool is named once."""

    actions: list[Action] = field(default_factory=list)

    def instruction(self, kind: Kind) -> str:
        entry = _INSTRUCTIONS[kind]
        if entry is None or entry[0] in self.actions:
            return ""
        self.actions.append(entry[0])
        return entry[1]


def _translate_once(text: str, state: _State) -> str:
    """One pass over the lines, keeping list markers; items that vanish are renumbered."""
    lines: list[str] = []
    renumber = False
    for line in text.splitlines():
        prefix_match = _LIST_PREFIX.match(line)
        prefix = prefix_match.group(1) if prefix_match else ""
        body = line[len(prefix) :]
        new_body = _translate_line(body, state)
        if new_body == body:
            lines.append(line)
        elif new_body:
            lines.append(prefix + new_body)
        else:
            renumber = renumber or bool(_NUMBERED.match(line))
    if renumber:
        lines = _renumber(lines)
    return _tidy("\n".join(lines))


def _translate_line(body: str, state: _State) -> str:
    """The line itself when nothing in it is GUI, so untouched text keeps its exact spacing."""
    pieces: list[str] = []
    changed = False
    for sentence, space in _sentences(body):
        new = sentence if _TOOL_MENTION.search(sentence) else _translate_sentence(sentence, state)
        changed = changed or new != sentence
        if new:
            pieces.append(new)
            pieces.append(space)
    if not changed:
        return body
    return _join_sentences(pieces)


def _translate_sentence(sentence: str, state: _State) -> str:
    """Keep the content clauses of a sentence, then name the tools its GUI steps stand for."""
    core, terminal = _strip_terminal(sentence)
    clauses = _clauses(core)
    kinds = [_detect(clause) for clause, _ in clauses]
    if not any(kinds):
        return sentence
    kept = [
        i
        for i, (clause, sep) in enumerate(clauses)
        if not kinds[i] and _is_content(clause) and not _is_label(clause, sep)
    ]
    content = _rebuild(clauses, kept, terminal if kept and kept[-1] == len(clauses) - 1 else "")
    instructions = [state.instruction(kind) for found in kinds for kind in found]
    return " ".join(part for part in [content, *instructions] if part)


def _is_content(clause: str) -> bool:
    """A clause worth keeping next to a GUI step: a statement, not an instruction fragment."""
    bare = _LEADING_CONJUNCTION.sub("", _clean(clause))
    return bool(_WORDISH.search(bare)) and not _DEPENDENT.match(bare)


def _is_label(clause: str, separator: str) -> bool:
    """A short lead-in such as "Tip:" or "Next step:" that only introduces the GUI step."""
    return separator.strip()[:1] in (":", "：") and bool(_LABEL.match(_clean(clause)))


def _rebuild(clauses: list[tuple[str, str]], kept: list[int], terminal: str) -> str:
    """Join kept clauses with the separators that stood before them, as one sentence."""
    if not kept:
        return ""
    parts: list[str] = []
    for n, i in enumerate(kept):
        text = clauses[i][0].strip()
        if n == 0:
            if i > 0:
                text = _LEADING_CONJUNCTION.sub("", text)
                text = text[:1].upper() + text[1:]
        else:
            parts.append(clauses[i - 1][1])
        parts.append(text)
    body = "".join(parts).rstrip(" ,;:，；：—–-")
    if not terminal:
        terminal = "。" if _CJK.search(body[-1:]) else "."
    return body + terminal


def _sentences(line: str) -> list[tuple[str, str]]:
    """Split a line into (sentence, whitespace after it) pairs, English and Chinese."""
    out: list[tuple[str, str]] = []
    pos = 0
    for match in _SENTENCE_END.finditer(line):
        end = match.end()
        space_end = end
        while space_end < len(line) and line[space_end].isspace():
            space_end += 1
        if line[pos:end].strip():
            out.append((line[pos:end], line[end:space_end]))
        pos = space_end
    if line[pos:].strip():
        out.append((line[pos:], ""))
    return out


def _clauses(core: str) -> list[tuple[str, str]]:
    """Split a sentence into (clause, separator after it) pairs."""
    out: list[tuple[str, str]] = []
    pos = 0
    for match in _CLAUSE_SEP.finditer(core):
        if match.start() == match.end():
            continue
        out.append((core[pos : match.start()], match.group()))
        pos = match.end()
    out.append((core[pos:], ""))
    return [(c, s) for c, s in out if c.strip() or s]


def _strip_terminal(sentence: str) -> tuple[str, str]:
    """Split off the closing punctuation (and any closing quote or bracket)."""
    match = _TERMINAL.search(sentence)
    if not match:
        return sentence, ""
    return sentence[: match.start()], match.group()


def _clean(clause: str) -> str:
    """The clause without Markdown emphasis and leading bullets or quotes, for classifying."""
    return clause.replace("**", "").replace("__", "").strip(" \t*_>~#-–—•(\"'“‘")


def _join_sentences(pieces: list[str]) -> str:
    """Join sentences with their own spacing, a space where one was removed, none inside CJK."""
    out = ""
    for piece in pieces:
        if not piece:
            continue
        if piece.isspace():
            out += piece
            continue
        if out and not out[-1].isspace() and not (_CJK.search(out[-1]) and _CJK.search(piece[0])):
            out += " "
        out += piece
    return out.strip()


def _renumber(lines: list[str]) -> list[str]:
    """Number each run of ordered-list items consecutively from its first number."""
    out: list[str] = []
    expected: int | None = None
    for line in lines:
        match = _NUMBERED.match(line)
        if not match:
            expected = None
            out.append(line)
            continue
        number = int(match.group(2)) if expected is None else expected
        out.append(f"{match.group(1)}{number}{match.group(3)}{line[match.end() :]}")
        expected = number + 1
    return out


def _drop_temporary_issue(text: str) -> str:
    """Drop a trailing "I encountered a temporary issue..." that follows a normal answer."""
    match = _TEMPORARY_ISSUE.search(text)
    if match and text[: match.start()].strip():
        return _tidy(text[: match.start()])
    return text


def _tidy(text: str) -> str:
    """Unix line ends, single spaces inside lines, at most one blank line, no outer space."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = [re.sub(r"(?<=\S)[ \t]{2,}", " ", line).rstrip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


# -- detection --------------------------------------------------------------------------------


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_QUOTED = (
    r"(?:\"[^\"\n]{1,40}\"|“[^”\n]{1,40}”|'[^'\n]{1,40}'|‘[^’\n]{1,40}’|\[[^\]\n]{1,40}\]"
    r"|`[^`\n]{1,40}`|「[^」\n]{1,20}」|【[^】\n]{1,20}】|『[^』\n]{1,20}』)"
)
# Names the editor shows on its buttons and panels, in any case.
_KNOWN = (
    r"(?i:export|download|render|share|preview|play|upload|import|generate|regenerate|apply|"
    r"confirm|save|settings|music|audio|sound|text|titles?|effects?|transitions?|media|assets|"
    r"edit(?:ing)?|properties|layers?|captions?|subtitles?|stickers?|filters?|templates?|tools|"
    r"elements|timeline|undo|redo|split|trim|delete|crop|speed|volume|voiceover|uploads|credits|"
    r"billing|account|library)"
)
_CAPITALIZED = r"[A-Z][\w'&+-]*(?:[ \t]+[A-Z][\w'&+-]*){0,2}"
_PANEL = (
    r"(?i:panel|tab|menu|sidebar|side bar|toolbar|library|editor|settings|timeline|window|page|"
    r"section|dashboard|inspector|properties|pane|drawer|workspace)"
)
# Imperative position: the clause starts with the verb, or a modal addresses the user.
_LEAD = (
    r"(?:^|\b(?i:simply|just|please|now|then|also|next|first|finally)\s+"
    r"|\b(?i:you(?:'ll|’ll| will| can| could| may| might| should| need to| have to| want to| must))"
    r"\s+(?:(?i:also|then|now|simply|just|easily|always)\s+)*"
    r"|\b(?i:when|once|after|before|if)\s+(?i:you(?:'re|’re| are)?)\s+(?:(?i:ready\s+to)\s+)?"
    r"|\b(?i:feel free to|go ahead and|don't forget to|don’t forget to|remember to|make sure to|"
    r"be sure to|try to|try)\s+)"
)
_NOUN_USE = _words(
    "the a an one mouse single each every this that its camera shutter satisfying loud soft "
    "his her their of"
)
_NOUN_NEXT = _words("of sound sounds noise noises track effect effects rate")
_GENERIC = re.compile(r"(?i)^(?:here|it|this|that|there|on it|icon|button|the icon|the button)?$")
_NAME_END = re.compile(
    r"(?i)\s+(?:to|and|then|when|if|in|at|from|for|so|once|on|located|which|that|under|near|"
    r"next|below|above|beside)\b|[,.;:!?，。；：！？(]|以|来|即|就|后"
)
_KEYWORDS: list[tuple[Kind, re.Pattern[str]]] = [
    (
        "credits",
        re.compile(
            r"(?i)\b(?:credits?|billing|account|balance|top[- ]?up|recharge|"
            r"upgrade|subscri\w*|pricing|plans?|buy|purchase|wallet)\b"
            r"|积分|余额|充值|账户|账号|升级|会员|订阅|账单"
        ),
    ),
    ("export", re.compile(r"(?i)\b(?:export|download|render|share)\b|导出|下载|分享")),
    ("upload", re.compile(r"(?i)\b(?:upload\w*|import|media|browse|files?)\b|上传|导入")),
    ("preview", re.compile(r"(?i)\b(?:preview|play|watch)\b|预览|播放")),
    (
        "none",
        re.compile(r"(?i)^\W*(?:save|close|done|cancel|dismiss|x)\W*$|^(?:保存|关闭|完成|取消)"),
    ),
    (
        "confirm",
        re.compile(
            r"(?i)\b(?:generate|create|confirm|continue|start|apply|submit|send|"
            r"retry|ok|okay|yes|go)\b|生成|确认|确定|继续|开始|应用|提交|发送|重试"
        ),
    ),
]
_LEADING_SYMBOLS = re.compile(r"^[^\w\[「【]+")
_PANELISH = re.compile(rf"(?:{_PANEL}|面板|菜单|标签|侧边栏|设置|窗口|页面)\W*$")


_Resolver = Callable[[re.Match[str], str], "Kind | None"]


def _keyword_kind(text: str) -> Kind | None:
    """The first kind, in `_KEYWORDS` order, whose words appear in the text."""
    for kind, pattern in _KEYWORDS:
        if pattern.search(text):
            return kind
    return None


def _button_kind(name: str, purpose: str) -> Kind:
    """What pressing a named control means: the name decides, then what it is for."""
    name = name.strip(" \t\"'“”‘’[]`「」【】『』*")
    core = re.sub(r"(?i)\s*\b(?:button|btn|icon|link|option)$|按钮$|图标$", "", name).strip()
    if _GENERIC.match(core) or not _WORDISH.search(core):
        return _keyword_kind(purpose) or "confirm"
    if kind := _keyword_kind(name):
        return kind
    return "state" if _PANELISH.search(name) else "edit"


def _click_kind(match: re.Match[str], clause: str) -> Kind | None:
    """A click on a named control; None for the noun ("the click of a shutter")."""
    before = clause[: match.start()].split()
    rest = match.group("rest")
    following = re.match(r"\s*([\w-]+)", rest)
    if before and before[-1].lower() in _NOUN_USE and match.start() > 0:
        return None
    if following and following.group(1).lower() in _NOUN_NEXT:
        return None
    body = re.sub(r"(?i)^\s*(?:on\s+)?(?:(?:the|that|this|your)\s+)?", "", rest)
    quoted = re.match(_QUOTED, body)
    name = quoted.group() if quoted else _NAME_END.split(body, maxsplit=1)[0]
    return _button_kind(name, body)


def _control_kind(match: re.Match[str], clause: str) -> Kind | None:
    """A named control ("the Export button", "the Music tab") mentioned anywhere."""
    name = match.group("rest") or match.group("q")
    noun = match.group("noun")
    # Menus, windows, options and links are everyday words: only a known or quoted name
    # makes "the X menu" a control rather than, say, a restaurant's menu.
    if noun.lower() not in _CONTROL_NOUNS and not re.fullmatch(rf"{_QUOTED}|{_KNOWN}", name):
        return None
    return _button_kind(f"{name} {noun}", clause[match.end() :])


def _area_kind(match: re.Match[str], clause: str) -> Kind:
    """Opening a panel reads the state, unless the panel or its purpose names another tool."""
    for text in (match.group(), clause[match.end() :]):
        kind = _keyword_kind(text)
        if kind in ("credits", "export", "upload"):
            return kind
    return "preview" if _keyword_kind(match.group()) == "preview" else "state"


def _drag_kind(match: re.Match[str], clause: str) -> Kind:
    """Dragging files in is an upload; dragging anything else is an edit."""
    into_library = (
        r"(?i)\bupload|\bimport|\bfiles?\b|\bmedia\b|your (?:computer|device)|上传|导入|文件"
    )
    return "upload" if re.search(into_library, clause) else "edit"


def _rule(resolve: _Resolver, pattern: str) -> tuple[re.Pattern[str], _Resolver]:
    return re.compile(pattern), resolve


def _fixed(kind: Kind) -> _Resolver:
    return lambda match, clause: kind


# Nouns that are always controls, and everyday nouns that are controls only with a known name.
_CONTROL_NOUNS = _words("button btn icon tab panel sidebar toolbar dropdown drop-down pane dialog")
_EVERYDAY_NOUNS = _words("menu window option link slider")
_CONTROL = "|".join(sorted(_CONTROL_NOUNS))
_PATTERNS: list[tuple[re.Pattern[str], _Resolver]] = [
    _rule(
        _click_kind, r"(?<![\w-])(?i:(?:double|right)[- ]?)?(?i:click)(?:ing)?(?![\w-])(?P<rest>.*)"
    ),
    _rule(
        lambda m, c: _button_kind(m.group("rest"), c[m.end() :]),
        rf"{_LEAD}(?i:tap|press|hit|select|choose|pick|use|toggle|tick)\s+(?i:on\s+)?"
        rf"(?:(?i:the|your)\s+)?(?P<rest>{_QUOTED}|(?=[A-Z]){_KNOWN}\b)",
    ),
    _rule(
        _control_kind,
        rf"(?:\b(?i:the|your)\s+(?P<rest>{_QUOTED}|{_KNOWN}|{_CAPITALIZED})|(?P<q>{_QUOTED}))"
        rf"\s+(?P<noun>(?i:{_CONTROL}|{'|'.join(sorted(_EVERYDAY_NOUNS))}))\b",
    ),
    _rule(
        _area_kind,
        rf"{_LEAD}(?i:open(?:\s+up)?|go\s+to|navigate\s+to|head(?:\s+over)?\s+to|"
        rf"switch\s+to|expand|bring\s+up|pull\s+up|visit)\s+(?:(?i:the|your)\s+)?"
        rf"(?:[\w'&-]+\s+){{0,2}}?{_PANEL}\b",
    ),
    _rule(
        _area_kind,
        rf"{_LEAD}(?i:go\s+to|navigate\s+to|head(?:\s+over)?\s+to|switch\s+to)\s+"
        rf"(?:(?i:the)\s+)?(?=[A-Z]){_KNOWN}\b"
        r"|\b[A-Z][\w-]*(?:\s+[A-Z][\w-]*)?\s*[>›→»]\s*[A-Z][\w-]*",
    ),
    _rule(
        _area_kind,
        rf"\b(?i:in|on|from|under|via|using|inside|within|at)\s+(?i:the|your)\s+"
        rf"(?:(?:(?i:top|bottom|left|right|upper|lower|side|main)[\s-]*){{1,2}}|{_KNOWN}\s+"
        rf"|{_QUOTED}\s+|[A-Z][\w'-]*\s+)(?i:panel|sidebar|side bar|toolbar|dropdown|"
        rf"drop-down menu|menu bar|inspector|pane|tab)\b",
    ),
    _rule(_fixed("preview"), rf"{_LEAD}(?i:preview)(?![\w'’-])"),
    _rule(
        _fixed("preview"),
        r"\b(?i:see|view|watch|play|check|review|find|look\s+at)\s+(?:(?i:it|them|this|"
        r"that|everything|(?:the|your)\s+[\w-]+(?:\s+[\w-]+)?)\s+)?(?i:in|on)\s+(?i:the)\s+"
        r"(?i:timeline|editor|preview|player|canvas)\b(?!['’])",
    ),
    _rule(
        _fixed("preview"),
        r"\b(?i:in|on|inside)\s+the\s+(?i:preview(?:\s+(?:window|panel|player|pane|area|"
        r"screen))?|(?:video\s+)?player\s+(?:window|panel|pane|area))\b(?!['’])",
    ),
    _rule(
        _drag_kind,
        rf"{_LEAD}(?i:drag(?:ging)?|drop)(?![\w'’-])|\b(?i:drag[\s-]*(?:and|&|n|'n')[\s-]*"
        r"drop(?:ping)?|by\s+dragging)\b",
    ),
    _rule(
        _fixed("export"),
        rf"{_LEAD}(?i:export|download)(?![\w'’-])|\b(?i:ready\s+(?:to|for)\s+(?:export|"
        r"download)(?:ing)?)\b",
    ),
    _rule(
        lambda m, c: (
            "export" if re.search(r"(?i)\b(?:computer|device|phone|desktop|mp4)\b", c) else "none"
        ),
        rf"{_LEAD}(?i:save)(?![\w'’-])",
    ),
    _rule(
        _fixed("credits"),
        rf"{_LEAD}(?i:check|view|see|visit|go\s+to|open|review|manage|top\s+up|top-up|"
        r"recharge|upgrade|refill|buy|purchase)\s+(?:(?i:your|the|more|some|a)\s+)?"
        r"(?i:account|billing|balance|credits?|subscription|plan|wallet|usage|quota|"
        r"membership)\b(?!\s*(?i:score|card|report|history|union|rating|limit))"
        r"|\b(?i:account|billing|subscription|pricing)\s+(?i:page|settings|dashboard|"
        r"section|tab|panel|center|centre)\b",
    ),
    _rule(_fixed("upload"), rf"{_LEAD}(?i:upload|import)(?![\w'’-])"),
    # Chinese
    _rule(
        lambda m, c: _button_kind(m.group("rest"), m.group("rest")),
        r"(?:点击|单击|双击|点按|轻点|轻触|按下|右键)(?P<rest>.*)",
    ),
    _rule(
        _area_kind,
        r"(?:打开|进入|前往|切换到|转到)[^，。；,;]{0,10}?(?:面板|菜单|标签页?|时间线|时间轴|编辑器|"
        r"设置|窗口|页面|侧边栏|素材库|音乐库|工具栏|选项卡|中心)",
    ),
    _rule(
        _drag_kind,
        r"拖拽|拖放|拖入|拖到|拖至|拖动[^，。；,;]{0,8}?(?:到|至|片段|素材|滑块|手柄|边缘|进度条|轨道|字幕)",
    ),
    _rule(_fixed("preview"), r"预览|在时间[线轴][上中里]?(?:查看|播放)"),
    _rule(_fixed("export"), r"导出|(?:点击|请|可以|即可|直接|然后|再|您可|可)\s*下载|下载按钮"),
    _rule(
        _fixed("credits"),
        r"(?:查看|检查|前往|进入|登录)[^，。；,;]{0,6}?(?:账户|账号|余额|积分|账单|会员|订阅)|充值|"
        r"账户设置|会员中心|升级(?:套餐|会员|计划)",
    ),
    _rule(
        _fixed("upload"),
        r"(?:请|可以|点击|先|再|然后|需要|您可|直接)\s*(?:上传|导入)|(?:上传|导入)(?:按钮|区域|入口)",
    ),
]

_GUI_VERB = (
    r"(?i:click|tap|press|hit|open|drag|drop|select|choose|pick|preview|go\s+to|head\s+to|"
    r"navigate|use\s+the|you)\b"
)
_CLAUSE_SEP = re.compile(
    r"\s*[,;:，；：]\s*(?:(?i:and\s+then|and|then|or|but|so)\s+)?"
    r"|\s+[—–]\s*|\s*[—–]\s+|\s+-{1,2}\s+|—"
    rf"|\s+(?i:and\s+then|then)\s+|\s+(?i:and|or)\s+(?={_GUI_VERB})"
)
_DEPENDENT = re.compile(
    r"(?i)^(?:to|in order to|if|when|whenever|once|after|before|so that|so|then|where|from there|"
    r"from here|while|until|for|simply|just|please|now|next|finally|first|also|here you can|"
    r"there you can|this (?:will|lets|allows)|that (?:will|lets)|which|"
    r"you(?:'ll|’ll|'d|’d| will| can| could| may| might| should| need| have to| want| must| would)|"
    r"feel free|go ahead|don't|don’t|remember|make sure|be sure|try|select|choose|pick|adjust|set|"
    r"use|go|navigate|head|find|locate|hit|tap|press|scroll|hover|save|play|watch|view|see|"
    r"review|check|enjoy|wait|confirm|apply|toggle|move|trim|resize|switch|browse|type|enter|add|"
    r"remove|delete|replace|customi[sz]e|edit|change|tweak|(?:at|in|on) the (?:top|bottom|left|"
    r"right|upper|lower))\b"
    r"|^(?:如需|如要|如想|如果|若|要|想|想要|为了|您可以|你可以|可以|请|然后|再|接着|之后|以便|来|就|即可|选择|找到|进入|"
    r"前往|返回|使用|调整|满意后|完成后|确认后)"
)


def _detect(clause: str) -> list[Kind]:
    """The kinds of GUI step in one clause, in order of appearance; empty when there is none."""
    # Markdown emphasis, bullets, emoji and opening quotes would hide the imperative position.
    text = _LEADING_SYMBOLS.sub("", clause.replace("**", "").replace("__", "")).rstrip()
    found: list[tuple[int, Kind]] = []
    for pattern, resolve in _PATTERNS:
        for match in pattern.finditer(text):
            kind = resolve(match, text)
            if kind is not None:
                found.append((match.start(), kind))
    kinds: list[Kind] = []
    for _, kind in sorted(found, key=lambda item: item[0]):
        if kind not in kinds:
            kinds.append(kind)
    return kinds
