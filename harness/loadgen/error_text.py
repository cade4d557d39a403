"""Short texts of error responses and error events, for RequestRecord.error_message."""

import json
from typing import Any

# Maximum length of a record's error_message, in characters.
MAX_ERROR_MESSAGE_CHARS = 300


def excerpt(data: bytes) -> str:
    """Return the start of data as text, at most MAX_ERROR_MESSAGE_CHARS characters."""
    return data[:MAX_ERROR_MESSAGE_CHARS].decode("utf-8", errors="replace")


def http_error_text(body: bytes) -> str:
    """Return the message of an HTTP error body: the JSON error's message, else the body's start."""
    try:
        payload = json.loads(body)
    except ValueError:
        return excerpt(body).strip()
    return error_text(payload)


def error_text(payload: Any) -> str:
    """Return the message of an OpenAI-style error object, or the payload as text."""
    if isinstance(payload, dict):
        error = payload.get("error", payload)
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return error["message"]
        if isinstance(error, str):
            return error
        if isinstance(payload.get("message"), str):
            return payload["message"]
        if isinstance(payload.get("detail"), str):
            return payload["detail"]
    return json.dumps(payload)[:MAX_ERROR_MESSAGE_CHARS]
