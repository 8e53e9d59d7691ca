"""A registry's refusals and the network's failures as one sentence naming the registry."""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING

from imgforge.errors import BuildError

if TYPE_CHECKING:
    import requests

CREDENTIALS_HINT = (
    "credentials come from IMGFORGE_REGISTRY_USER and IMGFORGE_REGISTRY_PASSWORD, "
    "NGC_API_KEY for nvcr.io, or docker login"
)


def failure(host: str, exc: Exception) -> BuildError:
    """A request that got no answer: the innermost reason (connection refused, name not
    known, certificate not trusted) rather than urllib3's retry wrapping."""
    import requests

    reason = root_reason(exc)
    if isinstance(exc, requests.exceptions.SSLError) and "WRONG_VERSION_NUMBER" in reason:
        return BuildError(
            f"{host} does not speak HTTPS (it seems to answer in plain HTTP, which imgforge "
            "speaks only to a registry on this machine's loopback)"
        )
    if isinstance(exc, requests.exceptions.SSLError):
        return BuildError(
            f"TLS with {host} failed ({reason}); a registry off this machine must speak "
            "HTTPS with a certificate this machine trusts (REQUESTS_CA_BUNDLE or "
            "SSL_CERT_FILE may name a CA bundle)"
        )
    if isinstance(exc, requests.exceptions.ConnectionError):
        return BuildError(f"cannot reach {host} ({reason})")
    return BuildError(f"the request to {host} failed ({reason})")


def root_reason(exc: BaseException) -> str:
    """The deepest cause in ``exc``'s chain that words the failure itself."""
    seen: set[int] = set()
    found: BaseException | None = None
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return current.verify_message or str(current)
        if isinstance(current, OSError) and current.strerror:
            found = current
        nested = [a for a in current.args if isinstance(a, BaseException)]
        reason = getattr(current, "reason", None)
        pending.extend([current.__cause__, current.__context__, *nested])
        if isinstance(reason, BaseException):
            pending.append(reason)
    if isinstance(found, OSError):
        return str(found.strerror)
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def http_failure(host: str, what: str, response: requests.Response) -> BuildError:
    """A refusal: the status and the registry's own error codes and messages."""
    status = response.status_code
    said = errors_in(response) or response.reason or ""
    detail = f"HTTP {status}" + (f" {said}" if said else "")
    if status in (401, 403):
        return BuildError(f"{host} refused {what} ({detail}); {CREDENTIALS_HINT}")
    return BuildError(f"{host} refused {what} ({detail})")


def errors_in(response: requests.Response) -> str:
    """The OCI error list of a response (``CODE: message``, joined), or ''."""
    try:
        listed = response.json().get("errors")
    except (ValueError, AttributeError):
        return ""
    if not isinstance(listed, list):
        return ""
    words = [
        ": ".join(str(e[k]) for k in ("code", "message") if e.get(k))
        for e in listed
        if isinstance(e, dict)
    ]
    return "; ".join(w for w in words if w)


def oras_refusal(host: str) -> BuildError:
    """The SDK found no way to answer the registry's challenge (no token for these
    credentials, or none given)."""
    return BuildError(f"{host} gave no access token for these credentials; {CREDENTIALS_HINT}")
