"""Segmented, resumable video jobs (upscaler/jobs) on real clips re-encoded small with short GOPs: cut points,
the joined output against the source and the single pipeline, resume after SIGKILL, stale jobs, and faults."""

from __future__ import annotations

import dataclasses
import errno
import functools
import io
import json
import os
import signal
import subprocess
import sys
import time
import warnings
from fractions import Fraction
from pathlib import Path

import av
import av.logging
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import REPO

from upscaler import cli
from upscaler.cli import main
from upscaler.errors import MediaError, UpscalerError, out_of_space
from upscaler.jobs import join, run_job
from upscaler.jobs.manifest import job_dir_for
from upscaler.jobs.run import encode_segment
from upscaler.jobs.segments import plan_segments, scan_video
from upscaler.video import EncodeOptions, VideoWarning, upscale_video
from upscaler.video.options import plan_encoder
from upscaler.video.pipeline import Span

ASS_HEADER = b"[Script Info]\nScriptType: v4.00+\n\n[Events]\nFormat: Layer, Start, End, Style, Text\n"
# veryfast keeps x264's B-frames (ultrafast has none): the joins must cope with them.
OPTS = EncodeOptions(preset="veryfast")


def x2(batch: np.ndarray) -> np.ndarray:
    return np.repeat(np.repeat(batch, 2, 1), 2, 2)


