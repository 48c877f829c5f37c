"""How a big input file is cut into parts for parallel workers, and their outputs put back together.

Cutting: a part is a byte range that starts at the beginning of a line and ends just
after a line end (or at the end of the file), so no row is split between two parts and
none is read twice. Rows are one line each (``serving.batch`` reads a file line by line),
so a line end is always a row boundary.

Assembling: the outputs of the parts are put end to end in S3 by a multipart upload
whose parts are copied server-side (UploadPartCopy), so the assembler does not download
them. S3 wants every part of an upload but the last to be at least 5 MiB; outputs
smaller than that (an errors file, the header, a small part) are fetched and sent in
pieces of at least that size, taking a ranged copy of whatever follows them.
Nothing appears under the final key until the upload completes: a failure aborts it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from serving.batch import s3file

MIN_PIECE = 5 << 20  # S3's least size of a multipart upload's part (all but the last)
MAX_PIECE = 5 << 30  # and its greatest
MAX_PIECES = 10_000  # and how many parts one upload may have
LOOK_BYTES = 1 << 16  # how far past a cut the line end is looked for, per read


def cut(size: int, start: int, part_bytes: int, read: Callable[[int, int], bytes]) -> list[tuple[int, int]]:
    """Byte ranges [start, end) of about ``part_bytes`` covering [start, size), each ending after a line end.

    ``read(first, last)`` returns the bytes first..last (inclusive) of the file, as an S3
    ranged GET does: only a few kilobytes around each cut are read.
    """
    if part_bytes <= 0:
        raise ValueError("part_bytes must be positive")
    ranges = []
    begin = start
    while begin < size:
        end = _line_end_after(begin + part_bytes - 1, size, read) if begin + part_bytes < size else size
        ranges.append((begin, end))
        begin = end
    return ranges


def _line_end_after(position: int, size: int, read: Callable[[int, int], bytes]) -> int:
    """The offset just after the first line end at or after ``position`` (or the file's size)."""
    while position < size:
        chunk = read(position, min(position + LOOK_BYTES, size) - 1)
        found = chunk.find(b"\n")
        if found >= 0:
            return position + found + 1
        position += len(chunk)
    return size


@dataclass(frozen=True)
class Source:
    """Bytes to put in the output: an S3 object (or a range of one), or a few bytes given inline."""

    key: str = ""
    size: int = 0
    data: bytes | None = None

    def __post_init__(self):
        if self.data is not None:
            object.__setattr__(self, "size", len(self.data))


@dataclass(frozen=True)
class Piece:
    """One part of the upload: a server-side copy of a range of one source, or bytes gathered from several."""

    copy: tuple[int, int, int] | None = None  # (source index, first byte, last byte)
    gather: tuple[tuple[int, int, int], ...] = ()

    @property
    def size(self) -> int:
        spans = [self.copy] if self.copy else self.gather
        return sum(last - first + 1 for _, first, last in spans)


def pieces(sizes: Sequence[int], least: int | None = None) -> list[Piece]:
    """How sources of these sizes become upload parts: each at least ``least`` bytes but the last.

    A source is copied server-side when what is left of it is big enough; what is too small
    is gathered, topped up with the start of the next source, until it is. ``least`` grows
    with the total so that the upload stays within S3's 10,000 parts.
    """
    total = sum(sizes)
    least = least or max(MIN_PIECE, math.ceil(total / (MAX_PIECES - 1)))
    out: list[Piece] = []
    gathered: list[tuple[int, int, int]] = []
    held = 0
    for index, size in enumerate(sizes):
        position = 0
        while position < size:
            if not gathered and size - position >= least:
                end = min(size, position + MAX_PIECE)
                if size - end and size - end < least:  # never leave a tail too small to copy
                    end = size - least
                out.append(Piece(copy=(index, position, end - 1)))
                position = end
                continue
            take = min(size - position, least - held)
            gathered.append((index, position, position + take - 1))
            held += take
            position += take
            if held >= least:
                out.append(Piece(gather=tuple(gathered)))
                gathered, held = [], 0
    if gathered:
        out.append(Piece(gather=tuple(gathered)))
    return out


def assemble(s3, bucket: str, key: str, sources: Sequence[Source], threads: int = 16) -> int:
    """Puts the sources end to end as s3://bucket/key; returns its size. All or nothing."""
    plan = pieces([source.size for source in sources])
    if len(plan) <= 1:  # small: one PUT
        body = b"".join(_fetch(s3, bucket, sources, span) for piece in plan for span in _spans(piece))
        s3.put_object(Bucket=bucket, Key=key, Body=body)
        return len(body)
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    try:
        def send(numbered: tuple[int, Piece]) -> dict:
            number, piece = numbered
            if piece.copy:
                index, first, last = piece.copy
                answer = s3.upload_part_copy(
                    Bucket=bucket, Key=key, UploadId=upload, PartNumber=number,
                    CopySource={"Bucket": bucket, "Key": sources[index].key},
                    CopySourceRange=f"bytes={first}-{last}")
                return {"PartNumber": number, "ETag": answer["CopyPartResult"]["ETag"]}
            body = b"".join(_fetch(s3, bucket, sources, span) for span in piece.gather)
            answer = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=number, Body=body)
            return {"PartNumber": number, "ETag": answer["ETag"]}

        with ThreadPoolExecutor(threads) as pool:
            parts = list(pool.map(send, enumerate(plan, start=1)))
        s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload,
                                     MultipartUpload={"Parts": parts})
    except BaseException:
        s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload)
        raise
    return sum(piece.size for piece in plan)


def _spans(piece: Piece) -> tuple[tuple[int, int, int], ...]:
    return (piece.copy,) if piece.copy else piece.gather


def _fetch(s3, bucket: str, sources: Sequence[Source], span: tuple[int, int, int]) -> bytes:
    index, first, last = span
    source = sources[index]
    if source.data is not None:
        return source.data[first:last + 1]
    return s3file.read_object(s3, bucket, source.key, first, last)
