import { createHash } from 'node:crypto';

/*
 * The Lua scripts of the Redis log. Each runs atomically on the server; every one but TRIM first
 * checks the log's epoch (EPOCH_LUA), so no command acts on a log that was lost without noticing.
 */

/**
 * The epoch of the log, shared by every script, which all run it first: which incarnation of the
 * log this is, kept beside it in the hash `<stream>:epoch` (`id`, `start`). Every entry carries
 * its epoch's id (field `z`), and every entry of an epoch comes after its `start`.
 *
 * A log that is missing (never made, or lost: Redis restarted without persistence, FLUSHALL, the
 * stream deleted) gets a new epoch, whose start is past anything the old log can have held: past
 * Redis's clock (entry ids are time-based), past what the caller saw, past the stream's last id.
 * So positions keep growing across epochs, and a position before `start` is from an older log.
 * A log that went back (restored from an older snapshot: its last id is before what the caller
 * saw in this same epoch, or the caller has proof of it) also gets a new epoch, moved past it with
 * XSETID. A stream without a record (written before epochs existed) is adopted as it is, from
 * the origin: no position is before it.
 *
 * KEYS[1] the stream, KEYS[2] its epoch record. ARGV[1] a fresh epoch id (used only to make one),
 * ARGV[2] the caller's epoch, ARGV[3] the furthest position it saw in it, ARGV[4] '1' when it has
 * proof that the log went back. Returns the epoch id, its start and the stream's last id (of its
 * newest entry, or the last generated one when it has none).
 */
const EPOCH_LUA = `
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms or 0), tonumber(seq or 0)
end
local function before(a, b)
  local am, as = parse(a)
  local bm, bs = parse(b)
  return am < bm or (am == bm and as < bs)
end
local function generated(log)
  local info = redis.call('XINFO', 'STREAM', log)
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then return info[i + 1] end
  end
  return '0-0'
end
local function epoch()
  local log, record = KEYS[1], KEYS[2]
  local fresh, known, seen, proof = ARGV[1], ARGV[2], ARGV[3], ARGV[4] == '1'
  local current = redis.call('HMGET', record, 'id', 'start')
  local id, start = current[1], current[2]
  local exists = redis.call('EXISTS', log) == 1
  local last = nil
  if exists then
    local newest = redis.call('XREVRANGE', log, '+', '-', 'COUNT', 1)
    if newest[1] then last = newest[1][1] else last = generated(log) end
    if not id then
      redis.call('HSET', record, 'id', fresh, 'start', '0-0')
      return fresh, '0-0', last
    end
    if id ~= known then return id, start, last end
    if not proof then
      if not before(last, seen) then return id, start, last end
      -- The newest entry may precede a start set by XSETID: the last generated id tells.
      local gen = generated(log)
      if not before(gen, seen) then return id, start, last end
    end
  end
  local now = redis.call('TIME')
  local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) + 1
  local seenMs = parse(seen) + 1
  if seenMs > ms then ms = seenMs end
  if last then
    local lastMs = parse(last) + 1
    if lastMs > ms then ms = lastMs end
  end
  start = string.format('%.0f', ms) .. '-0'
  if exists then
    redis.call('XSETID', log, start)
  else
    -- Creates the stream empty, its last generated id at the start: every entry comes after it.
    redis.call('XADD', log, 'MAXLEN', '=', '0', start, 'epoch', fresh)
  end
  redis.call('HSET', record, 'id', fresh, 'start', start)
  return fresh, start, start
end
`;

/**
 * Appends drafts atomically: every chosen id is checked first, so a duplicate appends nothing.
 * Each entry records `p`, the id of the entry before it (the stream's last generated id), so that
 * after trimming the first retained entry tells exactly where the lost part of the log ends —
 * Redis itself does not remember it (`max-deleted-entry-id` only follows XDEL, not trimming) —
 * and `z`, its epoch.
 *
 * A chosen id is taken while the entry it names is in the stream: its key outlives the entry
 * when the entry was trimmed by count or belonged to a log that was lost.
 *
 * A draft with a key also becomes its slot's latest value (see `LatestKeeping` in core/log.ts),
 * in the same script: one script at a time and entry ids that only grow mean the later event in
 * the log always wins, whichever node appended it. A tenant's slots are the hash
 * `<stream>:latest:<tenant bytes>:<tenant>`, field `<topic bytes>:<topic>:<key>`, value
 * `<entry id> <JSON>`; the sorted set `<stream>:latest-order` scores every slot by when it was
 * last updated (`<ms> * 1024 + <seq>`, exact in a double until the year 2245; past 1023 entries
 * in one millisecond, ties fall back to member order), member `<tenant bytes>:<tenant><field>`.
 * Past latestMaxKeys the lowest scores are evicted, across tenants. Lengths are in bytes, as Lua
 * counts them. Keyed drafts are listed after all the drafts, so an append without keys does no
 * more work than before the slots existed.
 *
 * An evicted slot's hash may be a key not in KEYS (another tenant's). That is safe only because
 * every key of a log shares its hash tag on Redis Cluster, as the `stream` option requires.
 *
 * KEYS: the log, its epoch record, the latest order, then one `<stream>:id:<chosenIdKey>` per
 * chosen id, then one hash per tenant with keyed drafts.
 * ARGV: the epoch's four (see EPOCH_LUA), maxEvents, maxAgeMs, trim by age now ('1'|'0'),
 * latestMaxKeys, the prefix `<stream>:latest:`, the number of drafts n; then per draft: JSON,
 * index in KEYS or '0' (negative: an id that may be reused, pointed at the new entry whether taken
 * or not); then per keyed draft: its number (1-based), the index of its tenant's hash in KEYS,
 * its field.
 * Returns {1, epoch id, epoch start, entry ids…}, or {0, index in KEYS of the duplicate}.
 */
