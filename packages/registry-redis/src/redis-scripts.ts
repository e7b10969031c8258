import { createHash } from "node:crypto";
import type { Redis } from "ioredis";

/*
 * The Lua scripts behind every write and every list read, so each is atomic: several
 * registries, several sweepers, and providers heartbeating at once never see or leave a half
 * change. Times come from Redis `TIME` inside the script (no client clock is trusted). Every
 * change of a provider list takes a new global version (`INCR <prefix>:version`), stores it as the
 * service's version and publishes it on `<prefix>:changes`; a heartbeat of a member that is
 * already listed with the same JSON changes nothing and publishes nothing.
 *
 * The global version never repeats, even when its key is deleted (FLUSHDB, a server restarted
 * empty): a missing counter restarts at the current time in ms, beyond any earlier value unless
 * more than 1,000 changes a second went on for longer than the key was gone. Consumers compare
 * versions for equality only, so a repeated number could hide a change.
 *
 * The sweep script builds the keys of each service from the prefix, so it (like the prefix-wide
 * version bump) needs a standalone server or Sentinel: it is not Redis Cluster compatible.
 */

const prelude = `
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function next_version(global_key, now)
  if redis.call('EXISTS', global_key) == 0 then redis.call('SET', global_key, now) end
  return redis.call('INCR', global_key)
end
`;

/** A Lua script and its SHA1, run with EVALSHA (EVAL when the server does not know it yet). */
export interface Script {
  readonly name: string;
  readonly lua: string;
  readonly sha: string;
  readonly keys: number;
}

function script(name: string, keys: number, body: string): Script {
  const lua = `${prelude}${body}`;
  return Object.freeze({ name, lua, keys, sha: createHash("sha1").update(lua).digest("hex") });
}

/**
 * Register and heartbeat, one script: lists the endpoint (member = id, score = now), stores its
 * JSON, and adds the service to the sweep's list. A new member, or JSON that differs from the
 * stored one (an entry deleted or altered by hand), is a change: new version, published.
 * KEYS: providers, endpoints, service version, services, global version.
 * ARGV: id, JSON, service, channel. Returns the new version, or 0 when nothing changed.
 */
export const heartbeatScript = script(
  "heartbeat",
  5,
  `
local now = now_ms()
local changed = redis.call('ZADD', KEYS[1], now, ARGV[1]) == 1
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
  changed = true
end
redis.call('SADD', KEYS[4], ARGV[3])
if not changed then return 0 end
local version = next_version(KEYS[5], now)
redis.call('SET', KEYS[3], version)
redis.call('PUBLISH', ARGV[4], version)
return version
`,
);

/**
 * Unregister: removes the endpoint at once; a change when it was listed.
 * KEYS: providers, endpoints, service version, global version. ARGV: id, channel.
 * Returns the new version, or 0 when it was not listed.
 */
export const unregisterScript = script(
  "unregister",
  4,
  `
local removed = redis.call('ZREM', KEYS[1], ARGV[1]) + redis.call('HDEL', KEYS[2], ARGV[1])
if removed == 0 then return 0 end
local version = next_version(KEYS[4], now_ms())
redis.call('SET', KEYS[3], version)
redis.call('PUBLISH', ARGV[2], version)
return version
`,
);

/**
 * A consumer's report: lists the consumer (member = its JSON, score = now). Informational only:
 * never a change. KEYS: consumers, services. ARGV: member, service.
 */
export const consumerScript = script(
  "consumer",
  2,
  `
redis.call('ZADD', KEYS[1], now_ms(), ARGV[1])
redis.call('SADD', KEYS[2], ARGV[2])
return 1
`,
);

/**
 * One consistent read of a service: its version and the JSON of its first `max` members (by
 * report time), values over `maxBytes` left out. Missing hash fields are skipped.
 * KEYS: providers, endpoints, service version. ARGV: max entries, max bytes.
 * Returns { version or "", { JSON, ... } }.
 */
export const readScript = script(
  "read",
  3,
  `
local version = redis.call('GET', KEYS[3]) or ''
local ids = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
local max_bytes = tonumber(ARGV[2])
local out = {}
for i = 1, #ids, 500 do
  local chunk = {}
  for j = i, math.min(i + 499, #ids) do chunk[#chunk + 1] = ids[j] end
  local values = redis.call('HMGET', KEYS[2], unpack(chunk))
  for j = 1, #values do
    local value = values[j]
    if value and string.len(value) <= max_bytes then out[#out + 1] = value end
  end
end
return { version, out }
`,
);

/**
 * Publish or delete the governance rules text of a service: a change (new version, published)
 * only when the stored text differs. Rules carry no heartbeat and are never swept.
 * KEYS: rules, service version, global version. ARGV: "set" or "del", the text, channel.
 * Returns the new version, or 0 when nothing changed.
 */
