'use strict'
// One participant of the stress run (scripts/stress.js). It attaches the pool and every channel
// and runs a random mix of every lease-moving call, claiming operations from a shared budget in
// chunks, until the budget is spent or the main thread says stop (time is up, or a thread hit an
// unexpected error); then it stops producing, drains what is still addressed to it (tickets on
// its ports, the ticket board, the channels), and reports its counters.
//
// Every payload it gives away (channel send or ticket handoff) is stamped first:
//   u32[0] sequence number (per producing thread, starts at 0, +1 per stamp)
//   u32[1] producer thread | route << 8   (route: channel index, TICKET_ROUTE for a ticket
//          posted to a thread's MessagePort, BOARD_ROUTE for one put on the shared ticket board)
//   u32[2] length (must equal the lease.length the receiver gets)
//   u32[3] slot, u32[4] generation (the received lease's, one less after a handoff)
//   u32[5] checksum: FNV-1a over bytes [0..20) and the body [24..length)
//   [24..length) body bytes from a PRNG seeded by (thread, seq)
// Whoever receives or adopts it verifies all of that, checks that sequence numbers from one
// producer arrive in increasing order on each route (both are FIFO per producer), and marks the
// (thread, seq) as consumed in a shared bitmap: a second delivery of one stamp is a violation,
// and so is a stamp never consumed (checked by the main thread at the end).
//
// A shared `tags` word per slot says who owns it: set with compareExchange(0 → me) when a thread
// gains a slot (acquire, adopt, receive) and cleared (me → 0) just before it gives the slot up.
// A failed exchange means two threads owned one slot at once.

const { workerData, parentPort, receiveMessageOnPort } = require('node:worker_threads')
const { SharedPool, Channel } = require('..')
const S = require('./stress-shared.js')

const {
  index, threads, poolHandle, channelHandles, ports, maxHeld, blockTimeout, seed,
  chunks, sabotage,
} = workerData
const ctl = new Int32Array(workerData.ctl)
const tags = new Int32Array(workerData.tags)
const gens = new Uint32Array(workerData.gens)
const bitmap = workerData.bitmap === null ? null : new Int32Array(workerData.bitmap)
const bitmapWordsPerThread = workerData.bitmapWordsPerThread
const me = index + 1

const pool = SharedPool.attach(poolHandle)
const channels = channelHandles.map((h) => Channel.attach(h, pool))
const K = channels.length
const slotSize = pool.slotSize
const TICKET_ROUTE = S.TICKET_ROUTE
const BOARD_ROUTE = S.BOARD_ROUTE
const board = new Int32Array(workerData.board)
/** Index into `last` of each route: channels 0..K-1, then port tickets, then board tickets. */
const routeIndex = (route) => (route === TICKET_ROUTE ? K : route === BOARD_ROUTE ? K + 1 : route)

// ---- counters reported at the end ------------------------------------------------------------
const calls = Object.fromEntries(S.KINDS.map((k) => [k, 0]))
const timeouts = { acquireSync: 0, sendSync: 0, recvSync: 0 }
const misses = { tryAcquire: 0, trySend: 0, tryRecv: 0, sendMany: 0, recvMany: 0 }
let acquired = 0 // successful acquires (tryAcquire + acquireSync)
let released = 0
const sentOn = new Array(K).fill(0) // leases this thread sent into each channel
const recvOn = new Array(K).fill(0) // leases it received from each channel
let handedOff = 0
let portTickets = 0 // tickets posted to ports (for --sabotage lose-ticket)
let adopted = 0
let stamped = 0
let stampHash = 0 // sum of mix(seq) over this thread's stamps, mod 2^32
const consumed = new Array(threads).fill(0) // stamps of each producer this thread consumed
const consumedHash = new Array(threads).fill(0)
/** last[route][producer]: last sequence seen (per-route FIFO check). */
const last = Array.from({ length: K + 2 }, () => new Array(threads).fill(-1))
const violations = []
let violationCount = 0

function violation(message) {
  violationCount++
  if (violations.length < 20) violations.push(`thread ${index}: ${message}`)
  Atomics.add(ctl, S.CTL_VIOLATIONS, 1)
}

// ---- PRNG --------------------------------------------------------------------------------------
let x = (seed ^ Math.imul(index + 1, 0x9e3779b9)) >>> 0 || 1
function rand() {
  x ^= x << 13
  x ^= x >>> 17
  x ^= x << 5
  return x >>> 0
}

