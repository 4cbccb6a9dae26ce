"""Track descriptions across containers (issue 13 item 7): every stream's language, title and disposition.

A source with a video track, two audio tracks and a subtitle track, each with its own language, title and
flags, is written in the test in each container; it is upscaled (tiny frames) into each container and read back
with PyAV. What a container can store is learnt the same way, from a file written directly: a flag the output
container has no field for cannot survive, and nothing else may be lost. A text subtitle track the output
container cannot hold as it is (mov_text in .mkv, SRT in .mp4...) is converted, its cue text and timing kept.
"""

from __future__ import annotations

import tempfile
import warnings
from functools import cache
from pathlib import Path

import av
import numpy as np
import pytest
from av.stream import Disposition as D

from upscaler.video import EncodeOptions, VideoWarning, probe_video, upscale_video

# Ordered as written: video, audio, audio, subtitle.
TRACKS = (
    ("video", "jpn", "Main picture", D.default | D.original),
    ("audio", "eng", "Stereo mix", D.default),
    ("audio", "fra", "Director's commentary", D.comment | D.hearing_impaired),
    ("subtitle", "spa", "Signs and songs", D.default | D.forced),
)
FORMATS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm"}
SUBTITLE = {"mp4": "mov_text", "mov": "mov_text", "matroska": "subrip", "webm": "webvtt"}
AUDIO = {"mp4": "aac", "mov": "aac", "matroska": "aac", "webm": "libopus"}
VIDEO = {"mp4": "libx264", "mov": "libx264", "matroska": "libx264", "webm": "libvpx-vp9"}
# Which subtitle codecs (as the demuxer names them) each container takes as they are.
SUBTITLES_FIT = {"mp4": {"mov_text"}, "mov": {"mov_text"}, "matroska": {"srt", "subrip", "webvtt"},
                 "webm": {"webvtt"}}
ASS_HEADER = b"[Script Info]\nScriptType: v4.00+\n\n[Events]\nFormat: Layer, Start, End, Style, Text\n"


def make_source(path: Path, fmt: str, flags: tuple[D, ...]) -> Path:
    """Three 32x24 frames, 0.12 s of two mono audio tracks, one subtitle cue; tags from TRACKS, ``flags``."""
    with av.open(str(path), "w", format=fmt) as out:
        streams = []
        for (kind, language, title, _), flag in zip(TRACKS, flags, strict=True):
            if kind == "video":
                stream = out.add_stream(VIDEO[fmt], rate=25)
                stream.width, stream.height, stream.pix_fmt = 32, 24, "yuv420p"
            elif kind == "audio":
                stream = out.add_stream(AUDIO[fmt], rate=48000)
                stream.codec_context.layout = "mono"
            else:
                stream = out.add_stream(SUBTITLE[fmt])
                stream.codec_context.subtitle_header = ASS_HEADER
            stream.metadata["language"], stream.metadata["title"] = language, title
            stream.disposition = flag
            streams.append(stream)
        out.start_encoding()
        video, *audio, subtitle = streams
        for i in range(3):
            rgb = np.full((24, 32, 3), 60 * i, np.uint8)
            frame = av.VideoFrame.from_ndarray(rgb, "rgb24").reformat(format="yuv420p")
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        for stream in audio:
            samples = av.AudioFrame.from_ndarray(np.zeros((1, 5760), np.float32), format="fltp", layout="mono")
            samples.sample_rate, samples.pts = 48000, 0
            out.mux(stream.encode(samples))
            out.mux(stream.encode(None))
        text = b"Hello"
        cue = av.Packet(len(text).to_bytes(2, "big") + text if SUBTITLE[fmt] == "mov_text" else text)
        cue.stream, cue.time_base = subtitle, subtitle.time_base
        cue.pts = cue.dts = 0
        cue.duration = int(0.1 / subtitle.time_base)
        out.mux(cue)
    return path


