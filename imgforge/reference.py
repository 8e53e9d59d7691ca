"""Docker image references: distribution/reference's grammar and parser, ported.

Ported from github.com/distribution/reference (regexp.go, reference.go ``Parse``,
normalize.go ``ParseNormalizedNamed`` / ``splitDockerDomain``) and the digest rules of
github.com/opencontainers/go-digest (digest.go ``Validate``, algorithm.go); checked
against their own test tables in tests/data/reference/. Go's RE2 ``\\w`` is ASCII and
``$`` is the end of text: here every pattern is compiled ASCII and used with fullmatch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ALPHANUMERIC = r"[a-z0-9]+"
SEPARATOR = r"(?:[._]|__|[-]+)"
DOMAIN_NAME_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
OPTIONAL_PORT = r"(?::[0-9]+)?"
TAG = r"[\w][\w.-]{0,127}"
DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9A-Fa-f]{32,}"
IDENTIFIER = r"([a-f0-9]{64})"
IPV6_ADDRESS = r"\[(?:[a-fA-F0-9:]+)\]"
DOMAIN_NAME = DOMAIN_NAME_COMPONENT + r"(?:\." + DOMAIN_NAME_COMPONENT + r")*"
HOST = r"(?:" + DOMAIN_NAME + "|" + IPV6_ADDRESS + ")"
DOMAIN_AND_PORT = HOST + OPTIONAL_PORT
PATH_COMPONENT = ALPHANUMERIC + r"(?:" + SEPARATOR + ALPHANUMERIC + r")*"
REMOTE_NAME = PATH_COMPONENT + r"(?:/" + PATH_COMPONENT + r")*"
NAME = r"(?:" + DOMAIN_AND_PORT + r"/)?" + REMOTE_NAME
REFERENCE = r"(" + NAME + r")(?::(" + TAG + r"))?(?:@(" + DIGEST + r"))?"

_REFERENCE = re.compile(REFERENCE, re.ASCII)
_ANCHORED_NAME = re.compile(r"(?:(" + DOMAIN_AND_PORT + r")/)?(" + REMOTE_NAME + r")", re.ASCII)
_IDENTIFIER = re.compile(IDENTIFIER, re.ASCII)
# What the engine looks up by image ID before (or after) by name: ALGORITHM:HEX, and a
# bare run of hex digits, which it matches as an ID prefix when no such tag exists (moby
# daemon/images GetImage: ParseAnyReference, then the image store's Search).
_ID_LIKE = re.compile(r"(?:sha256|sha384|sha512):[a-f0-9]+|[a-f0-9]+", re.ASCII)
# The digest algorithms the Docker engine has registered (go-digest registers sha256 and
# sha512; dockerd also links crypto/sha512's SHA-384, so v1.0.0's sha384 is available):
# name -> length of the lower-case hex encoding.
ALGORITHMS = {"sha256": 64, "sha384": 96, "sha512": 128}
_DIGEST_ANY = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+", re.ASCII)

NAME_TOTAL_LENGTH_MAX = 255
DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"

# The errors of reference.go and go-digest, worded as they are upstream.
NAME_EMPTY = "repository name must have at least one component"
INVALID_FORMAT = "invalid reference format"
NAME_UPPERCASE = "repository name must be lowercase"
NAME_TOO_LONG = f"repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters"
DIGEST_INVALID_FORMAT = "invalid checksum digest format"
DIGEST_INVALID_LENGTH = "invalid checksum digest length"
DIGEST_UNSUPPORTED = "unsupported digest algorithm"


class ReferenceError(ValueError):
    """``s`` is not a reference; ``str()`` is upstream's reason."""


@dataclass(frozen=True)
class Reference:
    """A parsed reference: ``[domain/]path[:tag][@digest]``."""

    domain: str
    path: str
    tag: str = ""
    digest: str = ""

    @property
    def name(self) -> str:
        return f"{self.domain}/{self.path}" if self.domain else self.path

    def __str__(self) -> str:
        tag = f":{self.tag}" if self.tag else ""
        digest = f"@{self.digest}" if self.digest else ""
        return f"{self.name}{tag}{digest}"


