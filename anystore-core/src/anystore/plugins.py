"""The plugin manager: discovers plugins through entry points and maps URI schemes to backends.

Discovery runs once, at the first `get_store()` (never at `import anystore`), and is cached for the
process; `reset_plugins()` forgets it (tests). Plugins named in `ANYSTORE_DISABLE_PLUGINS` are not
loaded. The built-in backends register through the same hook as third-party ones.
"""

from __future__ import annotations

import importlib
import os
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pluggy

from anystore import hookspecs
from anystore.discovery import find_installed
from anystore.exceptions import BackendNotFound, InvalidOption, PluginError

BUILTIN_PLUGIN = "builtin"
# What a layer may be called (and what counts as a layer in `name::uri`).
LAYER_NAME = re.compile(r"[a-z][a-z0-9_-]*")

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
# The extra that installs the driver a scheme needs (SQLite's is in the standard library).
KNOWN_EXTRAS = {
    "postgresql": "[postgresql]",
    "postgres": "[postgresql]",
    "mysql": "[mysql]",
    "mariadb": "[mysql]",
}


@dataclass
class Registration:
    """One scheme served by one plugin."""

    scheme: str
    factory: str | Callable[..., Any]
    plugin: str
    preferred: bool = False
    kind: str = "://"
    """How the name is written in a URI: `://` after a backend's scheme, `::` after a layer's."""
    conflict: str | None = None
    """Set when two plugins claim the scheme: opening it raises this message as `PluginError`."""

    @property
    def label(self) -> str:
        """The name as a URI writes it: `redis://` or `gzip::`."""
        return self.scheme + self.kind

    def load(self) -> Callable[..., Any]:
        """Import the factory if it is a `module:attribute` string.

        Raises `PluginError` for a conflict or a factory string that names nothing (naming the
        plugin's distribution), `BackendNotFound` when the module needs a missing dependency.
        """
        if self.conflict is not None:
            raise PluginError(self.conflict)
        if not isinstance(self.factory, str):
            return self.factory
        module_name, _, attribute = self.factory.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as error:
            if isinstance(error, ModuleNotFoundError) and error.name == module_name:
                raise PluginError(
                    f"{plugin_origin(self.plugin)} registered {self.label} with the factory "
                    f"{self.factory!r}, but there is no module {module_name!r}: fix the "
                    "plugin's register() call or reinstall it."
                ) from None
            raise BackendNotFound(
                f"The {self.label} of plugin {self.plugin!r} cannot be imported "
                f"({error}). Install the plugin's missing dependency (see its README)."
            ) from error
        try:
            return getattr(module, attribute)  # type: ignore[no-any-return]
        except AttributeError:
            raise PluginError(
                f"{plugin_origin(self.plugin)} registered {self.label} with the factory "
                f"{self.factory!r}, but {module_name} has no attribute {attribute!r}."
            ) from None


@dataclass
class PluginInfo:
    """An installed plugin, for `anystore backends`."""

    name: str
    dist: Any = None
    """The importlib-metadata Distribution; None for the built-in plugin (anystore-core)."""
    schemes: list[str] = field(default_factory=list)
    layers: list[str] = field(default_factory=list)
    error: str | None = None
    """Why the plugin could not be loaded (it then serves no scheme)."""
    disabled: bool = False
    """Named in ANYSTORE_DISABLE_PLUGINS: installed, never imported."""

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
        self.layers: dict[str, Registration] = {}
        self.plugins: dict[str, PluginInfo] = {}


_registry = _Registry()


def plugin_origin(plugin: str) -> str:
    """`Plugin 'x' (distribution y)`, for messages, once discovery knows the distribution."""
    info = _registry.plugins.get(plugin)
    if info is None or info.dist is None:
        return f"Plugin {plugin!r}"
    return f"Plugin {plugin!r} (distribution {info.distribution})"


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