// ---- payload -----------------------------------------------------------------------------------
/** Per-slot views: the slot's bytes, and its first 6 words. */
const u8 = new Array(pool.slots)
const hdr = new Array(pool.slots)
function views(lease) {
  const slot = lease.slot
  let bytes = u8[slot]
  if (bytes === undefined) {
    bytes = lease.bytes
    u8[slot] = bytes
    hdr[slot] = new Uint32Array(bytes.buffer, bytes.byteOffset, S.HEADER / 4)
  }
  return bytes
}

function stamp(lease, route) {
  if (!lease.owned) throw new Error(`stamping slot ${lease.slot}, which this thread does not own`)
  const bytes = views(lease)
  const h = hdr[lease.slot]
  const seq = stamped++
  stampHash = (stampHash + S.mix(seq)) | 0
  const length = S.HEADER + (rand() % (slotSize - S.HEADER + 1))
  h[0] = seq
  h[1] = index | (route << 8)
  h[2] = length
  h[3] = lease.slot
  h[4] = lease.generation
  S.fillBody(bytes, length, index, seq)
  h[5] = S.checksum(bytes, length)
  lease.length = length
  // Self-test of the checks (--sabotage): thread 0 damages one payload after stamping it.
  if (sabotage === 'corrupt' && index === 0 && seq === 100) bytes[length - 1] ^= 0x40
}

/** Checks a received or adopted payload; `route` is where it came from, `from` the expected
 * producer (tickets) or -1 (channels: any). */
function verify(lease, route, from) {
  const bytes = views(lease)
  const h = hdr[lease.slot]
  const seq = h[0]
  const producer = h[1] & 0xff
  const r = h[1] >>> 8
  const length = h[2]
  const via = route === TICKET_ROUTE ? 'port ticket' : route === BOARD_ROUTE ? 'board ticket' : `channel ${route}`
  const what = `slot ${lease.slot} gen ${lease.generation} via ${via}`
  if (length !== lease.length) return violation(`${what}: stamped length ${length}, lease.length ${lease.length}`)
  if (length < S.HEADER || length > slotSize) return violation(`${what}: bad length ${length}`)
  // A handoff moves the generation on by one; a channel send keeps it.
  const expectedGeneration = route === TICKET_ROUTE || route === BOARD_ROUTE ? (h[4] + 1) >>> 0 : h[4]
  if (h[3] !== lease.slot || expectedGeneration !== lease.generation) {
    return violation(`${what}: stamped for slot ${h[3]} gen ${h[4]}`)
  }
  if (r !== route) return violation(`${what}: stamped for route ${r}`)
  if (producer >= threads || (from >= 0 && producer !== from)) {
    return violation(`${what}: producer ${producer}, expected ${from >= 0 ? from : `< ${threads}`}`)
  }
  if (h[5] !== S.checksum(bytes, length)) return violation(`${what}: checksum mismatch (producer ${producer} seq ${seq})`)
  const lastOnRoute = last[routeIndex(route)]
  const prev = lastOnRoute[producer]
  if (seq <= prev) violation(`${what}: producer ${producer} seq ${seq} after seq ${prev} (FIFO per producer broken, or a duplicate)`)
  lastOnRoute[producer] = seq
  if (bitmap !== null) {
    const bit = seq
    if (bit >= bitmapWordsPerThread * 32) {
      violation(`${what}: seq ${seq} past the bitmap`)
    } else {
      const word = producer * bitmapWordsPerThread + (bit >>> 5)
      const mask = 1 << (bit & 31)
      if ((Atomics.or(bitmap, word, mask) & mask) !== 0) {
        violation(`${what}: producer ${producer} seq ${seq} delivered twice`)
      }
    }
  }
  consumed[producer]++
  consumedHash[producer] = (consumedHash[producer] + S.mix(seq)) | 0
}

// ---- ownership tags ----------------------------------------------------------------------------
function gain(lease, how) {
  const prev = Atomics.compareExchange(tags, lease.slot, 0, me)
  if (prev !== 0) violation(`${how}: got slot ${lease.slot} while thread ${prev - 1} owns it`)
}

function give(lease, how) {
  const prev = Atomics.compareExchange(tags, lease.slot, me, 0)
  if (prev !== me) violation(`${how}: giving up slot ${lease.slot}, tagged ${prev === 0 ? 'free' : `thread ${prev - 1}`}`)
}

/** Back to ours after a send that did not happen (full, timeout). */
function regain(lease, how) {
  const prev = Atomics.compareExchange(tags, lease.slot, 0, me)
  if (prev !== 0) violation(`${how}: slot ${lease.slot} taken by thread ${prev - 1} while its send was failing`)
}

