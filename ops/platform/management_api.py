"""Calls to the Supabase Management API (where the CLI's profile points), for what the CLI cannot do.

The access token comes from SUPABASE_ACCESS_TOKEN and goes only into the Authorization header.
A 5xx is retried a few times; a 429 is retried after its Retry-After when that wait is short.
Any other answer that is not a 2xx fails at once, with the platform's own message.
"""

from __future__ import annotations

import os
import time
from typing import Any

from ops.errors import NotConfigured, OpsError
from ops.platform import supabase_cli

RETRIES = 2  # after the first attempt, for a 5xx or a 429
BACKOFF = 0.5  # seconds before the first retry of a 5xx; doubled each time
LONGEST_WAIT = 30.0  # a 429 asking to wait longer than this fails (the run is not held for minutes)


class ApiError(OpsError):
    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def token() -> str:
    found = os.environ.get("SUPABASE_ACCESS_TOKEN")
    if not found:
        raise NotConfigured(
            "no SUPABASE_ACCESS_TOKEN", "set it to a personal access token (sbp_...) or run `supabase login`"
        )
    return found


def call(method: str, ref: str, path: str, body: Any = None, *, timeout: float = 20) -> Any:
    """`METHOD /v1/projects/{ref}/{path}` with a JSON body; the decoded JSON answer."""
    import httpx

    base = supabase_cli.api_url()
    where = f"{method} /v1/projects/{ref}/{path}"
    headers = {"Authorization": f"Bearer {token()}", "Accept": "application/json"}
    delay = BACKOFF
    for attempt in range(RETRIES + 1):
        try:
            answer = httpx.request(
                method, f"{base}/v1/projects/{ref}/{path}", headers=headers, json=body, timeout=timeout
            )
        except httpx.HTTPError as error:
            if attempt < RETRIES:
                time.sleep(delay)
                delay *= 2
                continue
            raise ApiError(f"{where}: cannot reach the Management API at {base}: {type(error).__name__}") from None
        if answer.is_success:
            try:
                return answer.json() if answer.content else None
            except ValueError:
                raise ApiError(f"{where} answered {answer.status_code} with something that is not JSON") from None
        last = attempt == RETRIES
        if answer.status_code == 429 and not last:
            wait = retry_after(answer.headers.get("Retry-After"))
            if wait is not None and wait <= LONGEST_WAIT:
                time.sleep(wait)
                continue
        elif answer.status_code >= 500 and not last:
            time.sleep(delay)
            delay *= 2
            continue
        raise ApiError(f"{where} answered {answer.status_code}: {message(answer)}", answer.status_code)
    raise AssertionError("unreachable: the last attempt returns or raises")


def retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def message(answer: Any) -> str:
    """The platform's reason, one line (its JSON `message`, else the start of the body)."""
    try:
        data = answer.json()
        text = str(data.get("message") or data.get("error") or data) if isinstance(data, dict) else str(data)
    except ValueError:
        text = answer.text
    return " ".join(text.split())[:200] or answer.reason_phrase
