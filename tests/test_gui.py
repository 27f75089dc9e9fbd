"""GUI translation: replies rewritten into tool instructions, content kept, no GUI step left."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nemo_mcp.replies.gui import Translation, has_gui_phrasing, translate

EXPORT = "Call `export` to render and save the MP4 (free)."
PREVIEW = "See the timeline summary below, or call `timeline` for every track."
STATE = "Call `timeline` to read the current tracks."
EDIT = "To change anything else, describe it with `generate`."
CONFIRM = "Ask for it with `generate`."
CREDITS = "Call `credits` for the balance."
UPLOAD = "Call `upload` with the file paths or URLs."


def assert_reads_naturally(text: str) -> None:
    assert not has_gui_phrasing(text), text
    assert "  " not in text, text
    assert not re.search(r"\s[.,;:!?]|,[.!?]|\.\.(?!\.)|\bthen[.!?]?$", text), text
    assert not re.search(r"(?i)(?:^|[.!?] )(?:then|and|but)\b", text), text
    assert text == text.strip(), text


# -- whole replies, exact results ---------------------------------------------------------------

EXACT = [
    (
        "Your video is ready! Click the Export button to download your video.",
        f"Your video is ready! {EXPORT}",
        ["export"],
    ),
    (
        (
            "I've added upbeat background music. You can preview it in the timeline and click Export "
            "when you're happy."
        ),
        f"I've added upbeat background music. {PREVIEW} {EXPORT}",
        ["timeline", "export"],
    ),
    ("Preview in timeline", PREVIEW, ["timeline"]),
    ("Open the music panel.", STATE, ["timeline"]),
    ("Drag the clip to the start.", EDIT, ["generate"]),
    ("Please check your account and billing.", CREDITS, ["credits"]),
    ('Click "Export" to save your MP4.', EXPORT, ["export"]),
    ("Click the [Export] button in the top right corner.", EXPORT, ["export"]),
    (
        "Your video is ready, click **Export** to download it.",
        f"Your video is ready. {EXPORT}",
        ["export"],
    ),
    (
        "I've added the music track, drag it to adjust its position.",
        f"I've added the music track. {EDIT}",
        ["generate"],
    ),
    ("To change the music, open the Music panel and pick a track.", STATE, ["timeline"]),
    ("If you want to change anything, just drag the clip or ask me.", EDIT, ["generate"]),
    (
        (
            "Once you're happy with it, hit the Export button in the top right corner to download your "
            "1080p MP4."
        ),
        EXPORT,
        ["export"],
    ),
    ("I've trimmed the clip, then click Export.", f"I've trimmed the clip. {EXPORT}", ["export"]),
    ("Tip: drag the clip to reorder it.", EDIT, ["generate"]),
    (
        "The music has been added — open the Audio panel to adjust the volume.",
        f"The music has been added. {STATE}",
        ["timeline"],
    ),
    (
        (
            "You don't have enough credits for this generation. Please check your account balance or "
            "top up in the billing page."
        ),
        f"You don't have enough credits for this generation. {CREDITS}",
        ["credits"],
    ),
    ("Click Confirm to start generating.", CONFIRM, ["generate"]),
    ("Press Generate to start.", CONFIRM, ["generate"]),
    ('Great choice! Hit "Apply" to confirm.', f"Great choice! {CONFIRM}", ["generate"]),
    ("Please upload an image and I'll animate it.", UPLOAD, ["upload"]),
    ("Click here to download the final video.", EXPORT, ["export"]),
    ("Click the ⬇ icon to download.", EXPORT, ["export"]),
    ("Go to Settings > Account to see your balance.", CREDITS, ["credits"]),
    (
        "Your project is saved automatically. Go to File > Export to render the final video.",
        f"Your project is saved automatically. {EXPORT}",
        ["export"],
    ),
    ("Then click Save to keep your changes.", "", []),
    (
        "Your video is ready! Click Export to download it. You can also export it from the File menu.",
        f"Your video is ready! {EXPORT}",
        ["export"],
    ),
    # Chinese
    ("视频已生成。点击导出按钮即可下载。", f"视频已生成。 {EXPORT}", ["export"]),
    ("已为您添加背景音乐，打开音乐面板可以更换。", f"已为您添加背景音乐。 {STATE}", ["timeline"]),
    ("请拖拽片段到时间线开头。", EDIT, ["generate"]),
    ("您可以在时间线上预览效果。", PREVIEW, ["timeline"]),
    ("点击右上角的“导出”按钮，选择1080p后下载。", EXPORT, ["export"]),
    ("请先上传图片素材。", UPLOAD, ["upload"]),
    ("前往账户设置查看剩余积分。", CREDITS, ["credits"]),
    ("视频已生成完毕，您可以导出了。", f"视频已生成完毕。 {EXPORT}", ["export"]),
    (
        "您的视频已经生成好了！您可以在时间线中预览，满意后点击右上角的导出按钮下载视频。",
        f"您的视频已经生成好了！ {PREVIEW} {EXPORT}",
        ["timeline", "export"],
    ),
    (
        "已将背景音乐替换为轻快的钢琴曲。如需调整音量，请打开音频面板拖动音量滑块。",
        f"已将背景音乐替换为轻快的钢琴曲。 {STATE} {EDIT}",
        ["timeline", "generate"],
    ),
]


@pytest.mark.parametrize(("reply", "text", "actions"), EXACT)
def test_exact_translation(reply: str, text: str, actions: list[str]) -> None:
    result = translate(reply)
    assert result == Translation(text=text, actions=actions, changed=True)  # type: ignore[arg-type]
    assert_reads_naturally(result.text)
    assert has_gui_phrasing(reply)


def test_markdown_reply_keeps_its_shape() -> None:
    reply = (
        "Your video is ready! 🎬\n\n**What's included:**\n- A 10-second clip of a city at night\n"
        "- Lo-fi background music\n\n**Next steps:**\n1. Preview it in the timeline\n"
        "2. Click **Export** to download your MP4\n3. Check your credits balance in the account "
        "settings\n\nLet me know if you'd like any changes!"
    )
    result = translate(reply)
    assert result.text == (
        "Your video is ready! 🎬\n\n**What's included:**\n- A 10-second clip of a city at night\n"
        f"- Lo-fi background music\n\n**Next steps:**\n1. {PREVIEW}\n2. {EXPORT}\n3. {CREDITS}\n\n"
        "Let me know if you'd like any changes!"
    )
    assert result.actions == ["timeline", "export", "credits"]


def test_list_items_that_vanish_are_renumbered() -> None:
    reply = "Next steps:\n1. Click Export to download.\n2. Then click Export again to save it.\n3. Enjoy your video!"
    result = translate(reply)
    assert result.text == f"Next steps:\n1. {EXPORT}\n2. Enjoy your video!"
    assert result.actions == ["export"]


# -- mixed content and GUI -----------------------------------------------------------------------

MIXED = [
    (
        (
            "Your 15-second product video is ready! 🎉 You can download it by clicking the Export "
            "button in the top-right corner."
        ),
        ["Your 15-second product video is ready!"],
        ["export"],
    ),
    (
        (
            'I\'ve added a title "Urban Dreams" at the beginning. You can adjust its position by '
            "dragging it on the timeline."
        ),
        ['I\'ve added a title "Urban Dreams" at the beginning.'],
        ["generate"],
    ),
    (
        (
            'The background music has been changed to "Ocean Calm". Preview the result in the '
            "timeline, and when you're satisfied, click Export."
        ),
        ['The background music has been changed to "Ocean Calm".'],
        ["timeline", "export"],
    ),
    (
        (
            "Done! I've trimmed the clip to 8 seconds. If you'd like to fine-tune the cut, drag the "
            "edges of the clip in the timeline."
        ),
        ["Done! I've trimmed the clip to 8 seconds."],
        ["generate"],
    ),
    (
        "I've generated your video. To see all the tracks, open the timeline panel at the bottom.",
        ["I've generated your video."],
        ["timeline"],
    ),
    (
        "I've added the subtitles. 👉 Drag the subtitle track to align it with the voice-over.",
        ["I've added the subtitles."],
        ["generate"],
    ),
    (
        (
            "Please upload your logo image first (click the Upload button or drag the file into the "
            "media area), then I'll place it in the corner."
        ),
        ["I'll place it in the corner."],
        ["upload"],
    ),
    (
        "The clip is on the timeline; select it and press Delete to remove it.",
        ["The clip is on the timeline."],
        ["generate"],
    ),
    (
        "Want a different voice? Open the Voiceover panel and pick another voice, or just tell me.",
        ["Want a different voice?"],
        ["timeline"],
    ),
    (
        (
            "I replaced the music with a calm piano piece and lowered it to 30% — you'll see the new "
            "track in the timeline."
        ),
        ["I replaced the music with a calm piano piece and lowered it to 30%."],
        ["timeline"],
    ),
    (
        (
            "A sunset over the ocean, waves rolling in slowly, and seagulls overhead; use the Export "
            "button to get it."
        ),
        ["A sunset over the ocean, waves rolling in slowly, and seagulls overhead."],
        ["export"],
    ),
    (
        "I've made the intro brighter and added a whoosh transition. Right-click the clip to undo.",
        ["I've made the intro brighter and added a whoosh transition."],
        ["generate"],
    ),
    (
        (
            "The aspect ratio can't be changed on an existing video: a new generation is needed. "
            "Click Generate to start a 9:16 version."
        ),
        ["The aspect ratio can't be changed on an existing video: a new generation is needed."],
        ["generate"],
    ),
    (
        "Your title now fades in over 1 second, and the font is bolder. Double-click it to edit the text.",
        ["Your title now fades in over 1 second, and the font is bolder."],
        ["generate"],
    ),
    (
        (
            "I couldn't fetch that YouTube link, but I picked a similar lo-fi track. Browse more "
            "tracks in the Music tab."
        ),
        ["I couldn't fetch that YouTube link, but I picked a similar lo-fi track."],
        ["timeline"],
    ),
    ("字幕已添加完成。点击播放按钮预览效果。", ["字幕已添加完成。"], ["timeline"]),
    (
        "已生成一段10秒的城市夜景视频，拖动片段可以调整顺序。",
        ["已生成一段10秒的城市夜景视频。"],
        ["generate"],
    ),
    ("积分不足，请前往会员中心充值。", ["积分不足。"], ["credits"]),
]


@pytest.mark.parametrize(("reply", "kept", "actions"), MIXED)
def test_content_is_kept_and_gui_replaced(reply: str, kept: list[str], actions: list[str]) -> None:
    result = translate(reply)
    for fragment in kept:
        assert fragment in result.text
    assert result.actions == actions
    assert result.changed
    assert_reads_naturally(result.text)


# -- plain content is never touched ------------------------------------------------------------

CONTENT = [
    "The open-air concert scene features a dragon flying overhead.",
    "I've created a 10-second video of a city at night with neon lights and light rain.",
    "A video about the export business in Shanghai.",
    "The video explains how to check your credit score.",
    "A drone shot opens over the open-air market.",
    "The dragon breathes fire over the castle.",
    "The video shows people downloading apps on their phones.",
    "Background music: Lo-fi Chill (0-10s, 35%).",
    'Timeline (3 tracks): 1. Video: city timelapse (0-10s) 2. BGM: Lo-fi (0-10s, 35%) 3. Title: "Urban Dreams" (0-3s)',
    "I added a click sound effect when the title appears.",
    "The camera pans to a satisfying click of the shutter.",
    "The scene shows a hand pressing a big red button.",
    "The drop shadow on the title makes it readable.",
    "The bass drop hits at 0:05.",
    "A kid opens the door to a magical library.",
    "The clip plays in slow motion.",
    "Your video is being generated, this usually takes 2-5 minutes.",
    'The title card reads "Summer Sale" in bold yellow text.',
    "I've replaced the background music with an upbeat electronic track.",
    "Changing the aspect ratio requires generating a new video.",
    "A solar panel installation on a roof at sunset.",
    "People dance at an open air festival as drag queens perform.",
    "The export of goods from the port is shown in a timelapse.",
    "A tutorial on how to export data from Excel.",
    "The video ends with a logo in the top right corner.",
    "We see a play button animation at the start.",
    "The clicking of heels echoes in the hallway.",
    "She picks the red dress and walks away.",
    "He selects a book from the shelf.",
    "Light rain falls on the window while a cat watches.",
    "Your credits: 100 available.",
    "Generation costs about 100 credits per clip.",
    "The end credits roll over a black background.",
    "The Golden Gate Bridge at dawn, with fog rolling in.",
    "You can also ask me to add subtitles or change the music.",
    "Let me know if you want a different style.",
    "Would you like me to add a voiceover?",
    "Done! The video now has a title at the start.",
    "A video about the Nintendo Switch and the McDonald's menu.",
    "Upload-themed intro animation with floating icons.",
    "Photos can become a slideshow, but they cannot be edited.",
    "YouTube and Spotify links are not fetched; the built-in library has similar styles.",
    "城市夜景的延时摄影，配上轻松的音乐。",
    "一个打开礼物的小女孩，画面温馨。",
    "视频展示了一匹马拖着马车穿过田野。",
    "已根据您上传的图片生成了一段5秒的动画。",
    "Call `export` to render and download the MP4 (free).",
    "Call `credits` to see the balance.",
    "Call `generate` again with the same request to wait for the result (or `timeline` to look meanwhile).",
]


@pytest.mark.parametrize("reply", CONTENT)
def test_content_passes_through(reply: str) -> None:
    assert not has_gui_phrasing(reply)
    assert translate(reply) == Translation(text=reply, actions=[], changed=False)


# -- detection ------------------------------------------------------------------------------------

GUI = [
    "Click Export.",
    "click on the export button",
    "CLICK THE EXPORT BUTTON",
    "Click 'Export'",
    "Click “Export”",
    "click the [Export] button",
    "Double-click the title to edit it.",
    "Right-click the clip and choose Delete.",
    "Tap the Export icon to save your video.",
    "Press the Generate button.",
    "Hit 'Generate' to create your video.",
    "Select 'Add Music' from the menu.",
    "Use the Export button at the top right.",
    "Open the music panel",
    "open up the Effects tab",
    "Head over to the Text tab to edit the title.",
    "Go to the editor.",
    "You can find the new track in the Audio panel.",
    "In the right panel, set the volume to 35%.",
    "drag the clip to the start",
    "Simply drag and drop your images onto the timeline.",
    "You can trim the clip by dragging its edges.",
    "Drop your files here.",
    "Preview in timeline",
    "preview it",
    "You'll see the new track in the timeline.",
    "Check the result in the preview window.",
    "Watch it in the player window.",
    "Your video is ready to export!",
    "Your video is now ready for download.",
    "You can download it now.",
    "Once you export it, you'll get an MP4 file.",
    "Export your video",
    "Check your account page.",
    "Please check your billing.",
    "You can top up your credits anytime.",
    "Upgrade your plan to remove the watermark.",
    "Visit the pricing page.",
    "Please upload an image.",
    "Go to Settings > Account.",
    "点击导出",
    "点击右上角的导出按钮",
    "打开音乐面板",
    "拖拽片段到开头",
    "您可以在时间线上预览",
    "导出视频",
    "请先上传图片",
    "前往账户设置查看积分",
    "请充值后继续",
]


@pytest.mark.parametrize("phrase", GUI)
def test_gui_phrasing_is_detected_and_removed(phrase: str) -> None:
    assert has_gui_phrasing(phrase)
    result = translate(phrase)
    assert not has_gui_phrasing(result.text)
    assert result.changed


@pytest.mark.parametrize(
    ("phrase", "action"),
    [
        ("Click Export.", "export"),
        ("Click Download.", "export"),
        ("Click Share to send it.", "export"),
        ("Click the Preview button.", "timeline"),
        ("Click Play to watch it.", "timeline"),
        ("Click Upload.", "upload"),
        ("Click Import to add media.", "upload"),
        ("Click the Credits button.", "credits"),
        ("Click Top up.", "credits"),
        ("Click Generate.", "generate"),
        ("Click Apply.", "generate"),
        ("Click the scissors icon.", "generate"),
        ("Click Split.", "generate"),
        ("Click the Music tab.", "timeline"),
        ("Click here to upload your photos.", "upload"),
        ("Click here to check your credits.", "credits"),
        ("Click here.", "generate"),
        ("点击导出", "export"),
        ("点击上传按钮", "upload"),
        ("点击生成", "generate"),
        ("点击预览", "timeline"),
        ("点击充值", "credits"),
        ("点击音乐面板", "timeline"),
        ("点击删除按钮", "generate"),
    ],
)
def test_button_names_choose_the_tool(phrase: str, action: str) -> None:
    assert translate(phrase).actions == [action]


@pytest.mark.parametrize("phrase", ["Click Save.", "Click Close.", "点击保存"])
def test_buttons_without_an_api_equivalent_are_dropped(phrase: str) -> None:
    assert translate(phrase) == Translation(text="", actions=[], changed=True)


def test_each_tool_is_suggested_once_in_order() -> None:
    reply = (
        "Open the timeline panel. Click Export to download. Check your credits. "
        "Click Export again if needed. Open the Effects tab."
    )
    result = translate(reply)
    assert result.actions == ["timeline", "export", "credits"]
    assert result.text == f"{STATE} {EXPORT} {CREDITS}"


def test_instructions_never_read_as_gui() -> None:
    for sentence in (EXPORT, PREVIEW, STATE, EDIT, CONFIRM, CREDITS, UPLOAD):
        assert not has_gui_phrasing(sentence)
        assert translate(sentence).text == sentence


# -- the trailing temporary issue ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "text"),
    [
        (
            "Here is your video. I encountered a temporary issue, please try again.",
            "Here is your video.",
        ),
        (
            "Music added!\n\nI encountered a temporary issue. Please try again later.",
            "Music added!",
        ),
        ("Done. I've encountered a temporary issue while saving.", "Done."),
        (
            # Two messages of the stream, the first without a full stop.
            "The title is on the video\n\nI encountered a temporary issue",
            "The title is on the video",
        ),
        (
            "I encountered a temporary issue, please try again.",
            "I encountered a temporary issue, please try again.",
        ),
        ("字幕已添加。我遇到了一个临时问题，请稍后重试。", "字幕已添加。"),
        (
            "I encountered a temporary issue earlier, but the video is ready now.",
            "I encountered a temporary issue earlier, but the video is ready now.",
        ),
    ],
)
def test_trailing_temporary_issue(reply: str, text: str) -> None:
    result = translate(reply)
    assert result.text == text
    assert result.changed == (text != reply)


def test_temporary_issue_in_the_middle_is_kept() -> None:
    reply = "I encountered a temporary issue.\nRetried, and the title is now added."
    assert translate(reply).text == reply


# -- whitespace and edge cases ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "text"),
    [
        ("", ""),
        ("   \n\n ", ""),
        ("Your video is ready.\r\n\r\n\r\n\r\nEnjoy!", "Your video is ready.\n\nEnjoy!"),
        ("Your  video   is ready.  ", "Your video is ready."),
    ],
)
def test_whitespace(reply: str, text: str) -> None:
    assert translate(reply).text == text


def test_long_reply_is_fast_and_clean() -> None:
    paragraph = (
        "I've added a calm piano track under the city timelapse. Click Export to download it, "
        "or drag the clip to reorder it. The title fades in over two seconds.\n\n"
    )
    result = translate(paragraph * 300)
    assert not has_gui_phrasing(result.text)
    assert result.actions == ["export", "generate"]
    assert result.text.count("The title fades in over two seconds.") == 300


# -- properties ------------------------------------------------------------------------------------

CONTENT_SENTENCES = [
    "Your video is ready",
    "I've added a calm piano track",
    "The title now fades in over two seconds",
    "A drone shot glides over the open-air market",
    "The dragon lands on the castle tower",
    "Waves roll onto the beach at sunset",
    "The clip is now 8 seconds long",
    "I lowered the music volume to 30%",
    "视频已生成",
    "已添加背景音乐",
]
GUI_PHRASES = [
    ("click the Export button to download it", "export"),
    ('click "Export"', "export"),
    ("hit the [Export] button", "export"),
    ("you can download it from the top bar", "export"),
    ("open the music panel to pick another track", "timeline"),
    ("preview it in the timeline", "timeline"),
    ("you can see it in the preview window", "timeline"),
    ("drag the clip to the start", "generate"),
    ("just drag and drop it where you want", "generate"),
    ("double-click the title to edit it", "generate"),
    ("press Generate to continue", "generate"),
    ("check your account balance", "credits"),
    ("top up your credits on the billing page", "credits"),
    ("please upload your logo first", "upload"),
    ("点击导出按钮下载", "export"),
    ("打开音乐面板", "timeline"),
    ("拖拽片段调整顺序", "generate"),
    ("请先上传图片", "upload"),
    ("前往账户设置查看余额", "credits"),
]
JOINERS = [". ", "! ", ", ", "; ", " — ", ", then ", " and then ", ", and ", "，", "。", ": "]


@settings(max_examples=400, deadline=None)
@given(
    content=st.lists(st.sampled_from(CONTENT_SENTENCES), min_size=1, max_size=3),
    gui=st.lists(st.sampled_from(GUI_PHRASES), min_size=1, max_size=3),
    joiners=st.lists(st.sampled_from(JOINERS), min_size=6, max_size=6),
    gui_first=st.booleans(),
    capitalize=st.booleans(),
)
def test_generated_replies_lose_every_gui_phrase(
    content: list[str],
    gui: list[tuple[str, str]],
    joiners: list[str],
    gui_first: bool,
    capitalize: bool,
) -> None:
    phrases = [g[0][:1].upper() + g[0][1:] if capitalize else g[0] for g in gui]
    parts = phrases + content if gui_first else content + phrases
    reply = parts[0]
    for joiner, part in zip(joiners, parts[1:], strict=False):
        reply += joiner + part
    reply += "."
    result = translate(reply)
    assert has_gui_phrasing(reply)
    assert not has_gui_phrasing(result.text)
    assert result.changed
    assert result.actions and set(result.actions) <= {g[1] for g in gui}
    assert "  " not in result.text
    if not gui_first:
        # The content before the first GUI step always survives.
        assert result.text.startswith(content[0][:8])


@settings(max_examples=300, deadline=None)
@given(
    sentences=st.lists(
        st.sampled_from(CONTENT_SENTENCES + [g[0] for g in GUI_PHRASES]), max_size=6
    ),
    joiner=st.sampled_from([". ", "\n", "\n\n- ", "! ", "。"]),
)
def test_separate_content_sentences_survive_verbatim(sentences: list[str], joiner: str) -> None:
    reply = joiner.join(s[:1].upper() + s[1:] for s in sentences) + "."
    result = translate(reply)
    assert not result.fell_back
    assert not has_gui_phrasing(result.text)
    for sentence in sentences:
        if sentence in CONTENT_SENTENCES and joiner != "。":
            assert sentence[:1].upper() + sentence[1:] in result.text


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=300))
def test_never_raises_and_never_leaves_gui(text: str) -> None:
    result = translate(text)
    assert not result.fell_back, "the rewrite left a GUI step and fell back"
    assert not has_gui_phrasing(result.text)
    assert set(result.actions) <= {"export", "timeline", "credits", "generate", "upload"}
    assert len(result.actions) == len(set(result.actions))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "click",
                "Export",
                "open",
                "the",
                "panel",
                "drag",
                "drop",
                "preview",
                "in",
                "timeline",
                "button",
                "you can",
                "check",
                "your",
                "account",
                ",",
                ".",
                "then",
                "and",
                "点击",
                "导出",
                "打开",
                "面板",
                "拖拽",
                "“",
                "”",
                "[",
                "]",
                "**",
                "\n",
                "-",
                "1.",
                "I've added music",
            ]
        ),
        max_size=25,
    ).map(" ".join)
)
def test_never_leaves_gui_in_word_salad(text: str) -> None:
    result = translate(text)
    assert not result.fell_back, "the rewrite left a GUI step and fell back"
    assert not has_gui_phrasing(result.text)
