"""The plugin manager: discovers plugins through entry points and maps URI schemes to backends.

Discovery runs once, at the first `get_store()` (never at `import anystore`), and is cached for the
process; `reset_plugins()` forgets it (tests). Plugins named in `ANYSTORE_DISABLE_PLUGINS` are not
loaded. The built-in backends register through the same hook as third-party ones.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pluggy

from anystore import hookspecs
from anystore.discovery import find_entry_points
from anystore.exceptions import BackendNotFound, PluginError

BUILTIN_PLUGIN = "builtin"

# Schemes served by this project's own plugin distributions: a user who opens one of these without
# the plugin installed is told exactly what to install.
KNOWN_DISTRIBUTIONS = {
    "redis": "anystore-redis",
    "rediss": "anystore-redis",
    "unix": "anystore-redis",
    "s3": "anystore-s3",
    "sqlite": "anystore-sql",
    "postgresql": "anystore-sql",
    "postgres": "anystore-sql",
    "mysql": "anystore-sql",
    "mariadb": "anystore-sql",
}


@dataclass
class Registration:
    """One scheme served by one plugin."""

    scheme: str
    factory: str | Callable[..., Any]
    plugin: str
    preferred: bool = False

    def load(self) -> Callable[..., Any]:
        """Import the factory if it is a `module:attribute` string."""
        if not isinstance(self.factory, str):
            return self.factory
        module_name, _, attribute = self.factory.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as error:
            raise BackendNotFound(
                f"The {self.scheme}:// backend of plugin {self.plugin!r} cannot be imported "
                f"({error}). Install the plugin's missing dependency (see its README)."
            ) from error
        return getattr(module, attribute)


@dataclass
class PluginInfo:
    """An installed plugin, for `anystore backends`."""

    name: str
    dist: Any = None
    """The importlib-metadata Distribution; None for the built-in plugin (anystore-core)."""
    schemes: list[str] = field(default_factory=list)

    # Name and version are read on demand: they parse metadata files, which start-up avoids.
    @property
    def distribution(self) -> str:
        """The name of the distribution that provides the plugin."""
        return "anystore-core" if self.dist is None else str(self.dist.name)

    @property
    def version(self) -> str:
        """The version of that distribution."""
        return _version("anystore-core") if self.dist is None else str(self.dist.version)


class _Registry:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.loaded = False
        self.manager: pluggy.PluginManager | None = None
        self.schemes: dict[str, Registration] = {}
        self.plugins: dict[str, PluginInfo] = {}


_registry = _Registry()


def _make_register(plugin: str, found: list[Registration]) -> hookspecs.RegisterBackend:
    def register(
        schemes: str | Iterable[str],
        factory: str | Callable[..., Any],
        *,
        preferred: bool = False,
    ) -> None:
        names = [schemes] if isinstance(schemes, str) else list(schemes)
        if isinstance(factory, str) and ":" not in factory:
            raise PluginError(
                f"Plugin {plugin!r} registered factory {factory!r}: use 'package.module:Class'"
            )
        for scheme in names:
            found.append(Registration(scheme.lower(), factory, plugin, preferred))

    return register


def _settle(found: list[Registration]) -> dict[str, Registration]:
    schemes: dict[str, Registration] = {}
    for new in found:
        old = schemes.get(new.scheme)
        if old is None or old.plugin == new.plugin or (new.preferred and not old.preferred):
            schemes[new.scheme] = new
        elif old.preferred and not new.preferred:
            continue
        else:
            raise PluginError(
                f"Plugins {old.plugin!r} and {new.plugin!r} both serve {new.scheme}://. Uninstall "
                f"one, disable one with ANYSTORE_DISABLE_PLUGINS={new.plugin}, or register one "
                "with preferred=True."
            )
    return schemes


def load_plugins(disabled: set[str] | None = None) -> None:
    """Discover and register every plugin once per process (a no-op after the first call).

    Raises `PluginError` for a hook that matches no spec or a scheme claimed twice.
    """
    if _registry.loaded:
        return
    with _registry.lock:
        if _registry.loaded:
            return
        from anystore import builtin

        disabled = disabled or set()
        manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        manager.add_hookspecs(hookspecs)
        plugins = {BUILTIN_PLUGIN: PluginInfo(BUILTIN_PLUGIN)}
        manager.register(builtin, name=BUILTIN_PLUGIN)
        for entry_point in find_entry_points():
            if entry_point.name in disabled or entry_point.name in plugins:
                continue
            try:
                module = entry_point.load()
            except Exception as error:
                raise PluginError(
                    f"Plugin {entry_point.name!r} ({entry_point.value}) failed to load: {error}. "
                    f"Reinstall it, or set ANYSTORE_DISABLE_PLUGINS={entry_point.name}."
                ) from error
            manager.register(module, name=entry_point.name)
            plugins[entry_point.name] = PluginInfo(entry_point.name, entry_point.dist)
        try:
            manager.check_pending()
        except pluggy.PluginValidationError as error:
            raise PluginError(
                f"Plugin {error.plugin!r} implements a hook anystore does not know: {error}"
            ) from None
        found: list[Registration] = []
        for impl in manager.hook.anystore_register_backends.get_hookimpls():
            impl.function(register=_make_register(impl.plugin_name, found))
        schemes = _settle(found)
        for registration in schemes.values():
            plugins[registration.plugin].schemes.append(registration.scheme)
        _registry.manager, _registry.schemes, _registry.plugins = manager, schemes, plugins
        _registry.loaded = True


def reset_plugins() -> None:
    """Forget discovered plugins, so that the next `get_store()` discovers them again."""
    with _registry.lock:
        _registry.loaded = False
        _registry.manager = None
        _registry.schemes = {}
        _registry.plugins = {}


def installed_plugins() -> list[PluginInfo]:
    """The loaded plugins with their distributions, versions and schemes."""
    load_plugins()
    return list(_registry.plugins.values())


def uri_scheme(uri: str) -> str:
    """The scheme of `uri` in lower case; a plain path (no `://`) is `file`."""
    scheme, sep, _ = uri.partition("://")
    return scheme.lower() if sep else "file"


def find_backend(uri: str) -> Registration:
    """Return the registration serving `uri`'s scheme, or raise `BackendNotFound`."""
    scheme = uri_scheme(uri)
    schemes = _registry.schemes
    registration = schemes.get(scheme) or schemes.get(scheme.partition("+")[0])
    if registration is not None:
        return registration
    base = scheme.partition("+")[0]
    served = ", ".join(f"{s}://" for s in sorted(schemes) if s != "*")
    if base in KNOWN_DISTRIBUTIONS:
        raise BackendNotFound(
            f"No backend for {scheme}:// is installed: pip install {KNOWN_DISTRIBUTIONS[base]} "
            f"(installed schemes: {served})"
        )
    if "*" in schemes and _fsspec_knows(base):
        return schemes["*"]
    raise BackendNotFound(f"No backend serves {scheme}:// (installed schemes: {served})")


def _fsspec_knows(protocol: str) -> bool:
    from fsspec.registry import known_implementations, registry

    return protocol in known_implementations or protocol in registry


def _version(distribution: str) -> str:
    from importlib_metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return "unknown"
