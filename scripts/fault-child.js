'use strict'
// A process to be killed: `node scripts/fault-child.js '<json options>'`, forked by
// scripts/faults.js (the fault-injection run), which SIGKILLs it at a random moment.
//
// Its main thread and `threads` worker threads each open the file-backed pool `pool` and the
// channels `channels` in `dir` and then, until the process is killed, loop over the library's
// operations on them as fast as they can, choosing each one with a seeded RNG (`seed`, plus the
// thread's index), `focus` being chosen most of the time. (Several threads per process make one
// kill interrupt several operations at once: those not running on a CPU are frozen wherever the
// scheduler preempted them.) The operations:
//   acquire   tryAcquire / acquireSync({ timeout }) (holds at most HELD leases)
//   release   releases a held lease
//   send      trySend / sendSync({ timeout }) / sendMany of held leases on a random channel, then
//             a receive from it (so the ring keeps moving)
//   receive   tryRecv / recvSync({ timeout }) / recvMany on a random channel (the stamp written
//             by the sender is checked; the lease is released or held), then a send on it
//   adopt     handoff + adopt of a held lease; the ticket is first written to `journal`, so that
//             a ticket lost with this process can still be adopted by the checks at the end
//   reclaim   pool.reclaimDead(), or SharedPool.open + detach (open reclaims dead participants)
//   create    SharedPool.create of the pool named `spare` (replacing it when stale), a lease, detach
// Expected outcomes (full, empty, ERR_SABPOOL_TIMEOUT, ERR_SABPOOL_EXISTS for a live spare) are
// part of the loop; anything else is reported as { type: 'error', op, message } over IPC and the
// process exits with code 1. It sends { type: 'ready' } once every thread is attached (the parent
// starts the kill timer then), yields to the event loop every few milliseconds (so it exits when
// the parent goes away), and exits on its own after `lifetime` ms if nobody killed it.
const fs = require('node:fs')
const { Worker, isMainThread, parentPort, workerData } = require('node:worker_threads')
const { SharedPool, Channel } = require('..')

const opts = isMainThread ? JSON.parse(process.argv[2]) : workerData
const { dir, focus, journal, spare, lifetime = 30_000, threads = 0 } = opts
const thread = isMainThread ? 0 : opts.thread
const seed = (opts.seed + Math.imul(thread, 0x9e3779b9)) >>> 0
const HELD = 2
const OPS = ['acquire', 'release', 'send', 'receive', 'adopt', 'reclaim', 'create']
/** OPS before this index cost well under a microsecond; the others open or create files. */
const CHEAP = 5
/** Payload stamp, written by whoever sends a lease: a magic byte and the slot index. */
const MAGIC = 0x5a
function stamp(lease) {
  const bytes = lease.bytes
  bytes[0] = MAGIC
  bytes[1] = lease.slot & 0xff
  bytes[2] = lease.slot >>> 8
}

let op = 'open'
function report(msg) {
  if (!isMainThread) parentPort.postMessage(msg)
  else if (!process.connected) process.exit(1)
  else process.send(msg, () => { if (msg.type === 'error') process.exit(1) })
}
function fail(error) {
  report({ type: 'error', op, thread, message: `${error && error.code ? `[${error.code}] ` : ''}${error && error.stack}` })
}
if (isMainThread) process.on('disconnect', () => process.exit(0))

/** xorshift32: small, fast, and reproducible from the seed. */
let state = (seed >>> 0) || 1
function rand() {
  state ^= state << 13
  state ^= state >>> 17
  state ^= state << 5
  return (state >>> 0) / 4294967296
}
const pick = (n) => Math.floor(rand() * n)
/** Timeout of a blocking call: mostly 0 (spin, one more try, ERR_SABPOOL_TIMEOUT), sometimes a
 * millisecond, so that parking and waiter registration are interrupted too, but rarely enough
 * that the child spends its life operating rather than sleeping. */
const shortWait = () => (rand() < 0.02 ? 1 : 0)

function expected(error, ...codes) {
  if (error === null || typeof error !== 'object' || !codes.includes(error.code)) throw error
}

