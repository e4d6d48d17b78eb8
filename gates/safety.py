"""Untrusted values are data, never markup; credentials never leave the process in clear.

Every renderer goes through here: markdown (Prefect artifacts, MLflow report.md), rich (the CLI),
Prefect table cells, matplotlib text and the data values in GE's Data Docs (HTML). Values come
from the data (category values, column names, file names), from exceptions and from the config,
so any of them may be hostile: a markdown image or link, raw HTML, rich markup, a terminal
escape, a 5 MB string, bytes that are not UTF-8, or a URI with a password in it.
"""

from __future__ import annotations

import re
from typing import Any

LIMIT = 300  # characters of one value in a report line
REDACTED = "***"

# scheme://user:password@host -> scheme://user:***@host (also in free text, e.g. exception messages)
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<user>[^\s:/@?#\[\]\"']*):"
                       r"(?P<secret>[^\s@/?#\"']*)@")
# ?password=…, &token=…, api_key=… in URIs and text
_SECRET_PARAM = re.compile(r"(?i)(?P<key>\b(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key)=)"
                           r"(?P<secret>[^&\s;\"']+)")
# C0/C1 controls, bidi overrides and zero-width characters: terminal escapes, trojan-source text
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~:&])")


def text_of(value: Any) -> str:
    """Any value as valid UTF-8 text: bytes and lone surrogates (non-UTF-8 file names) escaped."""
    if isinstance(value, bytes | bytearray):
        value = bytes(value).decode("utf-8", "backslashreplace")
    text = value if isinstance(value, str) else str(value)
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def clip(value: Any, limit: int = LIMIT) -> str:
    """Valid text of at most `limit` characters (plus a note of what was cut), without control
    characters. Cut before escaping or plotting, so a 5 MB value costs nothing downstream."""
    raw = value if isinstance(value, str) else text_of(value)
    head = text_of(raw[: limit + 1] if isinstance(raw, str) else raw)
    text = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100
                        else f"\\u{ord(m.group()):04x}", head)
    if len(raw) > limit:
        return text[:limit] + f"… (+{len(raw) - limit} chars)"
    return text


def redact(value: Any) -> str:
    """The text with every URI password and secret-looking query parameter replaced by ***."""
    text = text_of(value)
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{REDACTED}@", text)
    return _SECRET_PARAM.sub(lambda m: f"{m['key']}{REDACTED}", text)


def redact_tree(value: Any) -> Any:
    """`redact` applied to every string of a nested dict/list (a config dump, a summary)."""
    if isinstance(value, dict):
        return {redact_tree(k): redact_tree(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_tree(v) for v in value]
    return redact(value) if isinstance(value, str) else value


def plain(value: Any, limit: int = LIMIT) -> str:
    """Plain text (rich Text, MLflow tags, log lines): clipped, no control characters, redacted."""
    return redact(clip(value, limit))


def md(value: Any, limit: int = LIMIT) -> str:
    """Inline markdown that renders as the literal text: no link, image, HTML, emphasis, heading,
    table cell break or autolinked URL (`http\\://` is not a URL to an autolinker), one line."""
    text = redact(clip(value, limit)).replace("\r", " ").replace("\n", " ")
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def rich(value: Any, limit: int = LIMIT) -> str:
    """Text for a rich markup string: `[bold]`, `[link=…]` and `[nan, nan]` stay literal."""
    from rich.markup import escape

    return escape(redact(clip(value, limit)))


def html(value: Any, limit: int = LIMIT) -> str:
    """Text for an HTML page that does not escape it (GE's Data Docs print table cells raw):
    clipped, redacted, `<`, `>`, `&` and quotes as entities."""
    import html as _html

    return _html.escape(redact(clip(value, limit)), quote=True)


def cell(value: Any, limit: int = LIMIT) -> str:
    """A Prefect table cell: clipped, one line, credentials redacted, markdown escaped (the UI
    may render cells as markdown)."""
    return md(value, limit)


def plot_text(value: Any, limit: int = 60) -> str:
    """A matplotlib title or label: short (glyph rendering of long strings takes minutes or
    overflows the rasterizer), one line, mathtext (`$…$`) disabled."""
    text = redact(clip(value, limit)).replace("\n", " ")
    return text.replace("$", r"\$")
