"""One OCI registry through the ORAS SDK: blobs (a file's streamed from disk, never held in
memory), manifests by digest or tag, and every failure as one sentence."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

from imgforge.credentials import Credentials
from imgforge.errors import BuildError
from imgforge.log import Log
from imgforge.registry.errors import failure, http_failure, oras_refusal
from imgforge.registry.oci import INDEXES, MANIFESTS, digest_of

if TYPE_CHECKING:
    import requests

ACCEPT = ", ".join((*MANIFESTS, *INDEXES))
OCTET_STREAM = "application/octet-stream"
# requests reads REQUESTS_CA_BUNDLE and CURL_CA_BUNDLE itself; SSL_CERT_FILE is what
# OpenSSL, Go (so Docker's CLI and Apptainer) and curl read.
CA_BUNDLE_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE")
ORAS_LOGGER = "oras.logger"
# A registry that does not answer its API's root in this time is taken as unreachable.
PROBE_SECONDS = 60


@dataclass(frozen=True)
class Fetched:
    """A manifest as the registry holds it: its media type and exact bytes."""

    media_type: str
    body: bytes


def ca_bundle() -> bool | str:
    """The CA bundle to verify registries with: the first variable set, else requests'."""
    return next((os.environ[v] for v in CA_BUNDLE_VARIABLES if os.environ.get(v)), True)


@contextlib.contextmanager
def connect(
    host: str, credentials: Credentials | None, *, insecure: bool, log: Log
) -> Iterator[Remote]:
    """The registry at ``host`` (HOST[:PORT]), over plain HTTP if ``insecure`` (the
    caller allows that on loopback only). What the SDK logs goes to ``log``."""
    from oras.provider import Registry

    handler = _LogHandler(log)
    logger = logging.getLogger(ORAS_LOGGER)
    logger.addHandler(handler)
    verify = ca_bundle()
    registry = Registry(hostname=host, insecure=insecure, tls_verify=verify)
    try:
        remote = Remote(registry, host, f"{'http' if insecure else 'https'}://{host}", verify)
        remote.authenticate(credentials)
        yield remote
    finally:
        registry.session.close()
        logger.removeHandler(handler)


class Remote:
    """Requests to one registry, authenticated by the SDK (a bearer token from the
    registry's token service, or HTTP basic authentication where it asks for that)."""

    def __init__(self, registry: Any, host: str, base: str, verify: bool | str) -> None:
        self.registry = registry
        self.host = host
        self.base = base
        self.verify = verify

    def authenticate(self, credentials: Credentials | None) -> None:
        """Ask the registry how it authenticates (``GET /v2/``) and set the SDK up for it."""
        import oras.auth

        with self.translated():
            response = self.registry.session.get(
                f"{self.base}/v2/", verify=self.verify, timeout=PROBE_SECONDS
            )
        challenge = response.headers.get("WWW-Authenticate", "")
        if challenge.lower().startswith("basic"):
            if credentials is None:
                raise BuildError(
                    f"{self.host} asks for a user name and password: set "
                    "IMGFORGE_REGISTRY_USER and IMGFORGE_REGISTRY_PASSWORD, or docker login"
                )
            insecure = self.base.startswith("http:")
            self.registry.auth = oras.auth.get_auth_backend(
                "basic", self.registry.session, insecure, tls_verify=self.verify
            )
        if credentials is not None:
            self.registry.auth.set_basic_auth(credentials.username, credentials.password)

    @contextlib.contextmanager
    def translated(self) -> Iterator[None]:
        """requests' exceptions as one sentence naming the registry."""
        import requests

        try:
            yield
        except requests.RequestException as exc:
            raise failure(self.host, exc) from None

    def request(
        self,
        method: str,
        url: str,
        *,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> requests.Response:
        """One request through the SDK, which answers the registry's challenge. Its
        retrying wrapper is bypassed: it retries any failure, refused credentials too,
        five times over two minutes, where a build should stop at once (a rerun publishes
        what is missing)."""
        method_of = type(self.registry).do_request
        do_request = getattr(method_of, "__wrapped__", method_of)
        sent = {**self.registry.auth.get_auth_header(), **(headers or {})}
        try:
            with self.translated():
                response: requests.Response = do_request(
                    self.registry, url, method, data=data, headers=sent
                )
        except ValueError:  # the SDK's "Cannot respond to request for authentication."
            raise oras_refusal(self.host) from None
        return response

    def check(self, response: requests.Response, what: str, *codes: int) -> None:
        if response.status_code not in (codes or (200, 201, 202)):
            raise http_failure(self.host, what, response)

    def url(self, repository: str, kind: str, reference: str = "") -> str:
        return f"{self.base}/v2/{repository}/{kind}/{reference}"

    def has_blob(self, repository: str, digest: str) -> bool:
        response = self.request("HEAD", self.url(repository, "blobs", digest))
        if response.status_code == 404:
            return False
        self.check(response, f"the check for blob {digest}", 200)
        return True

    def start_upload(self, repository: str, digest: str) -> str:
        """Open an upload session; returns where to PUT the blob of ``digest``."""
        response = self.request("POST", self.url(repository, "blobs", "uploads/"))
        self.check(response, f"the upload of {digest}", 202)
        location = urljoin(self.base + "/", response.headers.get("Location", ""))
        parts = urlsplit(location)
        query = urlencode([*parse_qsl(parts.query), ("digest", digest)])
        return urlunsplit(parts._replace(query=query))

    def put_blob(self, repository: str, data: bytes) -> str:
        digest = digest_of(data)
        target = self.start_upload(repository, digest)
        response = self.request("PUT", target, data=data, headers={"Content-Type": OCTET_STREAM})
        self.check(response, f"the upload of {digest}", 201)
        return digest

    def put_blob_file(self, repository: str, path: Path, digest: str) -> None:
        """Upload the file at ``path`` in one streamed PUT (requests sends a file object
        in blocks), with the token the upload session was opened with."""
        target = self.start_upload(repository, digest)
        headers = {"Content-Type": OCTET_STREAM, **self.registry.auth.get_auth_header()}
        with path.open("rb") as body, self.translated():
            response = self.registry.session.put(
                target, data=body, headers=headers, verify=self.verify
            )
        self.check(response, f"the upload of {path.name}", 201)

    def put_manifest(self, repository: str, reference: str, media_type: str, body: bytes) -> str:
        """PUT a manifest or index at a tag or digest; returns its digest."""
        digest = digest_of(body)
        target = self.url(repository, "manifests", reference)
        response = self.request("PUT", target, data=body, headers={"Content-Type": media_type})
        self.check(response, f"the manifest {digest}", 201)
        stored = response.headers.get("Docker-Content-Digest")
        if stored and stored != digest:
            raise BuildError(f"{self.host} stored the manifest {digest} as {stored}")
        return digest

    def get_manifest(self, repository: str, digest: str) -> Fetched:
        """The manifest of ``digest``, checked against it."""
        target = self.url(repository, "manifests", digest)
        response = self.request("GET", target, headers={"Accept": ACCEPT})
        self.check(response, f"the manifest {digest}", 200)
        if digest_of(response.content) != digest:
            raise BuildError(f"{self.host} answered for the manifest {digest} with other bytes")
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        return Fetched(media_type, response.content)


class _LogHandler(logging.Handler):
    """The SDK's log records as lines of the build's log."""

    def __init__(self, log: Log) -> None:
        super().__init__(logging.WARNING)
        self.log = log

    def emit(self, record: logging.LogRecord) -> None:
        self.log(f"oras: {record.getMessage()}")