export const rulesScript = script(
  "rules",
  3,
  `
local kind = redis.call('TYPE', KEYS[1])['ok']
if ARGV[1] == 'del' then
  if kind == 'none' then return 0 end
  redis.call('DEL', KEYS[1])
else
  if kind == 'string' and redis.call('GET', KEYS[1]) == ARGV[2] then return 0 end
  redis.call('SET', KEYS[1], ARGV[2])
end
local version = next_version(KEYS[3], now_ms())
redis.call('SET', KEYS[2], version)
redis.call('PUBLISH', ARGV[3], version)
return version
`,
);

/**
 * One consistent read of a service's rules: its version and the first `maxBytes` + 1 bytes of the
 * text (a longer text is never sent whole); "" when there is none or the key is not a string.
 * KEYS: rules, service version. ARGV: max bytes. Returns { version or "", text or "" }.
 */
export const readRulesScript = script(
  "read-rules",
  2,
  `
local version = redis.call('GET', KEYS[2]) or ''
local text = ''
if redis.call('TYPE', KEYS[1])['ok'] == 'string' then text = redis.call('GETRANGE', KEYS[1], 0, tonumber(ARGV[1])) end
return { version, text }
`,
);

/**
 * The sweep. Every call records the server time as the sweepers' last contact. A call that finds
 * no contact for longer than `silenceMs` (no sweeper reached Redis: the server was down or
 * restarted, or every registry was cut off) starts a grace period of `expireAfterMs` in which
 * nothing is swept, so providers that could not report during the outage have time to report
 * again. Outside grace, at most one call per `intervalMs` (whichever registry comes first) sweeps:
 * for every service on the list, providers whose last report is older than `expireAfterMs` are
 * removed (at most `max` per service per sweep), hash fields without a listed member are dropped,
 * stale consumers are removed, and a service with nothing left leaves the list. All services
 * changed by one sweep take one new global version, published once.
 * KEYS: sweeper state, services, global version. ARGV: prefix, channel, expireAfterMs, silenceMs,
 * intervalMs, max. Returns { "grace" | "skipped" | "swept", providers removed }.
 */
export const sweepScript = script(
  "sweep",
  3,
  `
local prefix, channel = ARGV[1], ARGV[2]
local expire, silence, interval, max = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local now = now_ms()
local contact = tonumber(redis.call('HGET', KEYS[1], 'contact'))
redis.call('HSET', KEYS[1], 'contact', now)
if contact == nil or now - contact > silence then
  redis.call('HSET', KEYS[1], 'graceUntil', now + expire)
  return { 'grace', 0 }
end
if now < (tonumber(redis.call('HGET', KEYS[1], 'graceUntil')) or 0) then return { 'grace', 0 } end
if now - (tonumber(redis.call('HGET', KEYS[1], 'sweptAt')) or 0) < interval then return { 'skipped', 0 } end
redis.call('HSET', KEYS[1], 'sweptAt', now)
local total = 0
local changed = {}
for _, service in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local base = prefix .. ':{' .. service .. '}:'
  local providers, endpoints, consumers = base .. 'providers', base .. 'endpoints', base .. 'consumers'
  local stale = redis.call('ZRANGEBYSCORE', providers, '-inf', now - expire, 'LIMIT', 0, max)
  if #stale > 0 then
    total = total + redis.call('ZREM', providers, unpack(stale))
    redis.call('HDEL', endpoints, unpack(stale))
    changed[#changed + 1] = base .. 'version'
  end
  local fields = redis.call('HLEN', endpoints)
  if fields > redis.call('ZCARD', providers) and fields <= 10000 then
    for _, id in ipairs(redis.call('HKEYS', endpoints)) do
      if not redis.call('ZSCORE', providers, id) then redis.call('HDEL', endpoints, id) end
    end
  end
  redis.call('ZREMRANGEBYSCORE', consumers, '-inf', now - expire)
  if redis.call('EXISTS', providers, endpoints, consumers) == 0 then redis.call('SREM', KEYS[2], service) end
end
if #changed > 0 then
  local version = next_version(KEYS[3], now)
  for _, key in ipairs(changed) do redis.call('SET', key, version) end
  redis.call('PUBLISH', channel, version)
end
return { 'swept', total }
`,
);

/**
 * Runs `s` with EVALSHA, and with EVAL when the server does not have it cached (a new or
 * restarted server answers NOSCRIPT); the EVAL caches it for the next time.
 */
export async function runScript(client: Redis, s: Script, keys: readonly string[], args: readonly (string | number)[]): Promise<unknown> {
  if (keys.length !== s.keys) throw new Error(`script ${s.name}: ${keys.length} keys given, ${s.keys} expected`);
  try {
    return await client.evalsha(s.sha, s.keys, ...keys, ...args);
  } catch (error) {
    if (!(error instanceof Error) || !error.message.startsWith("NOSCRIPT")) throw error;
    return client.eval(s.lua, s.keys, ...keys, ...args);
  }
}
