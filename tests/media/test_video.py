"""media.video_reader, media.video_writer, media.transcode: H.264/MP4 output with the input's audio, timing, size and orientation.

Clips are generated with PyAV in tmp_path (tiny, a second or so each). The output is checked
with independent decoders: PyAV probing of streams and packets, OpenCV's own FFmpeg build (5.1,
bundled in its wheel) for frame count, size and colours, and the ffmpeg binary of imageio-ffmpeg
for auto-rotation.
"""
from __future__ import annotations

import struct
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from media.transcode import transcode
from media.video_reader import DecodedFrame, VideoReader
from media.video_writer import VideoWriter
from tests.inference.clips import decode_all, scene, write_clip
from utils.errors import ToonFaceError

av = pytest.importorskip("av")


def identity(frames):
    return frames


def opencv_frames(path: Path, times: list[float] | None = None) -> tuple[int, list[np.ndarray]]:
    """(container frame count, RGB frames) as OpenCV decodes them; each frame's time (s) is
    appended to ``times`` when given."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    frames = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        frames.append(bgr[..., ::-1])
        if times is not None:
            times.append(cap.get(cv2.CAP_PROP_POS_MSEC) / 1000)
    cap.release()
    return count, frames


def top_level_boxes(path: Path) -> list[str]:
    """Top-level ISO BMFF box types, in file order (ISO/IEC 14496-12 section 4.2)."""
    data, boxes, i = path.read_bytes(), [], 0
    while i + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[i:i + 8])
        if size == 1:
            size = struct.unpack(">Q", data[i + 8:i + 16])[0]
        elif size == 0:
            size = len(data) - i
        boxes.append(kind.decode("latin-1"))
        i += size
    return boxes


def leftovers(folder: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


# ----------------------------------------------------------------------------- good clips


def test_audio_is_copied_unchanged_and_output_is_web_h264(tmp_path):
    src = write_clip(tmp_path / "a.mp4", [scene(48, 64, i) for i in range(20)],
                     audio_seconds=2.0)
    res = transcode(src, tmp_path / "out" / "a.mp4", identity, progress=False)
    assert res.frames == 20 and res.notices == []
    with av.open(str(src)) as ci, av.open(str(res.path)) as co:
        vo = co.streams.video[0]
        assert vo.codec_context.codec.canonical_name == "h264"
        assert vo.codec_context.pix_fmt == "yuv420p" and vo.codec_context.profile == "High"
        assert len(co.streams.audio) == 1
        ai, ao = ci.streams.audio[0], co.streams.audio[0]
        assert ao.codec_context.codec.canonical_name == "aac"
        frame_s = 1 / 10
        assert abs(float(ao.duration * ao.time_base) - float(ai.duration * ai.time_base)) <= frame_s
        assert abs(float(ao.duration * ao.time_base) - 2.0) <= frame_s
        pi = [(bytes(p), float(p.pts * p.time_base)) for p in ci.demux(ai) if p.size]
        po = [(bytes(p), float(p.pts * p.time_base)) for p in co.demux(ao) if p.size]
    assert [b for b, _ in po] == [b for b, _ in pi]  # bit-identical packets, same order
    np.testing.assert_allclose([t for _, t in po], [t for _, t in pi], atol=1e-4)
    assert top_level_boxes(res.path).index("moov") < top_level_boxes(res.path).index("mdat")
    assert leftovers(tmp_path / "out", {"a.mp4"}) == []


@pytest.mark.parametrize("name,codec,pix_fmt", [("c.mp4", "libx264", "yuv420p"),
                                                 ("c.avi", "mjpeg", "yuvj420p")])  # full range
def test_frame_count_fps_timestamps_and_colours_are_kept(tmp_path, name, codec, pix_fmt):
    frames = [scene(48, 64, i) for i in range(30)]
    src = write_clip(tmp_path / name, frames, rate=25, codec=codec, pix_fmt=pix_fmt)
    res = transcode(src, tmp_path / "c_out.mp4", identity, progress=False)
    ins, outs = decode_all(src), decode_all(res.path)
    assert len(outs) == len(ins) == 30
    np.testing.assert_allclose([t for _, t, _ in outs], [t for _, t, _ in ins], atol=0.5 / 25)
    with av.open(str(res.path)) as c:
        assert c.streams.video[0].average_rate == 25
    cv_count, cv_frames = opencv_frames(res.path)
    assert cv_count == 30 and len(cv_frames) == 30
    # Colours: the output is tagged BT.601, which OpenCV's FFmpeg assumes and PyAV reads; both
    # must give back the input's colours within codec noise.
    for decoded in (outs[10][0], cv_frames[10]):
        assert decoded.shape == (48, 64, 3)
        assert np.abs(decoded.astype(int) - ins[10][0].astype(int)).mean() < 3


def test_variable_frame_rate_keeps_every_frame_time(tmp_path):
    tb = Fraction(1, 90)
    pts = [i * 9 for i in range(30)] + [270 + i * 3 for i in range(30)]  # 10 fps, then 30 fps
    src = write_clip(tmp_path / "v.mp4", [scene(48, 64, i) for i in range(60)],
                     pts=pts, time_base=tb)
    res = transcode(src, tmp_path / "v_out.mp4", identity, progress=False)
    ins, outs = decode_all(src), decode_all(res.path)
    assert len(outs) == 60
    times = [t for _, t, _ in outs]
    np.testing.assert_allclose(times, [t for _, t, _ in ins], atol=0.5 / 30)
    np.testing.assert_allclose(times, [p / 90 for p in pts], atol=0.5 / 30)
    assert abs(times[30] - 3.0) < 1e-3 and abs(times[29] - 2.9) < 1e-3
    cv_times: list[float] = []
    cv_count, _ = opencv_frames(res.path, cv_times)
    assert cv_count == 60 and len(cv_times) == 60
    np.testing.assert_allclose(cv_times, [p / 90 for p in pts], atol=0.5 / 30)
    end_in = ins[-1][1] + float(ins[-1][2].duration * ins[-1][2].time_base)
    end_out = outs[-1][1] + float(outs[-1][2].duration * outs[-1][2].time_base)
    assert abs(end_out - end_in) <= 1 / 30 and abs(end_out - 4.0) <= 1 / 30


def test_odd_size_is_padded_to_even_with_a_notice(tmp_path):
    # x264 can code odd sizes only in 4:4:4 (crop unit 1), so the input is 4:4:4.
    frames = [scene(241, 321, i) for i in range(4)]
    for f in frames:
        f[:, -1] = (0, 0, 255)
        f[-1, :] = (0, 255, 0)
    src = write_clip(tmp_path / "odd.mp4", frames, pix_fmt="yuv444p")
    seen: list[str] = []
    res = transcode(src, tmp_path / "odd_out.mp4", identity, progress=False, notice=seen.append)
    assert res.size == (322, 242) and len(seen) == 1 and "321x241" in seen[0] and "322x242" in seen[0]
    out = decode_all(res.path)[0][0]
    _, cv_frames = opencv_frames(res.path)
    for decoded in (out, cv_frames[0]):
        assert decoded.shape == (242, 322, 3)
        diff = np.abs(decoded[:241, :321].astype(int) - frames[0].astype(int))
        assert diff.mean() < 4
        # the repeated column/row carry the input's last column/row (blue, green)
        assert decoded[20:200, 321, 2].mean() > 200 and decoded[241, 20:300, 1].mean() > 200


@pytest.mark.parametrize("degrees,hflip", [(90, False), (180, False), (270, False), (0, True),
                                           (90, True), (180, True), (270, True)])
def test_display_matrix_is_applied_like_ffmpeg(tmp_path, degrees, hflip):
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    src = write_clip(tmp_path / "r.mp4", [scene(32, 48, i) for i in range(3)],
                     rotation=degrees, hflip=hflip)
    with VideoReader(src) as reader:
        info = reader.info
        first = next(iter(reader)).rgb
    upright = (48, 32) if degrees % 180 else (32, 48)
    assert first.shape[:2] == upright and (info.height, info.width) == upright
    # Oracle: the ffmpeg command line, which auto-rotates by default.
    raw = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(src),
                          "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                         check=True, capture_output=True).stdout
    ref = np.frombuffer(raw, np.uint8).reshape(*upright, 3)
    assert np.abs(first.astype(int) - ref.astype(int)).mean() < 2


def test_spliced_stream_is_decoded_at_one_size_with_a_notice(tmp_path):
    # Two MPEG-TS recordings joined byte-wise (as `cat a.ts b.ts` does): the second is larger,
    # and the join breaks the continuity counters, so the demuxer flags a packet corrupt.
    a = write_clip(tmp_path / "a.ts", [scene(48, 64, i) for i in range(5)])
    b = write_clip(tmp_path / "b.ts", [scene(60, 80, i) for i in range(5)])
    src = tmp_path / "ab.ts"
    src.write_bytes(a.read_bytes() + b.read_bytes())
    res = transcode(src, tmp_path / "ab_out.mp4", identity, progress=False)
    outs = decode_all(res.path)
    assert res.size == (64, 48) and {o[0].shape for o in outs} == {(48, 64, 3)}
    assert res.frames == len(outs) >= 9  # the damaged packet may cost a frame
    assert any("damaged" in n for n in res.notices)
    # b.ts starts where a.ts does: its frames are moved to follow a.ts, 10 fps spacing kept
    np.testing.assert_allclose(np.diff([o[1] for o in outs]), 0.1, atol=1e-3)


# ---------------------------------------------------- every frame's size (issue 26, item 4)
def _mjpeg_avi(path: Path, sizes: list[tuple[int, int]]) -> Path:
    """Motion JPEG in AVI, each frame a JPEG of its own size (Pillow's encoder), as cameras
    and screen recorders write it; the container declares the first size."""
    import io

    from PIL import Image

    with av.open(str(path), "w", format="avi") as c:
        s = c.add_stream("mjpeg", rate=10)
        s.width, s.height = sizes[0]
        s.pix_fmt = "yuvj420p"
        for k, (w, h) in enumerate(sizes):
            buf = io.BytesIO()
            Image.new("RGB", (w, h), (40 * k, 90, 200)).save(buf, "JPEG")
            p = av.Packet(buf.getvalue())
            p.stream, p.time_base = s, Fraction(1, 10)
            p.pts = p.dts = k
            p.is_keyframe = True
            c.mux(p)
    return path


@pytest.mark.parametrize("codec", ["png", "mjpeg"])
@pytest.mark.parametrize("later,limits,words", [
    ((640, 640), {"max_pixels": 10_000}, ["frame 2 is over the limit of 10,000 pixels",
                                          "refused it before decoding", "--max-pixels"]),
    ((120, 120), {"max_pixels": 10_000}, ["frame 2 is 120x120 = 14,400 pixels", "--max-pixels"]),
    ((16, 200), {"max_side": 100}, ["frame 2 is 16x200, over the limit of 100 px per side", "--max-side"]),
])
def test_every_frame_is_checked_not_only_the_first(tmp_path, codec, later, limits, words):
    """Issue 26: a video whose first frame is 16x16 and later frames far larger passed the
    limits (checked on the first frame only) and was decoded at full size. Frames far over the
    limit are refused by the decoder's own cap before any memory is given to them; frames just
    over it (within the cap) when decoded; a long side as well."""
    from tests import hostile

    sizes = [(16, 16), later, (16, 16)]
    src = (hostile.resizing_video(tmp_path / "v.avi", sizes) if codec == "png"
           else _mjpeg_avi(tmp_path / "v.avi", sizes))
    with pytest.raises(ToonFaceError) as info:
        transcode(src, tmp_path / "out.mp4", identity, progress=False, **limits)
    msg = str(info.value)
    assert "\n" not in msg and all(w in msg for w in words), msg
    assert leftovers(tmp_path, {"v.avi"}) == []
    with VideoReader(src, **{k: v * 100 for k, v in limits.items()}) as r:  # within a raised limit:
        assert len(list(r)) == 3                                           # read (and scaled)


def test_a_size_the_container_declares_is_checked_before_decoding(tmp_path):
    src = write_clip(tmp_path / "c.mkv", [scene(48, 64, i) for i in range(2)])
    with pytest.raises(ToonFaceError, match="as its container declares it\\) is 64x48, over the limit of 60"):
        VideoReader(src, max_side=60)


def test_a_huge_later_frame_is_refused_without_allocating_it(tmp_path):
    """The issue's shape: frames of 16000x16000 after a 16x16 one (here 1-bit PNG frames, 68 KB
    in all). In a fresh process, so that its peak memory is this video's: today's reader decoded
    them (33 MB each, several at once on decoding threads; 8-bit frames are 256 MB each)."""
    import json
    import sys

    from tests import hostile

    src = hostile.resizing_video(tmp_path / "v.avi", [(16, 16)] + [(16000, 16000)] * 3)
    assert src.stat().st_size < 100_000
    # VmHWM, the peak of this process's own memory (ru_maxrss keeps the parent's across exec)
    code = f"""
