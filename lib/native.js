'use strict'

// The native binding (load.js finds it) and the constants shared with it, defined there once
// (`binding.protocol()`): layout version, default file mode, wait-site numbers, fast-call results,
// the detached id, the status table and the region offsets. Every other file of lib/ takes them
// from here.

const { binding, BINDING_SOURCE } = require('./load.js')

/** Constants shared with the native side. */
const PROTOCOL = binding.protocol()
const OFFSETS = PROTOCOL.offsets
/** Status of a native fast call (negative) → `{ status, code, message }`. */
const STATUS = new Map(PROTOCOL.statuses.map((s) => [s.status, s]))

/**
 * This thread's argument block: the fast calls take no JS arguments (Node-API charges about as
 * much per argument read and per result returned as the operation itself costs), so each call
 * writes them into these words, calls, and reads its result from word 0. Nothing else uses the
 * block, and a fast call never runs JS, so calls cannot overlap. The binding keeps one block per
 * thread and returns it to every copy of this file loaded in the thread.
 */
const FAST = (() => {
  const view = binding.fastCallBlock(new Uint8Array(new SharedArrayBuffer(32)))
  return new Int32Array(view.buffer, view.byteOffset, 8)
})()

const {
  poolAcquire: nativeAcquire, poolRelease: nativeRelease, poolHandoff: nativeHandoff,
  poolAdopt: nativeAdopt, channelSend: nativeSend, channelRecv: nativeRecv,
} = binding

// The fast calls (see fastcall.rs for what each returns). Slots and generations are 32-bit
// unsigned; stored into an Int32Array they keep their bits, which is what the binding reads.

/** `pool` → slot index, or NONE when every slot is in use. */
function poolAcquire(pool) {
  FAST[0] = pool
  nativeAcquire()
  return FAST[0]
}

/** → 1 if parked acquirers must be woken, else 0. */
function poolRelease(pool, slot, generation) {
  FAST[0] = pool
  FAST[1] = slot
  FAST[2] = generation
  nativeRelease()
  return FAST[0]
}

/** → 0. */
function poolHandoff(pool, slot, generation, length) {
  FAST[0] = pool
  FAST[1] = slot
  FAST[2] = generation
  FAST[3] = length
  nativeHandoff()
  return FAST[0]
}

/** → the length the sender recorded. */
function poolAdopt(pool, slot, generation) {
  FAST[0] = pool
  FAST[1] = slot
  FAST[2] = generation
  nativeAdopt()
  return FAST[0]
}

/** → 1 sent and receivers must be woken, 0 sent, NONE full. */
function channelSend(channel, pool, slot, generation, length) {
  FAST[0] = channel
  FAST[1] = pool
  FAST[2] = slot
  FAST[3] = generation
  FAST[4] = length
  nativeSend()
  return FAST[0]
}

/** → `slot * 2 + wake` (wake: senders must be woken), NONE when empty, CLOSED when drained. */
function channelRecv(channel, pool) {
  FAST[0] = channel
  FAST[1] = pool
  nativeRecv()
  return FAST[0]
}

module.exports = {
  binding,
  /** Where the binding came from: 'file', 'package' or 'loader' (see load.js). */
  BINDING_SOURCE,
  poolAcquire,
  poolRelease,
  poolHandoff,
  poolAdopt,
  channelSend,
  channelRecv,
  OFFSETS,
  STATUS,
  /** Fast-call result: nothing to take (empty, full, no free slot). */
  NONE: PROTOCOL.statusNone,
  /** Fast-call result of a receive: the channel is closed and drained. */
  CLOSED: PROTOCOL.statusClosed,
  /** An id no registry entry has: calls with it fail with ERR_SABPOOL_DETACHED. */
  DETACHED_ID: PROTOCOL.detachedId,
  /** Layout version carried by handles. */
  LAYOUT_VERSION: PROTOCOL.layoutVersion,
  /** Mode of region files unless `mode` says otherwise. */
  DEFAULT_MODE: PROTOCOL.defaultFileMode,
  /** Wait-site numbers of file-backed regions (which epoch word a native wait parks on). */
  SITE_FREE_SLOT: PROTOCOL.siteFreeSlot,
  SITE_RECEIVED: PROTOCOL.siteReceived,
  SITE_ROOM: PROTOCOL.siteRoom,
  /**
   * A file-backed table's wait sites: `SITE_TABLE_WAIT + k` (k below TABLE_WAIT_SITES) parks on
   * the table's word `TABLE_WAIT_WORD + k` (data words 8 to 11). Bump the word with `Atomics`,
   * then `binding.tableWake(id, site)` wakes its waiters in every process.
   */
  SITE_TABLE_WAIT: PROTOCOL.siteTableWait,
  TABLE_WAIT_SITES: PROTOCOL.tableWaitSites,
  TABLE_WAIT_WORD: PROTOCOL.tableWaitWord,
}
