"""The layer index's records (imgforge.cache.layerfile): what is encoded decodes to the
same records, names and all; a payload for another layer, of another format, or cut
anywhere inside a record is read as nothing."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from imgforge.cache import layerfile

U64, I64 = st.integers(0, 2**64 - 1), st.integers(-(2**63), 2**63 - 1)
KEY = st.binary(min_size=32, max_size=32)
RECORD = st.tuples(st.tuples(U64, U64, I64, I64), st.lists(KEY, max_size=4), st.none() | KEY)
# Layer walks name files by os.fsdecode of their bytes: any text, surrogate escapes too.
NAME = st.binary(min_size=1, max_size=40).map(lambda raw: raw.decode("utf-8", "surrogateescape"))


@given(layer=NAME, files=st.dictionaries(NAME, RECORD, max_size=8))
def test_round_trip(layer: str, files: dict[str, tuple]) -> None:  # type: ignore[type-arg]
    records = {name: layerfile.record(*found) for name, found in files.items()}
    decoded = layerfile.decode(layer, layerfile.encode(layer, records))
    assert decoded == records
    assert {name: layerfile.unpack(r) for name, r in decoded.items()} == files


@given(layer=NAME, files=st.dictionaries(NAME, RECORD, min_size=1, max_size=4), data=st.data())
def test_another_layer_or_a_cut_inside_a_record_is_nothing(
    layer: str,
    files: dict[str, tuple],
    data: st.DataObject,  # type: ignore[type-arg]
) -> None:
    records = {name: layerfile.record(*found) for name, found in files.items()}
    payload = layerfile.encode(layer, records)
    assert layerfile.decode(layer + "x", payload) == {}
    ends, at = set(), len(layerfile.encode(layer, {}))
    for name, found in records.items():
        at += len(layerfile.encode("", {name: found})) - len(layerfile.encode("", {}))
        ends.add(at)
    cut = data.draw(st.integers(0, len(payload) - 1).filter(lambda n: n not in ends))
    assert layerfile.decode(layer, payload[:cut]) == {}
