"""anystore_redis: the redis backend plugin for anystore."""