def _make_register_layer(plugin: str, found: list[Registration]) -> hookspecs.RegisterLayer:
    def register(name: str, factory: str | Callable[..., Any], *, preferred: bool = False) -> None:
        if not isinstance(name, str) or not LAYER_NAME.fullmatch(name):
            raise PluginError(
                f"Plugin {plugin!r} registered the layer name {name!r}: use lower case letters, "
                "digits, '-' and '_', starting with a letter"
            )
        if isinstance(factory, str) and ":" not in factory:
            raise PluginError(
                f"Plugin {plugin!r} registered factory {factory!r}: use 'package.module:Class'"
            )
        found.append(Registration(name, factory, plugin, preferred, kind="::"))

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
            # Only this scheme is unusable: every other plugin's schemes keep working.
            old.conflict = (
                f"Plugins {old.plugin!r} and {new.plugin!r} both serve {new.label}. Uninstall "
                f"one, disable one with ANYSTORE_DISABLE_PLUGINS={new.plugin}, or register one "
                "with preferred=True."
            )
    return schemes


def _unknown_hooks(module: Any) -> list[str]:
    """Names of the hook implementations in `module` that match no spec (misspelled hooks)."""
    marker = f"{hookspecs.PROJECT_NAME}_impl"
    return sorted(
        name
        for name in dir(module)
        if getattr(getattr(module, name, None), marker, None) is not None
        and not hasattr(hookspecs, name)
    )


def _broken(info: PluginInfo, why: str) -> PluginInfo:
    import warnings

    from anystore.exceptions import PluginWarning

    info.error = why
    warnings.warn(
        f"{_describe(info)} is not used: {why}. Fix or reinstall it, or set "
        f"ANYSTORE_DISABLE_PLUGINS={info.name}.",
        PluginWarning,
        stacklevel=4,
    )
    return info


def _describe(info: PluginInfo) -> str:
    return f"anystore plugin {info.name!r} (distribution {info.distribution})"


def load_plugins(disabled: set[str] | None = None) -> None:
    """Discover and register every plugin once per process (a no-op after the first call).

    `disabled` defaults to `ANYSTORE_DISABLE_PLUGINS`. A plugin that fails to import, implements
    an unknown hook or fails in its hook is left out with a `PluginWarning` (and shown by
    `anystore backends`); the other plugins' schemes keep working.
    """
    if _registry.loaded:
        return
    with _registry.lock:
        if _registry.loaded:
            return
        from anystore import builtin

        if disabled is None:
            from anystore.options import environment_options

            disabled = environment_options()[2]
        manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        manager.add_hookspecs(hookspecs)
        plugins = {BUILTIN_PLUGIN: PluginInfo(BUILTIN_PLUGIN)}
        _registry.plugins = plugins  # so that messages can name distributions meanwhile
        manager.register(builtin, name=BUILTIN_PLUGIN)
        installed = find_installed()
        if installed.foreign_anystore is not None:
            raise PluginError(
                f"anystore {installed.foreign_anystore} (a different project, published on PyPI "
                "as 'anystore') is installed beside anystore-core, and both install the import "
                "package 'anystore', so their files overwrite each other. Run: pip uninstall "
                "anystore && pip install --force-reinstall anystore-core"
            )
        for entry_point in installed.entry_points:
            if entry_point.name in plugins:
                continue
            if entry_point.name in disabled:
                # Listed, not loaded: messages can then say it is off rather than missing.
                plugins[entry_point.name] = PluginInfo(
                    entry_point.name, entry_point.dist, disabled=True
                )
                continue
            info = plugins[entry_point.name] = PluginInfo(entry_point.name, entry_point.dist)
            try:
                module = entry_point.load()
            except Exception as error:
                _broken(info, f"importing {entry_point.value} failed ({error!r})")
                continue
            unknown = _unknown_hooks(module)
            if unknown:
                _broken(info, _unknown_hook_message(unknown))
                continue
            manager.register(module, name=entry_point.name)
        backends = _call_hook(manager, "anystore_register_backends", _make_register, plugins)
        layers = _call_hook(manager, "anystore_register_layers", _make_register_layer, plugins)
        schemes, named_layers = _settle(backends), _settle(layers)
        for registration in schemes.values():
            plugins[registration.plugin].schemes.append(registration.scheme)
        for registration in named_layers.values():
            plugins[registration.plugin].layers.append(registration.scheme)
        _registry.manager, _registry.schemes, _registry.layers = manager, schemes, named_layers
        _registry.loaded = True
    _warn_unknown_disabled(disabled, plugins)


