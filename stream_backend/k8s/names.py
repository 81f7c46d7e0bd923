"""Kubernetes names, labels, quantities and schedules: checked before any manifest is made,
with errors that never echo a value (a credential may have been pasted by mistake)."""

from __future__ import annotations

import hashlib
import re
from urllib.parse import urlsplit

from .. import units
from ..errors import UsageError

QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|[kMGTPE]i?)?$")

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_CRON_FIELD = re.compile(r"^[0-9A-Za-z*/,?LW#-]+$")
_CRON_MACROS = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
#: archive URL schemes a pod can write to and a later pod can read (memory:// cannot)

def parse_size(text: str | int) -> int:
    """'8MiB' -> 8388608, by the same grammar the transfer CLI uses, and positive."""
    if isinstance(text, int):
        return text
    n = units.parse_size(text)
    if n <= 0:
        raise UsageError(f"size must be positive, not {text!r}")
    return n


def quantity(nbytes: int) -> str:
    """Bytes as a Kubernetes quantity, rounded up to whole MiB ('320Mi')."""
    return f"{-(-nbytes // 1024**2)}Mi"


def label_value(text: str) -> str:
    """Sanitise any string into a valid label value that still reads like it.

    Runs of characters outside [A-Za-z0-9._-] become '-', the ends are trimmed to
    alphanumerics, and a value longer than 63 is cut and suffixed with a hash of the
    full text so two long values never collide. The full text goes in an annotation.
    """
    clean = re.sub(r"[^A-Za-z0-9._-]+", "-", text)
    clean = re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", clean)
    if len(clean) > 63:
        digest = hashlib.sha256(text.encode()).hexdigest()[:8]
        clean = re.sub(r"[^A-Za-z0-9]+$", "", clean[:54]) + "-" + digest
    return clean


def dns_name(*parts: str, limit: int = 63) -> str:
    """A DNS-1123 label built from ``parts``, at most ``limit`` long."""
    text = "-".join(p for p in parts if p).lower()
    text = re.sub(r"[^a-z0-9-]+", "-", text)
    text = re.sub(r"-+", "-", text).strip("-")
    return text[:limit].rstrip("-") or "stream-backend"


def check_no_userinfo(kind: str, url: str) -> None:
    """Refuse credentials embedded in a URL, without echoing them."""
    try:
        parts = urlsplit(url)
    except ValueError:
        raise UsageError(f"{kind} is not a valid URL") from None
    if "@" in parts.netloc or parts.password or parts.username:
        raise UsageError(
            f"{kind} URL carries credentials (user:password@...): they would land in the "
            "manifest in clear text; put them in a Secret and pass --s3-secret/--pravega-secret"
        )
    if parts.query or parts.fragment:
        raise UsageError(f"{kind} URL must not have a query string or fragment (it may hold credentials)")


def check_k8s_name(kind: str, name: str, limit: int = 253, label: bool = False) -> str:
    """A Kubernetes object name (DNS subdomain, or label when ``label``); the error does
    not echo the value, in case a credential was pasted by mistake."""
    pattern = _DNS_LABEL if label else _DNS_SUBDOMAIN
    if not name or len(name) > limit or not pattern.match(name):
        raise UsageError(
            f"invalid {kind}: a Kubernetes name is lowercase letters, digits and '-'"
            + ("" if label else " or '.'") + f", at most {limit} characters"
        )
    return name


def check_schedule(schedule: str) -> str:
    """A five-field cron expression or a macro like @hourly (what CronJob accepts)."""
    text = (schedule or "").strip()
    if text.startswith("@"):
        if text not in _CRON_MACROS:
            raise UsageError(f"invalid --schedule {schedule!r}: unknown macro (use e.g. @hourly or '0 * * * *')")
        return text
    fields = text.split()
    if len(fields) != 5 or not all(_CRON_FIELD.match(f) for f in fields):
        raise UsageError(f"invalid --schedule {schedule!r}: expected five cron fields like '0 * * * *'")
    return text
