"""What a caller may ask of the model: the body read (counted, capped), checked, and cut down.

Everything the backend sees is built here from an allow-list of OpenAI fields per endpoint: a
field a backend happens to honour (llama-server's ``n_predict``, ``n_cmpl``, ``ignore_eos``;
vLLM's ``min_tokens``) never reaches it, and the gateway's ``max_tokens`` is the only length limit
the backend sees. Shapes are checked before the request takes a place in the queue, so nothing
after admission trips over a malformed message.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

from starlette.requests import ClientDisconnect, Request

from sporthub.gateway.errors import GatewayError

MAX_BODY_BYTES = 4 * 1024 * 1024
# about four characters a token in English text: an estimate that errs on the generous side
CHARS_PER_TOKEN = 4

# fields forwarded as they are, once their type is checked; everything else is dropped
_COMMON = {
    "temperature": (int, float), "top_p": (int, float), "presence_penalty": (int, float),
    "frequency_penalty": (int, float), "seed": (int,), "stop": (str, list), "user": (str,),
    "logit_bias": (dict,),
}
_CHAT = {**_COMMON, "response_format": (dict,), "tools": (list,), "tool_choice": (str, dict),
         "parallel_tool_calls": (bool,), "logprobs": (bool,), "top_logprobs": (int,)}
_COMPLETIONS = {**_COMMON, "echo": (bool,), "logprobs": (int,), "suffix": (str,)}
_ROLES = {"system", "developer", "user", "assistant", "tool", "function"}
MAX_STOP_SEQUENCES = 4
# OpenAI's limits, which vLLM also keeps: every alternative is a JSON object per generated token,
# so an unbounded count turns a short answer into gigabytes (8 tokens at top_logprobs=100000 made
# a 35.7 MiB answer on llama-server)
MAX_TOP_LOGPROBS = 20
MAX_COMPLETION_LOGPROBS = 5


@dataclass
class Payload:
    """A checked request: what to forward, and what it may cost."""

    endpoint: str  # "chat/completions" or "completions"
    model: str
    stream: bool
    fields: dict  # allow-listed fields, without model, stream and the length limit
    max_tokens: int  # what the caller asked for (or the cap); admission may lower it
    prompt_chars: int
    text: list | str  # the messages or the prompt, for the audit log
    wants_usage: bool = False  # the caller asked for the stream's usage chunk

    @property
    def prompt_estimate(self) -> int:
        return -(-self.prompt_chars // CHARS_PER_TOKEN)

    def forward(self, max_tokens: int) -> dict:
        """The body for the backend: the allow-listed fields and the one length limit."""
        body = {"model": self.model, **self.fields, "max_tokens": max_tokens}
        if self.stream:
            body["stream"] = True
        return body


async def read_json(request: Request, limit: int = MAX_BODY_BYTES) -> object:
    """The body as JSON, counted while it arrives: a huge (chunked) body is cut at the cap."""
    too_large = GatewayError(413, f"Request body larger than {limit // 2**20} MiB.",
                             "request_too_large")
    try:
        if int(request.headers.get("content-length") or 0) > limit:
            raise too_large
    except ValueError:
        raise GatewayError(400, "Invalid Content-Length.", "invalid_body") from None
    try:
        content = await read_at_most(request.stream(), limit)
    except ClientDisconnect:
        raise GatewayError(400, "The request body was not received completely.",
                           "incomplete_body") from None
    if content is None:
        raise too_large
    try:
        return json.loads(content)
    except (ValueError, UnicodeDecodeError) as e:
        raise GatewayError(400, f"The request body is not valid JSON: {e}.", "invalid_json") from None


async def read_at_most(chunks: AsyncIterator[bytes], limit: int) -> bytes | None:
    """The chunks joined, or None as soon as they pass ``limit`` bytes (the rest is not read)."""
    parts, size = [], 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            return None
        parts.append(chunk)
    return b"".join(parts)


def check(body: object, endpoint: str, max_tokens_cap: int, max_prompt_chars: int) -> Payload:
    """Validate a chat or completions body; raise a 400/413 that says what is wrong."""
    chat = endpoint == "chat/completions"
    if not isinstance(body, dict):
        raise _invalid("The request body must be a JSON object.", "invalid_body")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _invalid("'model' is required and must be a string.", "missing_model")
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise _invalid("'stream' must be true or false (a JSON boolean).", "invalid_stream")
    if body.get("n", 1) not in (1, None):
        raise _invalid("Only n=1 is supported: ask for one answer at a time.", "n_not_supported")
    max_tokens = _max_tokens(body, max_tokens_cap)
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise _invalid("'stream_options' must be an object.", "invalid_field")
    allowed = _CHAT if chat else _COMPLETIONS
    fields = {}
    for name, types in allowed.items():
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise _invalid(f"'{name}' has the wrong type.", "invalid_field", name)
        fields[name] = value
    _check_stop(fields.get("stop"))
    _check_range(fields, "top_logprobs" if chat else "logprobs",
                 MAX_TOP_LOGPROBS if chat else MAX_COMPLETION_LOGPROBS)
    if chat:
        text = _messages(body.get("messages"))
        fields["messages"] = text
        sized = [text, fields.get("tools")]
    else:
        text = _prompt(body.get("prompt"))
        fields["prompt"] = text
        sized = [text, fields.get("suffix")]
    prompt_chars = len(json.dumps(sized, ensure_ascii=False))
    if prompt_chars > max_prompt_chars:
        raise GatewayError(413, f"The prompt is {prompt_chars} characters; the limit is "
                           f"{max_prompt_chars}. Shorten the conversation or start a new chat.",
                           "prompt_too_large")
    return Payload(endpoint=endpoint, model=model, stream=stream, fields=fields,
                   max_tokens=max_tokens, prompt_chars=prompt_chars, text=text,
                   wants_usage=(options or {}).get("include_usage") is True)


def _max_tokens(body: dict, cap: int) -> int:
    asked = None
    for field in ("max_tokens", "max_completion_tokens"):
        value = body.get(field)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise _invalid(f"'{field}' must be a positive integer.", "invalid_max_tokens")
        if value > cap:
            raise _invalid(f"'{field}' is {value}; the limit here is {cap} tokens per answer.",
                           "max_tokens_too_large")
        asked = value if asked is None else min(asked, value)
    return cap if asked is None else asked


def _check_range(fields: dict, name: str, most: int) -> None:
    value = fields.get(name)
    if value is not None and not 0 <= value <= most:
        raise _invalid(f"'{name}' is {value}; it must be between 0 and {most}.",
                       "invalid_field", name)


def _check_stop(stop) -> None:
    if isinstance(stop, list) and (len(stop) > MAX_STOP_SEQUENCES
                                   or not all(isinstance(s, str) for s in stop)):
        raise _invalid(f"'stop' is a string or a list of at most {MAX_STOP_SEQUENCES} strings.",
                       "invalid_field")


def _messages(messages) -> list[dict]:
    if not isinstance(messages, list) or not messages:
        raise _invalid("'messages' is required and must be a non-empty list.", "invalid_messages")
    return [_message(m, i) for i, m in enumerate(messages)]


def _message(message, index: int) -> dict:
    where = f"messages[{index}]"
    if not isinstance(message, dict):
        raise _invalid(f"{where} must be an object.", "invalid_messages")
    role = message.get("role")
    if role not in _ROLES:
        raise _invalid(f"{where}.role must be one of {', '.join(sorted(_ROLES))}.",
                       "invalid_messages")
    content = message.get("content")
    if isinstance(content, list):
        for part in content:
            if not isinstance(part, dict) or not isinstance(part.get("type"), str) or (
                    part["type"] == "text" and not isinstance(part.get("text"), str)):
                raise _invalid(f"{where}.content parts must be objects with a 'type' (and "
                               "'text' for text parts).", "invalid_messages")
    elif content is not None and not isinstance(content, str):
        raise _invalid(f"{where}.content must be a string, a list of parts or null.",
                       "invalid_messages")
    calls = message.get("tool_calls")
    if calls is not None and (not isinstance(calls, list)
                              or not all(_is_tool_call(c) for c in calls)):
        raise _invalid(f"{where}.tool_calls must be a list of objects with a 'function' "
                       "object that has a string 'name'.", "invalid_messages")
    for name in ("name", "tool_call_id"):
        if message.get(name) is not None and not isinstance(message[name], str):
            raise _invalid(f"{where}.{name} must be a string.", "invalid_messages")
    # only what OpenAI defines for a message goes on
    keep = ("role", "content", "name", "tool_calls", "tool_call_id")
    return {k: message[k] for k in keep if k in message}


def _is_tool_call(call) -> bool:
    function = call.get("function") if isinstance(call, dict) else None
    return (isinstance(function, dict) and isinstance(function.get("name"), str)
            and isinstance(function.get("arguments", ""), str | dict))


def _prompt(prompt) -> str:
    """One prompt per request: a list of prompts would run many generations in one slot."""
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        return prompt[0]
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list):
        raise _invalid("Only one prompt per request: send a string, not a list.",
                       "prompt_list_not_supported")
    raise _invalid("'prompt' is required and must be a string.", "missing_prompt")


def _invalid(message: str, code: str, param: str | None = None) -> GatewayError:
    return GatewayError(400, message, code, param=param)
