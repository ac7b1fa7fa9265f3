"""Keep credentials out of everything the bench shows or writes.

The rule: a header is a credential when its name, lowercased, contains ``auth``,
``token``, ``secret``, ``key``, ``cookie``, ``password`` or ``credential``
(Authorization, Proxy-Authorization, X-Api-Key, Api-Key, Cookie, X-Auth-Token, ...).
Its value shows as ``***``, or ``Bearer ***`` (the scheme kept) in Authorization and
Proxy-Authorization. A URL's password (or a bare token as its user) and credential-named
query values are redacted the same way. Servers may echo what they received in an
error, so ``Scrubber`` also replaces the secret values themselves wherever they occur
in text, and ``Console``, the only way a run prints, passes every line through it.
"""

from __future__ import annotations

import dataclasses
import re
import sys
from collections.abc import Iterable, Mapping
from typing import IO, Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import attrs

__all__ = [
    "REDACTED",
    "Console",
    "Scrubber",
    "is_credential_name",
    "redact_headers",
    "redact_request",
    "redact_url",
    "redact_value",
]

REDACTED = "***"

_CREDENTIAL_PARTS = ("auth", "token", "secret", "key", "cookie", "password", "credential")
# "Bearer sk-...", "Basic dXNl...": the scheme word says how to authenticate, not who.
# Kept only in the headers that have one, and only if it's a plain word.
_SCHEME = re.compile(r"^([A-Za-z]{1,20})\s+(\S.*)$", re.DOTALL)
_SCHEME_HEADERS = frozenset({"authorization", "proxy-authorization"})
# Shorter secrets are not worth replacing in free text: they would mangle it.
_MIN_SCRUB_LEN = 4

T = TypeVar("T")


def is_credential_name(name: str) -> bool:
    """Whether a header (or query parameter) named *name* carries a credential."""
    lowered = name.lower()
    return any(part in lowered for part in _CREDENTIAL_PARTS)


def redact_value(name: str, value: str) -> str:
    """*value* as shown for a header named *name*: unchanged, ``***`` or ``Bearer ***``."""
    if not is_credential_name(name):
        return value
    match = _SCHEME.match(value.strip()) if name.lower() in _SCHEME_HEADERS else None
    return f"{match.group(1)} {REDACTED}" if match else REDACTED


def redact_headers(headers: Mapping[str, str] | None) -> dict[str, str] | None:
    """A copy of *headers* with credential values redacted (``None`` stays ``None``)."""
    if headers is None:
        return None
    return {k: redact_value(k, v) for k, v in headers.items()}


def redact_url(url: str) -> str:
    """*url* without its password (or user-only token) and with credential-named query
    values redacted."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user, colon, _ = userinfo.partition(":")
        # "user:password@", or a bare token as the user ("sk-...@host"): hide the secret.
        netloc = f"{user}:{REDACTED}@{hostport}" if colon else f"{REDACTED}@{hostport}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(is_credential_name(k) for k, _ in pairs):
            query = urlencode(
                [(k, REDACTED if is_credential_name(k) else v) for k, v in pairs], safe="*"
            )
    if netloc == parts.netloc and query == parts.query:
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_request(request: T) -> T:
    """A ``RequestFuncInput`` (any dataclass with ``extra_headers``/``api_url``) with its
    credentials redacted, for a repr."""
    if not dataclasses.is_dataclass(request) or isinstance(request, type):
        return request
    changes: dict[str, Any] = {}
    headers = getattr(request, "extra_headers", None)
    if headers:
        changes["extra_headers"] = redact_headers(headers)
    url = getattr(request, "api_url", None)
    if isinstance(url, str):
        changes["api_url"] = redact_url(url)
    return dataclasses.replace(request, **changes) if changes else request


def _secrets_of_header(name: str, value: str) -> list[str]:
    if not is_credential_name(name):
        return []
    value = value.strip()
    found = [value]
    match = _SCHEME.match(value)
    if match:  # the token alone, as a server may quote it
        found.append(match.group(2).strip())
    return found


def _secrets_of_url(url: str | None) -> list[str]:
    if not url:
        return []
    try:
        parts = urlsplit(url)
        secret = parts.password if parts.password is not None else parts.username
    except ValueError:
        return []
    found = [secret] if secret else []
    found += [v for k, v in parse_qsl(parts.query) if is_credential_name(k)]
    return found


@attrs.frozen
class Scrubber:
    """Replaces known secret values with ``***`` in text and in JSON-like data."""

    secrets: tuple[str, ...] = ()

    @classmethod
    def of(
        cls,
        headers: Mapping[str, str] | None = None,
        urls: Iterable[str | None] = (),
        values: Iterable[str | None] = (),
    ) -> Scrubber:
        """A scrubber for the credentials in *headers*, *urls* and the bare *values*."""
        found: list[str] = []
        for name, value in (headers or {}).items():
            found += _secrets_of_header(name, value)
        for url in urls:
            found += _secrets_of_url(url)
        found += [v for v in values if v]
        unique = {s for s in found if len(s) >= _MIN_SCRUB_LEN and s != REDACTED}
        # Longest first, so "Bearer sk-x" goes whole before "sk-x" would split it.
        return cls(tuple(sorted(unique, key=len, reverse=True)))

    def __bool__(self) -> bool:
        return bool(self.secrets)

    def text(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

    def data(self, value: Any) -> Any:
        """*value* with every string in it scrubbed (dicts, lists and tuples rebuilt)."""
        if not self.secrets:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.data(k): self.data(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.data(v) for v in value]
        if isinstance(value, tuple):
            return tuple(self.data(v) for v in value)
        return value

    def exception(self, exc: Exception) -> Exception:
        """*exc*, or one of its type with the secrets replaced in its message (a server's
        error, echoed in a ready-check or worker failure, may quote the credentials)."""
        text = str(exc)
        clean = self.text(text)
        if clean == text:
            return exc
        try:
            return type(exc)(clean)
        except Exception:
            return RuntimeError(clean)


@attrs.frozen
class Console:
    """Where a run prints its progress lines and report: scrubbed, and silent when
    *quiet*."""

    scrub: Scrubber
    stream: IO[str] | None = None
    quiet: bool = False

    def say(self, text: str) -> None:
        if not self.quiet:
            print(self.scrub.text(text), file=self.stream or sys.stdout, flush=True)

    def say_lines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.say(line)