const APPEND_SCRIPT = `${EPOCH_LUA}
local log = KEYS[1]
local id, start, last = epoch()
local drafts = 11 + 2 * tonumber(ARGV[10])
for i = 11, drafts - 1, 2 do
  local chosen = tonumber(ARGV[i + 1])
  if chosen > 0 then
    local pos = redis.call('GET', KEYS[chosen])
    if pos and string.match(pos, '^%d+%-%d+$') and redis.call('XRANGE', log, pos, pos)[1] then
      return {0, chosen}
    end
  end
end
local prev = last
local ids = {1, id, start}
for i = 11, drafts - 1, 2 do
  local entry = redis.call('XADD', log, 'MAXLEN', '=', ARGV[5], '*', 'e', ARGV[i], 'p', prev, 'z', id)
  local chosen = tonumber(ARGV[i + 1])
  if chosen ~= 0 then redis.call('SET', KEYS[math.abs(chosen)], entry, 'PX', ARGV[6]) end
  ids[#ids + 1] = entry
  prev = entry
end
if drafts <= #ARGV then
  local prefix = #ARGV[9]
  for i = drafts, #ARGV, 3 do
    local n = tonumber(ARGV[i])
    local entry = ids[3 + n]
    local hash, field = KEYS[tonumber(ARGV[i + 1])], ARGV[i + 2]
    redis.call('HSET', hash, field, entry .. ' ' .. ARGV[9 + 2 * n])
    local ms, seq = string.match(entry, '^(%d+)-(%d+)$')
    seq = tonumber(seq)
    if seq > 1023 then seq = 1023 end
    local score = string.format('%.0f', tonumber(ms) * 1024 + seq)
    redis.call('ZADD', KEYS[3], score, string.sub(hash, prefix + 1) .. field)
  end
  local over = redis.call('ZCARD', KEYS[3]) - tonumber(ARGV[8])
  if over > 0 then
    local gone = redis.call('ZPOPMIN', KEYS[3], over)
    for j = 1, #gone, 2 do
      local bytes, rest = string.match(gone[j], '^(%d+):(.*)$')
      bytes = tonumber(bytes)
      redis.call('HDEL', ARGV[9] .. bytes .. ':' .. string.sub(rest, 1, bytes), string.sub(rest, bytes + 1))
    end
  end
end
if ARGV[7] == '1' then
  local now = redis.call('TIME')
  local cutoff = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - tonumber(ARGV[6])
  if cutoff > 0 then redis.call('XTRIM', log, 'MINID', '=', string.format('%.0f', cutoff)) end
end
return ids
`;

/** Trims by age, by Redis's clock (entry ids carry it). KEYS: the log. ARGV: maxAgeMs. */
const TRIM_SCRIPT = `
local now = redis.call('TIME')
local cutoff = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - tonumber(ARGV[1])
if cutoff <= 0 then return 0 end
return redis.call('XTRIM', KEYS[1], 'MINID', '=', string.format('%.0f', cutoff))
`;

/**
 * Where the log stands, without shipping entries to the client. KEYS: the log, its epoch record,
 * optionally a chosen-id key. ARGV: the epoch's four. Returns {epoch id, epoch start, last
 * generated id, where the trimmed part ends or '' when unknown, first entry id or '', entry of the
 * chosen id or ''}.
 */
const WHERE_SCRIPT = `${EPOCH_LUA}
local id, start = epoch()
local chosen = ''
if KEYS[3] then chosen = redis.call('GET', KEYS[3]) or '' end
local info = redis.call('XINFO', 'STREAM', KEYS[1])
local last, first, boundary, added, length = '0-0', '', '', 0, 0
for i = 1, #info, 2 do
  local name, value = info[i], info[i + 1]
  if name == 'last-generated-id' then last = value
  elseif name == 'entries-added' then added = value
  elseif name == 'length' then length = value
  elseif name == 'first-entry' and value then
    first = value[1]
    local fields = value[2]
    for j = 1, #fields, 2 do
      if fields[j] == 'p' then boundary = fields[j + 1] end
    end
  end
end
if boundary == '' and first ~= '' and added == length then boundary = '0-0' end
return {id, start, last, boundary, first, chosen}
`;

/** The epoch alone, made when missing. KEYS: the log, its epoch record. ARGV: the epoch's four. */
const CHECK_SCRIPT = `${EPOCH_LUA}
local id, start, last = epoch()
return {id, start, last}
`;

export interface Script {
  readonly source: string;
  readonly sha: string;
}

export const script = (source: string): Script => ({
  source,
  sha: createHash('sha1').update(source).digest('hex'),
});
export const APPEND = script(APPEND_SCRIPT);
export const TRIM = script(TRIM_SCRIPT);
export const WHERE = script(WHERE_SCRIPT);
export const CHECK = script(CHECK_SCRIPT);