function acquiredLease(lease, how) {
  gain(lease, how)
  acquired++
  // Generations only move on acquire, and only forwards (this thread owns the slot now, so the
  // word is not racing with anyone who owns it correctly).
  const previous = gens[lease.slot]
  if (lease.generation <= previous && previous !== 0) {
    violation(`${how}: slot ${lease.slot} generation ${lease.generation} after ${previous}`)
  }
  gens[lease.slot] = lease.generation
  if (lease.length !== 0) violation(`${how}: fresh lease of slot ${lease.slot} has length ${lease.length}`)
}

// ---- the operations ------------------------------------------------------------------------------
const held = []
const spares = [] // Lease objects this thread no longer owns, for { reuse }

function spare(lease) {
  if (spares.length < 4) spares.push(lease)
}

function takeHeld() {
  const i = rand() % held.length
  const lease = held[i]
  held[i] = held[held.length - 1]
  held.pop()
  return lease
}

function isTimeout(err) {
  return err !== null && typeof err === 'object' && err.code === 'ERR_SABPOOL_TIMEOUT'
}

function blockingOptions(withReuse) {
  const r = rand() % 3
  const options = { timeout: blockTimeout }
  if (r === 0) options.spin = 0 // park at once: exercises the wait/wake path
  else if (r === 1) options.spin = 50
  if (withReuse && spares.length > 0 && (rand() & 1)) options.reuse = spares.pop()
  return options
}

// Blocking calls are made so that the threads cannot all end up waiting on each other (the run
// would then only move on by timeouts, which are allowed but waste the run):
// - acquireSync and recvSync only by a thread that holds no lease (no hold-and-wait);
// - at most threads - 1 threads inside a blocking call at once: one thread always keeps moving
//   leases with the non-blocking calls;
// - a thread polls its ticket ports before it blocks, and tickets go to threads not blocked.
// Whatever still ends in a timeout is counted and reported, not a violation.
function enterBlocking() {
  for (;;) {
    const n = Atomics.load(ctl, S.CTL_BLOCKED)
    // Threads that finished their share only drain now: they no longer count as producers.
    if (n >= threads - 1 - Atomics.load(ctl, S.CTL_DONE)) return false
    if (Atomics.compareExchange(ctl, S.CTL_BLOCKED, n, n + 1) === n) break
  }
  Atomics.store(ctl, S.CTL_FLAGS + index, 1)
  return true
}

function leaveBlocking() {
  Atomics.store(ctl, S.CTL_FLAGS + index, 0)
  Atomics.sub(ctl, S.CTL_BLOCKED, 1)
}

function doAcquire() {
  if (held.length > 0 || (rand() & 1) === 0 || !enterBlocking()) {
    calls.tryAcquire++
    const lease = spares.length > 0 && (rand() & 1) ? pool.tryAcquire({ reuse: spares.pop() }) : pool.tryAcquire()
    if (lease === null) {
      misses.tryAcquire++
      return
    }
    acquiredLease(lease, 'tryAcquire')
    held.push(lease)
  } else {
    let lease
    try {
      if (adoptInto(held, threads)) return
      calls.acquireSync++
      lease = pool.acquireSync(blockingOptions(true))
    } catch (err) {
      if (isTimeout(err)) {
        timeouts.acquireSync++
        return
      }
      throw err
    } finally {
      leaveBlocking()
    }
    acquiredLease(lease, 'acquireSync')
    held.push(lease)
  }
}

function doRelease() {
  const lease = takeHeld()
  give(lease, 'release')
  calls.release++
  lease.release()
  released++
  spare(lease)
}

function doSend() {
  const k = rand() % K
  const channel = channels[k]
  const r = rand() % 10
  if (r < 4) {
    const lease = takeHeld()
    stamp(lease, k)
    give(lease, 'trySend')
    calls.trySend++
    if (channel.trySend(lease)) {
      sentOn[k]++
      spare(lease)
    } else {
      misses.trySend++
      regain(lease, 'trySend')
      unstamp()
      held.push(lease)
    }
  } else if (r < 7 && enterBlocking()) {
    const lease = takeHeld()
    stamp(lease, k)
    give(lease, 'sendSync')
    calls.sendSync++
    try {
      channel.sendSync(lease, undefined, blockingOptions(false))
      sentOn[k]++
      spare(lease)
    } catch (err) {
      if (!isTimeout(err)) throw err
      timeouts.sendSync++
      regain(lease, 'sendSync')
      unstamp()
      held.push(lease)
    } finally {
      leaveBlocking()
    }
  } else {
    const n = 1 + (rand() % held.length)
    const batch = []
    for (let i = 0; i < n; i++) {
      const lease = takeHeld()
      stamp(lease, k)
      give(lease, 'sendMany')
      batch.push(lease)
    }
    calls.sendMany++
    const sent = channel.sendMany(batch)
    sentOn[k] += sent
    if (sent === 0) misses.sendMany++
    // The ones that did not fit are still ours; their stamps are withdrawn newest first.
    for (let i = batch.length - 1; i >= sent; i--) {
      regain(batch[i], 'sendMany')
      unstamp()
      held.push(batch[i])
    }
    for (let i = 0; i < sent; i++) spare(batch[i])
  }
}

