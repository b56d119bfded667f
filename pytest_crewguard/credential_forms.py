"""Header values that are credentials by their form, whatever the header is called.

``X-Upstream: Basic dXNlcjpw...`` or ``X-Forward: Bearer eyJ...`` carry a credential under a
name with no credential word in it. Only header values are judged by form: in bodies the same
words are prose ("Basic Overview", "Bearer YOUR_API_KEY_HERE" in a model's answer), which
replay must give back as recorded.
"""

from __future__ import annotations

import base64
import binascii
import re

from .secret_values import PLACEHOLDER

_SCHEMES = ("basic", "bearer", "digest", "aws4-hmac-sha256")
# RFC 7235's token68, the form of Basic and Bearer credentials (no quotes, no spaces).
_TOKEN68 = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_TOKEN_MARKS = frozenset("0123456789._-~+/=")
# Challenges a server sends (``Bearer resource_metadata="..."``, ``Bearer error="..."``) hold no
# credential, and clients read them (an MCP client finds its OAuth server there).
CHALLENGE_HEADERS = frozenset({"www-authenticate", "proxy-authenticate"})


def is_credential_value(value: str) -> bool:
    """Whether ``value`` is ``<scheme> <credential>``, checked by the credential's form."""
    head = value.lstrip()[:17].lower()
    if not head.startswith(_SCHEMES):
        return False
    parts = value.split(None, 1)
    if len(parts) < 2 or parts[0].lower() not in _SCHEMES or parts[1].strip() == PLACEHOLDER:
        return False
    scheme, rest = parts[0].lower(), parts[1].strip()
    if scheme == "basic":  # base64 of user:password, printable
        if _TOKEN68.fullmatch(rest) is None:
            return False
        try:
            decoded = base64.b64decode(rest.replace("-", "+").replace("_", "/") + "=" * (-len(rest) % 4))
        except (ValueError, binascii.Error):
            return False
        try:
            text = decoded.decode("utf-8")  # RFC 7617 allows UTF-8
        except UnicodeDecodeError:
            return False
        user, colon, password = text.partition(":")
        return bool(colon) and bool(user or password) and text.isprintable()  # ":<token>" too
    if scheme == "bearer":  # one opaque token or JWT: long, with digits or punctuation
        token = _TOKEN68.fullmatch(rest) is not None
        return token and len(rest) >= 16 and any(c in _TOKEN_MARKS for c in rest)
    lower = rest.lower()  # signed: Digest, AWS SigV4
    return "response=" in lower or "signature=" in lower


def scrub_credential_value(value: str) -> str:
    """``value`` with each credential in it replaced, the scheme kept (a header may list several,
    comma-separated); ``value`` itself when it holds none."""
    if is_credential_value(value):
        return _replaced(value)
    if "," not in value:
        return value
    pieces = value.split(",")
    scrubbed = [_replaced(piece) if is_credential_value(piece) else piece for piece in pieces]
    return value if scrubbed == pieces else ",".join(scrubbed)


def _replaced(credential: str) -> str:
    leading = credential[: len(credential) - len(credential.lstrip())]
    return f"{leading}{credential.split()[0]} {PLACEHOLDER}"
