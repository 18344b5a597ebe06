'use strict'

// sabpool: a preallocated shared-memory buffer pool for worker_threads and processes.
// This file is the public API only; each concern lives in lib/, every file there importing only
// from the files listed before it:
//   native.js   the binding and the protocol constants it defines (layout, statuses, offsets)
//   errors.js   error code → class table, makeError, AbortError
//   options.js  option and argument checks
//   wait.js     spins, wait sites, parkSync/parkAsync, the 'sabpool:wait' diagnostics channel
//   lease.js    PoolState (a pool's per-thread hot-path fields) and Lease
//   region.js   region backends: MemoryRegion (SharedArrayBuffer), FileRegion (mapped file)
//   pool.js     SharedPool
//   channel.js  Channel

const { SharedPool } = require('./lib/pool.js')
const { Channel } = require('./lib/channel.js')
const { Lease } = require('./lib/lease.js')
const { AbortError } = require('./lib/errors.js')
const { OFFSETS } = require('./lib/native.js')

module.exports = {
  SharedPool,
  Channel,
  Lease,
  AbortError,
  /** White-box tests only: the region layout's byte offsets. */
  _internal: { OFFSETS },
}