/** Withdraws the newest stamp (its lease was not sent after all; it will be stamped again). */
function unstamp() {
  stamped--
  stampHash = (stampHash - S.mix(stamped)) | 0
}

function received(lease, k, how) {
  gain(lease, how)
  recvOn[k]++
  verify(lease, k, -1)
}

function doRecv() {
  const k = rand() % K
  const channel = channels[k]
  const r = rand() % 10
  if (r < 4) {
    calls.tryRecv++
    const lease = spares.length > 0 && (rand() & 1) ? channel.tryRecv({ reuse: spares.pop() }) : channel.tryRecv()
    if (lease === null) {
      misses.tryRecv++
      return
    }
    received(lease, k, 'tryRecv')
    held.push(lease)
  } else if (r < 7 && held.length === 0 && enterBlocking()) {
    let lease
    try {
      if (adoptInto(held, threads)) return
      calls.recvSync++
      lease = channel.recvSync(blockingOptions(true))
    } catch (err) {
      if (isTimeout(err)) {
        timeouts.recvSync++
        return
      }
      throw err
    } finally {
      leaveBlocking()
    }
    if (lease === null) throw new Error(`recvSync on channel ${k} returned null, but the channel is open`)
    received(lease, k, 'recvSync')
    held.push(lease)
  } else {
    calls.recvMany++
    const leases = channel.recvMany(maxHeld - held.length)
    if (leases === null) throw new Error(`recvMany on channel ${k} returned null, but the channel is open`)
    if (leases.length === 0) misses.recvMany++
    for (const lease of leases) {
      received(lease, k, 'recvMany')
      held.push(lease)
    }
  }
}

function doHandoff() {
  const lease = takeHeld()
  if (rand() & 1) {
    // Through the board: any thread may adopt it.
    stamp(lease, BOARD_ROUTE)
    give(lease, 'handoff')
    calls.handoff++
    const ticket = lease.handoff()
    handedOff++
    if (!S.boardPut(board, ticket, index)) {
      // Board full: take the ticket back ourselves (it is still valid) and keep the lease.
      calls.adopt++
      const again = pool.adopt(ticket)
      gain(again, 'adopt')
      adopted++
      verify(again, BOARD_ROUTE, index)
      held.push(again)
    }
    spare(lease)
    return
  }
  // To one thread's MessagePort: only to a thread that is not inside a blocking call (it polls
  // its ports only between calls); if the peers tried are all blocked, release the lease instead.
  let peer = -1
  for (let t = 0; t < 3 && peer < 0; t++) {
    let p = rand() % (threads - 1)
    if (p >= index) p++
    if (Atomics.load(ctl, S.CTL_FLAGS + p) === 0) peer = p
  }
  if (peer < 0) {
    held.push(lease)
    return doRelease()
  }
  stamp(lease, TICKET_ROUTE)
  give(lease, 'handoff')
  calls.handoff++
  const ticket = lease.handoff()
  handedOff++
  // Self-test of the checks (--sabotage): thread 0 loses one ticket (the slot leaks).
  if (!(sabotage === 'lose-ticket' && index === 0 && ++portTickets === 20)) ports[peer].postMessage(ticket)
  spare(lease)
}

/** Adopts the oldest ticket on the board, if any. */
function adoptFromBoard() {
  const t = S.boardTake(board)
  if (t === null) return null
  calls.adopt++
  const lease = pool.adopt({ pool: pool.id, slot: t.slot, generation: t.generation, length: t.length })
  gain(lease, 'adopt')
  adopted++
  verify(lease, BOARD_ROUTE, t.producer)
  return lease
}

let nextPort = 0
/** Polls up to `tries` peers' ports for a ticket; adopts and verifies the first one found. */
function doAdopt(tries) {
  for (let t = 0; t < tries; t++) {
    const peer = nextPort
    nextPort = (nextPort + 1) % threads
    if (peer === index) continue
    const got = receiveMessageOnPort(ports[peer])
    if (got === undefined) continue
    calls.adopt++
    const lease = pool.adopt(got.message)
    gain(lease, 'adopt')
    adopted++
    verify(lease, TICKET_ROUTE, peer)
    return lease
  }
  return null
}

