"""The Lua scripts of the Redis backend: each runs atomically on the server, in one round trip.

Every write through anystore stamps the value's metadata hash with a fresh version token (field
`v`) in the same atomic step as the value itself; delete and pop remove the hash. A read handle
remembers the token and the size it opened on, and each range it reads checks both in the same
MULTI, so it never returns bytes of two versions (see `streams.py`).
"""

from __future__ import annotations

# Shared tail of PUT and COMMIT: timestamps, version and expiry of one value's metadata hash.
# `value` and `meta` are key names, `now` the time, `version` the token, `ttl` ms (0: none).
_STAMP = """
local function stamp(value, meta, now, version, ttl)
  redis.call('HSETNX', meta, 'c', now)
  redis.call('HSET', meta, 'u', now, 'v', version)
  if ttl > 0 then
    redis.call('PEXPIRE', meta, ttl)
  else
    redis.call('PERSIST', meta)
  end
end
"""

# put and put_many: each value with its stamp (and expiry), a whole batch in one call, so a put
# costs about what a plain SET costs. One version token serves the whole call: a reader opened
# before the call sees another token, one opened after it sees the new values.
# KEYS: value1, meta1, value2, meta2, ... ARGV: now, ttl ms ("0": none), version, data1, data2...
PUT = (
    _STAMP
    + """
local now, ttl, version = ARGV[1], tonumber(ARGV[2]), ARGV[3]
for i = 1, #KEYS, 2 do
  local data = ARGV[3 + (i + 1) / 2]
  if ttl > 0 then
    redis.call('SET', KEYS[i], data, 'PX', ttl)
  else
    redis.call('SET', KEYS[i], data)
  end
  stamp(KEYS[i], KEYS[i + 1], now, version, ttl)
end
"""
)

# Publish a streaming write: RENAME the temp key over the value, but only when it still holds
# every byte written (a cleanup or its expiry may have removed it). Returns 1, or 0 when not.
# KEYS: temp, value, meta. ARGV: bytes written, ttl ms ("0": none), now, version.
COMMIT = (
    _STAMP
    + """
local length, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
if length == 0 then
  redis.call('SET', KEYS[2], '')
else
  if redis.call('STRLEN', KEYS[1]) ~= length then
    return 0
  end
  redis.call('RENAME', KEYS[1], KEYS[2])
end
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[2], ttl)
else
  redis.call('PERSIST', KEYS[2])  -- the temp key's own expiry must not stay on the value
end
stamp(KEYS[2], KEYS[3], ARGV[3], ARGV[4], ttl)
return 1
"""
)

# Open a read handle: whether the value exists, its size and its version token ('' if none).
# KEYS: value, meta.
OPEN = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  return false
end
return {redis.call('STRLEN', KEYS[1]), redis.call('HGET', KEYS[2], 'v') or ''}
"""

# stat: size, created, updated and PTTL of a value in one call (a pipeline of four commands cost
# ~2x a GET in redis-py's client code alone). Returns false when the value is missing; '' stands
# for a missing timestamp (a nil would cut the reply short). KEYS: value, meta.
STAT = """
local ttl = redis.call('PTTL', KEYS[1])
if ttl == -2 then
  return false  -- PTTL -2: no such key (and saves an EXISTS)
end
local times = redis.call('HMGET', KEYS[2], 'c', 'u')
return {redis.call('STRLEN', KEYS[1]), times[1] or '', times[2] or '', ttl}
"""

# Remove streaming-write temp keys idle for at least ARGV[2] ms. A writer renews its temp key's
# expiry (ARGV[1] ms, the lease) with every chunk, so lease - PTTL is the time since its last
# write. A temp key without an expiry (a foreign or older writer) gets the lease now, which
# starts its clock for a later cleanup. KEYS: temp keys. Returns how many were removed.
CLEANUP = """
local lease, threshold, removed = tonumber(ARGV[1]), tonumber(ARGV[2]), 0
for _, key in ipairs(KEYS) do
  local left = redis.call('PTTL', key)
  if left == -1 then
    redis.call('PEXPIRE', key, lease)
  elseif left >= 0 and lease - left >= threshold then
    redis.call('DEL', key)
    removed = removed + 1
  end
end
return removed
"""

# Compare-and-delete for releasing a lock: only the holder's token may remove it.
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
