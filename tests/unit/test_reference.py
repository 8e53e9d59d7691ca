"""The reference grammar against distribution/reference's own test tables, plus
properties: whatever is accepted round-trips and can't name another API path."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imgforge import reference
from imgforge.reference import ReferenceError, parse, parse_normalized_named

TABLES = json.loads(
    (Path(__file__).parents[1] / "data" / "reference" / "distribution.json").read_text()
)
ERRORS = {
    "ErrNameEmpty": reference.NAME_EMPTY,
    "ErrReferenceInvalidFormat": reference.INVALID_FORMAT,
    "ErrNameContainsUppercase": reference.NAME_UPPERCASE,
    "ErrNameTooLong": reference.NAME_TOO_LONG,
    "digest.ErrDigestInvalidLength": reference.DIGEST_INVALID_LENGTH,
    "digest.ErrDigestUnsupported": reference.DIGEST_UNSUPPORTED,
}
# Upstream's test binary links only crypto/sha256; dockerd links crypto/sha512 (TLS), so
# for the engine a sha512 digest is valid. The one row that differs for that reason:
SHA512_ROW = "validname@sha512:" + "f" * 128


def _id(case: object) -> str:
    text = case["input"] if isinstance(case, dict) else str(case)
    return text[:60] or "<empty>"


@pytest.mark.parametrize("case", TABLES["TestReferenceParse"], ids=_id)
def test_reference_parse(case: dict[str, object]) -> None:
    text = str(case["input"])
    if "err" in case and text != SHA512_ROW:
        with pytest.raises(ReferenceError) as caught:
            parse(text)
        assert str(caught.value) == ERRORS[case["err"]["error"]]  # type: ignore[index]
        return
    parsed = parse(text)
    assert str(parsed) == text
    if text == SHA512_ROW:
        assert parsed.digest == "sha512:" + "f" * 128
        return
    assert parsed.name == case.get("repository", "")
    assert parsed.domain == case.get("domain", "")
    assert parsed.tag == case.get("tag", "")
    assert parsed.digest == case.get("digest", "")


@pytest.mark.parametrize("case", TABLES["TestDomainRegexp"], ids=_id)
def test_domain_regexp(case: dict[str, object]) -> None:
    pattern = re.compile(reference.DOMAIN_AND_PORT, re.ASCII)
    assert bool(pattern.fullmatch(str(case["input"]))) is case["match"]


def _check_regexp(pattern: re.Pattern[str], case: dict[str, object]) -> None:
    """regexp_test.go ``checkRegexp``: match or not, and the submatches."""
    found = pattern.fullmatch(str(case["input"]))
    assert bool(found) is case["match"]
    if found:
        groups = [g or "" for g in found.groups()]
        assert groups[: len(case.get("subs", []))] == case.get("subs", [])  # type: ignore[arg-type]


@pytest.mark.parametrize("case", TABLES["TestFullNameRegexp"], ids=_id)
def test_full_name_regexp(case: dict[str, object]) -> None:
    _check_regexp(reference._ANCHORED_NAME, case)


@pytest.mark.parametrize("case", TABLES["TestReferenceRegexp"], ids=_id)
def test_reference_regexp(case: dict[str, object]) -> None:
    _check_regexp(reference._REFERENCE, case)


@pytest.mark.parametrize("case", TABLES["TestIdentifierRegexp"], ids=_id)
def test_identifier_regexp(case: dict[str, object]) -> None:
    assert reference.is_identifier(str(case["input"])) is case["match"]


VALID_NAMES = TABLES["TestValidateReferenceName.valid"] + TABLES["TestValidateRemoteName.valid"]
INVALID_NAMES = (
    TABLES["TestValidateReferenceName.invalid"] + TABLES["TestValidateRemoteName.invalid"]
)


@pytest.mark.parametrize("name", VALID_NAMES, ids=_id)
def test_valid_normalized_names(name: str) -> None:
    assert reference.why_not_reference(name) is None


@pytest.mark.parametrize("name", INVALID_NAMES, ids=_id)
def test_invalid_normalized_names(name: str) -> None:
    assert reference.why_not_reference(name) is not None


def test_normalized_names_are_qualified() -> None:
    assert str(parse_normalized_named("ubuntu:22.04")) == "docker.io/library/ubuntu:22.04"
    assert str(parse_normalized_named("index.docker.io/a/b")) == "docker.io/a/b"
    assert parse_normalized_named("localhost/x").domain == "localhost"


@pytest.mark.parametrize(
    ("registry", "ok"),
    [
        ("localhost:5000", True),
        ("registry.example.org/team", True),
        ("[::1]:5000", True),
        ("127.0.0.1:5000/a/b", True),
        ("myregistry", False),  # Docker would push to docker.io/myregistry/NAME
        ("localhost:5000/", False),
        ("localhost:5000/../x", False),
        ("Registry.example.org/Team", False),
        ("", False),
    ],
)
def test_registries(registry: str, ok: bool) -> None:
    assert (reference.why_not_registry(registry) is None) is ok


# Any text at all: accepted references survive a round trip, and have no segment an
# HTTP router would clean (".", "..", empty) and no character a URL treats specially.
@given(st.text(alphabet=st.sampled_from("aZ09._-/:@[]%?#\\ \n"), max_size=40) | st.text())
def test_accepted_references_round_trip(text: str) -> None:
    try:
        parsed = parse(text)
    except ReferenceError:
        return
    assert str(parsed) == text
    assert parse(str(parsed)) == parsed
    assert all(segment not in {"", ".", ".."} for segment in text.split("/"))
    assert not set(text) & set("%?#\\ \n\t")


names = st.from_regex(re.compile(reference.PATH_COMPONENT, re.ASCII), fullmatch=True)
tags = st.from_regex(re.compile(reference.TAG, re.ASCII), fullmatch=True)


@given(
    st.lists(names, min_size=1, max_size=4),
    st.one_of(st.none(), tags),
    st.sampled_from(["", "localhost:5000/", "registry.example.org/", "[::1]/"]),
)
def test_generated_references_parse(parts: list[str], tag: str | None, domain: str) -> None:
    text = domain + "/".join(parts) + (f":{tag}" if tag else "")
    path = "/".join(parts)
    if len(path) > reference.NAME_TOTAL_LENGTH_MAX:
        return
    parsed = parse(text)
    assert parsed.tag == (tag or "")
    assert parsed.name.endswith(path)
    assert str(parsed) == text


def test_hostile_length_is_fast() -> None:
    """Python's backtracking must not make a long near-miss slow (RE2 is linear)."""
    for text in ["a" * 50_000 + "!", "a-" * 20_000 + "/", "a." * 20_000 + ":", "[" + ":" * 20_000]:
        with pytest.raises(ReferenceError):
            parse(text)
