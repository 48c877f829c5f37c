"""Cutting a file into line-aligned parts, and putting outputs back together in S3."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from serving.batch import parts as batch_parts
from serving.batch.parts import MIN_PIECE, Piece, Source

from tests.unit.conftest import BUCKET


@pytest.fixture
def s3(moto_s3):
    """Multipart uploads and part copies as an S3 server answers them: moto, not the batch tests' fake."""
    return moto_s3


def reader(data: bytes, calls: list | None = None):
    def read(first, last):
        if calls is not None:
            calls.append((first, last))
        return data[first:last + 1]
    return read


lines_strategy = st.lists(st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"")), max_size=40)


@settings(max_examples=300, deadline=None)
@given(lines=lines_strategy, start_line=st.integers(0, 3), part_bytes=st.integers(1, 120),
       trailing_newline=st.booleans())
def test_parts_cover_the_rows_once_and_split_no_line(lines, start_line, part_bytes, trailing_newline):
    data = b"\n".join(lines) + (b"\n" if trailing_newline and lines else b"")
    start = len(b"".join(line + b"\n" for line in lines[:start_line])) if start_line < len(lines) else len(data)
    start = min(start, len(data))
    ranges = batch_parts.cut(len(data), start, part_bytes, reader(data))
    if not ranges:
        assert start == len(data)
        return
    assert [a for a, _ in ranges] == [start, *[b for _, b in ranges[:-1]]]  # end to end, no gap or overlap
    assert ranges[-1][1] == len(data)
    assert b"".join(data[a:b] for a, b in ranges) == data[start:]
    for a, b in ranges:
        assert b > a
        assert b == len(data) or data[b - 1:b] == b"\n"  # a part ends after a line end: no line is split
        assert b - a >= part_bytes or b == len(data)


def test_a_cut_reads_only_around_the_cut_points():
    data = b"".join(b"%06d,1,2,3\n" % i for i in range(100_000))  # 1.2 MB
    calls = []
    ranges = batch_parts.cut(len(data), 0, 100_000, reader(data, calls))
    assert len(ranges) == len(calls) + 1 == 13  # one look per cut, the last part ends with the file
    assert all(last - first < batch_parts.LOOK_BYTES for first, last in calls)
    assert all(b - a >= 100_000 for a, b in ranges[:-1])


def test_a_line_longer_than_one_look_is_followed_to_its_end():
    data = b"a\n" + b"x" * (3 * batch_parts.LOOK_BYTES) + b"\nb\n"
    assert batch_parts.cut(len(data), 0, 1, reader(data)) == [(0, 2), (2, len(data) - 2), (len(data) - 2, len(data))]
    assert batch_parts.cut(len(data), 0, 3, reader(data)) == [(0, len(data) - 2), (len(data) - 2, len(data))]


def test_a_file_without_rows_has_no_parts_and_a_part_size_must_be_positive():
    assert batch_parts.cut(10, 10, 5, reader(b"x" * 10)) == []
    with pytest.raises(ValueError, match="part_bytes must be positive"):
        batch_parts.cut(10, 0, 0, reader(b"x" * 10))


def spans(piece: Piece):
    return [piece.copy] if piece.copy else list(piece.gather)


@settings(max_examples=300, deadline=None)
@given(sizes=st.lists(st.integers(0, 60), max_size=12), least=st.integers(1, 25))
def test_pieces_put_every_byte_in_order_and_all_but_the_last_are_big_enough(sizes, least):
    plan = batch_parts.pieces(sizes, least)
    flat = [(i, b) for piece in plan for i, first, last in spans(piece) for b in range(first, last + 1)]
    assert flat == [(i, b) for i, size in enumerate(sizes) for b in range(size)]
    assert all(piece.size >= least for piece in plan[:-1])
    assert all(piece.size >= least for piece in plan if piece.copy)
    assert all(piece.size > 0 for piece in plan)


def test_big_sources_are_copied_and_small_ones_gathered_with_the_start_of_the_next():
    plan = batch_parts.pieces([3, 20, 4, 4, 30], least=10)
    assert plan == [
        Piece(gather=((0, 0, 2), (1, 0, 6))),  # the small header topped up from source 1
        Piece(copy=(1, 7, 19)),  # the rest of source 1, server-side
        Piece(gather=((2, 0, 3), (3, 0, 3), (4, 0, 1))),
        Piece(copy=(4, 2, 29)),
    ]


def test_a_source_bigger_than_s3_allows_in_one_part_is_copied_in_ranges_leaving_no_small_tail():
    five_gib = batch_parts.MAX_PIECE
    plan = batch_parts.pieces([five_gib + 3], least=10)
    assert [p.copy for p in plan] == [(0, 0, five_gib + 3 - 10 - 1), (0, five_gib + 3 - 10, five_gib + 2)]


