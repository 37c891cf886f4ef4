"""Entry point of anystore-dbm: registers `dbm://` (the backend is imported only when used)."""

from anystore import hookimpl
from anystore.hookspecs import RegisterBackend


@hookimpl
def anystore_register_backends(register: RegisterBackend) -> None:
    """Serve `dbm:///path/to/file.db`."""
    register("dbm", "anystore_dbm.backend:DbmBackend")
