'use strict'

// sabpool: a preallocated shared-memory buffer pool for worker_threads and processes.
// This file is the public API only; each concern lives in lib/, every file there importing only
// from the files listed before it:
//   load.js     finds the native addon; loads the files below from V8 code caches it keeps
//   native.js   the binding and the protocol constants it defines (layout, statuses, offsets)
//   errors.js   error code → class table, makeError, AbortError
//   options.js  option and argument checks
//   wait.js     spins, wait sites, parkSync/parkAsync, the 'sabpool:wait' diagnostics channel
//   lease.js    PoolState (a pool's per-thread hot-path fields) and Lease
//   region.js   region backends: MemoryRegion (SharedArrayBuffer), FileRegion (mapped file)
//   pool.js     SharedPool
//   channel.js  Channel
//   table.js    the word tables services and topics keep next to a pool
//   service.js  Service (request/response over a pool), loaded on first use
//   topic.js    Topic (publish/subscribe over a pool), loaded on first use
//   piscina.js  runLease and leaseTask, loaded by the top-level piscina.js (sabpool/piscina), not here

const { loadLib, storeCodeCaches } = require('./lib/load.js')

const { OFFSETS } = loadLib('native.js', () => require('./lib/native.js'))
const { SharedPool } = loadLib('pool.js', () => require('./lib/pool.js'))
const { Channel } = loadLib('channel.js', () => require('./lib/channel.js'))
const { Lease } = loadLib('lease.js', () => require('./lib/lease.js'))
const { AbortError } = loadLib('errors.js', () => require('./lib/errors.js'))
storeCodeCaches()

module.exports = {
  SharedPool,
  Channel,
  /** Loaded on first use: a worker that only moves leases does not pay for it at start-up. */
  get Service() {
    const { Service } = loadLib('service.js', () => require('./lib/service.js'))
    storeCodeCaches()
    Object.defineProperty(module.exports, 'Service', { value: Service, enumerable: true })
    return Service
  },
  /** Loaded on first use, like Service. */
  get Topic() {
    const { Topic } = loadLib('topic.js', () => require('./lib/topic.js'))
    storeCodeCaches()
    Object.defineProperty(module.exports, 'Topic', { value: Topic, enumerable: true })
    return Topic
  },
  Lease,
  AbortError,
  /** White-box tests only: the region layout's byte offsets. */
  _internal: { OFFSETS },
}
