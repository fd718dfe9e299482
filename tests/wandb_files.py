"""What W&B 0.31 wrote into an offline run's `run-<id>.wandb` file, the file `wandb sync` uploads:
a 7-byte header, then leveldb-log chunks (crc32, length, type) in 32 KiB blocks, each record a
protobuf `Record`."""

import struct
from pathlib import Path


def wandb_records(path: Path) -> list:
    from wandb.proto import wandb_internal_pb2 as pb

    buf, pos, chunk, records = path.read_bytes(), 7, b"", []
    while pos + 7 <= len(buf):
        if (left := 32768 - pos % 32768) < 7:  # a block's tail too short for a header: padding
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", buf[pos : pos + 7])
        chunk += buf[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a full record, or the last chunk of one
            record = pb.Record()
            record.ParseFromString(chunk)
            records.append(record)
            chunk = b""
    return records


def exit_codes(path: Path) -> list[int]:
    """The exit codes the run was finished with (W&B shows 0 as finished, others as failed)."""
    return [r.exit.exit_code for r in wandb_records(path) if r.WhichOneof("record_type") == "exit"]