import json, re
from pathlib import Path
from media.transcode import transcode
from utils.errors import ToonFaceError

def peak():
    return int(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)) * 1024

before = peak()
try:
    transcode(Path({str(src)!r}), Path({str(tmp_path / "out.mp4")!r}), lambda f: f, progress=False,
              max_pixels=3000 * 3000)
    msg = None
except ToonFaceError as exc:
    msg = str(exc)
print(json.dumps({{"msg": msg, "grown": peak() - before}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2], timeout=120)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["msg"] and "frame 2 is over the limit of 9,000,000 pixels" in result["msg"], result
    assert result["grown"] < 64 * 2**20, result


def test_rotation_set_by_the_ffmpeg_command_line_is_applied(tmp_path):
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    plain = write_clip(tmp_path / "plain.mp4", [scene(32, 48, i) for i in range(3)],
                       audio_seconds=0.3)
    src = tmp_path / "cli.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-display_rotation", "90",
                    "-i", str(plain), "-c", "copy", str(src)], check=True)
    res = transcode(src, tmp_path / "cli_out.mp4", identity, progress=False)
    assert res.info.orientation == ("transpose=cclock",) and res.size == (32, 48)
    out = decode_all(res.path)[0][0]
    assert np.abs(out.astype(int) - np.rot90(scene(32, 48, 0), 1).astype(int)).mean() < 6


