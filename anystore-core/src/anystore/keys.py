"""Key rules: the one place that decides what a valid key is, for every backend.

A key is a `/`-separated, path-like string relative to a store's root. `normalize_key` is called
by `Store` before any backend is touched, so a backend only ever sees keys that cannot escape its
root. Prefixes and globs are matched here too, so every backend filters the same way.
"""

from __future__ import annotations

import re
from functools import lru_cache

from anystore.exceptions import InvalidKey

# Names that start with this are the stores' own bookkeeping (temp files, TTL sidecars): no key may
# use it, and listings never show it.
RESERVED_PREFIX = ".~anystore"
# A lock on `folder/name` is the reserved name `folder/.~anystore-lock~name`: beside the key, so a
# child store opened on `folder` meets the same lock as its parent does.
LOCK_PREFIX = RESERVED_PREFIX + "-lock~"

_URI = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# A lone surrogate has no UTF-8 form: no medium could store the key.
_SURROGATE = re.compile("[\ud800-\udfff]")
_GLOB_CHARS = frozenset("*?[")
# A key already in canonical form, as most are: ASCII segments that do not start with a dot (so
# no '.', '..' or reserved segment), nothing empty, no '%', ':' or backslash. normalize_key
# returns it as it is after this one match, instead of its every check.
_PLAIN = re.compile(r"[\w\-+=,@~ ][\w\-+=,@~ .]*(?:/[\w\-+=,@~ ][\w\-+=,@~ .]*)*\Z", re.ASCII)


def _fail(key: object, why: str) -> InvalidKey:
    return InvalidKey(f"Invalid key {key!r}: {why}")


def _check_decoded(key: str) -> None:
    # Percent-decoding (repeatedly: %252e%252e) must not reveal a traversal that a server or a
    # URL-building backend would decode later.
    from urllib.parse import unquote

    decoded, seen = key, {key}
    for _ in range(4):
        decoded = unquote(decoded)
        if decoded in seen:
            break
        seen.add(decoded)
        if _CONTROL.search(decoded):
            raise _fail(key, "it encodes a control character; use plain printable text")
        parts = decoded.replace("\\", "/").split("/")
        if ".." in parts:
            raise _fail(key, "it encodes a '..' segment, which would escape the store's root")
        if decoded.startswith("/"):
            raise _fail(key, "it encodes a leading '/', which reads as an absolute path")


@lru_cache(maxsize=65536)
def normalize_key(key: str) -> str:
    """Return the canonical form of `key`, or raise `InvalidKey` saying what is wrong with it.

    Strips trailing `/`, drops empty and `.` segments; rejects empty keys, a leading `/`, `..`
    segments (raw or percent-encoded), backslashes, NUL and control characters, lone surrogates,
    absolute URIs and the reserved `.~anystore` names.
    """
    if not isinstance(key, str):
        raise InvalidKey(f"Invalid key {key!r}: keys are str, not {type(key).__name__}")
    if type(key) is str and _PLAIN.match(key):
        return key
    if not key or not key.strip("/"):
        raise _fail(key, "the key is empty; give a name such as 'folder/name'")
    if _CONTROL.search(key):
        raise _fail(key, "NUL and control characters are not allowed in keys")
    if _SURROGATE.search(key):
        raise _fail(key, "it holds a lone surrogate, which has no UTF-8 form; decode it properly")
    if _URI.match(key):
        raise _fail(key, "absolute URIs are not keys; open a store on the URI with get_store()")
    if key.startswith("/"):
        raise _fail(key, "a leading '/' reads as an absolute path; use a relative key")
    if "\\" in key:
        raise _fail(key, "backslashes are not allowed; separate path segments with '/'")
    parts = [part for part in key.split("/") if part and part != "."]
    if ".." in parts:
        raise _fail(key, "'..' segments would escape the store's root")
    if not parts:
        raise _fail(key, "the key has no name left after dropping '.' segments")
    if any(part.startswith(RESERVED_PREFIX) for part in parts):
        raise _fail(key, f"names starting with {RESERVED_PREFIX!r} are reserved for anystore")
    if "%" in key:
        _check_decoded(key)
    return "/".join(parts)


