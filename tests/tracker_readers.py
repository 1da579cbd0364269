"""Read back what experiment trackers wrote, with the libraries' own readers where they have one.

TensorBoard: its ``EventAccumulator``. W&B keeps an offline run in ``run-<id>.wandb``: a log of
length-prefixed protobuf records (the LevelDB log layout: 32 KiB blocks, each record a 7-byte header
of crc32, length and type, the records' payloads ``wandb_internal_pb2.Record``), decoded here with W&B's
own protobuf classes.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path


def tensorboard_scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir))
    events.Reload()
    return {tag: [(s.step, s.value) for s in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def tensorboard_texts(log_dir: Path) -> dict[str, str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir), size_guidance={"tensors": 0})
    events.Reload()
    return {tag.removesuffix("/text_summary"): events.Tensors(tag)[0].tensor_proto.string_val[0].decode() for tag in events.Tags()["tensors"]}


def wandb_records(run_file: Path) -> list:
    from wandb.proto import wandb_internal_pb2

    data, block, position, payload, records = run_file.read_bytes(), 32768, 7, b"", []
    assert data[:4] == b":W&B", f"{run_file} is not a W&B run file"
    while position + 7 <= len(data):
        if block - position % block < 7:  # a block's tail too short for a header is padding
            position += block - position % block
            continue
        _, length, kind = struct.unpack("<IHB", data[position:position + 7])
        if length == 0 and kind == 0:
            break
        payload += data[position + 7:position + 7 + length]
        position += 7 + length
        if kind in (1, 4):  # a full record, or the last piece of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(payload)
            records.append(record)
            payload = b""
    return records


def wandb_offline_run(folder: Path, wait_s: float = 15.0) -> tuple[dict, list[dict]]:
    """(config, history rows) of the one offline W&B run under ``folder``. W&B's service process writes the file on
    its own time (on a busy machine its run record may land after ``finish()`` returns), so the file is read again
    until it holds the run record, for up to ``wait_s`` seconds."""
    import time

    [run_file] = folder.glob("wandb/offline-run-*/run-*.wandb")
    deadline = time.monotonic() + wait_s
    records = wandb_records(run_file)
    while not any(r.WhichOneof("record_type") == "run" for r in records) and time.monotonic() < deadline:
        time.sleep(0.25)
        records = wandb_records(run_file)
    config, history = {}, []
    for record in records:
        kind = record.WhichOneof("record_type")
        if kind == "run":
            config = {item.key: json.loads(item.value_json) for item in record.run.config.update}
            config["_name"] = record.run.display_name
            config["_project"] = record.run.project
        elif kind == "config":
            config.update({item.key: json.loads(item.value_json) for item in record.config.update})
        elif kind == "history":
            history.append({"/".join(item.nested_key) or item.key: json.loads(item.value_json) for item in record.history.item})
    return config, history
