"""The layers that ship with anystore-core: `readonly::` and `gzip::` (see `anystore.layer`)."""
