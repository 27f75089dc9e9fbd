"""Intent routing: a message skips the agent only when it is essentially a tool request."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nemo_mcp.replies.routing import route

EXPORT = [
    "export",
    "Export!",
    "export my video",
    "EXPORT MY VIDEO",
    "download it",
    "Download the video",
    "download",
    "can you export it as mp4 please?",
    "export the final video in 1080p",
    "Please export the video now",
    "send me the video",
    "send me the mp4",
    "Send it to me",
    "give me the file",
    "I'm happy with it, export it",
    "looks good, download it",
    "ok export",
    "Render it",
    "save the video",
    "i want the mp4",
    "is it ready to download?",
    "how do I download the video?",
    "where can I download it?",
    "download it to ~/Videos",
    "export to /home/me/out.mp4",
    "export it as .mp4",
    "Great, let's export!",
    "导出",
    "导出视频",
    "帮我导出成MP4",
    "请导出一下",
    "下载视频",
    "把视频发给我",
    "导出吧",
    "现在导出最终成片",
]
CREDITS = [
    "credits",
    "Credits?",
    "how many credits do I have?",
    "How many credits do I have left?",
    "how much credit is left",
    "balance",
    "what's my balance?",
    "check my credits",
    "show credits",
    "credit balance",
    "my account",
    "remaining credits please",
    "积分",
    "还有多少积分？",
    "我的积分还剩多少",
    "余额",
    "查看余额",
    "查询积分余额",
]
TIMELINE = [
    "status",
    "what's the status",
    "what is the status?",
    "Status?",
    "show tracks",
    "show me the tracks",
    "show me the timeline",
    "list tracks",
    "timeline",
    "what's on the timeline?",
    "current state of the project",
    "progress?",
    "how's the progress",
    "is it done?",
    "is the video ready yet?",
    "状态",
    "查看状态",
    "显示轨道",
    "进度怎么样",
    "时间线",
]
UPLOAD = [
    "upload",
    "upload this image",
    "Upload my photos",
    "upload these files",
    "I want to upload some images",
    "import my footage",
    "upload /home/me/cat.png",
    "upload ~/Pictures/logo.png and ~/Pictures/bg.jpg",
    "/home/me/cat.png",
    "C:\\Users\\me\\clip.mp4",
    "https://example.com/clip.mp4",
    "上传",
    "上传图片",
    "帮我上传这几张照片",
    "导入素材",
]
MESSAGE = [
    "generate a video about the export business",
    "make a video explaining credit scores",
    "upload-themed intro animation",
    "a video of people downloading apps",
    "a 10-second video of a city at night",
    "add upbeat background music",
    "add end credits",
    "roll the credits at the end",
    "make the status bar visible in the screen recording",
    "don't export yet",
    "do not download it",
    "export it without the music",
    "remove the second track",
    "add a track with piano",
    "a timeline of world war 2",
    "tracks of a bear in the snow",
    "a track and field race",
    "download speed test animation",
    "make the upload animation faster",
    "a video of people checking their bank balance",
    "How many credits does it cost to make a video?",
    "an explainer on export controls and tariffs",
    "a product demo showing how to export a spreadsheet",
    "status update video for my team",
    "a cat balancing on a fence",
    "create a video with the text 'Download now'",
    "make it 9:16 and then export",
    "trim the first 2 seconds",
    "change the music to lo-fi",
    "yes",
    "ok",
    "thanks!",
    "animate this image into a 5-second video",
    "生成一个关于出口贸易的视频",
    "做一个介绍积分制度的视频",
    "给视频加上背景音乐",
    "上传者的故事短片",
    "把第二段删掉",
    "一个关于下载速度的动画",
    "用这张图片生成视频 /home/me/cat.png",
    "animate /home/me/cat.png",
    "",
    "   ",
    "?!",
]


@pytest.mark.parametrize("text", EXPORT)
def test_export(text: str) -> None:
    assert route(text) == "export"


@pytest.mark.parametrize("text", CREDITS)
def test_credits(text: str) -> None:
    assert route(text) == "credits"


@pytest.mark.parametrize("text", TIMELINE)
def test_timeline(text: str) -> None:
    assert route(text) == "timeline"


@pytest.mark.parametrize("text", UPLOAD)
def test_upload(text: str) -> None:
    assert route(text) == "upload"


@pytest.mark.parametrize("text", MESSAGE)
def test_creative_requests_go_to_the_agent(text: str) -> None:
    assert route(text) == "message"


def test_long_messages_always_go_to_the_agent() -> None:
    assert route("export " + "please " * 20) == "message"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_route_is_total(text: str) -> None:
    assert route(text) in {"export", "credits", "timeline", "upload", "message"}


CREATIVE_WORDS = [
    "cat",
    "city",
    "sunset",
    "about",
    "explaining",
    "make",
    "generate",
    "animation",
    "business",
    "scores",
    "themed",
    "people",
    "add",
    "without",
    "not",
]


# Requests in English words (Chinese and bare paths are covered by the tables above).
ENGLISH_REQUESTS = [
    text
    for text in EXPORT + CREDITS + TIMELINE + UPLOAD
    if text.isascii()
    and any(c.isalpha() for c in text)
    and not text.startswith(("/", "C:", "http"))
]
CREATIVE_ZH = ["生成", "一个", "关于", "制度", "介绍", "故事", "动画", "不要"]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(ENGLISH_REQUESTS), st.sampled_from(CREATIVE_WORDS), st.booleans())
def test_a_creative_word_sends_it_to_the_agent(request: str, word: str, before: bool) -> None:
    text = f"{word} {request}" if before else f"{request} {word}"
    assert route(text) == "message"


ZH_REQUESTS = [text for text in EXPORT + CREDITS + TIMELINE + UPLOAD if not text.isascii()]


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(ZH_REQUESTS), st.sampled_from(CREATIVE_ZH), st.booleans())
def test_a_creative_chinese_word_sends_it_to_the_agent(
    request: str, word: str, before: bool
) -> None:
    text = f"{word}{request}" if before else f"{request}{word}"
    assert route(text) == "message"