def validate_digest(digest: str) -> None:
    """go-digest's ``Digest.Validate`` for the engine's registered algorithms."""
    algorithm, sep, encoded = digest.partition(":")
    if not sep or not encoded:
        raise ReferenceError(DIGEST_INVALID_FORMAT)
    if algorithm not in ALGORITHMS:
        if not _DIGEST_ANY.fullmatch(digest):
            raise ReferenceError(DIGEST_INVALID_FORMAT)
        raise ReferenceError(DIGEST_UNSUPPORTED)
    if len(encoded) != ALGORITHMS[algorithm]:
        raise ReferenceError(DIGEST_INVALID_LENGTH)
    if not re.fullmatch(r"[a-f0-9]+", encoded, re.ASCII):
        raise ReferenceError(DIGEST_INVALID_FORMAT)


def parse(s: str) -> Reference:
    """reference.go ``Parse``: a syntactically valid reference, or ReferenceError."""
    if s == "":
        raise ReferenceError(NAME_EMPTY)
    match = _REFERENCE.fullmatch(s)
    if match is None:
        if s.lower() != s and _REFERENCE.fullmatch(s.lower()):
            raise ReferenceError(NAME_UPPERCASE)
        raise ReferenceError(INVALID_FORMAT)
    name, tag, digest = match.group(1), match.group(2) or "", match.group(3) or ""
    named = _ANCHORED_NAME.fullmatch(name)
    domain, path = (named.group(1) or "", named.group(2)) if named else ("", name)
    if len(path) > NAME_TOTAL_LENGTH_MAX:
        raise ReferenceError(NAME_TOO_LONG)
    if digest:
        validate_digest(digest)
    return Reference(domain, path, tag, digest)


def split_docker_domain(name: str) -> tuple[str, str]:
    """normalize.go ``splitDockerDomain``: Docker Hub unless the first part is a host."""
    maybe_domain, sep, maybe_remote = name.partition("/")
    if not sep:
        return DEFAULT_DOMAIN, OFFICIAL_REPO_PREFIX + name
    if maybe_domain == "localhost":
        domain, remote = maybe_domain, maybe_remote
    elif maybe_domain == LEGACY_DEFAULT_DOMAIN:
        domain, remote = DEFAULT_DOMAIN, maybe_remote
    elif any(c in maybe_domain for c in ".:") or maybe_domain.lower() != maybe_domain:
        domain, remote = maybe_domain, maybe_remote
    else:
        domain, remote = DEFAULT_DOMAIN, name
    if domain == DEFAULT_DOMAIN and "/" not in remote:
        remote = OFFICIAL_REPO_PREFIX + remote
    return domain, remote


def parse_normalized_named(s: str) -> Reference:
    """normalize.go ``ParseNormalizedNamed``: how the engine reads a name it is given
    (``ubuntu`` is ``docker.io/library/ubuntu``); the result is fully qualified."""
    if _IDENTIFIER.fullmatch(s):
        raise ReferenceError(
            f"invalid repository name ({s}), cannot specify 64-byte hexadecimal strings"
        )
    domain, remainder = split_docker_domain(s)
    remote = remainder.split(":", 1)[0]
    if remote.lower() != remote:
        raise ReferenceError(f"{INVALID_FORMAT}: repository name ({remote}) must be lowercase")
    return parse(f"{domain}/{remainder}")


def is_identifier(s: str) -> bool:
    """A full image ID without its algorithm (64 lower-case hex digits)."""
    return _IDENTIFIER.fullmatch(s) is not None


def why_not_reference(s: str) -> str | None:
    """Why the engine would refuse ``s`` as an image reference, or take it for the ID of
    a local image, or None."""
    if _ID_LIKE.fullmatch(s):
        return "the engine reads it as the ID of a local image, not a name (add a tag)"
    try:
        parse_normalized_named(s)
    except ReferenceError as exc:
        return str(exc)
    return None


def why_not_registry(s: str) -> str | None:
    """Why ``s`` can't prefix ``REGISTRY/NAME:TAG`` naming that registry (a host the
    engine reads as one, optionally with a port and a path), or None."""
    host = s.split("/", 1)[0]
    if "/" in s and not s.split("/", 1)[1]:
        return "ends in '/'"
    if why := why_not_reference(f"{s}/x"):
        return why
    if split_docker_domain(f"{s}/x")[0] != host and host != LEGACY_DEFAULT_DOMAIN:
        return f"{host!r} names no registry host (no '.', ':' or 'localhost'): Docker Hub"
    return None


# For editors (JSON Schema, ECMA-262 regex): the grammar without the length and digest
# algorithm checks, which only the loader makes.
JSON_PATTERN = "^" + REFERENCE.replace(r"\w", "A-Za-z0-9_") + "$"
