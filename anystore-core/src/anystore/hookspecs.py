"""Every hook an anystore plugin can implement. Each docstring is the plugin author's documentation.

A plugin is a module named by an entry point in the `anystore` group of its distribution:

    [project.entry-points.anystore]
    redis = "anystore_redis.plugin"

and implements hooks with the `hookimpl` marker:

    from anystore import hookimpl

    @hookimpl
    def anystore_register_backends(register):
        register(["redis", "rediss"], "anystore_redis.backend:RedisBackend")

Keep that module tiny: it is imported when plugins are discovered (the first `get_store()`), while
the module behind the factory string is imported only when its scheme is opened. A hook
implementation whose name matches no spec below is an error at discovery time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

import pluggy

PROJECT_NAME = "anystore"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


class RegisterBackend(Protocol):
    """The `register` callable handed to `anystore_register_backends`."""

    def __call__(
        self,
        schemes: str | Iterable[str],
        factory: str | Callable[..., Any],
        *,
        preferred: bool = False,
    ) -> None: ...


class RegisterLayer(Protocol):
    """The `register` callable handed to `anystore_register_layers`."""

    def __call__(
        self, name: str, factory: str | Callable[..., Any], *, preferred: bool = False
    ) -> None: ...


@hookspec
def anystore_register_backends(register: RegisterBackend) -> None:
    """Register the backends this plugin provides, by URI scheme.

    Call `register(schemes, factory)` once per backend:

    * `schemes`: one scheme or several (`"redis"`, `["sqlite", "postgresql"]`), lower case,
      without `://`. A URI `scheme+driver://...` is served by the `scheme+driver` registration if
      there is one, else by `scheme`'s.
    * `factory`: a `"package.module:ClassName"` string (preferred: imported only when a store for
      the scheme is opened) or a callable. It is called as `factory(uri, **options)` and returns an
      `anystore.backend.Backend`; `options` are the keyword options of `get_store()` that are not
      Store options, merged over `ANYSTORE_BACKEND_CONFIG`.
    * `preferred=True` settles a conflict: when two plugins claim one scheme, discovery fails
      with an error naming both, unless exactly one of them is preferred.

    Added in 0.1.
    """


@hookspec
def anystore_register_layers(register: RegisterLayer) -> None:
    """Register layers: wrappers around a backend, chosen in a URI as `name::inner-uri`.

    Call `register(name, factory)` once per layer:

    * `name`: lower case letters, digits, `-` and `_` (`"gzip"`, `"readonly"`); users write
      `gzip::redis://host/0/x`, and layers stack outermost first (`readonly::gzip::/data`).
    * `factory`: a `"package.module:ClassName"` string (imported only when a URI names the layer)
      or a callable, called as `factory(inner)` with the `anystore.backend.Backend` it wraps; it
      returns a Backend, usually a subclass of `anystore.layer.Layer`, which forwards every call
      to `inner` so that the layer overrides only what it changes. A layer that transforms bytes
      must wrap the handles of `open_read`/`open_write` too, so that streams and `copy` see it.
    * `preferred=True` settles two plugins registering one name, as for backends.

    `anystore backends` lists layers beside backends. Added in 0.2.
    """