def test_phone_rotation_comes_out_upright_and_stored_upright(tmp_path):
    portrait = scene(64, 48)                       # what the viewer should see
    stored = np.ascontiguousarray(np.rot90(portrait, -1))  # landscape, as a phone stores it
    # A 90 degree counter-clockwise display rotation turns `stored` back into `portrait`.
    src = write_clip(tmp_path / "p.mp4", [stored] * 3, rotation=90)
    with VideoReader(src) as reader:
        assert reader.info.orientation == ("transpose=cclock",) and reader.info.rotation == 270
    res = transcode(src, tmp_path / "p_out.mp4", identity, progress=False)
    out = decode_all(res.path)
    assert out[0][0].shape == (64, 48, 3)
    assert not any(sd.type.name == "DISPLAYMATRIX" for sd in out[0][2].side_data)
    _, cv_frames = opencv_frames(res.path)
    for decoded in (out[0][0], cv_frames[0]):
        # Two lossy generations (input and output); a wrong orientation differs by ~60.
        assert np.abs(decoded.astype(int) - portrait.astype(int)).mean() < 6
        assert decoded[:5, :5].min() > 200                             # white block top-left
        assert decoded[:5, -5:, 0].min() > 200 and decoded[:5, -5:, 1].max() < 60  # red top-right


