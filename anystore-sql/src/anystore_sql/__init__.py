"""anystore_sql: the sql backend plugin for anystore."""
