"""The API over urllib for the burst tests (test_crash_recovery.py, test_multi_controller.py):
one request, and what became of it when no HTTP answer came back."""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request

REQUEST_TIMEOUT = 5.0  # one API request


class NoAnswer(Exception):
    """The request got no HTTP answer (reset, timeout): outcome unknown."""


class Unsent(NoAnswer):
    """The connection was refused: the request never reached a server (nothing changed). A
    NoAnswer too, for callers that need not tell the two apart."""


def call(endpoint: str, method: str, path: str, body=None, timeout: float = REQUEST_TIMEOUT):
    """One API request; returns (status, parsed JSON or {"_raw": ...}). Raises Unsent or
    NoAnswer when no HTTP response came back."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(endpoint + path, data=data, method=method)
    req.add_header("X-Auth-Token", "e2e")
    req.add_header("Accept", "application/json")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
            status = resp.status
    except urllib.error.HTTPError as e:
        try:
            raw = e.read()
        except OSError:
            raw = b""
        status = e.code
    except urllib.error.URLError as e:
        if isinstance(e.reason, ConnectionRefusedError):
            raise Unsent(repr(e)) from None
        raise NoAnswer(repr(e)) from None
    except ConnectionRefusedError as e:
        raise Unsent(repr(e)) from None
    except (OSError, http.client.HTTPException) as e:
        raise NoAnswer(repr(e)) from None
    try:
        doc = json.loads(raw.decode() or "null")
    except (ValueError, UnicodeDecodeError):
        doc = {"_raw": raw[:300].decode(errors="replace")}
    return status, doc