// ---- run -----------------------------------------------------------------------------------------
function opCount() {
  let n = 0
  for (const k of S.KINDS) n += calls[k]
  return n
}

function run() {
  const H = maxHeld
  // Operations are claimed from the shared budget in chunks, so that every thread keeps working
  // until the whole budget is spent (a fixed share per thread would leave a long tail in which
  // the slowest threads run alone).
  for (;;) {
    if (Atomics.load(ctl, S.CTL_STOP) !== 0) break
    if (Atomics.add(ctl, S.CTL_CLAIMED, 1) >= chunks) break
    const end = opCount() + S.CHUNK
    while (opCount() < end) {
      const n = held.length
      const r = rand() % 100
      if (n === 0) {
        if (r < 40) doAcquire()
        else if (r < 80) doRecv()
        else adoptInto(held)
      } else if (n >= H) {
        if (r < 30) doRelease()
        else if (r < 70) doSend()
        else doHandoff()
      } else if (r < 15) doAcquire()
      else if (r < 30) doRelease()
      else if (r < 52) doSend()
      else if (r < 74) doRecv()
      else if (r < 87) doHandoff()
      else adoptInto(held)
    }
    Atomics.store(ctl, S.CTL_PROGRESS + index, opCount())
  }
  Atomics.store(ctl, S.CTL_PROGRESS + index, opCount())
}

/** Adopts one ticket if one of `tries` ports has one; true if it did. */
function adoptInto(list, tries = 2) {
  const lease = (rand() & 1 ? adoptFromBoard() : null) ?? doAdopt(tries) ?? adoptFromBoard()
  if (lease === null) return false
  list.push(lease)
  return true
}

/** Receives and adopts whatever is there now (verifying it) and releases it. Returns how many. */
function drainOnce() {
  let n = 0
  for (let peer = 0; peer < threads; peer++) {
    if (peer === index) continue
    for (let got; (got = receiveMessageOnPort(ports[peer])) !== undefined;) {
      calls.adopt++
      const lease = pool.adopt(got.message)
      gain(lease, 'adopt')
      adopted++
      verify(lease, TICKET_ROUTE, peer)
      give(lease, 'release')
      calls.release++
      lease.release()
      released++
      n++
    }
  }
  for (let lease; (lease = adoptFromBoard()) !== null;) {
    give(lease, 'release')
    calls.release++
    lease.release()
    released++
    n++
  }
  for (let k = 0; k < K; k++) {
    for (let lease; (lease = channels[k].tryRecv()) !== null;) {
      calls.tryRecv++
      received(lease, k, 'tryRecv')
      give(lease, 'release')
      calls.release++
      lease.release()
      released++
      n++
    }
    calls.tryRecv++ // the one that found the channel empty
  }
  return n
}

let error = null
try {
  // Start together: the main thread releases every worker at once.
  Atomics.add(ctl, S.CTL_READY, 1)
  Atomics.notify(ctl, S.CTL_READY)
  while (Atomics.load(ctl, S.CTL_GO) === 0) Atomics.wait(ctl, S.CTL_GO, 0, 1000)
  run()
} catch (err) {
  error = err && err.stack ? err.stack : String(err)
  Atomics.store(ctl, S.CTL_STOP, 1)
}
const producingOps = opCount()
// Stop producing: give back what this thread holds, then keep taking what others still send or
// hand to it until every thread has stopped producing, then drain one last time.
try {
  while (held.length > 0) doRelease()
  Atomics.add(ctl, S.CTL_DONE, 1)
  Atomics.notify(ctl, S.CTL_DONE)
  for (;;) {
    const done = Atomics.load(ctl, S.CTL_DONE)
    if (done >= threads) break
    if (drainOnce() === 0) Atomics.wait(ctl, S.CTL_DONE, done, 2)
  }
  while (drainOnce() > 0);
} catch (err) {
  error ??= err && err.stack ? err.stack : String(err)
  Atomics.store(ctl, S.CTL_STOP, 1)
}

parentPort.postMessage({
  type: 'report',
  index,
  error,
  ops: opCount(),
  producingOps,
  calls,
  timeouts,
  misses,
  acquired,
  released,
  sentOn,
  recvOn,
  handedOff,
  adopted,
  stamped,
  stampHash,
  consumed,
  consumedHash,
  violations,
  violationCount,
})
for (const port of ports) if (port !== null) port.close()
