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

module.exports = {
  binding,
  /** Where the binding came from: 'file', 'package' or 'loader' (see load.js). */
  BINDING_SOURCE,
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
}