def test_rotation_by_other_angles_is_carried_not_applied(tmp_path):
    src = write_clip(tmp_path / "t.mp4", [scene(32, 48)] * 2, rotation=30)
    res = transcode(src, tmp_path / "t_out.mp4", identity, progress=False)
    assert len(res.notices) == 1 and "30" in res.notices[0]
    with VideoReader(src) as r_in, VideoReader(res.path) as r_out:
        assert r_in.info.display_matrix is not None and r_in.info.orientation == ()
        assert r_out.info.display_matrix == r_in.info.display_matrix
        assert (r_out.info.width, r_out.info.height) == (48, 32)
        assert abs(r_out.info.rotation - 330) < 1  # 30 counter-clockwise = 330 clockwise


def test_batches_stream_and_processed_frames_are_written(tmp_path):
    src = write_clip(tmp_path / "b.mp4", [scene(32, 48, i) for i in range(11)])
    sizes: list[int] = []

    def invert(frames):
        sizes.append(len(frames))
        return [255 - f for f in frames]

    res = transcode(src, tmp_path / "b_out.mp4", invert, batch=4, progress=False)
    assert sizes == [4, 4, 3] and res.frames == 11
    ins, outs = decode_all(src), decode_all(res.path)
    assert np.abs(outs[5][0].astype(int) - (255 - ins[5][0].astype(int))).mean() < 3


