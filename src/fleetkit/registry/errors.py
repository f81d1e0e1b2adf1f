"""The distribution wire errors: ONE table used by the server and by the client.

::

    RegistryError (fleetkit.errors)
    └── RegistryAPIError(code, message, detail, status)   one of the codes below, on the wire as
        ├── DigestInvalid                                  {"errors": [{"code", "message", "detail"}]}
        ├── NameInvalid
        └── ...                                             (see ERROR_CODES)

The server raises or returns ``RegistryAPIError`` and renders it with :meth:`body`; the client
parses a response with :func:`from_response`. Codes and statuses follow the OCI distribution spec
(and distribution, where the spec is silent).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from fleetkit.errors import RegistryError

__all__ = [
    "ErrorCode",
    "ERROR_CODES",
    "RegistryAPIError",
    "DigestInvalid",
    "NameInvalid",
    "api_error",
    "from_response",
]


@dataclass(frozen=True, slots=True)
class ErrorCode:
    code: str
    message: str
    status: int


_TABLE: tuple[ErrorCode, ...] = (
    ErrorCode("BLOB_UNKNOWN", "blob unknown to registry", 404),
    ErrorCode("BLOB_UPLOAD_INVALID", "blob upload invalid", 400),
    ErrorCode("BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry", 404),
    ErrorCode("DIGEST_INVALID", "provided digest did not match uploaded content", 400),
    ErrorCode(
        "MANIFEST_BLOB_UNKNOWN",
        "manifest references a manifest or blob unknown to registry",
        404,
    ),
    ErrorCode("MANIFEST_INVALID", "manifest invalid", 400),
    ErrorCode("MANIFEST_UNKNOWN", "manifest unknown to registry", 404),
    ErrorCode("NAME_INVALID", "invalid repository name", 400),
    ErrorCode("NAME_UNKNOWN", "repository name not known to registry", 404),
    ErrorCode("TAG_INVALID", "manifest tag did not match URI", 400),
    ErrorCode("SIZE_INVALID", "provided length did not match content length", 400),
    ErrorCode("UNAUTHORIZED", "authentication required", 401),
    ErrorCode("DENIED", "requested access to the resource is denied", 403),
    ErrorCode("UNSUPPORTED", "the operation is unsupported", 405),
    ErrorCode("TOOMANYREQUESTS", "too many requests", 429),
    ErrorCode("RANGE_INVALID", "invalid content range", 416),
    ErrorCode("PAGINATION_NUMBER_INVALID", "invalid number of results requested", 400),
    ErrorCode("MANIFEST_TOO_BIG", "manifest too big", 413),
    ErrorCode("UNKNOWN", "unknown error", 500),
)
ERROR_CODES: dict[str, ErrorCode] = {e.code: e for e in _TABLE}


class RegistryAPIError(RegistryError):
    """An error with a wire code; ``status`` defaults to the table's."""

    code = "UNKNOWN"

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        detail: Any = None,
        status: int | None = None,
        hint: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.headers: dict[str, str] = dict(headers or {})
        if code is not None:
            self.code = code
        entry = ERROR_CODES.get(self.code, ERROR_CODES["UNKNOWN"])
        self.detail = detail
        self.status = status if status is not None else entry.status
        super().__init__(message or entry.message, hint)

    def body(self) -> dict[str, Any]:
        item: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.detail is not None:
            item["detail"] = self.detail
        return {"errors": [item]}

    def body_bytes(self) -> bytes:
        return json.dumps(self.body()).encode()


class DigestInvalid(RegistryAPIError):
    code = "DIGEST_INVALID"


class NameInvalid(RegistryAPIError):
    code = "NAME_INVALID"


_SUBCLASSES: dict[str, type[RegistryAPIError]] = {
    "DIGEST_INVALID": DigestInvalid,
    "NAME_INVALID": NameInvalid,
}


def api_error(
    code: str,
    message: str | None = None,
    detail: Any = None,
    status: int | None = None,
    headers: dict[str, str] | None = None,
) -> RegistryAPIError:
    """Build the error for ``code`` (the right subclass where one exists); ``headers`` go on
    the server's response (a challenge, a ``Range``)."""
    cls = _SUBCLASSES.get(code, RegistryAPIError)
    return cls(message, code=code, detail=detail, status=status, headers=headers)


def from_response(status: int, body: bytes) -> RegistryAPIError:
    """Turn a registry's error response into an exception (first error of the body)."""
    try:
        doc = json.loads(body or b"{}")
        first = doc["errors"][0]
        code = str(first.get("code") or "UNKNOWN")
        message = str(first.get("message") or ERROR_CODES.get(code, ERROR_CODES["UNKNOWN"]).message)
        return api_error(code, message, first.get("detail"), status)
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        text = body[:200].decode("utf-8", "replace").strip() if body else ""
        for entry in _TABLE:
            if entry.status == status and status != 500:
                return api_error(entry.code, text or entry.message, None, status)
        return api_error("UNKNOWN", f"HTTP {status}" + (f": {text}" if text else ""), None, status)
