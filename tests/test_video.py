"""Video tasks on generated videos in the real layouts: Perception Encoder's frame sampling, the frames' embeddings
pooled as CLIP4Clip's meanP, classification and text-video retrieval end to end against a reference written here
(PyAV decoding every frame, the rule written out, the model's own image tower), and CLIP4Clip's caption layouts."""

from __future__ import annotations

import csv
import gzip
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY

av = pytest.importorskip("av", reason="video tasks need PyAV (pip install 'vlbench[video]')")

from vlbench.datasets.retrieval import Clip4ClipActivityNetReader, Clip4ClipDidemoReader, Clip4ClipMsvdReader  # noqa: E402
from vlbench.datasets.video import VideoFile, VideoFrames, decode_sampled_frames, sample_frame_indices  # noqa: E402
from vlbench.errors import VLBenchError  # noqa: E402
from vlbench.run.runner import Runner  # noqa: E402
from vlbench.run.settings import RunSettings  # noqa: E402
from vlbench.spec.catalog import Catalog  # noqa: E402


def frame_colour(video: int, k: int) -> tuple[int, int, int]:
    return ((40 * video + 20 * k) % 256, (255 - 20 * k) % 256, (90 * video) % 256)


def write_video(path: Path, video: int, frames: int, size: int = 64) -> None:
    """Frame k of video v: a colour of its own (frame_colour) with a square whose place moves with k."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for k in range(frames):
            pixels = np.empty((size, size, 3), np.uint8)
            pixels[:] = frame_colour(video, k)
            corner = (4 * k + 8 * video) % (size - 16)
            pixels[corner:corner + 16, corner:corner + 16] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def reference_frames(path: Path, n: int) -> list:
    """Every frame decoded, then Perception Encoder's _load_video rule picks n of them (written out as it is there)."""
    with av.open(str(path)) as container:
        everything = [frame.to_image() for frame in container.decode(video=0)]
    total = len(everything)
    indices = [total // 2] if n == 1 else [int(i * (total - 1) / (n - 1)) for i in range(n)]
    return [everything[i] for i in indices]


def reference_video_embeddings(model, paths: list[Path], n: int = 8, renormalise: bool = True) -> torch.Tensor:
    rows = []
    for path in paths:
        pixels = torch.stack([model.image_transform(image) for image in reference_frames(path, n)])
        frames = model.encode_images(pixels)
        mean = frames.double().mean(0)
        rows.append(mean / mean.norm() if renormalise else mean)
    return torch.stack(rows).float()


def test_uniform_sampling_is_perception_encoders_rule():
    assert sample_frame_indices(12, 8) == [0, 1, 3, 4, 6, 7, 9, 11]
    assert sample_frame_indices(3, 8) == [0, 0, 0, 0, 1, 1, 1, 2]  # a short video repeats frames
    assert sample_frame_indices(9, 1) == [4] and sample_frame_indices(1, 4) == [0, 0, 0, 0]
    assert sample_frame_indices(300, 32)[-1] == 299 and sample_frame_indices(0, 8) == []


def test_the_sampled_frames_are_the_ones_the_rule_names(tmp_path):
    path = tmp_path / "v.mp4"
    write_video(path, 1, 13)
    decoded = decode_sampled_frames(str(path), 8)
    reference = reference_frames(path, 8)
    assert len(decoded) == 8
    for k, (mine, theirs) in zip(sample_frame_indices(13, 8), zip(decoded, reference)):
        assert np.array_equal(np.asarray(mine), np.asarray(theirs))
        corner_free = np.asarray(mine)[-4:, :4].reshape(-1, 3).mean(0)  # away from the square: the frame's own colour
        assert np.allclose(corner_free, frame_colour(1, k), atol=8), (k, corner_free)


def test_a_broken_or_missing_video_is_a_one_line_error(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    for path in (bad, tmp_path / "absent.mp4"):
        with pytest.raises(VLBenchError) as caught:
            decode_sampled_frames(str(path), 8)
        assert str(path) in str(caught.value) and "\n" not in str(caught.value)
    with pytest.raises(VLBenchError, match="is a video"):
        VideoFile(str(bad)).load()


def run(tmp_path, task: str, output: str, cache: Path | None = None):
    settings = RunSettings(data_root=tmp_path / "data", output=tmp_path / output, num_workers=0, batch_size=16, bootstrap_replicates=0,
                           cache_dir=cache)
    _, outcomes = Runner(Catalog.load(), settings).run(TINY, [task])
    assert outcomes[0].status == "done", outcomes[0].note
    result = json.loads(outcomes[0].result_file.read_text())
    with gzip.open(outcomes[0].result_file.parent / result["samples"], "rt") as f:
        return result, [json.loads(line) for line in f]


def test_video_classification_end_to_end_equals_the_reference(tmp_path, tiny_model):
    root = tmp_path / "data" / "ucf101" / "videos"
    classes = ["ApplyEyeMakeup", "Basketball", "JumpRope_"]
    paths = []
    for c, name in enumerate(classes):
        for j in range(2):
            paths.append(root / name / f"v_{name}_g0{j}.avi")
            write_video(paths[-1], 2 * c + j, 10 + 3 * j)
    (root / "labels.txt").write_text("ApplyEyeMakeup,apply eye makeup\nBasketball,basketball\nJumpRope_,jump (rope)\n")
    cache = tmp_path / "cache"
    result, samples = run(tmp_path, "ucf101", "first", cache)
    assert result["task"]["protocol_used"]["video"] == {"videos": 6, "frames": 8, "sampling": "uniform", "decoder": f"PyAV {av.__version__}",
                                                        "pooling": "mean of the L2-normalised frame embeddings, renormalised"}
    assert result["timing"]["videos"] == 6 and result["timing"]["images_encoded"] == 48
    # the reference: frames decoded and picked independently, the model's image tower, PE's templates, the same classifier
    from vlbench.kinds.classification import fill_template

    templates = (Path(__file__).parents[1] / "tasks" / "video" / "ucf101_hmdb51_templates.txt").read_text().splitlines()
    names = ["apply eye makeup", "basketball", "jump rope"]  # clean_label: parentheses removed
    texts = tiny_model.encode_texts([fill_template(t, n) for n in names for t in templates]).view(3, len(templates), -1).mean(1)
    classifier = texts / texts.norm(dim=-1, keepdim=True)
    logits = reference_video_embeddings(tiny_model, paths) @ classifier.T
    for record in samples:
        assert record["top"][0] == int(logits[record["i"]].argmax())
        assert np.allclose(record["scores"][:3], sorted(logits[record["i"]].tolist(), reverse=True), atol=1e-5)
    acc1 = np.mean([int(logits[i].argmax()) == i // 2 for i in range(6)])
    assert result["metrics"]["acc1"] == pytest.approx(acc1)
    # the frames went through the embedding cache: a second run decodes and encodes none of them
    again, again_samples = run(tmp_path, "ucf101", "second", cache)
    assert again["timing"]["images_from_cache"] == 48 and again["timing"]["images_encoded"] == 0
    assert again["metrics"] == result["metrics"] and again_samples == samples


def test_text_video_retrieval_end_to_end_equals_the_reference(tmp_path, tiny_model):
    root = tmp_path / "data" / "msrvtt"
    paths = [root / "videos" / "all" / f"video{7000 + v}.mp4" for v in range(4)]
    sentences = ["a red square moves", "a green field", "a bright square on blue", "something dark"]
    for v, path in enumerate(paths):
        write_video(path, v, 9 + v)
    with open(root / "MSRVTT_JSFUSION_test.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["key", "vid_key", "video_id", "sentence"])
        for v, sentence in enumerate(sentences):
            writer.writerow([f"ret{v}", f"msr{7000 + v}", f"video{7000 + v}", sentence])
    result, samples = run(tmp_path, "msrvtt_1ka", "out")
    assert result["task"]["protocol_used"]["video"]["videos"] == 4
    videos = reference_video_embeddings(tiny_model, paths)
    texts = tiny_model.encode_texts(sentences)
    t2v = float(np.mean([int((texts[t] @ videos.T).argmax()) == t for t in range(4)]))
    v2t = float(np.mean([int((videos[v] @ texts.T).argmax()) == v for v in range(4)]))
    assert result["metrics"]["image_retrieval_recall@1"] == pytest.approx(t2v)
    assert result["metrics"]["text_retrieval_recall@1"] == pytest.approx(v2t)
    assert result["main_metric"] == "image_retrieval_recall@1"


def test_pooling_without_renormalising_is_the_plain_mean(tmp_path, tiny_model):
    from vlbench.encoding.video_pool import expand, pool

    paths = [tmp_path / f"{v}.mp4" for v in range(2)]
    for v, path in enumerate(paths):
        write_video(path, v, 7)
    refs = [VideoFile(str(p), 4, "uniform", False) for p in paths]
    expanded = expand(refs)
    frames = torch.stack([tiny_model.image_transform(frame.load()) for frame in expanded.frames])
    pooled = pool(expanded, tiny_model.encode_images(frames))
    assert torch.allclose(pooled, reference_video_embeddings(tiny_model, paths, 4, renormalise=False), atol=1e-6)
    assert (pooled.norm(dim=1) < 1).all()  # the mean of distinct unit vectors is shorter than one


def write_clip4clip_layouts(root: Path) -> None:
    for name in ("vid1", "vid2"):
        write_video(root / "msvd" / "YouTubeClips" / f"{name}.avi", 1, 5)
    (root / "msvd" / "test_list.txt").write_text("vid2\nvid1\n")
    with open(root / "msvd" / "raw-captions.pkl", "wb") as f:
        pickle.dump({"vid1": [["a", "man", "runs"], ["someone", "running"]], "vid2": [["a", "cat"]], "vid3": [["unused"]]}, f)
    write_video(root / "didemo" / "videos" / "123_abc.mov.mp4", 2, 5)
    (root / "didemo" / "test_list.txt").write_text("123_abc.mov.mp4\n")
    (root / "didemo" / "test_data.json").write_text(json.dumps([
        {"video": "123_abc.mov.mp4", "description": "a dog jumps", "times": [[0, 1]]},
        {"video": "other.mp4", "description": "not listed", "times": [[0, 0]]},
        {"video": "123_abc.mov.mp4", "description": "then it sits", "times": [[2, 3]]}]))
    write_video(root / "activitynet" / "videos" / "xyz.mp4", 3, 5)
    (root / "activitynet" / "val_ids.json").write_text(json.dumps(["v_xyz"]))
    (root / "activitynet" / "val_1.json").write_text(json.dumps({"v_xyz": {"duration": 10.0, "timestamps": [[0, 4], [4, 9]],
                                                                          "sentences": ["A man walks in.", " He sits down."]}}))


def test_clip4clip_caption_layouts(tmp_path):
    write_clip4clip_layouts(tmp_path)
    protocol = VideoFrames()
    msvd = Clip4ClipMsvdReader().read(str(tmp_path / "msvd"), Clip4ClipMsvdReader.options(format="clip4clip_msvd", annotation="raw-captions.pkl", video_list="test_list.txt",
                                                                                     videos_dir="YouTubeClips", video=protocol), None, None)
    assert [Path(v.path).name for v in msvd.images] == ["vid2.avi", "vid1.avi"]
    assert msvd.captions == [["a cat"], ["a man runs", "someone running"]]
    didemo = Clip4ClipDidemoReader().read(str(tmp_path / "didemo"), Clip4ClipDidemoReader.options(format="clip4clip_didemo", annotation="test_data.json", video_list="test_list.txt",
                                                                                           videos_dir="videos"), None, None)
    assert didemo.captions == [["a dog jumps then it sits"]] and didemo.images[0].frames == 8
    anet = Clip4ClipActivityNetReader().read(str(tmp_path / "activitynet"), Clip4ClipActivityNetReader.options(
        format="clip4clip_activitynet", annotation="val_1.json", video_list="val_ids.json", videos_dir="videos", video=VideoFrames(frames=32)), None, None)
    assert anet.captions == [["A man walks in.  He sits down."]] and anet.images[0].frames == 32
    (tmp_path / "activitynet" / "videos" / "xyz.mp4").unlink()
    with pytest.raises(VLBenchError, match="1 of the 1 videos of val_ids.json not found.*missing_videos: skip"):
        Clip4ClipActivityNetReader().read(str(tmp_path / "activitynet"), Clip4ClipActivityNetReader.options(
            format="clip4clip_activitynet", annotation="val_1.json", video_list="val_ids.json", videos_dir="videos"), None, None)
    (tmp_path / "msvd" / "YouTubeClips" / "vid2.avi").unlink()
    skipping = Clip4ClipMsvdReader.options(format="clip4clip_msvd", annotation="raw-captions.pkl", video_list="test_list.txt",
                                           videos_dir="YouTubeClips", missing_videos="skip")
    msvd = Clip4ClipMsvdReader().read(str(tmp_path / "msvd"), skipping, None, None)
    assert msvd.captions == [["a man runs", "someone running"]]
    assert msvd.left_out == {"missing_videos": {"records": 1, "examples": ["vid2"]}}
    assert any(getattr(i, "path", None) == tmp_path / "msvd" / "YouTubeClips" for i in Clip4ClipMsvdReader().inputs(tmp_path / "msvd", skipping, None))


def test_the_clip4clip_task_files_run_on_their_layouts(tmp_path):
    write_clip4clip_layouts(tmp_path / "data")
    settings = RunSettings(data_root=tmp_path / "data", output=tmp_path / "out", num_workers=0, batch_size=16, bootstrap_replicates=0)
    _, outcomes = Runner(Catalog.load(), settings).run(TINY, ["msvd", "didemo", "activitynet_captions"])
    assert [o.status for o in outcomes] == ["done"] * 3, [o.note for o in outcomes]
    frames = {o.task: json.loads(o.result_file.read_text())["task"]["protocol_used"]["video"]["frames"] for o in outcomes}
    assert frames == {"msvd": 8, "didemo": 8, "activitynet_captions": 32}
    assert [o.n for o in outcomes] == [2, 1, 1]
    # CLIP4Clip drops listed videos that are missing: missing_videos: skip does too, recorded and said
    (tmp_path / "data" / "msvd" / "YouTubeClips" / "vid1.avi").unlink()
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    shipped = Path(__file__).parents[1] / "tasks" / "video" / "msvd.yaml"
    (tasks / "msvd_present.yaml").write_text(shipped.read_text().replace("task: msvd", "task: msvd_present")
                                             .replace("include: _video_retrieval.yaml", f"include: {shipped.parent / '_video_retrieval.yaml'}")
                                             .replace("videos_dir: YouTubeClips}", "videos_dir: YouTubeClips, missing_videos: skip}"))
    skipping = RunSettings(data_root=tmp_path / "data", output=tmp_path / "out2", num_workers=0, batch_size=16, bootstrap_replicates=0)
    _, outcomes = Runner(Catalog.load(extra_task_dirs=[tasks]), skipping).run(TINY, ["msvd_present"])
    assert outcomes[0].n == 1 and "1 record(s) left out: video file missing (missing_videos: skip), e.g. vid1" in outcomes[0].note
    assert json.loads(outcomes[0].result_file.read_text())["task"]["protocol_used"]["left_out"] == {"missing_videos": {"records": 1, "examples": ["vid1"]}}


def test_class_folders_of_links_as_kinetics_arrange_by_classes_makes_them(tmp_path):
    from vlbench.datasets.classification import VideoFolderReader, VideoFolderSource

    flat = tmp_path / "k400" / "val"
    write_video(flat / "abc_000001_000011.mp4", 0, 4)
    write_video(flat / "xyz_000002_000012.mp4", 1, 4)
    arranged = tmp_path / "k400" / "videos" / "val"
    for name, label in (("abc_000001_000011.mp4", "air drumming"), ("xyz_000002_000012.mp4", "abseiling")):
        (arranged / label).mkdir(parents=True)
        (arranged / label / name).symlink_to(flat / name)
    data = VideoFolderReader().read(str(arranged), VideoFolderSource(format="video_folder"), None, None)
    assert data.classnames == ["abseiling", "air drumming"] and data.labels == [0, 1]
    assert [Path(v.path).name for v in data.images] == ["xyz_000002_000012.mp4", "abc_000001_000011.mp4"]
    assert len(decode_sampled_frames(data.images[0].path, 2)) == 2


def test_kinetics_as_the_cvdf_download_leaves_it(tmp_path):
    """annotations/val.csv + the flat val/ folder: matched by the file stem's first 11 characters, as
    arrange_by_classes.py does; the same classes, labels and videos as the class folders that script makes."""
    root = tmp_path / "data" / "kinetics400"
    rows = [("air drumming", "abcdefghijk", 1, 11), ("abseiling", "ABCDEFGHIJK", 5, 15), ("air drumming", "zyxwvutsrqp", 0, 10),
            ("(unusual) label_", "0123456789a", 2, 12)]
    (root / "annotations").mkdir(parents=True)
    with open(root / "annotations" / "val.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["label", "youtube_id", "time_start", "time_end", "split"])
        for label, youtube_id, start, end in rows:
            writer.writerow([label, youtube_id, start, end, "val"])
    for v, (_, youtube_id, start, end) in enumerate(rows[:3]):  # the last one's video is missing
        write_video(root / "val" / f"{youtube_id}_{start:06d}_{end:06d}.mp4", v, 4)
    with pytest.raises(VLBenchError, match="1 of the 4 videos of val.csv not found.*missing_videos: skip"):
        run(tmp_path, "kinetics400", "out")
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    shipped = Path(__file__).parents[1] / "tasks" / "video" / "kinetics400.yaml"
    (tasks / "k400_found.yaml").write_text(shipped.read_text().replace("task: kinetics400", "task: k400_found")
                                           .replace("include: _video_classification.yaml", f"include: {shipped.parent / '_video_classification.yaml'}")
                                           .replace("files:\n  templates: kinetics_templates.txt", f"files:\n  templates: {shipped.parent / 'kinetics_templates.txt'}")
                                           .replace("videos_dir: val}", "videos_dir: val, missing_videos: skip}"))
    settings = RunSettings(data_root=tmp_path / "data", output=tmp_path / "out2", num_workers=0, batch_size=16, bootstrap_replicates=0)
    _, outcomes = Runner(Catalog.load(extra_task_dirs=[tasks]), settings).run(TINY, ["k400_found"])
    assert outcomes[0].n == 3 and "1 record(s) left out: video file missing (missing_videos: skip), e.g. 0123456789a" in outcomes[0].note
    result = json.loads(outcomes[0].result_file.read_text())
    assert result["task"]["protocol_used"]["left_out"] == {"missing_videos": {"records": 1, "examples": ["0123456789a"]}}
    assert result["task"]["protocol_used"]["prompts"]["classnames"]  # names from the CSV's labels
    from vlbench.datasets.classification import VideoCsvReader, VideoCsvSource

    data = VideoCsvReader().read(str(root), VideoCsvSource(format="video_csv", annotation="annotations/val.csv", videos_dir="val",
                                                           missing_videos="skip"), None, None)
    assert data.classnames == ["unusual label", "abseiling", "air drumming"]  # sorted labels, cleaned as PE's clean_label
    assert data.labels == [2, 1, 2] and [Path(v.path).name[:11] for v in data.images] == ["abcdefghijk", "ABCDEFGHIJK", "zyxwvutsrqp"]