def test_the_least_part_grows_so_that_an_upload_stays_within_ten_thousand_parts():
    sizes = [MIN_PIECE] * 30_000
    plan = batch_parts.pieces(sizes)
    assert len(plan) <= batch_parts.MAX_PIECES
    # the least grows only as much as it must: the total over 9,999 parts, the last holding the rest
    assert plan[0].size == -(-sum(sizes) // (batch_parts.MAX_PIECES - 1)) > MIN_PIECE
    assert batch_parts.pieces([1, 2, 3]) == [Piece(gather=((0, 0, 0), (1, 0, 1), (2, 0, 2)))]


def test_assembled_outputs_equal_the_sources_end_to_end(s3):
    blobs = [b"h" * 10, b"a" * (6 << 20), b"b" * 100, b"c" * (12 << 20), b"d" * 7]
    sources = [Source(data=blobs[0])]
    for i, blob in enumerate(blobs[1:]):
        s3.put_object(Bucket=BUCKET, Key=f"work/{i}", Body=blob)
        sources.append(Source(key=f"work/{i}", size=len(blob)))
    numbers = []

    class Numbered:  # the client, noting the part numbers sent
        def __getattr__(self, name):
            return getattr(s3, name)

        def upload_part(self, **call):
            numbers.append(call["PartNumber"])
            return s3.upload_part(**call)

        def upload_part_copy(self, **call):
            numbers.append(call["PartNumber"])
            return s3.upload_part_copy(**call)

    size = batch_parts.assemble(Numbered(), BUCKET, "out/all.csv", sources)
    body = s3.get_object(Bucket=BUCKET, Key="out/all.csv")["Body"].read()
    assert body == b"".join(blobs) and size == len(body)
    # header + start of a, rest of a + b + start of c, the rest of c copied, d: four parts
    assert s3.head_object(Bucket=BUCKET, Key="out/all.csv")["ETag"].strip('"').endswith("-4")
    assert sorted(numbers) == [1, 2, 3, 4]  # S3 numbers parts 1 to 10,000


def test_one_piece_is_one_put_and_two_are_a_multipart_upload(s3):
    s3.put_object(Bucket=BUCKET, Key="work/a", Body=b"a" * (6 << 20))
    a = Source(key="work/a", size=6 << 20)
    for sources, parts in (([a], None), ([Source(data=b"h\n"), a], 2)):  # a copy alone; a gather, then the rest
        assert batch_parts.assemble(s3, BUCKET, "out/x.csv", sources) == sum(x.size for x in sources)
        body = s3.get_object(Bucket=BUCKET, Key="out/x.csv")["Body"].read()
        assert body == (b"h\n" if parts else b"") + b"a" * (6 << 20)
        etag = s3.head_object(Bucket=BUCKET, Key="out/x.csv")["ETag"].strip('"')
        assert ("-" not in etag) if parts is None else etag.endswith(f"-{parts}")


def test_inline_bytes_are_cut_as_a_range_of_an_object_is():
    assert batch_parts._fetch(None, BUCKET, [Source(data=b"abcdef")], (0, 1, 3)) == b"bcd"


def test_small_outputs_are_one_put(s3):
    s3.put_object(Bucket=BUCKET, Key="work/0", Body=b"1,2\n")
    assert batch_parts.assemble(s3, BUCKET, "out/e.csv", [Source(data=b"a,b\n"), Source(key="work/0", size=4)]) == 8
    assert s3.get_object(Bucket=BUCKET, Key="out/e.csv")["Body"].read() == b"a,b\n1,2\n"
    assert "-" not in s3.head_object(Bucket=BUCKET, Key="out/e.csv")["ETag"]  # not a multipart upload


def test_a_failed_assembly_leaves_nothing_under_the_final_key(s3):
    s3.put_object(Bucket=BUCKET, Key="work/0", Body=b"a" * (6 << 20))
    sources = [Source(data=b"h\n"), Source(key="work/0", size=6 << 20), Source(key="work/missing", size=6 << 20)]
    with pytest.raises(s3.exceptions.ClientError):
        batch_parts.assemble(s3, BUCKET, "out/p.csv", sources)
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix="out/")
    assert s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []


@pytest.mark.parametrize("part_bytes", [10, 11, 100])
def test_a_part_that_reaches_the_files_end_reads_nothing(part_bytes):
    data, calls = b"a\nb\nc\nd\ne\n", []
    assert batch_parts.cut(len(data), 0, part_bytes, reader(data, calls)) == [(0, 10)] and calls == []
    with pytest.raises(ValueError, match="^part_bytes must be positive$"):
        batch_parts.cut(len(data), 0, 0, reader(data))