def test_progress_bar_shows_frames_rate_and_eta(tmp_path, capsys):
    src = write_clip(tmp_path / "g.mp4", [scene(32, 48, i) for i in range(6)])
    transcode(src, tmp_path / "g_out.mp4", identity, progress=True)
    err = capsys.readouterr().err
    assert "6/6" in err and "frame/s" in err and "<" in err  # tqdm: n/total, rate, elapsed<ETA


def test_pcm_audio_is_reencoded_for_mp4_and_copied_into_mov(tmp_path):
    src = write_clip(tmp_path / "pcm.mov", [scene(32, 48, i) for i in range(10)],
                     audio_seconds=1.0, audio_codec="pcm_s16le")
    mp4 = transcode(src, tmp_path / "pcm_out.mp4", identity, progress=False)
    assert len(mp4.notices) == 1 and "AAC" in mp4.notices[0]
    mov = transcode(src, tmp_path / "pcm_out.mov", identity, progress=False)
    assert mov.notices == []
    with av.open(str(mp4.path)) as a, av.open(str(mov.path)) as b:
        assert a.streams.audio[0].codec_context.codec.canonical_name == "aac"
        assert b.streams.audio[0].codec_context.codec.canonical_name == "pcm_s16le"
        for c in (a, b):
            s = c.streams.audio[0]
            assert abs(float(s.duration * s.time_base) - 1.0) <= 0.1


def test_reader_info(tmp_path):
    src = write_clip(tmp_path / "i.mp4", [scene(32, 48, i) for i in range(7)], rate=14,
                     audio_seconds=0.5, rotation=-90)
    with VideoReader(src) as r:
        info = r.info
        frames = list(r)
    assert (info.width, info.height, info.stored_width, info.stored_height) == (32, 48, 48, 32)
    assert info.frame_count == 7 and info.average_fps == 14 and info.has_audio
    assert info.codec == "h264" and info.rotation == 90 and info.orientation == ("transpose=clock",)
    assert len(frames) == 7 and all(isinstance(f, DecodedFrame) for f in frames)
    assert [f.index for f in frames] == list(range(7))
    np.testing.assert_allclose([f.time for f in frames], np.arange(7) / 14, atol=1e-3)


# ------------------------------------------------------------------------------ bad input


def _zero_frame_avi(path: Path) -> Path:
    with av.open(str(path), "w") as c:
        vs = c.add_stream("mjpeg", rate=10)
        vs.width, vs.height, vs.pix_fmt = 32, 32, "yuvj420p"
        c.start_encoding()
    return path