@lru_cache(maxsize=65536)
def limited_key(key: str, max_key_bytes: int | None, max_segment_bytes: int | None) -> str:
    """`normalize_key(key)`, also refused when it is longer than a backend's declared limits."""
    key = normalize_key(key)
    size = len(key.encode("utf-8"))
    if max_key_bytes is not None and size > max_key_bytes:
        raise _fail(key, f"it is {size} bytes long in UTF-8; this backend takes {max_key_bytes}")
    if max_segment_bytes is not None and size > max_segment_bytes:
        for part in key.split("/"):
            length = len(part.encode("utf-8"))
            if length > max_segment_bytes:
                raise _fail(
                    key,
                    f"its segment {part[:20]!r}... is {length} bytes long in UTF-8; this backend "
                    f"takes {max_segment_bytes} per segment (split it with '/')",
                )
    return key


def is_reserved(path: str) -> bool:
    """Tell whether any segment of a `/`-separated path is a reserved `.~anystore` name.

    Backends use it to keep their bookkeeping out of listings; it is cheap for ordinary keys.
    """
    return RESERVED_PREFIX in path and any(
        part.startswith(RESERVED_PREFIX) for part in path.split("/")
    )


def lock_name(key: str) -> str:
    """The reserved name under which backends keep the lock on the normalised `key`."""
    head, _, name = key.rpartition("/")
    return f"{head}/{LOCK_PREFIX}{name}" if head else LOCK_PREFIX + name


def normalize_prefix(prefix: str | None) -> str:
    """Return the canonical form of a listing prefix; `None`, `""` and `"/"` mean everything."""
    if prefix is None or prefix.strip("/") == "":
        return ""
    return normalize_key(prefix)


def is_under(key: str, prefix: str) -> bool:
    """Tell whether `key` is `prefix` itself or lies below it, matching whole segments."""
    if not prefix:
        return True
    return key == prefix or key.startswith(prefix + "/")


def join(prefix: str, key: str) -> str:
    """Join two normalised key parts; either may be empty."""
    if not prefix:
        return key
    if not key:
        return prefix
    return f"{prefix}/{key}"


def relative_to(key: str, prefix: str) -> str:
    """Strip `prefix` (whole segments) from the front of `key`."""
    if not prefix:
        return key
    return key[len(prefix) + 1 :]


def normalize_glob(glob: str) -> str:
    """`glob` with its `.` and empty segments dropped, as keys drop theirs (`./a//*/` is `a/*`).

    Raises `InvalidKey` for what leaves the store, as a prefix would (a leading `/`, a `..`
    segment: no key could match, so it would silently match nothing), and for a glob that is
    left empty (`.`), which would otherwise match every key.
    """
    segments = glob.split("/")
    if glob.startswith("/") or ".." in segments:
        raise InvalidKey(
            f"Invalid glob {glob!r}: globs match keys, which are paths inside the store; write "
            "it relative to the store (or to the prefix), without '..', such as '*.json'"
        )
    kept = [part for part in segments if part not in ("", ".")]
    if not kept:
        raise InvalidKey(f"Invalid glob {glob!r}: it names no key; '**' matches every key")
    return "/".join(kept) if len(kept) != len(segments) else glob


def glob_literal_prefix(glob: str) -> str:
    """The leading segments of `glob` that hold no wildcard: a narrower place to start listing."""
    literal: list[str] = []
    for part in glob.split("/")[:-1]:
        if _GLOB_CHARS.intersection(part):
            break
        literal.append(part)
    return "/".join(literal)


@lru_cache(maxsize=256)
def compile_glob(glob: str) -> re.Pattern[str]:
    """Translate a key glob into a regex: `*` and `?` stay within a segment, `**` crosses them.

    `[abc]` and `[!abc]` are character classes. Raises `InvalidKey` on an unclosed class.
    """
    out: list[str] = []
    i, n = 0, len(glob)
    while i < n:
        char = glob[i]
        if char == "*":
            if glob.startswith("**", i):
                i += 2
                if glob.startswith("/", i):
                    # `a/**/b` also matches `a/b`
                    out.append("(?:.*/)?")
                    i += 1
                else:
                    out.append(".*")
                continue
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = glob.find("]", i + 2 if glob.startswith("[!", i) else i + 1)
            if end == -1:
                raise InvalidKey(f"Invalid glob {glob!r}: '[' at position {i} is never closed")
            body = glob[i + 1 : end]
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end
        else:
            out.append(re.escape(char))
        i += 1
    return re.compile("".join(out) + r"\Z", re.DOTALL)