def title_of(stream: av.stream.Stream, fmt: str) -> str | None:
    # How each demuxer reports a track title: the mov family as "name" (its udta box), Matroska as "title".
    return stream.metadata.get("name" if fmt in ("mp4", "mov") else "title")


def read_tracks(path: Path, fmt: str) -> list[tuple[str, str | None, str | None, D]]:
    with av.open(str(path)) as c:
        return [(s.type, s.language, title_of(s, fmt), s.disposition) for s in c.streams]


def cue(path: Path) -> tuple[float, float]:
    """The subtitle cue's start (from the first video frame) and duration, in seconds; its text is checked."""
    with av.open(str(path)) as c:
        video, subtitle = c.streams.video[0], c.streams.subtitles[0]
        first = next(c.decode(video))
        c.seek(0)
        packet = next(p for p in c.demux(subtitle) if p.size)
        cues = subtitle.codec_context.decode2(packet)
        assert cues is not None and [r.ass.rsplit(b",", 1)[-1] for r in cues.rects] == [b"Hello"]
        return (float(packet.pts * packet.time_base - first.pts * first.time_base),
                float(packet.duration * packet.time_base))


@cache
def stored(fmt: str, flags: tuple[D, ...]) -> tuple[D, ...]:
    """The flags a file of ``fmt`` written directly with these tracks reads back with."""
    with tempfile.TemporaryDirectory() as folder:
        path = make_source(Path(folder) / "direct", fmt, flags)
        return tuple(t[3] for t in read_tracks(path, fmt))


@pytest.mark.parametrize("src_ext", list(FORMATS))
def test_language_title_and_flags_survive(src_ext: str, tmp_path: Path) -> None:
    src_fmt = FORMATS[src_ext]
    src = make_source(tmp_path / f"source{src_ext}", src_fmt, tuple(t[3] for t in TRACKS))
    source = read_tracks(src, src_fmt)
    assert [(kind, lang, title) for kind, lang, title, _ in source] == [t[:3] for t in TRACKS]
    info = probe_video(src)  # the API describes the other tracks the same way, whatever the container
    assert [(o.type, o.language, o.title, o.disposition) for o in info.other_streams] == source[1:]
    for dst_ext, dst_fmt in FORMATS.items():
        dst = tmp_path / f"out{dst_ext}"
        options = EncodeOptions(codec=VIDEO[dst_fmt], preset="ultrafast" if VIDEO[dst_fmt] == "libx264" else None)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            upscale_video(src, dst, lambda f: np.repeat(np.repeat(f, 2, 1), 2, 2), options=options)
        notes = [str(w.message) for w in caught if issubclass(w.category, VideoWarning)]
        out = read_tracks(dst, dst_fmt)
        with av.open(str(src)) as c:
            sub_codec = c.streams[3].codec_context.name
        pair = f"{src_ext} -> {dst_ext}"
        assert len(out) == 4, (pair, out)
        converted = [n for n in notes if "subtitle stream #3" in n and "converted to" in n]
        assert len(converted) == (0 if sub_codec in SUBTITLES_FIT[dst_fmt] else 1), (pair, notes)
        assert cue(dst) == pytest.approx((0.0, 0.1), abs=0.002), pair
        # Language and title: every container stores both, so every one survives, exactly.
        assert [(kind, lang, title) for kind, lang, title, _ in out] == [t[:3] for t in TRACKS], pair
        # Flags: what the source holds, less what the output container cannot store.
        expected = stored(dst_fmt, tuple(f for *_, f in source))
        assert tuple(f for *_, f in out) == expected, pair


def test_flags_a_container_can_hold_are_all_there() -> None:
    """The expectations above are not empty: Matroska and mp4 hold the commentary and forced flags."""
    declared = tuple(t[3] for t in TRACKS)
    mkv, mp4 = stored("matroska", declared), stored("mp4", declared)
    assert mkv == declared
    assert mp4[0] & D.default and mp4[2] & D.comment and mp4[2] & D.hearing_impaired and mp4[3] & D.forced