def _truncated(path: Path, keep: float = 0.75, **clip) -> Path:
    whole = write_clip(path.with_name("whole" + path.suffix),
                       [scene(48, 64, i) for i in range(30)], audio_seconds=3.0, **clip)
    data = whole.read_bytes()
    whole.unlink()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def _truncated_faststart(path: Path) -> Path:
    whole = path.with_name("whole.mp4")
    write_clip(whole, [scene(48, 64, i) for i in range(30)])
    transcode(whole, path.with_name("fs.mp4"), identity, progress=False)  # moov first
    data = path.with_name("fs.mp4").read_bytes()
    whole.unlink()
    path.with_name("fs.mp4").unlink()
    path.write_bytes(data[: len(data) * 9 // 10])  # the index survives, the last frames do not
    return path


def _unknown_codec(path: Path) -> Path:
    clip = write_clip(path.with_name("mj.avi"), [scene(32, 32)] * 3, codec="mjpeg",
                      pix_fmt="yuvj420p")
    data = clip.read_bytes().replace(b"MJPG", b"QZQZ")  # a FourCC no decoder knows
    clip.unlink()
    path.write_bytes(data)
    return path


def _audio_only(path: Path) -> Path:
    with av.open(str(path), "w") as c:
        aus = c.add_stream("aac", rate=44100)
        aus.layout = "mono"
        for i in range(0, 44100, 1024):
            af = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="flt",
                                            layout="mono")
            af.sample_rate, af.pts = 44100, i
            c.mux(aus.encode(af))
        c.mux(aus.encode(None))
    return path


BAD_INPUTS = {
    "zero_frames.avi": (_zero_frame_avi, "no frames"),
    "truncated.mp4": (_truncated, "truncated"),  # moov is at the end: cut off
    # Matroska and AVI cut short read as shorter videos in FFmpeg, without an error
    "truncated.mkv": (_truncated, "truncated"),
    "truncated.avi": (lambda p: _truncated(p, codec="mjpeg", pix_fmt="yuvj420p",
                                           audio_codec="mp3"), "truncated"),
    "truncated_faststart.mp4": (_truncated_faststart, "truncated"),
    # FFmpeg reads a moov that lost its end without complaint (here: the audio track is gone)
    "truncated_moov.mp4": (lambda p: _truncated(p, keep=0.96), "truncated"),
    "unknown_codec.avi": (_unknown_codec, "unsupported video codec"),
    "audio_only.m4a": (_audio_only, "no video stream (audio only)"),
    "folder.mp4": (lambda p: (p.mkdir(), p)[1], "is a folder"),
    "missing.mp4": (lambda p: p, "no such file"),
    "empty.mp4": (lambda p: (p.write_bytes(b""), p)[1], "empty file"),
    "garbage.mp4": (lambda p: (p.write_bytes(b"not a video " * 100), p)[1], "not a readable video"),
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_is_one_line_and_leaves_nothing(tmp_path, name):
    make, expected = BAD_INPUTS[name]
    inputs = tmp_path / "in"
    inputs.mkdir()
    src = make(inputs / name)
    out = tmp_path / "out"
    with pytest.raises(ToonFaceError) as err:
        transcode(src, out / "result.mp4", identity, progress=False)
    msg = str(err.value)
    assert "\n" not in msg and expected in msg and str(src) in msg
    assert not out.exists() or leftovers(out, set()) == []


def test_bad_output_names_are_refused(tmp_path):
    src = write_clip(tmp_path / "s.mp4", [scene(32, 48)] * 2)
    with pytest.raises(ToonFaceError, match="must be .mp4"):
        transcode(src, tmp_path / "s.avi", identity, progress=False)
    with pytest.raises(ToonFaceError, match="overwrite its input"):
        transcode(src, src, identity, progress=False)
    (tmp_path / "d.mp4").mkdir()
    with pytest.raises(ToonFaceError, match="is a folder"):
        transcode(src, tmp_path / "d.mp4", identity, progress=False)
    assert leftovers(tmp_path, {"s.mp4", "d.mp4"}) == []


@pytest.mark.parametrize("error", [KeyboardInterrupt, RuntimeError])
def test_interrupt_or_failure_mid_video_removes_the_partial_file(tmp_path, error):
    src = write_clip(tmp_path / "s.mp4", [scene(32, 48, i) for i in range(12)], audio_seconds=1.2)
    calls = []

    def fail_on_third(frames):
        calls.append(1)
        if len(calls) == 3:
            raise error("stop")
        return frames

    with pytest.raises(error):
        transcode(src, tmp_path / "o.mp4", fail_on_third, batch=2, progress=False)
    assert leftovers(tmp_path, {"s.mp4"}) == []


def test_process_returning_wrong_frames_is_a_bug_not_a_user_error(tmp_path):
    src = write_clip(tmp_path / "s.mp4", [scene(32, 48)] * 3)
    with pytest.raises(ValueError, match="returned 0 frames"):
        transcode(src, tmp_path / "o.mp4", lambda fs: [], progress=False)
    with pytest.raises(ValueError, match="frame size"):
        transcode(src, tmp_path / "o.mp4", lambda fs: [f[:-2] for f in fs], progress=False)
    assert leftovers(tmp_path, {"s.mp4"}) == []


def test_writer_refuses_decreasing_timestamps(tmp_path):
    w = VideoWriter(tmp_path / "w.mp4", 32, 32, time_base=Fraction(1, 10), frame_rate=10)
    w.write(scene(32, 32), 0)
    with pytest.raises(ValueError, match="increase"):
        w.write(scene(32, 32), 0)
    w.abort()
    assert leftovers(tmp_path, set()) == []
