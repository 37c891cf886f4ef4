"""anystore-dbm: an example third-party anystore backend on the stdlib `dbm` module."""
