"""Which header, query parameter and form field names hold a credential, whatever the value.

Header values are replaced, the headers in :data:`SECRET_HEADERS` dropped; query parameters and
form fields have their values replaced (see :mod:`.scrubbing`).
"""

from __future__ import annotations

import re
from functools import lru_cache

from .json_fields import is_secret_field

# Request headers that are dropped outright (credentials or account identity). Lower-case.
SECRET_HEADERS: frozenset[str] = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "api-key",
        "x-api-key",
        "x-goog-api-key",
        "openai-organization",
        "openai-project",
        "anthropic-organization-id",
        "cookie",
        "x-amz-security-token",
    }
)
# Any other name with one of these words in it holds a credential (``Ocp-Apim-Subscription-Key``,
# ``Helicone-Auth``, ``X-Auth-Token``, ``auth_token``). Whole words only:
# ``x-ratelimit-remaining-tokens`` is a count, not a credential.
_CREDENTIAL_WORDS = frozenset(
    {"auth", "authorization", "key", "apikey", "token", "secret", "password", "passwd",
     "signature", "cookie", "credential", "credentials", "sig", "pass", "pwd", "session", "jwt",
     "bearer"}
)
# Query parameters (any case): Google's key=, Azure Functions' code=, Azure SAS sig=, ...
SECRET_QUERY_PARAMETERS: tuple[str, ...] = (
    "key", "api_key", "apikey", "api-key", "access_token", "code", "sig", "signature", "token",
    "auth", "password", "secret", "client_secret", "subscription-key", "x-api-key",
)
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def _named_like_a_credential(name: str) -> bool:
    # camelCase names are words too (accessToken, clientSecret, X-AuthToken); and a name a JSON
    # field would be scrubbed by, as clients send header names in lower case (x-accesstoken).
    words = re.split(r"[^a-z0-9]+", _CAMEL.sub("-", name).lower())
    return any(w in _CREDENTIAL_WORDS for w in words) or is_secret_field(name)


@lru_cache(maxsize=4096)  # a cassette repeats the same few names thousands of times
def is_secret_header(name: str) -> bool:
    """A header whose value is a credential: a known name or one named like a credential."""
    return name.lower() in SECRET_HEADERS or _named_like_a_credential(name)


@lru_cache(maxsize=1024)
def is_secret_parameter(name: str) -> bool:
    """A query parameter or form field that holds a credential: a known name, or one named like
    a credential, as for headers (``auth_token``, ``client-secret``, ``X-Amz-Signature``)."""
    return name.lower() in SECRET_QUERY_PARAMETERS or _named_like_a_credential(name)