def remake(src: Path, dst: Path, *, seconds: float, size: tuple[int, int], codec: str, gop: int,
           options: dict[str, str] | None = None, container_options: dict[str, str] | None = None,
           chapters: list[dict] | None = None, title: str | None = None, rotation: int | None = None,
           cues: list[tuple[float, float, str]] | None = None) -> Path:
    """``src``'s first ``seconds``, shrunk and re-encoded with a keyframe every ``gop`` frames; its own
    timestamps (VFR stays VFR) and its audio packets kept; ``cues`` (start, duration, text) as an SRT track."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", container_options=container_options or {}) as out:
        if chapters:
            out.set_chapters(chapters)
        if title:
            out.metadata["title"] = title
        v, a = inp.streams.video[0], inp.streams.audio[0]
        ov = out.add_stream(codec, rate=v.average_rate or 25)
        ov.width, ov.height, ov.pix_fmt = *size, "yuv420p"
        ov.codec_context.time_base = ov.time_base = v.time_base
        ov.codec_context.options = {"g": str(gop), **(options or {})}
        if rotation is not None:
            ov.set_display_rotation(rotation)
        oa = out.add_stream_from_template(a)
        if title:
            ov.metadata["title"] = f"{title} (picture)"
        if cues:
            subtitles = out.add_stream("subrip")
            subtitles.codec_context.subtitle_header = ASS_HEADER
            subtitles.metadata["language"], subtitles.metadata["title"] = "spa", "Signs"
            out.start_encoding()
            for start, length, text in cues:
                cue = av.Packet(text.encode())
                cue.stream, cue.time_base = subtitles, subtitles.time_base
                cue.pts = cue.dts = round(start / subtitles.time_base)
                cue.duration = round(length / subtitles.time_base)
                out.mux(cue)
        for packet in inp.demux(v, a):
            if packet.stream is v:
                for frame in packet.decode():
                    if frame.time <= seconds:
                        small = frame.reformat(width=size[0], height=size[1], format="yuv420p")
                        small.pts, small.time_base = frame.pts, frame.time_base
                        out.mux(ov.encode(small))
            elif packet.size and packet.pts is not None and packet.pts * packet.time_base <= seconds:
                packet.stream = oa
                out.mux(packet)
        out.mux(ov.encode(None))
    return dst


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    clips = Path(os.environ.get("UPSCALER_SHARED", REPO.parent / "shared")) / "clips"
    if not clips.exists():
        pytest.skip(f"shared data not available: {clips}")
    folder = tmp_path_factory.mktemp("sources")
    x264 = {"preset": "veryfast", "bf": "2"}
    return {
        # B-frames (and mp3 audio) at 25 fps, a keyframe every 0.48 s.
        "chaplin": remake(clips / "chaplin.mp4", folder / "chaplin.mp4", seconds=3.0, size=(160, 90),
                          codec="libx264", gop=12, options=x264),
        # A phone clip's variable frame rate and display rotation, with B-frames.
        "vfr": remake(clips / "fire_vfr.mp4", folder / "fire_vfr.mp4", seconds=10, size=(160, 90),
                      codec="libx264", gop=3, options=x264, rotation=90),
        # WebM without a duration (or cues) in the header, VP9 + Opus.
        "nodur": remake(clips / "no_duration_vp9_opus.webm", folder / "nodur.webm", seconds=10,
                        size=(160, 90), codec="libvpx-vp9", gop=12, container_options={"live": "1"},
                        options={"deadline": "realtime", "cpu-used": "8", "b": "0", "crf": "40"}),
    }


def packet_times(path: Path) -> tuple[list[Fraction], list[Fraction]]:
    """(every video frame's pts in seconds, sorted; keyframe pts in seconds), from the packets."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        packets = [p for p in c.demux(v) if p.size]
        return (sorted(p.pts * p.time_base for p in packets), [p.pts * p.time_base for p in packets if p.is_keyframe])


def decode_all(path: Path) -> tuple[list[Fraction], list[np.ndarray], list[tuple[int, str]]]:
    """Frame times, frames (RGB) and the decoder's error messages, decoding with err_detect=explode."""
    av.logging.set_level(av.logging.ERROR)
    errors: list[tuple[int, str]] = []
    times, frames = [], []
    try:
        with av.logging.Capture() as logs, av.open(str(path)) as c:
            v = c.streams.video[0]
            v.codec_context.options = {"err_detect": "explode"}
            try:
                for frame in c.decode(v):
                    times.append(frame.pts * frame.time_base)
                    frames.append(frame.to_ndarray(format="rgb24"))
            except av.error.FFmpegError as exc:
                errors.append((0, str(exc)))
        errors += [(level, message) for level, _, message in logs]
    finally:
        av.logging.set_level(None)
    return times, frames, errors


def audio_end(path: Path) -> float:
    with av.open(str(path)) as c:
        return max(float((p.pts + p.duration) * p.time_base) for p in c.demux(audio=0) if p.pts is not None)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


# -- cut points ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["chaplin", "vfr", "nodur"])
def test_cut_points_fall_on_keyframes(sources: dict[str, Path], name: str) -> None:
    scan = scan_video(sources[name])
    segments = plan_segments(scan, 0.7)
    assert len(segments) >= 3
    assert all(s.start in scan.keyframes for s in segments[1:])
    assert all(s.seek in scan.keyframes and s.seek < s.start for s in segments[1:])
    assert [s.end for s in segments[:-1]] == [s.start for s in segments[1:]]
    assert sum(s.frames for s in segments) == len(scan.pts)
    assert all((s.last - s.first) >= 0.7 - 0.1 for s in segments[:-1])


def test_one_keyframe_or_a_short_video_is_one_segment(tmp_path: Path) -> None:
    clips = Path(os.environ.get("UPSCALER_SHARED", REPO.parent / "shared")) / "clips"
    if not clips.exists():
        pytest.skip("shared data not available")
    for name in ("no_duration_vp9_opus.webm", "fire_vfr.mp4", "chaplin.mp4"):  # a single keyframe each
        assert len(plan_segments(scan_video(clips / name), 0.5)) == 1
    # Keyframes at 0 and 1.0 s of 1.2 s: less than half a segment would follow the cut.
    assert len(plan_segments(scan_video(clips / "realshort.mp4"), 0.5)) == 1
    # ... so the single pipeline runs, unchanged, and no job folder appears.
    dst = tmp_path / "short.mp4"
    result = run_job(clips / "realshort.mp4", dst, lambda b: b[:, ::2, ::2], segment_seconds=0.5,
                     options=EncodeOptions(preset="ultrafast"))
    assert result.frames == 36 and sorted(p.name for p in tmp_path.iterdir()) == ["short.mp4"]
    # A job folder left by a run with other settings goes, with a warning.
    job_dir_for(dst).mkdir()
    with pytest.warns(VideoWarning, match="stale .*one pass"):
        run_job(clips / "realshort.mp4", dst, lambda b: b[:, ::2, ::2], segment_seconds=0.5, overwrite=True,
                options=EncodeOptions(preset="ultrafast"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["short.mp4"]


# -- the joined output ------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "ext"), [("chaplin", ".mp4"), ("chaplin", ".mkv"), ("vfr", ".mp4"),
                                           ("vfr", ".mkv"), ("nodur", ".webm")])
def test_join_matches_source_and_single_pipeline(sources: dict[str, Path], name: str, ext: str,
                                                 tmp_path: Path) -> None:
    src = sources[name]
    joined, single = tmp_path / f"joined{ext}", tmp_path / f"single{ext}"
    # A low CRF, so what differs between a segmented and a single run (the GOPs) costs little.
    options = EncodeOptions(preset="8" if ext == ".webm" else "veryfast", crf=10)
    result = run_job(src, joined, x2, segment_seconds=0.7, options=options)
    upscale_video(src, single, x2, options=options)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([joined.name, single.name])  # job folder gone

    src_times = packet_times(src)[0]
    times, frames, errors = decode_all(joined)
    assert errors == []
    assert result.frames == len(times) == len(src_times)
    # Every frame keeps its timestamp: exactly in MP4; Matroska/WebM store milliseconds, and their muxer moves
    # a stream whose first dts is negative (B-frames) to start at 0, as in a single run (checked below).
    if ext == ".mp4":
        assert times == src_times
    else:
        assert max(abs((a - times[0]) - (b - src_times[0])) for a, b in zip(times, src_times, strict=True)) \
            <= Fraction(1, 1000)
    if name == "vfr":
        assert len({round(float(b - a), 3) for a, b in zip(times, times[1:], strict=False)}) > 1
        with av.open(str(joined)) as c:
            assert next(c.decode(video=0)).rotation == 90
    assert len(packet_times(joined)[1]) >= 3  # one IDR per segment at least
    assert audio_end(joined) == pytest.approx(audio_end(src), abs=0.03)
    single_times, single_frames, _ = decode_all(single)
    assert single_times == times
    assert min(psnr(a, b) for a, b in zip(frames, single_frames, strict=True)) > 40


def cue_list(path: Path) -> list[tuple[float, float, bytes]]:
    with av.open(str(path)) as c:
        stream = c.streams.subtitles[0]
        out = []
        for packet in c.demux(stream):
            if packet.size:
                cues = stream.codec_context.decode2(packet)
                out += [(round(float(packet.pts * packet.time_base), 3), round(float(packet.duration
                         * packet.time_base), 3), r.ass.rsplit(b",", 1)[-1]) for r in cues.rects]
        return out


def test_native_b_frame_clip_joins_whole(tmp_path: Path) -> None:
    """onepiece_demo.mp4 as it is: its own encoder's GOPs and B-frames, cut at its second keyframe (4.17 s)."""
    clips = Path(os.environ.get("UPSCALER_SHARED", REPO.parent / "shared")) / "clips"
    if not clips.exists():
        pytest.skip("shared data not available")
    src, dst = clips / "onepiece_demo.mp4", tmp_path / "out.mp4"
    segments = plan_segments(scan_video(src), 2.0)
    assert len(segments) == 2 and float(segments[1].first) == pytest.approx(4.17, abs=0.01)
    result = run_job(src, dst, lambda b: np.ascontiguousarray(b[:, ::4, ::4]), segment_seconds=2.0,
                     options=EncodeOptions(preset="ultrafast"))
    times, _, errors = decode_all(dst)
    assert errors == [] and result.frames == len(times) == 181 and times == packet_times(src)[0]
    assert audio_end(dst) == pytest.approx(audio_end(src), abs=0.03)


def test_join_keeps_chapters_tags_subtitles_and_reencodes_audio(sources: dict[str, Path], tmp_path: Path) -> None:
    chapters = [{"id": i + 1, "start": i * 1000, "end": (i + 1) * 1000, "time_base": Fraction(1, 1000),
                 "metadata": {"title": f"Part {i + 1}"}} for i in range(3)]
    cues = [(0.2, 0.5, "First"), (1.3, 0.4, "Across a cut"), (2.5, 0.3, "Last")]
    src = remake(sources["chaplin"], tmp_path / "in.mkv", seconds=3.0, size=(160, 90), codec="libx264", gop=12,
                 options={"preset": "veryfast", "bf": "2"}, chapters=chapters, title="Chaplin", cues=cues)
    # No MP3 or SRT in WebM: the join re-encodes the audio and converts the cues, as the single pipeline would.
    dst = tmp_path / "out.webm"
    with pytest.warns(VideoWarning) as caught:
        run_job(src, dst, x2, segment_seconds=0.7, options=EncodeOptions(preset="8"))
    notes = [str(w.message) for w in caught]
    assert any("re-encoded as libopus" in n for n in notes) and any("converted to webvtt" in n for n in notes)
    times, _, errors = decode_all(dst)
    assert errors == [] and len(times) == len(packet_times(src)[0])
    with av.open(str(dst)) as c:
        assert c.metadata.get("title") == "Chaplin"
        assert [ch["metadata"]["title"] for ch in c.chapters()] == ["Part 1", "Part 2", "Part 3"]
        assert [s.codec_context.name for s in c.streams] == ["vp9", "opus", "webvtt"]
        assert c.streams.video[0].metadata.get("title") == "Chaplin (picture)"
        subtitle = c.streams.subtitles[0]
        assert (subtitle.language, subtitle.metadata.get("title")) == ("spa", "Signs")
    assert [text for _, _, text in cue_list(src)] == [text.encode() for _, _, text in cues]
    assert cue_list(dst) == cue_list(src)
    assert audio_end(dst) == pytest.approx(audio_end(src), abs=0.05)


def test_headers_that_differ_are_joined_by_reencoding(sources: dict[str, Path], tmp_path: Path) -> None:
    src = sources["chaplin"]
    segments = plan_segments(scan_video(src), 1.0)
    assert len(segments) == 2
    parts = []
    for segment, preset in zip(segments, ["veryfast", "ultrafast"], strict=True):  # other SPS: no B-frames
        part = tmp_path / f"part{segment.index}.mp4"
        upscale_video(src, part, x2, options=EncodeOptions(preset=preset),
                      span=Span(segment.start, segment.end, segment.seek))
        parts.append(part)
    assert join.header_mismatch(parts) is not None
    dst = tmp_path / "out.mp4"
    plan = plan_encoder(OPTS, dst, "yuv420p")
    with pytest.warns(VideoWarning, match="joining them by re-encoding"):
        join.join_segments(src, parts, dst, plan, sum(s.frames for s in segments), [s.first for s in segments])
    times, _, errors = decode_all(dst)
    assert errors == [] and times == packet_times(src)[0]


def test_a_seek_past_the_keyframe_falls_back_to_decoding_from_the_start(sources: dict[str, Path],
                                                                          tmp_path: Path) -> None:
    src = sources["chaplin"]
    segments = plan_segments(scan_video(src), 0.7)
    middle = segments[1]
    # As a demuxer that lands too late would: decoding starts at the segment's end, past all its frames.
    late = dataclasses.replace(middle, seek=segments[2].start)
    counting = Counting()
    outcome = encode_segment(src, tmp_path / "part.mp4", late, counting, OPTS, None, {})
    assert outcome.error is None and outcome.frames == middle.frames
    assert packet_times(tmp_path / "part.mp4")[0] == packet_times(src)[0][segments[0].frames:][:middle.frames]


# -- resume ------------------------------------------------------------------------------------------

_KILLABLE = """
import sys, time
from pathlib import Path
from upscaler.jobs import run_job
from upscaler.video import EncodeOptions

def slow(batch):
    time.sleep(0.15)
    return batch

run_job(Path(sys.argv[1]), Path(sys.argv[2]), slow, segment_seconds=0.7, options=EncodeOptions(preset="veryfast"),
        batch_size=2)
"""


class Counting:
    def __init__(self) -> None:
        self.frames = 0

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.frames += len(batch)
        return batch


def test_sigkill_then_rerun_redoes_only_unfinished_segments(sources: dict[str, Path], tmp_path: Path) -> None:
    src, dst = sources["chaplin"], tmp_path / "out.mp4"
    manifest = job_dir_for(dst) / "manifest.json"
    proc = subprocess.Popen([sys.executable, "-c", _KILLABLE, str(src), str(dst)], cwd=REPO,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    finished: dict = {}
    while time.time() < deadline and proc.poll() is None and not finished:
        time.sleep(0.05)
        if manifest.exists():
            finished = json.loads(manifest.read_text())["segments"]
    assert proc.poll() is None, f"finished before it could be killed: {proc.stderr.read() if proc.stderr else ''}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert not dst.exists()
    finished = json.loads(manifest.read_text())["segments"]
    assert 1 <= len(finished) < 4
    kept = {entry["file"]: (job_dir_for(dst) / entry["file"]).stat().st_mtime_ns for entry in finished.values()}

    counting, resumed, notices = Counting(), [], []
    from upscaler.jobs import manifest as manifest_module

    recorded = []
    real_record = manifest_module.JobDir.record

    def record(self, index, path, **facts):  # noqa: ANN001, ANN202 - spy
        recorded.append(path.name)
        return real_record(self, index, path, **facts)

    manifest_module.JobDir.record = record
    try:
        result = run_job(src, dst, counting, segment_seconds=0.7, options=OPTS, batch_size=2,
                         on_resume=resumed.append, notice=notices.append)
    finally:
        manifest_module.JobDir.record = real_record
    done_frames = sum(entry["frames"] for entry in finished.values())
    total = len(packet_times(src)[0])
    assert resumed == [done_frames] and "resuming" in notices[0]
    assert counting.frames == total - done_frames, "finished segments must not be redone"
    assert not set(kept) & set(recorded)
    times, frames, errors = decode_all(dst)
    assert errors == [] and result.frames == total and times == packet_times(src)[0]
    assert not job_dir_for(dst).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]
    # The same result as a run that was never interrupted.
    whole = tmp_path / "whole" / "out.mp4"
    run_job(src, whole, lambda b: b, segment_seconds=0.7, options=OPTS, batch_size=2)
    whole_times, whole_frames, _ = decode_all(whole)
    assert whole_times == times
    assert min(psnr(a, b) for a, b in zip(frames, whole_frames, strict=True)) > 40


def test_progress_counts_resumed_frames_but_not_in_fps() -> None:
    from rich.console import Console

    from upscaler.progress import frame_progress

    with frame_progress("job", False, Console(file=io.StringIO())) as bar:
        bar.start(100)
        bar.resume(40)
        for _ in range(2):
            time.sleep(0.05)
            bar.advance(5)
        assert bar._progress is not None
        task = bar._progress.tasks[0]
        assert (task.completed, task.total) == (50, 100)
        # 5 frames in the ~0.05 s between the two batches: the 40 resumed ones are not this run's speed.
        assert task.speed is not None and task.speed < 5 / 0.04


def _interrupt_after(frames: int):  # noqa: ANN202
    seen = [0]

    def fn(batch: np.ndarray) -> np.ndarray:
        seen[0] += len(batch)
        if seen[0] > frames:
            raise KeyboardInterrupt
        return batch

    return fn


def test_changed_options_make_the_job_stale(sources: dict[str, Path], tmp_path: Path) -> None:
    src, dst = sources["chaplin"], tmp_path / "out.mp4"
    with pytest.raises(KeyboardInterrupt) as interrupted:
        run_job(src, dst, _interrupt_after(40), segment_seconds=0.7, options=OPTS)
    assert job_dir_for(dst).exists() and not dst.exists()
    assert "segments are kept in" in interrupted.value.__notes__[0]
    assert not list(job_dir_for(dst).glob(".*partial*")), "Ctrl-C leaves no temporary segment"
    counting = Counting()
    with pytest.warns(VideoWarning, match="stale .*starting afresh"):
        run_job(src, dst, counting, segment_seconds=0.7, options=EncodeOptions(preset="veryfast", crf=30))
    assert counting.frames == len(packet_times(src)[0])


def test_changed_source_makes_the_job_stale(sources: dict[str, Path], tmp_path: Path) -> None:
    src = tmp_path / "in.mp4"
    src.write_bytes(sources["chaplin"].read_bytes())
    dst = tmp_path / "out.mp4"
    with pytest.raises(KeyboardInterrupt):
        run_job(src, dst, _interrupt_after(40), segment_seconds=0.7, options=OPTS)
    os.utime(src, ns=(time.time_ns(), time.time_ns() + 10**9))
    with pytest.warns(VideoWarning, match="stale"):
        run_job(src, dst, Counting(), segment_seconds=0.7, options=OPTS)


def test_damaged_segment_file_is_redone(sources: dict[str, Path], tmp_path: Path) -> None:
    src, dst = sources["chaplin"], tmp_path / "out.mp4"
    with pytest.raises(KeyboardInterrupt):
        run_job(src, dst, _interrupt_after(60), segment_seconds=0.7, options=OPTS)
    entries = json.loads((job_dir_for(dst) / "manifest.json").read_text())["segments"]
    assert len(entries) >= 2
    first = job_dir_for(dst) / entries["0"]["file"]
    data = bytearray(first.read_bytes())
    data[len(data) // 2] ^= 0xFF
    first.write_bytes(bytes(data))
    counting = Counting()
    run_job(src, dst, counting, segment_seconds=0.7, options=OPTS)
    later = sum(e["frames"] for i, e in entries.items() if i != "0")
    assert counting.frames == len(packet_times(src)[0]) - later
    assert decode_all(dst)[2] == []


# -- faults --------------------------------------------------------------------------------------------


def broken_copy(good: Path, dst: Path, segment_index: int) -> Path:
    """``good`` with one non-key packet inside the segment ``segment_index`` (at 0.7 s segments) overwritten."""
    middle = plan_segments(scan_video(good), 0.7)[segment_index]
    with av.open(str(good)) as c:
        victim = next(p for p in c.demux(video=0)
                      if p.size and not p.is_keyframe and middle.start < p.pts < middle.end)
    data = bytearray(good.read_bytes())
    data[victim.pos + 4 : victim.pos + victim.size] = b"\xff" * (victim.size - 4)
    dst.write_bytes(bytes(data))
    return dst


def test_broken_packet_strict_fails_only_its_segment(sources: dict[str, Path], tmp_path: Path) -> None:
    good = sources["chaplin"]
    src, dst = broken_copy(good, tmp_path / "broken.mp4", 1), tmp_path / "out.mp4"
    segments = plan_segments(scan_video(good), 0.7)
    counting = Counting()
    with pytest.raises(MediaError) as err:
        run_job(src, dst, counting, segment_seconds=0.7, options=OPTS, strict=True)
    message = str(err.value)
    assert "\n" not in message and f"segment 2/{len(segments)}" in message and "segment 1/" not in message
    assert "damaged" in message and "run the same command again" in message
    assert not dst.exists()
    assert counting.frames >= sum(s.frames for s in segments[2:]) + segments[0].frames  # the others all ran
    # A rerun retries only the failed segment (and fails the same way: the data is still broken).
    again = Counting()
    with pytest.raises(MediaError, match="segment 2/"):
        run_job(src, dst, again, segment_seconds=0.7, options=OPTS, strict=True)
    assert again.frames < segments[1].frames


def test_broken_packet_by_default_is_left_out_with_a_warning(sources: dict[str, Path], tmp_path: Path) -> None:
    good = sources["chaplin"]
    src, dst = broken_copy(good, tmp_path / "broken.mp4", 1), tmp_path / "out.mp4"
    with pytest.warns(VideoWarning, match="damaged stream") as caught:
        result = run_job(src, dst, lambda b: b, segment_seconds=0.7, options=OPTS)
    # Said once for the whole job (the segment's neighbour decoded the packet too, to end at its cut).
    damage = [str(w.message) for w in caught if "damaged stream" in str(w.message)]
    assert len(damage) == 1 and "1 of 76 frames damaged at 1.00 s" in damage[0], damage
    # As a single run does: the damaged frame is left out, every other one keeps its timestamp.
    times, _, errors = decode_all(dst)
    good_times = packet_times(good)[0]
    assert errors == [] and result.frames == len(times) == len(good_times) - 1
    assert set(times) < set(good_times)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", VideoWarning)
        single = upscale_video(src, tmp_path / "single.mp4", lambda b: b, options=OPTS)
    assert single.frames == result.frames and decode_all(tmp_path / "single.mp4")[0] == times
    # Worded as the single run words it: frames counted over the whole video, the same times.
    assert [w for w in single.warnings if "damaged stream" in w] == damage
    assert (result.damaged, result.lost) == (single.damaged, single.lost) and result.lost == 1


def test_damaged_source_through_the_command_as_a_single_run(tmp_path: Path, clips: Path, one_thread: None) -> None:
    """onepiece_demo.mp4 made small, 40-45 % of its bytes overwritten (seeded): by default the job ends as the
    single run does, with its one warning; with --strict the damaged segment fails alone, and a rerun redoes
    only it."""
    good = remake(clips / "onepiece_demo.mp4", tmp_path / "good.mp4", seconds=4, size=(64, 36), codec="libx264",
                  gop=12, options={"preset": "veryfast", "bf": "2"})
    data = bytearray(good.read_bytes())
    lo, hi = len(data) * 40 // 100, len(data) * 45 // 100
    data[lo:hi] = np.random.default_rng(0).integers(0, 256, hi - lo, dtype=np.uint8).tobytes()
    src = tmp_path / "bad.mp4"
    src.write_bytes(bytes(data))
    segments = plan_segments(scan_video(src), 1.0)
    assert len(segments) == 4

    def upscale(dst: Path, *args: str) -> tuple[int, list[str]]:
        with warnings.catch_warnings():  # printed as the console script prints them, each time they are warned
            warnings.simplefilter("always")
            warnings.showwarning = cli._show_warning
            result = CliRunner().invoke(main, ["video", str(src), "-o", str(dst), "--preset", "veryfast", "-q",
                                               *args])
        return result.exit_code, [line for line in result.stderr.splitlines() if line.strip()]

    single, joined = tmp_path / "single.mp4", tmp_path / "joined.mp4"
    code, said = upscale(single, "--segment-seconds", "0")
    assert code == 0 and len(said) == 1 and "damaged stream" in said[0] and "of 96 frames" in said[0], said
    code, job_said = upscale(joined, "--segment-seconds", "1")
    assert code == 0 and job_said == said  # one warning for the whole job, worded as the single run's
    assert packet_times(joined)[0] == packet_times(single)[0] and len(packet_times(joined)[0]) < 96

    strict = tmp_path / "strict.mp4"
    code, lines = upscale(strict, "--segment-seconds", "1", "--strict")
    assert code == 1 and len(lines) == 1, lines
    assert lines[0].startswith("upscale: error: ") and "segment 2/4" in lines[0] and "damaged video" in lines[0]
    assert "3 of 4 segments done" in lines[0] and not strict.exists()
    folder = job_dir_for(strict)
    kept = {f.name: f.stat().st_mtime_ns for f in folder.iterdir() if f.suffix == ".mp4"}
    assert len(kept) == 3
    code, again = upscale(strict, "--segment-seconds", "1", "--strict")
    assert code == 1 and again == lines
    assert {f.name: f.stat().st_mtime_ns for f in folder.iterdir() if f.suffix == ".mp4"} == kept  # not redone


def test_disk_full_while_joining_keeps_the_segments(sources: dict[str, Path], tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    src, dst = sources["chaplin"], tmp_path / "out.mp4"
    real = join._remuxed

    def filling(*args):  # noqa: ANN002, ANN202 - the disk fills up after 30 packets
        for i, item in enumerate(real(*args)):
            if i == 30:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            yield item

    monkeypatch.setattr(join, "_remuxed", filling)
    with pytest.raises(MediaError, match="No space left on device") as err:
        run_job(src, dst, x2, segment_seconds=0.7, options=OPTS)
    assert out_of_space(err.value)  # what the command's one line adds its hint from
    assert sorted(p.name for p in tmp_path.iterdir()) == [job_dir_for(dst).name]  # no output, no temp file
    monkeypatch.setattr(join, "_remuxed", real)
    counting = Counting()
    run_job(src, dst, counting, segment_seconds=0.7, options=OPTS)
    assert counting.frames == 0 and decode_all(dst)[0] == packet_times(src)[0]


def test_a_really_full_disk_while_joining(sources: dict[str, Path], tmp_path: Path) -> None:
    """On a small tmpfs (root only, else skipped): the segments fit, the joined copy of them does not."""
    src = sources["chaplin"]
    whole = tmp_path / "whole.mp4"
    run_job(src, whole, x2, segment_seconds=0.7, options=OPTS)
    disk = tmp_path / "disk"
    disk.mkdir()
    size = whole.stat().st_size * 5 // 4 + (16 << 10)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(disk)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (not root)")
    try:
        dst = disk / "out.mp4"
        with pytest.raises(MediaError, match="No space left on device") as err:
            run_job(src, dst, x2, segment_seconds=0.7, options=OPTS)
        assert out_of_space(err.value)
        assert sorted(p.name for p in disk.iterdir()) == [job_dir_for(dst).name]  # no output, no temp file
        kept = json.loads((job_dir_for(dst) / "manifest.json").read_text())["segments"]
        assert len(kept) == len(plan_segments(scan_video(src), 0.7))
        subprocess.run(["mount", "-o", f"remount,size={size * 4}", str(disk)], check=True)
        counting = Counting()
        run_job(src, dst, counting, segment_seconds=0.7, options=OPTS)
        assert counting.frames == 0 and decode_all(dst)[0] == packet_times(src)[0]
        assert sorted(p.name for p in disk.iterdir()) == ["out.mp4"]
    finally:
        subprocess.run(["umount", str(disk)], check=False)


# -- the command -------------------------------------------------------------------------------------


def _tiny_segmented_clip(sources: dict[str, Path], tmp_path: Path) -> Path:
    """The VFR clip made tiny, with B-frames and a GOP short enough for 0.7 s segments, for the command's tests."""
    src = tmp_path / "tiny.mp4"
    remake(sources["vfr"], src, seconds=10, size=(48, 32), codec="libx264", gop=6,
           options={"preset": "veryfast", "bf": "2"})
    assert len(plan_segments(scan_video(src), 0.7)) >= 2
    return src


def test_cli_segment_seconds(sources: dict[str, Path], tmp_path: Path, one_thread: None) -> None:
    src = _tiny_segmented_clip(sources, tmp_path)
    dst = tmp_path / "tiny_x2.mp4"
    result = CliRunner().invoke(main, ["video", str(src), "-o", str(dst), "--scale", "2", "--preset", "veryfast",
                                       "--segment-seconds", "0.7", "--quiet"])
    assert result.exit_code == 0, result.stderr
    times, frames, errors = decode_all(dst)
    assert errors == [] and times == packet_times(src)[0] and frames[0].shape == (64, 96, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.mp4", "tiny_x2.mp4"]


def test_cli_ctrl_c_says_the_segments_are_kept(sources: dict[str, Path], tmp_path: Path, one_thread: None,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from upscaler.engine import Upscaler

    src = tmp_path / "tiny.mp4"
    remake(sources["vfr"], src, seconds=10, size=(48, 32), codec="libx264", gop=6,
           options={"preset": "veryfast", "bf": "2"})
    calls = []

    def interrupted(self: Upscaler, frames: np.ndarray):  # noqa: ANN202 - the queued frame function
        calls.append(len(frames))
        if sum(calls) > 15:  # past the first segment
            raise KeyboardInterrupt
        return lambda: x2(frames)

    monkeypatch.setattr(Upscaler, "submit_array", interrupted)
    dst = tmp_path / "tiny_x2.mp4"
    result = CliRunner().invoke(main, ["video", str(src), "-o", str(dst), "--scale", "2", "--preset", "veryfast",
                                       "--segment-seconds", "0.7", "--colour-convert", "swscale", "--quiet"])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 130 and len(lines) == 1, result.stderr
    assert "interrupted; no output was left behind" in lines[0] and "the same command resumes" in lines[0]
    assert not dst.exists() and job_dir_for(dst).exists()


# -- --workers (Ray) ---------------------------------------------------------------------------------


def test_workers_without_ray_is_one_clear_error(sources: dict[str, Path], tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError, installed or not
    dst = tmp_path / "out.mp4"
    result = CliRunner().invoke(main, ["video", str(sources["chaplin"]), "-o", str(dst), "--workers", "2", "-q"])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code != 0 and len(lines) == 1, result.stderr
    assert lines[0].startswith("upscale: error: --workers 2 needs Ray") and "upscaler[cluster]" in lines[0]
    assert not dst.exists() and not job_dir_for(dst).exists()
    with pytest.raises(UpscalerError, match="needs Ray"):
        run_job(sources["chaplin"], dst, x2, segment_seconds=0.7, workers=2, replica=lambda: (x2, {}))


def test_workers_on_ray(sources: dict[str, Path], tmp_path: Path) -> None:
    pytest.importorskip("ray")
    src = _tiny_segmented_clip(sources, tmp_path)
    dst = tmp_path / "tiny_x2.mp4"
    result = CliRunner().invoke(main, ["video", str(src), "-o", str(dst), "--scale", "2", "--device", "cpu",
                                       "--preset", "veryfast", "--segment-seconds", "0.7", "--workers", "2",
                                       "--quiet"])
    assert result.exit_code == 0, result.stderr
    times, frames, errors = decode_all(dst)
    assert errors == [] and times == packet_times(src)[0] and frames[0].shape == (64, 96, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.mp4", "tiny_x2.mp4"]


# -- alpha ---------------------------------------------------------------------------------------------


def vp9_alpha_clip(clips: Path, dst: Path, frames: int = 20) -> Path:
    """``frames`` real frames (big_buck_bunny, 64x48) with a moving alpha ramp, fully transparent and opaque
    bands, as VP9 yuva420p in WebM with a keyframe every 5 frames (25 fps)."""
    if "libvpx-vp9" not in av.codecs_available:
        pytest.skip("no libvpx-vp9 in this PyAV build")
    with av.open(str(clips / "big_buck_bunny_1s.webm")) as src, av.open(str(dst), "w") as out:
        stream = out.add_stream("libvpx-vp9", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuva420p"
        stream.options = {"crf": "10", "b": "0", "g": "5", "deadline": "realtime", "cpu-used": "8"}
        for i, frame in enumerate(src.decode(video=0)):
            if i == frames:
                break
            ramp = (np.arange(64)[None, :] + 4 * i) % 64 * 4 * np.ones((48, 1))
            ramp[:, :6], ramp[:, -6:] = 0, 255
            rgba = np.dstack([frame.to_ndarray(format="rgb24", width=64, height=48), ramp.astype(np.uint8)])
            small = av.VideoFrame.from_ndarray(rgba, format="rgba").reformat(format="yuva420p")
            small.pts = i
            out.mux(stream.encode(small))
        out.mux(stream.encode(None))
    return dst


def alpha_range(path: Path) -> list[tuple[int, int]]:
    """Each frame's alpha (min, max), decoded by libvpx-vp9 (FFmpeg's own VP9 decoder drops the alpha)."""
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        ctx = av.CodecContext.create("libvpx-vp9", "r")
        alphas = [f.to_ndarray(format="rgba")[..., 3] for p in c.demux(stream) for f in ctx.decode(p)]
        return [(int(a.min()), int(a.max())) for a in alphas]


@pytest.mark.parametrize("reencode", [False, True])
def test_alpha_survives_the_job(clips: Path, tmp_path: Path, reencode: bool,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    src = vp9_alpha_clip(clips, tmp_path / "alpha.webm")
    assert len(plan_segments(scan_video(src), 0.2)) >= 3
    if reencode:  # as when the segments' codec headers differ
        monkeypatch.setattr(join, "header_mismatch", lambda parts: "forced by the test")
    joined, single = tmp_path / "joined.webm", tmp_path / "single.webm"
    options = EncodeOptions(preset="8", crf=10)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run_job(src, joined, x2, segment_seconds=0.2, options=options)
    said = [str(w.message) for w in caught if issubclass(w.category, VideoWarning)]
    assert said == (["joined.webm: the segments cannot be joined as they are (forced by the test): joining them by "
                     "re-encoding"] if reencode else [])
    upscale_video(src, single, x2, options=options)
    assert (result.codec, result.pix_fmt) == ("libvpx-vp9", "yuva420p")
    with av.open(str(joined)) as c:
        tags = {k.lower(): v for k, v in c.streams.video[0].metadata.items()}
        assert tags.get("alpha_mode") == "1"
    # Players look for the track's AlphaMode element (ID 0x53C0, size 1, value 1), which the demuxer reports
    # under the same name as a tag: look for it in the header.
    assert b"\x53\xc0\x81\x01" in joined.read_bytes()[:4096]
    ranges, single_ranges = alpha_range(joined), alpha_range(single)
    assert len(ranges) == 20 and ranges == single_ranges
    assert all(lo <= 3 and hi >= 252 for lo, hi in ranges)


# -- edit lists, damaged audio, names, resources ---------------------------------------------------


def edit_list_copy(good: Path, dst: Path, trimmed: int = 5) -> Path:
    """``good`` remuxed with its video moved ``trimmed`` frames earlier: the MP4 muxer writes an edit list that
    trims them (their packets come back marked discard, and the decoder outputs none of them)."""
    with av.open(str(good)) as inp, av.open(str(dst), "w") as out:
        streams = {s.index: out.add_stream_from_template(s) for s in inp.streams}
        video, shift = inp.streams.video[0], None
        for packet in inp.demux():
            if not packet.size:
                continue
            if packet.stream is video:
                shift = shift if shift is not None else trimmed * (packet.duration or 512)
                packet.pts -= shift
                packet.dts -= shift
            packet.stream = streams[packet.stream.index]
            out.mux(packet)
    return dst


def test_frames_an_edit_list_trims_are_not_counted(sources: dict[str, Path], tmp_path: Path) -> None:
    src = edit_list_copy(sources["chaplin"], tmp_path / "cut.mp4")
    with av.open(str(src)) as c:
        assert sum(p.is_discard for p in c.demux(video=0) if p.size) == 5
    single, joined = tmp_path / "single.mp4", tmp_path / "joined.mp4"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        one = upscale_video(src, single, x2, options=OPTS)
    # The container counts the 5 trimmed frames; the single run knows they were never meant to be shown.
    assert not [w for w in caught if "the container said" in str(w.message)], [str(w.message) for w in caught]
    segments = plan_segments(scan_video(src), 0.5)
    assert len(segments) == 3 and sum(s.frames for s in segments) == one.frames == 71
    assert segments[0].describe(3).startswith("segment 1/3 (0.00 s to ")
    result = run_job(src, joined, x2, segment_seconds=0.5, options=OPTS)
    assert result.frames == 71 and decode_all(joined)[0] == decode_all(single)[0]
    # A negative first time reads as one.
    assert dataclasses.replace(segments[0], first=Fraction(-1, 5)).describe(3).startswith("segment 1/3 (-0.20 s to")


def test_a_long_legal_output_name_gets_a_job_folder(sources: dict[str, Path], tmp_path: Path) -> None:
    dst = tmp_path / ("a" * 246 + ".mp4")  # 250 bytes: legal, but not with ".upscale-job" around it
    folder = job_dir_for(dst)
    assert len(os.fsencode(folder.name)) <= 255 and folder.name.endswith(".upscale-job")
    assert folder != job_dir_for(tmp_path / ("a" * 245 + "b.mp4"))  # still one output's own
    result = run_job(sources["chaplin"], dst, x2, segment_seconds=0.7, options=OPTS)
    assert result.frames == 76 and [p.name for p in tmp_path.iterdir()] == [dst.name]


def test_segment_checksums_without_file_digest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib

    from upscaler.jobs import manifest

    data = os.urandom(3 << 20 | 17)  # more than one chunk
    (tmp_path / "f").write_bytes(data)
    monkeypatch.delattr(hashlib, "file_digest", raising=False)  # as on Python 3.10
    assert manifest.sha256(tmp_path / "f") == hashlib.sha256(data).hexdigest()


def damaged_audio_copy(good: Path, dst: Path, packets: tuple[int, ...]) -> Path:
    """``good`` remuxed with the given audio packets (counted from 0) overwritten with seeded noise."""
    rng = np.random.default_rng(1)
    with av.open(str(good)) as inp, av.open(str(dst), "w") as out:
        streams = {s.index: out.add_stream_from_template(s) for s in inp.streams}
        n = -1
        for packet in inp.demux():
            if not packet.size:
                continue
            if packet.stream.type == "audio":
                n += 1
                if n in packets:
                    noise = av.Packet(rng.integers(0, 256, packet.size, dtype=np.uint8).tobytes())
                    noise.pts, noise.dts, noise.duration = packet.pts, packet.dts, packet.duration
                    noise.time_base, noise.is_keyframe = packet.time_base, packet.is_keyframe
                    noise.stream = streams[packet.stream.index]
                    out.mux(noise)
                    continue
            packet.stream = streams[packet.stream.index]
            out.mux(packet)
    return dst


def test_damaged_audio_that_is_reencoded_warns_as_a_single_run(clips: Path, tmp_path: Path) -> None:
    """onepiece_demo.mp4's AAC, 4 packets overwritten, re-encoded to Opus for .webm: the join decodes it as the
    single run does (silence, one warning for the whole job); with strict it is one input error."""
    good = remake(clips / "onepiece_demo.mp4", tmp_path / "good.mp4", seconds=3, size=(64, 36), codec="libx264",
                  gop=12, options={"preset": "veryfast"})
    src = damaged_audio_copy(good, tmp_path / "bad.mp4", (30, 31, 32, 90))
    assert len(plan_segments(scan_video(src), 1.0)) >= 2
    options = EncodeOptions(preset="8")

    def said(run) -> list[str]:  # noqa: ANN001
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            run()
        return [str(w.message) for w in caught if "damaged stream" in str(w.message)]

    single, joined = tmp_path / "single.webm", tmp_path / "joined.webm"
    alone = said(lambda: upscale_video(src, single, lambda b: b, options=options))
    assert len(alone) == 1 and "audio packets could not be decoded" in alone[0]
    job = said(lambda: run_job(src, joined, lambda b: b, segment_seconds=1.0, options=options))
    assert job == alone  # worded as the single run's, which names the source
    assert abs(audio_end(joined) - audio_end(single)) < 0.05
    strict = tmp_path / "strict.webm"
    with pytest.raises(MediaError, match=r"damaged audio .*strict mode") as err:
        run_job(src, strict, lambda b: b, segment_seconds=1.0, options=options, strict=True)
    assert "cannot write" not in str(err.value) and not strict.exists()


def test_a_stale_job_folder_is_removed_only_under_the_lock(clips: Path, tmp_path: Path) -> None:
    """Another run holds the output: its job folder (here one the short video's single pass would remove as
    stale) stays, and this run fails as busy."""
    dst = tmp_path / "short.mp4"
    folder = job_dir_for(dst)
    folder.mkdir()
    (folder / "manifest.json").write_text("{}")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import time; from pathlib import Path; from upscaler.fileio import output_lock\n"
         f"with output_lock(Path({str(dst)!r})):\n    print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(MediaError, match="another upscale run is writing"):
            run_job(clips / "realshort.mp4", dst, lambda b: b, segment_seconds=0.5,
                    options=EncodeOptions(preset="ultrafast"))
        assert (folder / "manifest.json").exists() and not dst.exists()
    finally:
        holder.kill()
        holder.wait()


def test_strict_rerun_redoes_segments_a_lenient_run_kept_damaged(sources: dict[str, Path], tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    src, dst = broken_copy(sources["chaplin"], tmp_path / "broken.mp4", 1), tmp_path / "out.mp4"

    def full(*args):  # noqa: ANN002, ANN202 - the lenient run's join fails, so its segments are kept
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        yield

    monkeypatch.setattr(join, "_remuxed", full)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", VideoWarning)
        with pytest.raises(MediaError, match="No space left"):
            run_job(src, dst, lambda b: b, segment_seconds=0.7, options=OPTS)
    monkeypatch.undo()
    counting = Counting()
    with pytest.raises(MediaError, match=r"segment 2/3 .*damaged video") as err:
        run_job(src, dst, counting, segment_seconds=0.7, options=OPTS, strict=True)
    assert "segment 1/" not in str(err.value) and not dst.exists()
    assert 0 < counting.frames < 40  # only the damaged segment was redone


def test_a_segment_is_retried_from_the_start_only_when_short(sources: dict[str, Path], tmp_path: Path) -> None:
    src = sources["chaplin"]
    scan = scan_video(src)
    segments = plan_segments(scan, 0.7)
    middle = segments[1]
    # A seek that lands on the keyframe half-way through the segment: its first frames are missing.
    inside = next(k for k in scan.keyframes if middle.start < k < middle.end)
    told: list[int] = []
    outcome = encode_segment(src, tmp_path / "part.mp4", dataclasses.replace(middle, seek=inside), lambda b: b,
                             OPTS, told.append, {})
    assert outcome.error is None and outcome.frames == middle.frames
    assert sum(told) == middle.frames  # the short first attempt's frames are not counted twice
    # Any other error is not retried (decoding from the start would only fail the same way, much later).
    calls = [0]

    def failing(batch: np.ndarray) -> np.ndarray:
        calls[0] += 1
        raise MediaError("disk full (as the test says)")

    outcome = encode_segment(src, tmp_path / "part.mp4", middle, failing, OPTS, None, {})
    assert outcome.error is not None and "disk full" in outcome.error and calls[0] == 1


def test_ray_workers_ask_for_the_gpu_their_model_runs_on() -> None:
    from upscaler.engine import video_replica
    from upscaler.jobs.cluster import _on_visible_gpu, actor_resources

    # CUDA here and the spec does not say cpu: a GPU each, or an equal share that fits on one GPU.
    for device in ("auto", None, "cuda", "cuda:1"):
        assert actor_resources(2, device, True, 2, 16) == {"num_cpus": 1, "num_gpus": 1}
    assert actor_resources(4, "auto", True, 1, 16)["num_gpus"] == 0.25
    assert actor_resources(3, "auto", True, 2, 16)["num_gpus"] == 0.5  # 2 + 1: not 2/3, which fits only once
    # On the CPU (asked for, or no CUDA here, or no GPU in the cluster): no GPU, the cores shared.
    assert actor_resources(2, "cpu", True, 2, 16) == {"num_cpus": 8, "num_gpus": 0}
    assert actor_resources(3, "auto", False, 0, 16) == {"num_cpus": 5, "num_gpus": 0}
    assert actor_resources(4, "cuda", True, 0, 2) == {"num_cpus": 1, "num_gpus": 0}
    # The GPU Ray gives an actor is its only visible one: "cuda:1" there is "cuda".
    moved = _on_visible_gpu(functools.partial(video_replica, {"device": "cuda:1", "model": "m"}))
    assert isinstance(moved, functools.partial) and moved.args[0] == {"device": "cuda", "model": "m"}


def test_a_video_too_short_to_split_is_not_scanned(clips: Path, sources: dict[str, Path], tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from upscaler.jobs import run as jobs_run

    scanned: list[Path] = []

    def scan(path: Path):  # noqa: ANN202
        scanned.append(path)
        return scan_video(path)

    monkeypatch.setattr(jobs_run, "scan_video", scan)
    # realshort.mp4's header says 1.2 s: under two segments of 0.7 s, one pass without demuxing it first.
    result = run_job(clips / "realshort.mp4", tmp_path / "short.mp4", lambda b: b, segment_seconds=0.7,
                     options=EncodeOptions(preset="ultrafast"))
    assert result.frames == 36 and scanned == []
    run_job(sources["chaplin"], tmp_path / "long.mp4", lambda b: b, segment_seconds=0.7, options=OPTS)
    assert scanned == [sources["chaplin"]]


def test_a_job_is_estimated_at_twice_the_output_for_the_free_space_warning(
        sources: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from upscaler import Upscaler, engine

    estimates: list[int] = []
    monkeypatch.setattr(engine, "warn_if_short_of_space", lambda dst, estimate: estimates.append(estimate))
    up = Upscaler(scale=4, device="cpu", precision="fp32")

    def x4(batch: np.ndarray) -> np.ndarray:  # the network is not what is tested
        return np.repeat(np.repeat(batch, 4, 1), 4, 2)

    monkeypatch.setattr(up, "upscale_array", x4)
    monkeypatch.setattr(up, "submit_array", lambda batch: functools.partial(x4, batch))
    src = tmp_path / "tiny.mp4"
    # 1.6 s, keyframes every 0.48 s: two segments of 0.7 s.
    remake(sources["chaplin"], src, seconds=1.6, size=(16, 16), codec="libx264", gop=12,
           options={"preset": "ultrafast"})
    options = EncodeOptions(preset="ultrafast")
    up.upscale_video(src, tmp_path / "single.mp4", options=options)
    up.upscale_video(src, tmp_path / "job.mp4", options=options, segment_seconds=0.7)  # segments + the join
    assert estimates[0] > 0 and estimates == [estimates[0], 2 * estimates[0]]
