"""mp4 frames by timestamp, decoded and encoded with PyAV.

Reading follows LeRobot: a frame is asked for by its timestamp in the file; the reader seeks to
the keyframe at or before it, decodes forward and keeps the frame whose presentation time is
within half a frame period (``1 / fps / 2``) of the request. Rows far apart in one file are
reached by separate seeks; open files are kept per process (and dropped when pickled, so a
spawned loader worker opens its own).

Writing follows LeRobot's encoder settings: yuv420p, a keyframe every 2 frames (``g=2``, so a
random frame costs at most one extra decode) and CRF 30, AV1 through libsvtav1 by default or
H.264 through libx264.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from robo_policies.data.lerobot.frames import LazyFrames
from robo_policies.utils.errors import ConfigError, DatasetError

DECODERS = {"av1": ("libdav1d", "libaom-av1"), "h264": ("h264",), "hevc": ("hevc",), "vp9": ("vp9", "libvpx-vp9")}
"""PyAV decoders able to read each codec LeRobot records in ``info["video.codec"]``
(FFmpeg's own ``av1`` decoder needs a hardware device, so it does not count)."""
ENCODERS = {"av1": "libsvtav1", "h264": "libx264"}
GOP = 2
CRF = 30
PIX_FMT = "yuv420p"
RESEEK_FRAMES = 8
"""Requested frames further apart than this are reached by a new seek, not by decoding
every frame between them."""


def available_decoders() -> set[str]:
    """Codec names this PyAV build can open (decoders and encoders alike)."""
    return set(av.codecs_available)


def require_decoder(name: str, codec: str | None) -> None:
    """A DatasetError naming the file and the missing decoder when PyAV cannot read ``codec``."""
    decoders = DECODERS.get(codec or "")
    if decoders and not set(decoders) & available_decoders():
        raise DatasetError(f"{name} is {codec.upper()}; this PyAV build has no {codec.upper()} decoder "
                           f"({' or '.join(decoders)})")


class VideoFrames(LazyFrames):
    """One camera's frames, row ``i`` being the frame at ``times[i]`` s in ``files[file_of_row[i]]``."""

    def __init__(self, root: Path, files: list[str], file_of_row: np.ndarray, times: np.ndarray,
                 frame_shape: tuple[int, int, int], fps: float, codec: str | None) -> None:
        super().__init__(len(times), frame_shape)
        self.root = root
        self.files = files
        self.file_of_row = file_of_row
        self.times = times
        self.fps = fps
        self.codec = codec
        self._open: dict[int, tuple[Any, Any]] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_open": {}}  # open containers stay in the process that opened them

    def _read(self, rows: np.ndarray) -> np.ndarray:
        frames = np.empty((len(rows), *self.shape[1:]), np.uint8)
        files = self.file_of_row[rows]
        for file in np.unique(files):
            picked = np.flatnonzero(files == file)
            times = self.times[rows[picked]]
            wanted = np.unique(times)
            decoded = self._decode(int(file), wanted)
            frames[picked] = decoded[np.searchsorted(wanted, times)]
        return frames

    def _decode(self, file: int, times: np.ndarray) -> np.ndarray:
        """Frames at sorted ``times`` of one file, one seek per run of nearby times."""
        breaks = np.flatnonzero(np.diff(times) > RESEEK_FRAMES / self.fps) + 1
        try:
            return np.concatenate([self._decode_run(file, run) for run in np.split(times, breaks)])
        except av.error.FFmpegError as err:
            raise DatasetError(f"{self.root / self.files[file]}: cannot decode ({err})") from err

    def _decode_run(self, file: int, times: np.ndarray) -> np.ndarray:
        container, stream = self._container(file)
        tolerance = 1 / self.fps / 2
        container.seek(int(times[0] / stream.time_base), stream=stream, backward=True)
        found: list[np.ndarray] = []
        for frame in container.decode(stream):
            time = float(frame.pts * stream.time_base)
            if time < times[len(found)] - tolerance:
                continue
            if time > times[len(found)] + tolerance:
                break
            found.append(self._checked(frame.to_ndarray(format="rgb24"), file))
            if len(found) == len(times):
                return np.stack(found)
        raise DatasetError(f"{self.root / self.files[file]}: no frame within {tolerance:.4f} s of timestamp "
                           f"{times[len(found)]:.4f} s")

    def _checked(self, frame: np.ndarray, file: int) -> np.ndarray:
        if frame.shape != self.shape[1:]:
            raise DatasetError(f"{self.root / self.files[file]}: frames are {frame.shape}, "
                               f"meta/info.json says {self.shape[1:]}")
        return frame

    def _container(self, file: int) -> tuple[Any, Any]:
        if file not in self._open:
            name = self.files[file]
            require_decoder(name, self.codec)
            path = self.root / name
            if not path.is_file():
                raise DatasetError(f"{path}: no such video")
            try:
                container = av.open(str(path))
            except av.error.FFmpegError as err:
                raise DatasetError(f"{path}: not a readable video ({err})") from err
            if not container.streams.video:
                raise DatasetError(f"{path}: no video stream")
            self._open[file] = (container, container.streams.video[0])
        return self._open[file]


def encode_video(path: Path, frames: Iterable[np.ndarray], fps: float, codec: str = "av1") -> None:
    """Write (H, W, 3) uint8 ``frames`` as an mp4 at ``fps`` (frame ``i`` at ``i / fps`` s); the
    container is mp4 whatever ``path`` ends with (writers use temporary names)."""
    if codec not in ENCODERS:
        raise ConfigError(f"video codec {codec!r} is not supported; choose one of {', '.join(ENCODERS)}")
    os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its whole configuration otherwise
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream(ENCODERS[codec], rate=Fraction(fps).limit_denominator(1001),
                                      options={"g": str(GOP), "crf": str(CRF)})
        stream.pix_fmt = PIX_FMT
        for index, frame in enumerate(frames):
            if index == 0:
                stream.height, stream.width = frame.shape[:2]
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
