"""Videos as inputs: a video file is a list of sampled frames, each encoded as an image.

The frame protocol is the one of the zero-shot baselines of Perception Encoder and CLIP4Clip: N frames
sampled uniformly over the whole video (N = 8 by default), each through the model's image transform
and image tower, the frame embeddings (L2-normalised, as every image embedding here) averaged and
renormalised -- CLIP4Clip's parameter-free "meanP" similarity. The sampling rule is Perception
Encoder's (``apps/pe/clip_benchmark/datasets/video_classification_dataset.py``, ``_load_video``):
frame ``int(i * (T - 1) / (N - 1))`` for i = 0 .. N-1 of a video with T frames; N = 1 takes frame
``T // 2``.

Decoding uses PyAV (FFmpeg's libraries, bundled in its wheels, so nothing has to be installed
system-wide; torchcodec needs a system FFmpeg matched to the torch build). T is the number of video
packets in the first video stream (what decord's ``len(VideoReader)`` reports for the usual
one-frame-per-packet codecs); frames are decoded in presentation order up to the last sampled one
and converted to RGB by FFmpeg's swscale (``to_ndarray(format="rgb24")``).

A ``VideoFile`` is what a dataset lists in place of an image; ``VideoFrame`` is one sampled frame, an
ordinary image input with its own key and cache identity, so frames go through the loaders, the
pixel cache and the embedding cache like images (``vlbench.encoding.video_pool`` expands videos into
frames and pools the frames' embeddings). A process keeps the frames of the video it decoded last,
so the N frames of a video cost one decode.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image

from vlbench.errors import VLBenchError
from vlbench.spec.schema import option, schema
from vlbench.stamps import file_stamp

VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp"}
INSTALL_HINT = "video tasks decode with PyAV: pip install 'vlbench[video]' (or pip install av)"


@schema
class VideoFrames:
    """The frame protocol of a video dataset (``video:`` in its source)."""

    frames: int = option(8, help="frames sampled per video (Perception Encoder's zero-shot evaluation: 8; ActivityNet: 32)", low=1)
    sampling: Literal["uniform"] = option("uniform", help="uniform: frame int(i * (T - 1) / (N - 1)) for i < N (N = 1: frame T // 2), "
                                          "as Perception Encoder's evaluation samples them")
    renormalise: bool = option(True, help="L2-normalise the mean of the frame embeddings (CLIP4Clip's meanP); false: keep the mean, "
                               "as Perception Encoder's retrieval scores it (encode_video(normalize=True) averages normalised frames)")


def sample_frame_indices(total: int, frames: int) -> list[int]:
    """The positions of the sampled frames in a video of ``total`` frames (see the module docstring)."""
    if total < 1:
        return []
    if frames == 1:
        return [total // 2]
    return [int(i * (total - 1) / (frames - 1)) for i in range(frames)]


def _av():
    try:
        import av
    except ImportError:
        raise VLBenchError(INSTALL_HINT) from None
    return av


def decoder_version() -> str:
    return f"PyAV {_av().__version__}"


def decode_sampled_frames(path: str, frames: int) -> list[Image.Image]:
    """The sampled frames of one video file as RGB images (a short video repeats frames, as the rule does)."""
    av = _av()
    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise VLBenchError(f"{path} has no video stream")
            stream = container.streams.video[0]
            total = sum(1 for packet in container.demux(stream) if packet.size)
        wanted = sample_frame_indices(total, frames)
        if not wanted:
            raise VLBenchError(f"cannot read video {path}: it has no frames")
        kept: dict[int, np.ndarray] = {}
        with av.open(path) as container:
            stream = container.streams.video[0]
            for position, frame in enumerate(container.decode(stream)):
                if position in wanted:
                    kept[position] = frame.to_ndarray(format="rgb24")
                if position >= wanted[-1]:
                    break
    except FileNotFoundError:
        raise VLBenchError(f"video not found: {path}") from None
    except av.FFmpegError as exc:
        raise VLBenchError(f"cannot read video {path}: {exc}") from None
    if wanted[-1] not in kept:  # fewer decodable frames than packets: the last ones stand in
        last = max(kept) if kept else None
        if last is None:
            raise VLBenchError(f"cannot read video {path}: no frame decodes")
        kept.update({i: kept[last] for i in wanted if i not in kept})
    return [Image.fromarray(kept[i]) for i in wanted]


class _LastVideo:
    """The sampled frames of the video this process decoded last (the frames of a video come in a row)."""

    lock = threading.Lock()
    key: tuple[str, int] | None = None
    frames: list[Image.Image] = []

    @classmethod
    def get(cls, path: str, frames: int) -> list[Image.Image]:
        with cls.lock:
            if cls.key != (path, frames):
                cls.frames, cls.key = decode_sampled_frames(path, frames), (path, frames)
            return cls.frames


@dataclass(frozen=True)
class VideoFile:
    """A video a dataset lists where an image would be; its frames are what gets encoded."""

    path: str
    frames: int = 8
    sampling: str = "uniform"
    renormalise: bool = True

    @property
    def key(self) -> str:
        return self.path

    @property
    def cache_id(self) -> str | None:
        stamp = file_stamp(self.path)
        return None if stamp is None else f"video:{stamp}"

    def frame_refs(self) -> list["VideoFrame"]:
        return [VideoFrame(self, k) for k in range(self.frames)]

    def load(self) -> Image.Image:
        raise VLBenchError(f"{self.path} is a video: this task's kind reads images (video works with classification and retrieval)")


@dataclass(frozen=True)
class VideoFrame:
    """The k-th sampled frame of a video: an image input like any other."""

    video: VideoFile
    k: int

    @property
    def key(self) -> str:
        return f"{self.video.path}#frame={self.k}/{self.video.frames}:{self.video.sampling}"

    @property
    def cache_id(self) -> str | None:
        video = self.video.cache_id
        return None if video is None else f"{video}|frame {self.k} of {self.video.frames} ({self.video.sampling}, {decoder_version()})"

    def load(self) -> Image.Image:
        return _LastVideo.get(self.video.path, self.video.frames)[self.k]


#: The ``missing_videos`` option of the readers whose files list videos that may be absent (YouTube takedowns).
MissingVideos = Literal["error", "skip"]
MISSING_VIDEOS_HELP = ("a listed video whose file is missing: error (the default) or skip (left out, as CLIP4Clip's loaders and "
                       "Kinetics' arrange_by_classes.py drop them; counted in the result's protocol_used.left_out and said after "
                       "the summary; the video folder's listing joins the result's identity)")


def missing_videos_left_out(missing: list[str], total: int, listed_in: str, folder: Path, policy: str) -> dict[str, Any]:
    """The ``left_out`` entry for listed videos whose file is missing (none: empty); with ``policy`` "error", or when
    every video is missing, a one-line error naming the option."""
    if not missing:
        return {}
    if policy == "error":
        raise VLBenchError(f"{len(missing)} of the {total} videos of {listed_in} not found under {folder} (e.g. '{missing[0]}'); "
                           "put them there, or set missing_videos: skip to leave them out")
    if len(missing) == total:
        raise VLBenchError(f"none of the videos of {listed_in} is under {folder} (missing_videos: skip)")
    return {"missing_videos": {"records": len(missing), "examples": missing[:5]}}


def video_files(paths: list[Path], protocol: VideoFrames) -> list[VideoFile]:
    return [VideoFile(str(path), protocol.frames, protocol.sampling, protocol.renormalise) for path in paths]


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES
