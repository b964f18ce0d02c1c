"""Pictures and clips in and out: the one decoder of every path (training, evaluation, the command
line, the service), the encoders and the video reader, writer and transcode. Imports only
``utils``; torch, cv2 and PyAV are imported inside the functions that need them.

- :mod:`media.decode`: image files -> sRGB uint8 (EXIF orientation, 16-bit, alpha, palettes,
  ICC profiles), one frame or frame by frame (:class:`media.decode.FrameReader`).
- :mod:`media.errors`: :class:`media.errors.UnreadableImage` and its kinds, the system's reasons.
- :mod:`media.limits`: limits checked before decoding (bytes, pixels, scans; the scoped Pillow
  decompression-bomb hook) and the command line's and service's defaults.
- :mod:`media.layout`: picture counts, canvas and loop of a file, read from its structure.
- :mod:`media.colour`: 16-bit to 8-bit, arrays to uint8 RGB, invisible pixels, ICC -> sRGB.
- :mod:`media.folders`: listing the pictures of a folder, checking them in one pass.
- :mod:`media.tensors`: uint8 (H, W, 3) <-> float (3, H, W) in [-1, 1].
- :mod:`media.encode`: sRGB-tagged PNG, APNG (streamed) and JPEG, written atomically.
- :mod:`media.container`: what a video file's bytes declare before FFmpeg reads it.
- :mod:`media.orientation`: display matrices -> upright frames.
- :mod:`media.video_reader`, :mod:`media.video_writer`, :mod:`media.transcode`: H.264 video
  through FFmpeg (PyAV), streaming, audio copied, time stamps kept.
"""
