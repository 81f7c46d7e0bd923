"""The container's termination message: where Kubernetes shows a finished pod's summary."""

from __future__ import annotations

import json

from .. import settings
from ..urls import redact

#: the pod's termination message file: every generated manifest names it in
#: settings.TERMINATION_LOG_ENV, where the transfer CLI writes its final JSON summary
TERMINATION_LOG_PATH = "/dev/termination-log"
#: Kubernetes keeps at most this many bytes of a termination message.
TERMINATION_MESSAGE_MAX = 4096


def write_termination_message(summary, env=None) -> bool:
    """Write the final summary where Kubernetes shows it as the termination message.

    Called by the transfer CLI at exit; does nothing unless STREAM_BACKEND_TERMINATION_LOG
    is set. ``summary`` is a dict (written as compact JSON) or a string. Never raises:
    a missing message must not fail a finished transfer. Kubernetes keeps 4096 bytes,
    so a longer dict loses its largest fields first (marked ``"truncated": true``).
    """
    path = settings.termination_log(env)
    if not path:
        return False
    if isinstance(summary, dict):
        data = dict(summary)
        text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
        while len(text.encode()) > TERMINATION_MESSAGE_MAX:
            droppable = [k for k in data if k not in ("event", "truncated")]
            if not droppable:
                break
            biggest = max(droppable, key=lambda k: len(json.dumps(data[k], default=str)))
            del data[biggest]
            data["truncated"] = True
            text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    else:
        text = str(summary)
    raw = redact(text).encode()[:TERMINATION_MESSAGE_MAX]
    try:
        with open(path, "wb") as f:
            f.write(raw)
        return True
    except OSError:
        return False
