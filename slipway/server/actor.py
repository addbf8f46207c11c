"""Who a request says it comes from: the actor recorded for every registry change.

The server has no authentication of its own. The actor is, in order:

1. the user name of an HTTP Basic ``Authorization`` header;
2. the ``X-Slipway-User`` header (percent-decoded as UTF-8, which is how
   :class:`~slipway.registry.store.rest.RestRegistryStore` sends names that are not ASCII);
3. ``"anonymous"``.

Without an authenticating proxy in front of the server this is a claim, not proof: any client
can name any user. It is enough for an honest team's audit log and for the self-approval rule
to catch mistakes; where approvals must hold against a dishonest user, put the server behind a
proxy that checks credentials and sets the ``Authorization`` header (or strips a client's
``X-Slipway-User``), and only let that proxy reach the server.
"""

from __future__ import annotations

import base64
import binascii
import unicodedata
from urllib.parse import unquote

from starlette.requests import Request

from slipway.exceptions import SlipwayError
from slipway.registry.store.rest.store import USER_HEADER

ANONYMOUS = "anonymous"
MAX_ACTOR_LENGTH = 255


def _unauthenticated(message: str) -> SlipwayError:
    return SlipwayError(message, error_code="UNAUTHENTICATED")


def _basic_user(authorization: str) -> str | None:
    """The user name of a ``Basic`` credential; None for other schemes (a bearer token)."""
    scheme, _, credential = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(credential.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise _unauthenticated("Malformed Basic Authorization header") from None
    user, colon, _password = decoded.partition(":")
    if not colon:
        raise _unauthenticated("Malformed Basic Authorization header: no ':' after the user")
    return user


def _checked(name: str, where: str) -> str:
    if any(unicodedata.category(c) in ("Cc", "Cf") for c in name):
        raise _unauthenticated(f"The user name in {where} holds control characters")
    name = name.strip()
    if len(name) > MAX_ACTOR_LENGTH:
        raise _unauthenticated(f"The user name in {where} is longer than {MAX_ACTOR_LENGTH}")
    return name


def request_actor(request: Request) -> str:
    """The actor of ``request`` (see the module notes); a malformed claim is a 401."""
    authorization = request.headers.get("authorization")
    if authorization:
        user = _basic_user(authorization)
        if user is not None:
            user = _checked(user, "the Authorization header")
            if user:
                return user
    claimed = request.headers.get(USER_HEADER)
    if claimed:
        try:
            decoded = unquote(claimed, errors="strict")
        except UnicodeDecodeError:
            raise _unauthenticated(
                f"The {USER_HEADER} header is not percent-encoded UTF-8"
            ) from None
        user = _checked(decoded, f"the {USER_HEADER} header")
        if user:
            return user
    return ANONYMOUS