def _warn_unknown_disabled(disabled: set[str], plugins: dict[str, PluginInfo]) -> None:
    """Warn once about names in ANYSTORE_DISABLE_PLUGINS that no installed plugin has (a
    distribution name, a typo): they disable nothing."""
    unknown = sorted(disabled - set(plugins))
    if not unknown:
        return
    import warnings

    from anystore.exceptions import PluginWarning

    names = ", ".join(sorted(name for name in plugins if name != BUILTIN_PLUGIN)) or "none"
    warnings.warn(
        f"ANYSTORE_DISABLE_PLUGINS names {', '.join(map(repr, unknown))}, which no installed "
        f"plugin is called (it takes entry-point names; installed: {names}): nothing is "
        "disabled by it",
        PluginWarning,
        stacklevel=3,
    )


def _call_hook(
    manager: pluggy.PluginManager,
    hook: str,
    make_register: Callable[[str, list[Registration]], Any],
    plugins: dict[str, PluginInfo],
) -> list[Registration]:
    """Call `hook` of every plugin with its own `register`; a plugin whose hook fails is left
    out (all it registered through that hook), with a warning."""
    found: list[Registration] = []
    for impl in getattr(manager.hook, hook).get_hookimpls():
        mine: list[Registration] = []
        try:
            impl.function(register=make_register(impl.plugin_name, mine))
        except Exception as error:
            _broken(plugins[impl.plugin_name], f"its {hook} failed: {error}")
            continue
        found.extend(mine)
    return found


def _unknown_hook_message(unknown: list[str]) -> str:
    import difflib

    known = [name for name in dir(hookspecs) if name.startswith(hookspecs.PROJECT_NAME + "_")]
    hints = []
    for name in unknown:
        close = difflib.get_close_matches(name, known, n=1)
        hints.append(f"{name} (did you mean {close[0]}?)" if close else name)
    return f"it implements hooks anystore does not know: {', '.join(hints)}"


def reset_plugins() -> None:
    """Forget discovered plugins, so that the next `get_store()` discovers them again."""
    with _registry.lock:
        _registry.loaded = False
        _registry.manager = None
        _registry.schemes = {}
        _registry.layers = {}
        _registry.plugins = {}


def installed_plugins() -> list[PluginInfo]:
    """The discovered plugins with their distributions, versions, schemes and load errors."""
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
    off = _disabled_provider(base)
    if off is not None:
        raise BackendNotFound(
            f"{scheme}:// is served by the plugin {off.name!r} ({off.distribution}), which "
            f"is installed but disabled by ANYSTORE_DISABLE_PLUGINS: remove {off.name!r} "
            "from that variable to use it"
        )
    if base in KNOWN_DISTRIBUTIONS:
        driver = scheme.partition("+")[2]
        # The extra installs the default driver only (psycopg 3, PyMySQL): with another one
        # named, the plugin says which package it needs once it is installed.
        extra = KNOWN_EXTRAS.get(base, "") if driver in ("", "psycopg", "pymysql") else ""
        raise BackendNotFound(
            f'No backend for {scheme}:// is installed: pip install "{KNOWN_DISTRIBUTIONS[base]}'
            f'{extra}" (until it is on PyPI, from a clone of the repository: pip install '
            f'"./{KNOWN_DISTRIBUTIONS[base]}{extra}"; installed schemes: {served})'
        )
    if "*" in schemes and _fsspec_knows(base):
        return schemes["*"]
    first = uri.partition("::")[0]
    if "::" in uri and first.lower() in _registry.layers:
        # `GZIP::memory://x`: only lowercase names are layers, so this read as one odd scheme.
        raise BackendNotFound(
            f"{first}:: is not a layer, {first.lower()}:: is: layer names are lowercase "
            f"(installed layers: {', '.join(f'{name}::' for name in sorted(_registry.layers))})"
        )
    broken = [info for info in _registry.plugins.values() if info.error]
    note = "".join(f"; {_describe(info)} failed to load: {info.error}" for info in broken)
    raise BackendNotFound(f"No backend serves {scheme}:// (installed schemes: {served}){note}")


