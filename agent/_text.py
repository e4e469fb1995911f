"""Text that leaves the agent: bounded in length, client values quoted short, host paths out.

One function per concept, shared by the gRPC side (``errors``, ``settings``,
``service``) and the benchmark worker, which must not import grpc (a worker
is forked from a zygote that stays free of threads and of grpc's state):

* :func:`bounded`: cut a text to a length, saying how much was cut;
* :func:`echo`: quote a client's value (``repr``) in a message, bounded;
* :func:`client_text`: make a text from elsewhere (an onnxruntime or LiteRT
  message, an exception) fit for a client's detail: one line, every
  absolute path replaced by ``…/<last part>`` (host paths stay in the
  agent's log), bounded.
"""

from __future__ import annotations

import re

#: the longest status detail sent to a client
MAX_DETAIL_CHARS = 1000
#: the longest quotation of a client's value inside a message
MAX_ECHO_CHARS = 80
#: what a detail may carry of one text from elsewhere (a runtime's message)
MAX_FOREIGN_CHARS = 600

# An absolute POSIX or Windows path (not one inside a word, like onnxruntime/core/x.cc);
# group 1 is its last part.
_PATH_PART = r"[^\s'\"/\\:,;()]"
_PATH_RE = re.compile(rf"(?<![\w.~-])(?:[A-Za-z]:\\|/)(?:{_PATH_PART}+[/\\])+({_PATH_PART}*)")


def bounded(text: str, limit: int = MAX_DETAIL_CHARS) -> str:
    """``text`` cut to ``limit`` characters, saying how many were cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


def echo(value: object, limit: int = MAX_ECHO_CHARS) -> str:
    """``repr(value)`` for quoting a client's value in a message, cut to ``limit`` characters."""
    return bounded(repr(value), limit)


def client_text(text: object, limit: int = MAX_FOREIGN_CHARS) -> str:
    """``text`` made fit for an error detail sent to a client.

    Whitespace collapsed, every absolute path replaced by ``…/<last part>``,
    then :func:`bounded` to ``limit`` characters.
    """
    one_line = " ".join(str(text).split())
    return bounded(_PATH_RE.sub(lambda m: f"…/{m.group(1)}", one_line), limit)
