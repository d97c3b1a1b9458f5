"""Masking credentials in anything printed: the config log line every job writes (`Config.redacted()`).

Three places a credential hides in a config:

- a value under a credential-like key (`db_password`, `api_key`, `fs.azure.account.key.<acct>...`,
  `spark.hadoop.fs.s3a.secret.key`): the whole value, and everything nested under such a key;
- URI user-info (the `user:password` before the `@` of `scheme://...`): the password, which may hold '/' and ':'
  (unencoded, as people paste them); a bare `scheme://token@host` loses its user-info;
- sensitive parameters of a query string or DSN (`?password=..&token=..&sig=..`,
  `;password=..;` in JDBC, `password=..` in a libpq DSN): their values only.

Everything else is left as it is, so the line stays useful for reproducing a run.
"""

from __future__ import annotations

import re
from typing import Any

MASK = "***"

# Words that make a name sensitive wherever they appear in it (unambiguous, even inside another word).
_SENSITIVE_SUBSTRINGS = (
    "password", "passwd", "passphrase", "secret", "token", "credential", "signature", "apikey", "privatekey", "accesskey",
    "authorization", "authorisation", "authentication",
)  # fmt: skip
# Short words that are sensitive only as a whole segment of a name (`key` in `account.key`, not in
# `monkey`; `auth` but not `author`; `sig` in `?sig=`).
_SENSITIVE_SEGMENTS = frozenset({"key", "pwd", "auth", "sig", "sas"})
_SEGMENT_SPLIT = re.compile(r"[^a-z0-9]+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")

# A password after the user's ':' up to the '@' (may hold '/', ':', '?', '#'; '@' must be encoded), or a bare userinfo before '@'.
_URI_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^\s/?#@:]*):(?P<secret>[^\s@]*)@")
_URI_USER_ONLY = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<secret>[^\s/?#@:]+)@")
# name=value after '?', '&', ';' or whitespace (query strings, JDBC properties, libpq DSNs).
_PARAM = re.compile(r"(?P<head>(?:^|[?&;\s])(?P<name>[A-Za-z0-9_.\-]+)=)(?P<secret>[^&;#\s]*)")


def is_sensitive_name(name: str) -> bool:
    """Whether a config key or query parameter name looks like it holds a credential.

    Parameters
    ----------
    name : str
        A key (`spark.hadoop.fs.s3a.secret.key`, `apiKey`) or parameter name (`X-Amz-Signature`).

    Returns
    -------
    bool
        True when the name holds a sensitive word (password, token, ...) or a whole segment such as
        `key`, `pwd`, `auth`, `sig`, `sas`.
    """
    lowered = _CAMEL.sub("_", name).lower()
    compact = re.sub(r"[^a-z0-9]", "", lowered)
    if any(word in compact for word in _SENSITIVE_SUBSTRINGS):
        return True
    return any(segment in _SENSITIVE_SEGMENTS for segment in _SEGMENT_SPLIT.split(lowered))


def redact_text(text: str) -> str:
    """`text` with URI passwords / user-info tokens and sensitive parameter values masked.

    Parameters
    ----------
    text : str
        Any string value (URI, DSN, comma-separated list of URIs, free text).

    Returns
    -------
    str
        The same text; only the secret parts are replaced by `***`.
    """
    text = _URI_PASSWORD.sub(lambda m: f"{m['head']}:{MASK}@" if m["secret"] else m[0], text)
    text = _URI_USER_ONLY.sub(lambda m: f"{m['head']}{MASK}@", text)
    return _PARAM.sub(lambda m: f"{m['head']}{MASK}" if m["secret"] and is_sensitive_name(m["name"]) else m[0], text)


def redact(obj: Any, key: str = "", sensitive: bool = False) -> Any:
    """A copy of a JSON-like config with credentials masked (dict keys are kept).

    Parameters
    ----------
    obj : Any
        dicts, lists and scalars (e.g. `Config.model_dump(mode="json")`).
    key : str
        The key `obj` sits under (its name decides whether the value is masked).
    sensitive : bool
        Set under a sensitive key: every string and number below it is masked.

    Returns
    -------
    Any
        Same shape; masked values are `***`. Booleans and nulls are kept (they carry no secret).
    """
    sensitive = sensitive or bool(key and is_sensitive_name(key))
    if isinstance(obj, dict):
        return {k: redact(v, str(k), sensitive) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [redact(v, key, sensitive) for v in obj]
    if isinstance(obj, bool) or obj is None:
        return obj
    if sensitive and obj != "":
        return MASK
    if isinstance(obj, str):
        return redact_text(obj)
    return obj