function main() {
  const pool = SharedPool.open(opts.pool, { dir })
  const channels = opts.channels.map((name) => Channel.open(name, pool, { dir }))
  const journalFd = fs.openSync(`${journal}.${thread}`, 'a')
  const held = []

  const take = () => (held.length === 0 ? undefined : held.splice(pick(held.length), 1)[0])
  const hold = (lease) => {
    if (lease === null) return
    if (held.length >= HELD) held.shift().release()
    held.push(lease)
  }

  /** A random channel's receive side: takes at most a few leases, checks their stamps, releases
   * or holds them. `how` picks tryRecv, recvMany or a short recvSync. */
  const receiveFrom = (channel, how) => {
    let got
    if (how < 0.6) got = [channel.tryRecv()]
    else if (how < 0.8) got = channel.recvMany(1 + pick(3)) ?? []
    else {
      try {
        got = [channel.recvSync({ timeout: shortWait(), spin: pick(50) })]
      } catch (error) {
        expected(error, 'ERR_SABPOOL_TIMEOUT')
        return
      }
    }
    for (const lease of got) {
      if (lease === null) continue
      const bytes = lease.bytes
      if (bytes[0] !== MAGIC || (bytes[1] | (bytes[2] << 8)) !== lease.slot) {
        throw new Error(`received slot ${lease.slot} whose payload was not stamped by a sender (${bytes.subarray(0, 3).join(' ')}): two owners at once?`)
      }
      bytes[0] = 0
      if (rand() < 0.7) lease.release()
      else hold(lease)
    }
  }
  /** Sends a held (or newly acquired) lease on `channel`; keeps it when the channel is full.
   * `how` picks trySend, sendMany or a short sendSync. */
  const sendOn = (channel, how) => {
    if (how < 0.15 && held.length > 1) {
      for (const lease of held) stamp(lease)
      held.splice(0, channel.sendMany(held))
      return
    }
    const lease = take() ?? pool.tryAcquire()
    if (lease === null) return
    stamp(lease)
    let sent = false
    if (how < 0.8) sent = channel.trySend(lease, 8)
    else {
      try {
        channel.sendSync(lease, 8, { timeout: shortWait(), spin: pick(50) })
        sent = true
      } catch (error) {
        expected(error, 'ERR_SABPOOL_TIMEOUT')
      }
    }
    if (!sent) hold(lease)
  }
  const anyChannel = () => channels[pick(channels.length)]

  const step = {
    acquire() {
      if (held.length >= HELD) held.shift().release()
      if (rand() < 0.8) hold(pool.tryAcquire())
      else {
        try {
          hold(pool.acquireSync({ timeout: shortWait(), spin: pick(50) }))
        } catch (error) {
          expected(error, 'ERR_SABPOOL_TIMEOUT')
        }
      }
    },
    release() {
      const lease = take() ?? pool.tryAcquire()
      if (lease !== null) lease.release()
    },
    // Sending and receiving alternate on one channel, so that the ring keeps moving (and is
    // sometimes full, sometimes empty) whichever of the two is the focus.
    send() {
      const channel = anyChannel()
      sendOn(channel, rand())
      receiveFrom(channel, rand() * 0.6)
    },
    receive() {
      const channel = anyChannel()
      receiveFrom(channel, rand())
      sendOn(channel, 0.15 + rand() * 0.65)
    },
    adopt() {
      const lease = take() ?? pool.tryAcquire()
      if (lease === null) return
      // Journal first: if this process dies between the handoff and the adopt, the ticket is
      // not lost with it. A stale journal entry is harmless (adopting it fails).
      fs.writeSync(journalFd, `${lease.slot} ${(lease.generation + 1) >>> 0}\n`)
      const ticket = lease.handoff()
      hold(pool.adopt(ticket))
    },
    reclaim() {
      if (rand() < 0.5) pool.reclaimDead()
      else SharedPool.open(opts.pool, { dir }).detach()
    },
    create() {
      let other
      try {
        other = SharedPool.create({ name: spare, dir, slotSize: 64, slots: 4, maxParticipants: 8 })
      } catch (error) {
        expected(error, 'ERR_SABPOOL_EXISTS')
        return
      }
      const lease = other.tryAcquire()
      if (lease !== null && rand() < 0.5) lease.release()
      other.detach()
    },
  }

  const ops = OPS.map((name) => step[name])
  const focusIndex = OPS.indexOf(focus)
  const until = Date.now() + lifetime
  const run = () => {
    try {
      const sliceEnd = performance.now() + 5
      do {
        for (let k = 0; k < 32; k++) {
          // Opening and creating files costs milliseconds: outside their focus they are rare,
          // so that every child spends most of its life in the cheap operations.
          const r = rand()
          const i = r < 0.9 && focusIndex >= 0 ? focusIndex : r < 0.9995 ? pick(CHEAP) : CHEAP + pick(ops.length - CHEAP)
          op = OPS[i]
          ops[i]()
        }
      } while (performance.now() < sliceEnd)
    } catch (error) {
      fail(error)
      return
    }
    if (Date.now() > until) process.exit(0)
    setImmediate(run)
  }
  if (!isMainThread) {
    parentPort.once('message', run)
    report({ type: 'ready' })
    return
  }
  // The main thread: start the workers, report ready when all are attached, then loop too.
  let ready = 0
  const workers = []
  const go = () => {
    for (const w of workers) w.postMessage('go')
    process.send({ type: 'ready' }, (err) => (err ? fail(err) : run()))
  }
  for (let t = 1; t <= threads; t++) {
    const worker = new Worker(__filename, { workerData: { ...opts, thread: t } })
    worker.on('message', (msg) => {
      if (msg.type === 'ready') { if (++ready === threads) go() } else report(msg)
    })
    worker.on('error', (error) => fail(error))
    workers.push(worker)
  }
  if (threads === 0) go()
}

try {
  main()
} catch (error) {
  fail(error)
}
