"""Bearer tokens for one machine: a token file of ``TOKEN SCOPE[,SCOPE...]`` lines (``#``
comments), read at start. Scopes: ``read`` (streams' info and data, archives' status),
``export`` and ``import`` (request, follow, pause, resume and cancel that kind of work)."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from ..errors import UsageError

SCOPES = frozenset({"read", "export", "import"})


@dataclass(frozen=True)
class Tokens:
    grants: tuple[tuple[str, frozenset[str]], ...]

    @classmethod
    def load(cls, path: str) -> "Tokens":
        grants = []
        try:
            lines = open(path, encoding="utf-8").read().splitlines()
        except OSError as exc:
            raise UsageError(f"cannot read token file {path}: {exc.strerror}") from None
        for n, line in enumerate(lines, 1):
            words = line.split("#", 1)[0].split()
            if not words:
                continue
            if len(words) != 2:
                raise UsageError(f"{path}:{n}: expected 'TOKEN SCOPE[,SCOPE...]'")
            scopes = frozenset(words[1].split(","))
            if scopes - SCOPES:
                raise UsageError(f"{path}:{n}: unknown scope {sorted(scopes - SCOPES)[0]!r} "
                                 f"(known: {', '.join(sorted(SCOPES))})")
            if len(words[0]) < 16:
                raise UsageError(f"{path}:{n}: a token must have at least 16 characters")
            grants.append((words[0], scopes))
        if not grants:
            raise UsageError(f"token file {path} grants nothing")
        return cls(tuple(grants))

    def scopes_of(self, authorization: str | None) -> frozenset[str] | None:
        """The scopes of the bearer token in an Authorization header; None if it is none of ours."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        found = None
        for known, scopes in self.grants:  # compare with every token: no timing hint
            if hmac.compare_digest(known.encode(), token.strip().encode()):
                found = scopes
        return found
