"""Who may call what. Every route names its :class:`Action` (a verb on a resource, in the
words of a Kubernetes SubjectAccessReview); an authorizer decides:

- :class:`Tokens`, for one machine: a token file of ``TOKEN SCOPE[,SCOPE...]`` lines
  (``#`` comments), read at start. Scopes: ``read`` (streams' info and data, archives'
  status, requests), ``export`` and ``import`` (request, follow, pause, resume and cancel
  that kind of work).
- :class:`KubernetesIdentities`, in a cluster: the bearer token is the caller's own
  Kubernetes token (a ServiceAccount's, or a user's from the cluster's OIDC issuer). A
  TokenReview says whose it is, a SubjectAccessReview whether RBAC lets that user do the
  action in the server's namespace, so a Role decides who may export, import or download.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from dataclasses import dataclass
from typing import Protocol

from ..errors import PermissionDeniedError, UnavailableError, UsageError
from ..k8s.resources import GROUP

SCOPES = frozenset({"read", "export", "import"})
#: verbs that only read
READING = frozenset({"get", "list", "watch"})
#: the scope that manages each kind of request
_KIND_SCOPE = {"streamexports": "export", "streamimports": "import"}


class Unauthenticated(Exception):
    """No credentials, or none this server knows (HTTP 401)."""


@dataclass(frozen=True)
class Action:
    """A verb on a resource of our API group. ``streams`` is no API resource; RBAC rules
    may name it all the same (``resources: [streams, streams/data]``)."""

    verb: str
    resource: str
    subresource: str = ""

    def __str__(self) -> str:
        return f"{self.verb} {self.resource}{'/' + self.subresource if self.subresource else ''}"

    @property
    def scopes(self) -> frozenset[str]:
        """The token scopes any one of which allows it."""
        kind = _KIND_SCOPE.get(self.resource)
        if self.verb in READING:
            return frozenset({"read", kind} - {None})
        return frozenset({kind} - {None})


class Authorizer(Protocol):
    def check(self, authorization: str | None, action: Action, name: str | None = None) -> None:
        """Return if the caller may; raise Unauthenticated or PermissionDeniedError."""


def bearer(authorization: str | None) -> str | None:
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


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
        token = bearer(authorization)
        if token is None:
            return None
        found = None
        for known, scopes in self.grants:  # compare with every token: no timing hint
            if hmac.compare_digest(known.encode(), token.encode()):
                found = scopes
        return found

    def check(self, authorization: str | None, action: Action, name: str | None = None) -> None:
        granted = self.scopes_of(authorization)
        if granted is None:
            raise Unauthenticated("a bearer token is needed")
        if not granted & action.scopes:
            raise PermissionDeniedError(f"this token lacks the scope {' or '.join(sorted(action.scopes))}")


class _Ttl:
    """A small map whose entries live ``seconds``: a review's answer is reused briefly, so a
    page polling the API does not cost the API server two reviews per request."""

    def __init__(self, seconds: float, most: int = 4096) -> None:
        self.seconds, self.most = seconds, most
        self._entries: dict = {}
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            hit = self._entries.get(key)
            return hit[1] if hit and hit[0] > time.monotonic() else None

    def put(self, key, value) -> None:
        with self._lock:
            if len(self._entries) >= self.most:
                now = time.monotonic()
                self._entries = {k: v for k, v in self._entries.items() if v[0] > now}
                if len(self._entries) >= self.most:
                    self._entries.clear()
            self._entries[key] = (time.monotonic() + self.seconds, value)


@dataclass(frozen=True)
class _User:
    name: str
    uid: str
    groups: tuple[str, ...]
    extra: tuple[tuple[str, tuple[str, ...]], ...]


class KubernetesIdentities:
    """The caller's Kubernetes identity and RBAC in ``namespace``. The server's own
    ServiceAccount needs ``create`` on tokenreviews and subjectaccessreviews (the
    ``system:auth-delegator`` ClusterRole)."""

    #: seconds a review's answer is reused
    CACHE_SECONDS = 10.0

    def __init__(self, namespace: str) -> None:
        from kubernetes import client

        api = client.ApiClient()
        self.namespace = namespace
        self._authn = client.AuthenticationV1Api(api)
        self._authz = client.AuthorizationV1Api(api)
        self._users, self._answers = _Ttl(self.CACHE_SECONDS), _Ttl(self.CACHE_SECONDS)

    def _review(self, fn, body):
        from kubernetes.client.rest import ApiException

        try:
            return fn(body)
        except ApiException as exc:
            if exc.status == 403:
                raise UnavailableError("this server's ServiceAccount may not review tokens or access: "
                                       "bind it to the ClusterRole system:auth-delegator") from None
            raise UnavailableError(f"Kubernetes API: {exc.reason}") from None
        except OSError as exc:
            raise UnavailableError(f"Kubernetes API unreachable: {exc}") from None

    def _user(self, token: str) -> _User | None:
        from kubernetes import client

        key = hashlib.sha256(token.encode()).digest()
        user = self._users.get(key)
        if user is None:
            review = self._review(self._authn.create_token_review,
                                  client.V1TokenReview(spec=client.V1TokenReviewSpec(token=token)))
            info = review.status.user if review.status and review.status.authenticated else None
            user = _User(info.username, info.uid or "", tuple(info.groups or ()),
                         tuple(sorted((k, tuple(v)) for k, v in (info.extra or {}).items()))) if info else False
            self._users.put(key, user)
        return user or None

    def check(self, authorization: str | None, action: Action, name: str | None = None) -> None:
        from kubernetes import client

        token = bearer(authorization)
        user = self._user(token) if token else None
        if user is None:
            raise Unauthenticated("a Kubernetes bearer token of this cluster is needed")
        key = (user, action, name)
        allowed = self._answers.get(key)
        if allowed is None:
            attributes = client.V1ResourceAttributes(namespace=self.namespace, verb=action.verb, group=GROUP,
                                                     resource=action.resource, subresource=action.subresource or None,
                                                     name=name)
            spec = client.V1SubjectAccessReviewSpec(user=user.name, uid=user.uid or None, groups=list(user.groups),
                                                    extra={k: list(v) for k, v in user.extra} or None,
                                                    resource_attributes=attributes)
            review = self._review(self._authz.create_subject_access_review, client.V1SubjectAccessReview(spec=spec))
            allowed = bool(review.status and review.status.allowed)
            self._answers.put(key, allowed)
        if not allowed:
            raise PermissionDeniedError(f"{user.name} may not {action}{' ' + name if name else ''} "
                                        f"in namespace {self.namespace} (RBAC, API group {GROUP})")
