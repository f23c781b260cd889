"""An smsbridge adapter in Python.

It speaks the same provider API as the Rust adapter that `smsbridge adapter new`
writes and passes the same fixtures: POST {base_url}/v1/messages with a bearer
key and a form body, and a JSON answer. Built with componentize-py (see
build.sh); the bindings in `wit_world` are generated from ../../../wit.
"""

import json
from urllib.parse import urlencode

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import config, http, log
from wit_world.imports.types import (
    Accepted,
    AdapterInfo,
    ConfigKey,
    Message,
    SendError_InvalidRecipient,
    SendError_Misconfigured,
    SendError_RateLimited,
    SendError_Rejected,
    SendError_Unauthorized,
    SendError_Unavailable,
)

DEFAULT_BASE = "https://api.example.com"


def setting(key: str) -> str | None:
    return config.get(key) or None


def require(key: str) -> str:
    value = setting(key)
    if value is None:
        raise Err(SendError_Misconfigured(f"setting `{key}` is required"))
    return value


def status_error(status: int, retry_after: int | None, detail: str):
    """The contract's error for a non-2xx status, as the Rust SDK maps it."""
    text = f"HTTP {status}: {detail}" if detail else f"HTTP {status}"
    if status in (401, 403):
        return SendError_Unauthorized(text)
    if status == 429:
        return SendError_RateLimited(retry_after)
    if status == 408 or 500 <= status <= 599:
        return SendError_Unavailable(text)
    return SendError_Rejected(text)


def transport_error(why):
    if isinstance(why, http.Error_Denied):
        return SendError_Misconfigured(f"request refused: {why.value}")
    if isinstance(why, http.Error_Timeout):
        return SendError_Unavailable("provider did not answer in time")
    if isinstance(why, http.Error_Connect):
        return SendError_Unavailable(f"cannot connect: {why.value}")
    return SendError_Unavailable(f"bad HTTP exchange: {getattr(why, 'value', why)}")


class Sender(exports.Sender):
    def info(self) -> AdapterInfo:
        return AdapterInfo(
            name="example-python",
            version="0.1.0",
            provider="Example SMS (Python)",
            config_keys=[
                ConfigKey("api_key", True, True, "API key, from the provider's dashboard"),
                ConfigKey("from", False, False, "Sender id or number in E.164"),
                ConfigKey("base_url", False, False, "Replaces https://api.example.com"),
            ],
            default_hosts=["api.example.com"],
        )

    def send(self, msg: Message) -> Accepted:
        key = require("api_key")
        base = (setting("base_url") or DEFAULT_BASE).rstrip("/")
        form = [("to", msg.to), ("text", msg.body), ("reference", msg.id)]
        sender = msg.sender or setting("from")
        if sender:
            form.append(("from", sender))

        request = http.Request(
            method="POST",
            url=f"{base}/v1/messages",
            headers=[
                ("Authorization", f"Bearer {key}"),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            body=urlencode(form).encode(),
        )
        try:
            resp = http.send(request)
        except Err as e:
            raise Err(transport_error(e.value))

        try:
            answer = json.loads(resp.body)
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            answer = {}

        if 200 <= resp.status < 300:
            provider_id = answer.get("id")
            if not isinstance(provider_id, str):
                raise Err(SendError_Unavailable(f"HTTP {resp.status}: answer has no `/id`"))
            return Accepted(provider_id=provider_id, status="queued", segments=None)

        code = answer.get("code") or ""
        detail = f"{code}: {answer.get('message') or ''}"
        log.write(log.Level.DEBUG, f"example-python refused the message: HTTP {resp.status}")
        if code in ("invalid_number", "unreachable"):
            raise Err(SendError_InvalidRecipient(detail))
        retry = next((v.strip() for k, v in resp.headers if k.lower() == "retry-after"), "")
        raise Err(status_error(resp.status, int(retry) if retry.isdigit() else None, detail))
