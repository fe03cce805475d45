import numpy as np
import pytest

from storage.maskcodec import (
    MaskCodecError,
    check_consistent,
    decode_png,
    decode_segments,
    encode_png,
    encode_segments,
    segments_from_ids,
)


def test_roundtrip_16bit_ids():
    ids = np.zeros((20, 30), np.int32)
    ids[:10] = 1
    ids[10:, :5] = 300  # beyond 8 bits
    ids[10:, 5:] = 2
    segs = segments_from_ids(ids, categories={1: "sky"}, isthing={1: False})
    back = decode_png(encode_png(ids))
    assert np.array_equal(back, ids)
    assert decode_segments(encode_segments(segs)) == segs
    check_consistent(back, segs)
    assert segs[0]["bbox"] == [0, 0, 30, 10] and segs[0]["area"] == 300 and segs[0]["category"] == "sky"


def test_bad_inputs():
    with pytest.raises(MaskCodecError):
        decode_png(b"garbage")
    with pytest.raises(MaskCodecError):
        decode_segments(b"\xff\xfe")
    with pytest.raises(MaskCodecError, match="lacks"):
        encode_segments([{"id": 1}])
    ids = np.ones((4, 4), np.int32)
    with pytest.raises(MaskCodecError, match="area"):
        check_consistent(ids, [{"id": 1, "area": 3}])