# `redis:/host`, `s3:bucket`, `memory:`: a scheme whose `//` went missing.
_SCHEME_TYPO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]+):(?!//)")
# Schemes whose URI is a path after `//`: `sqlite:///relative.db`, `sqlite:////abs.db`,
# `unix:///run/redis.sock`, `file:///abs`.
_PATH_SCHEMES = frozenset({"sqlite", "unix", "file", "local"})
# fsspec protocols whose own URIs have no `//` (`data:text/plain;base64,...`): such a URL is
# refused, any other name that starts so (`data:2024`) is a path.
_COLON_ONLY = frozenset({"data"})


def check_mistyped_uri(uri: str) -> None:
    """Raise `InvalidOption` for a store URI given as a string that would open a local folder
    but most likely means something else: a known scheme with its `//` missing (`redis:/host`),
    or whitespace around it (a value pasted with its newline). A `pathlib.Path` is a path and is
    never checked; a plain path of any other form passes."""
    if "://" in uri:
        return
    if not uri.strip() or uri[0].isspace() or uri[-1].isspace():
        raise InvalidOption(
            f"The store URI {uri!r} is blank or starts or ends with whitespace; for a folder "
            "whose name really does, pass it as a pathlib.Path (or a file:// URI)"
        )
    match = _SCHEME_TYPO.match(uri)
    if match is None:
        return
    scheme = match.group(1).lower()
    base = scheme.partition("+")[0]
    if base in _COLON_ONLY:
        if "," in uri:  # `data:[<type>][;base64],<data>` (RFC 2397): not a folder's name
            raise InvalidOption(
                f"{uri[:40]!r}... is a data: URL, which holds its value in itself: anystore has "
                f"no store for it. For a local folder of that name, write ./{uri[:40]}..."
            )
        return
    if base in _registry.schemes or base in KNOWN_DISTRIBUTIONS or _fsspec_knows(base):
        raise InvalidOption(
            f"The store URI {uri!r} looks like a {scheme}:// URI with its // missing: write "
            f"{_meant(scheme, base, uri[match.end() :])}. For a local folder of that name, "
            f"write ./{uri}"
        )


def _meant(scheme: str, base: str, rest: str) -> str:
    """The URI that `scheme:rest` most likely meant."""
    if base == "sqlite":
        return f"{scheme}:///{rest}"  # the path after three slashes; an absolute one has four
    if base in _PATH_SCHEMES:
        if rest.startswith("/"):
            return f"{scheme}://{rest}"
        return f"./{rest}" if base in ("file", "local") else f"{scheme}://{os.path.abspath(rest)}"
    return f"{scheme}://{rest.lstrip('/')}"


def _disabled_provider(base: str) -> PluginInfo | None:
    """The disabled plugin of the distribution known to serve `base`, if one is installed."""
    wanted = KNOWN_DISTRIBUTIONS.get(base)
    if wanted is None:
        return None
    for info in _registry.plugins.values():
        if info.disabled and info.distribution.replace("_", "-").lower() == wanted:
            return info
    return None


def split_layers(uri: str) -> tuple[list[str], str]:
    """Split `gzip::readonly::redis://x` into (["gzip", "readonly"], "redis://x").

    Only a chain of valid layer names counts: a path whose first part is not one (`./a::b`,
    `/data/a::b`) stays a path, while `data::2024` is read as the layer `data`."""
    if "::" not in uri:
        return [], uri
    names = []
    rest = uri
    while True:
        head, sep, tail = rest.partition("::")
        if not sep or not LAYER_NAME.fullmatch(head):
            break
        names.append(head)
        rest = tail
    return names, rest


def find_layer(name: str) -> Registration:
    """Return the registration of layer `name`, or raise `BackendNotFound` naming the installed
    layers."""
    registration = _registry.layers.get(name)
    if registration is not None:
        return registration
    known = ", ".join(f"{n}::" for n in sorted(_registry.layers)) or "none"
    raise BackendNotFound(f"No layer named {name}:: is installed (installed layers: {known})")


def _fsspec_knows(protocol: str) -> bool:
    from fsspec.registry import known_implementations, registry

    return protocol in known_implementations or protocol in registry


def _version(distribution: str) -> str:
    from importlib_metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return "unknown"
