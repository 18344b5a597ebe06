#!/usr/bin/env node
'use strict'
// Multi-threaded stress of one pool and its channels (npm run stress).
//
//   node scripts/stress.js [--ops N] [--threads T] [--seconds S] [--slots N] [--slot-size B]
//                          [--channels K] [--held H] [--block-timeout MS] [--seed X] [--json]
//   node scripts/stress.js --kill [options of scripts/faults.js]: the fault-injection run instead
//                          (processes killed with SIGKILL; --kill --help lists its options)
//
// T worker threads (default 8) share one pool and K channels and run a random mix of tryAcquire,
// acquireSync, release, handoff → (ticket over a MessagePort) → adopt, trySend, sendSync,
// sendMany, tryRecv, recvSync and recvMany until N library calls in total (default 10^7) have
// been made, or S seconds have passed (default: no time limit), whichever comes first. Every
// payload that changes hands is stamped with its producer, a per-producer sequence number and a
// checksum, and verified by whoever receives or adopts it (see scripts/stress-worker.js).
//
// At the end, with every worker gone, it checks that:
//   - no payload was corrupted, delivered twice, lost, or delivered out of order (per producer
//     and route), and no slot was owned by two threads at once;
//   - pool.stats() adds up: inUse 0, acquired === released + reclaimed, reclaimed 0 (nobody
//     died), acquired and released equal the workers' own counts, nobody still waiting;
//   - every channel: sent === received === what the workers counted, nothing queued, no waiter
//     registered; after close() it answers null;
//   - every slot is free exactly once: draining the pool with tryAcquire yields exactly `slots`
//     distinct slots, then null.
// It prints what ran (operations, threads, ops/s, duration) and exits 1 on any violation.
//
// `runStress(options)` is the same run as a function (used by __test__/stress.test.js).

const path = require('node:path')
const { Worker, MessageChannel } = require('node:worker_threads')
const { SharedPool, Channel } = require('..')
const S = require('./stress-shared.js')
const { parseFlags, n, verdictLines, main } = require('./cli-common.js')

const DEFAULTS = {
  ops: 1e7,
  threads: 8,
  seconds: Infinity,
  slots: 32,
  slotSize: 256,
  channels: 3,
  held: 4,
  blockTimeout: 20,
  seed: 0x5eed,
  progress: false,
  /** Self-test of the checks: 'corrupt' (a payload is damaged after it was stamped) or
   * 'lose-ticket' (a ticket is never posted): the run must then report violations. */
  sabotage: null,
}

/** Channel capacities, cycled: a tiny ring (often full), a small one, a roomy one. */
const CAPACITIES = [2, 8, 16]

function parseArgs(argv) {
  const parsed = parseFlags(argv, {
    '--ops': 'ops', '--threads': 'threads', '--seconds': 'seconds', '--slots': 'slots',
    '--slot-size': 'slotSize', '--channels': 'channels', '--held': 'held',
    '--block-timeout': 'blockTimeout', '--seed': 'seed', '--sabotage': 'sabotage',
  }, { strings: ['sabotage'] })
  const options = { ...DEFAULTS, ...parsed }
  // --seconds alone means "run for that long".
  if (!('ops' in parsed) && Number.isFinite(options.seconds)) options.ops = Infinity
  return options
}

function check(options) {
  const o = { ...DEFAULTS, ...options }
  const int = (name, min, max) => {
    if (!Number.isInteger(o[name]) || o[name] < min || o[name] > max) throw new RangeError(`${name} must be an integer from ${min} to ${max}, got ${o[name]}`)
  }
  int('threads', 2, 64)
  int('slots', 1, 1 << 20)
  int('slotSize', S.HEADER, 1 << 20)
  int('channels', 1, 64)
  int('held', 1, 1 << 10)
  if (!(o.ops > 0)) throw new RangeError(`ops must be positive, got ${o.ops}`)
  if (!(o.seconds > 0)) throw new RangeError(`seconds must be positive, got ${o.seconds}`)
  if (!Number.isFinite(o.ops) && !Number.isFinite(o.seconds)) throw new RangeError('give --ops or --seconds (or both)')
  if (![null, 'corrupt', 'lose-ticket'].includes(o.sabotage)) throw new RangeError(`sabotage must be 'corrupt' or 'lose-ticket', got ${o.sabotage}`)
  return o
}

/** Parked receivers/senders registered on a channel (its stats). */
function channelWaiters(channel) {
  const { recvWaiting, sendWaiting } = channel.stats()
  return { recv: recvWaiting, send: sendWaiting }
}

/**
 * Runs the stress. Resolves with a report: { ok, violations[], ops, threads, seconds, opsPerSec,
 * calls, timeouts, misses, transfers, pool, channels }. Never rejects for a violation (those are
 * in the report); rejects only for bad options.
 */
async function runStress(options = {}) {
  const o = check(options)
  const T = o.threads
  const violations = []
  const fail = (message) => { if (violations.length < 200) violations.push(message) }

  const pool = new SharedPool({ slotSize: o.slotSize, slots: o.slots, maxParticipants: T + 8 })
  const channels = Array.from({ length: o.channels }, (_, k) => new Channel(pool, { capacity: CAPACITIES[k % CAPACITIES.length] }))
  // Workers claim the budget in chunks of S.CHUNK calls (a worker may overshoot by one call).
  const chunks = Number.isFinite(o.ops) ? Math.ceil(o.ops / S.CHUNK) : 2 ** 31 - 1
  // A stamp per send or handoff, at most `held` per call: a bitmap of consumed stamps can be sized
  // from the budget (any thread may do all of it). Without a budget (time-limited runs), or when
  // it would be too large, only the counts and fingerprints check.
  const maxStamps = Number.isFinite(o.ops) ? (chunks * S.CHUNK + 64) * o.held : 0
  const bitmapWordsPerThread = Math.ceil(maxStamps / 32)
  const bitmap = bitmapWordsPerThread > 0 && bitmapWordsPerThread * T * 4 <= 256 * 2 ** 20
    ? new SharedArrayBuffer(bitmapWordsPerThread * T * 4)
    : null
  const ctlBuffer = new SharedArrayBuffer(S.ctlWords(T) * 4)
  const ctl = new Int32Array(ctlBuffer)
  const tagsBuffer = new SharedArrayBuffer(o.slots * 4)
  const gensBuffer = new SharedArrayBuffer(o.slots * 4)
  const boardBuffer = new SharedArrayBuffer(S.BOARD_WORDS * 4)

  // A MessageChannel per pair of threads: ports[i][j] is thread i's end towards thread j.
  const ports = Array.from({ length: T }, () => new Array(T).fill(null))
  for (let i = 0; i < T; i++) {
    for (let j = i + 1; j < T; j++) {
      const { port1, port2 } = new MessageChannel()
      ports[i][j] = port1
      ports[j][i] = port2
    }
  }

  const reports = new Array(T).fill(null)
  const exits = []
  const workers = []
  let started = 0
  let deadline = Infinity
  const runMs = Number.isFinite(o.seconds) ? o.seconds * 1000 : Infinity
  for (let i = 0; i < T; i++) {
    const transfer = ports[i].filter((p) => p !== null)
    const worker = new Worker(path.join(__dirname, 'stress-worker.js'), {
      workerData: {
        index: i,
        threads: T,
        poolHandle: pool.handle,
        channelHandles: channels.map((c) => c.handle),
        ports: ports[i],
        maxHeld: o.held,
        blockTimeout: o.blockTimeout,
        seed: o.seed >>> 0,
        chunks,
        sabotage: o.sabotage,
        ctl: ctlBuffer,
        tags: tagsBuffer,
        gens: gensBuffer,
        board: boardBuffer,
        bitmap,
        bitmapWordsPerThread,
      },
      transferList: transfer,
    })
    workers.push(worker)
    worker.on('message', (msg) => {
      if (msg.type === 'report') reports[msg.index] = msg
    })
    const errors = []
    worker.on('error', (err) => errors.push(err))
    exits.push(new Promise((resolve) => worker.once('exit', (code) => resolve({ code, errors }))))
  }

  // Wait until every worker attached, then start them together.
  const readyBy = Date.now() + 30_000
  while (Atomics.load(ctl, S.CTL_READY) < T) {
    if (Date.now() > readyBy) {
      fail(`only ${Atomics.load(ctl, S.CTL_READY)} of ${T} workers started within 30 s`)
      break
    }
    await new Promise((r) => setTimeout(r, 5))
  }
  started = performance.now()
  // Time-limited runs end through the stop word, set when the time is up (workers check it
  // every 256 operations).
  if (Number.isFinite(runMs)) deadline = Date.now() + runMs
  Atomics.store(ctl, S.CTL_GO, 1)
  Atomics.notify(ctl, S.CTL_GO)

  // Progress and watchdog: a run that stops making progress for 30 s is reported as a hang.
  let lastOps = -1
  let lastChange = performance.now()
  let hang = false
  let timeUp = false
  const tick = setInterval(() => {
    let ops = 0
    for (let i = 0; i < T; i++) ops += Atomics.load(ctl, S.CTL_PROGRESS + i)
    const t = performance.now()
    if (ops !== lastOps) {
      lastOps = ops
      lastChange = t
    } else if (t - lastChange > 30_000 && !hang) {
      hang = true
      const progress = Array.from({ length: T }, (_, i) => Atomics.load(ctl, S.CTL_PROGRESS + i))
      fail(`no progress for 30 s (hang?): per-thread operations ${progress.join(', ')}, done ${Atomics.load(ctl, S.CTL_DONE)}/${T}, pool ${JSON.stringify(pool.stats())}, channels ${JSON.stringify(channels.map((c) => c.stats()))}`)
      Atomics.store(ctl, S.CTL_STOP, 1)
      setTimeout(() => workers.forEach((w) => w.terminate()), 5000).unref()
    }
    if (!timeUp && Date.now() > deadline) {
      timeUp = true
      Atomics.store(ctl, S.CTL_STOP, 1) // time is up: stop producing (not a violation)
    }
    if (o.progress) process.stderr.write(`\r${ops.toLocaleString('en-US')} ops, ${((t - started) / 1000).toFixed(1)} s `)
  }, 200)

  const ended = await Promise.all(exits)
  clearInterval(tick)
  const elapsed = (performance.now() - started) / 1000
  if (o.progress) process.stderr.write('\n')

  // ---- collect -------------------------------------------------------------------------------
  const sum = (f) => reports.reduce((a, r) => a + (r === null ? 0 : f(r)), 0)
  for (let i = 0; i < T; i++) {
    const { code, errors } = ended[i]
    const r = reports[i]
    if (r === null) fail(`worker ${i} exited (code ${code}) without a report${errors.length ? `: ${errors[0].stack}` : ''}`)
    else {
      if (r.error !== null) fail(`worker ${i} failed: ${r.error}`)
      for (const v of r.violations) fail(v)
      if (r.violationCount > r.violations.length) fail(`worker ${i}: ${r.violationCount - r.violations.length} more violations`)
    }
    if (code !== 0) fail(`worker ${i} exited with code ${code}`)
  }
  const calls = Object.fromEntries(S.KINDS.map((k) => [k, sum((r) => r.calls[k])]))
  const ops = S.KINDS.reduce((a, k) => a + calls[k], 0)
  const timeouts = {}
  for (const k of ['acquireSync', 'sendSync', 'recvSync']) timeouts[k] = sum((r) => r.timeouts[k])
  const misses = {}
  for (const k of ['tryAcquire', 'trySend', 'tryRecv', 'sendMany', 'recvMany']) misses[k] = sum((r) => r.misses[k])

  // ---- stamps: every one consumed exactly once ------------------------------------------------
  let stampedTotal = 0
  for (let p = 0; p < T; p++) {
    const r = reports[p]
    if (r === null) continue
    stampedTotal += r.stamped
    const consumed = sum((c) => c.consumed[p])
    const hash = reports.reduce((a, c) => (c === null ? a : (a + c.consumedHash[p]) | 0), 0)
    if (consumed !== r.stamped) fail(`thread ${p} stamped ${r.stamped} payloads but ${consumed} were consumed`)
    else if (hash !== r.stampHash) fail(`thread ${p}: the set of consumed sequence numbers differs from the stamped set (fingerprint mismatch)`)
    if (bitmap !== null) {
      const bits = new Int32Array(bitmap, p * bitmapWordsPerThread * 4, bitmapWordsPerThread)
      let missing = 0
      let firstMissing = -1
      for (let seq = 0; seq < r.stamped; seq++) {
        if ((bits[seq >>> 5] & (1 << (seq & 31))) === 0) {
          if (firstMissing < 0) firstMissing = seq
          missing++
        }
      }
      let extra = 0
      for (let seq = r.stamped; seq < bitmapWordsPerThread * 32; seq++) {
        if ((bits[seq >>> 5] & (1 << (seq & 31))) !== 0) extra++
      }
      if (missing > 0) fail(`thread ${p}: ${missing} stamps never consumed (first: seq ${firstMissing})`)
      if (extra > 0) fail(`thread ${p}: ${extra} sequence numbers consumed that were never stamped`)
    }
  }

  // ---- ownership tags ----------------------------------------------------------------------------
  const tags = new Int32Array(tagsBuffer)
  const stillTagged = [...tags.keys()].filter((s) => tags[s] !== 0)
  if (stillTagged.length > 0) fail(`slots still tagged as owned after every worker left: ${stillTagged.join(', ')}`)

  const board = new Int32Array(boardBuffer)
  if (board[0] !== 0 || board[1] !== board[2]) fail(`ticket board not empty at the end: lock ${board[0]}, head ${board[1]}, tail ${board[2]}`)

  // ---- channels ------------------------------------------------------------------------------------
  const channelReports = channels.map((channel, k) => {
    const s = channel.stats()
    const sent = sum((r) => r.sentOn[k])
    const received = sum((r) => r.recvOn[k])
    if (s.sent !== s.received) fail(`channel ${k}: sent ${s.sent} !== received ${s.received}`)
    if (s.queued !== 0) fail(`channel ${k}: ${s.queued} leases still queued`)
    if (s.sent !== sent) fail(`channel ${k}: stats().sent ${s.sent}, workers sent ${sent}`)
    if (s.received !== received) fail(`channel ${k}: stats().received ${s.received}, workers received ${received}`)
    const w = channelWaiters(channel)
    if (w.recv !== 0 || w.send !== 0) fail(`channel ${k}: waiters still registered ${JSON.stringify(w)}`)
    return { capacity: s.capacity, sent: s.sent, received: s.received, sendWaits: s.sendWaits, recvWaits: s.recvWaits }
  })
  for (const [k, channel] of channels.entries()) {
    channel.close()
    if (channel.tryRecv() !== null) fail(`channel ${k}: tryRecv() after close is not null`)
    if (channel.recvSync({ timeout: 1000 }) !== null) fail(`channel ${k}: recvSync() after close is not null`)
    if ((await channel.recv({ timeout: 1000 })) !== null) fail(`channel ${k}: recv() after close is not null`)
  }

  // ---- pool ----------------------------------------------------------------------------------------
  const ps = pool.stats()
  const acquired = sum((r) => r.acquired)
  const released = sum((r) => r.released)
  if (ps.inUse !== 0) fail(`pool: inUse ${ps.inUse} after every worker gave everything back`)
  if (ps.acquired !== ps.released + ps.reclaimed) fail(`pool: acquired ${ps.acquired} !== released ${ps.released} + reclaimed ${ps.reclaimed}`)
  if (ps.reclaimed !== 0) fail(`pool: ${ps.reclaimed} slots reclaimed, but no worker died holding leases`)
  if (ps.acquired !== acquired) fail(`pool: stats().acquired ${ps.acquired}, workers acquired ${acquired}`)
  if (ps.released !== released) fail(`pool: stats().released ${ps.released}, workers released ${released}`)
  if (ps.waiting !== 0) fail(`pool: ${ps.waiting} waiters still registered`)
  if (ps.highWater > ps.slots) fail(`pool: highWater ${ps.highWater} > slots ${ps.slots}`)
  if (ps.free !== ps.slots) fail(`pool: free ${ps.free} of ${ps.slots}`)
  // Every slot free exactly once: draining yields each slot once, then null.
  const drained = []
  for (let lease; drained.length <= o.slots && (lease = pool.tryAcquire()) !== null;) drained.push(lease)
  const distinct = new Set(drained.map((l) => l.slot))
  if (drained.length !== o.slots || distinct.size !== o.slots) {
    fail(`pool drain: got ${drained.length} leases (${distinct.size} distinct slots), expected exactly ${o.slots}`)
  }
  for (const lease of drained) lease.release()
  const end = pool.stats()
  if (end.inUse !== 0 || end.acquired !== end.released + end.reclaimed) fail(`pool after the drain: ${JSON.stringify(end)}`)

  const transfers = {
    acquired,
    released,
    sent: sum((r) => r.sentOn.reduce((a, b) => a + b, 0)),
    received: sum((r) => r.recvOn.reduce((a, b) => a + b, 0)),
    handedOff: sum((r) => r.handedOff),
    adopted: sum((r) => r.adopted),
    stamped: stampedTotal,
    verified: sum((r) => r.consumed.reduce((a, b) => a + b, 0)),
  }
  for (const c of channels) c.detach()
  pool.detach()
  return {
    ok: violations.length === 0,
    violations,
    ops,
    threads: T,
    seconds: elapsed,
    opsPerSec: ops / elapsed,
    timeLimited: timeUp,
    options: { ...o, ops: Number.isFinite(o.ops) ? o.ops : null, seconds: Number.isFinite(o.seconds) ? o.seconds : null },
    calls,
    timeouts,
    misses,
    transfers,
    pool: { ...ps, waits: ps.waits },
    channels: channelReports,
  }
}

function format(report) {
  const lines = []
  lines.push(`sabpool stress: ${n(report.ops)} operations, ${report.threads} threads, ${report.seconds.toFixed(2)} s, ${n(report.opsPerSec)} ops/s${report.timeLimited ? ' (stopped by --seconds)' : ''}`)
  lines.push(`  calls:     ${Object.entries(report.calls).map(([k, v]) => `${k} ${n(v)}`).join(', ')}`)
  lines.push(`  timeouts:  ${Object.entries(report.timeouts).map(([k, v]) => `${k} ${n(v)}`).join(', ')}`)
  lines.push(`  empty/full answers: ${Object.entries(report.misses).map(([k, v]) => `${k} ${n(v)}`).join(', ')}`)
  const t = report.transfers
  lines.push(`  payloads:  ${n(t.stamped)} stamped, ${n(t.verified)} verified; ${n(t.sent)} sent / ${n(t.received)} received through channels, ${n(t.handedOff)} handed off / ${n(t.adopted)} adopted`)
  const p = report.pool
  lines.push(`  pool:      ${p.slots} slots, acquired ${n(p.acquired)}, released ${n(p.released)}, reclaimed ${p.reclaimed}, highWater ${p.highWater}, parked waits ${n(p.waits)}`)
  report.channels.forEach((c, k) => {
    lines.push(`  channel ${k}: capacity ${c.capacity}, sent ${n(c.sent)}, received ${n(c.received)}, parked sends ${n(c.sendWaits)}, parked receives ${n(c.recvWaits)}`)
  })
  lines.push(...verdictLines(report))
  return lines.join('\n')
}

module.exports = { runStress, format, parseArgs, DEFAULTS }

if (require.main === module) {
  if (process.argv.includes('--kill')) {
    // The fault-injection run: processes killed with SIGKILL (see scripts/faults.js).
    process.argv = process.argv.filter((arg) => arg !== '--kill')
    const faults = require('./faults.js')
    main({
      file: require.resolve('./faults.js'),
      parseArgs: faults.parseArgs,
      run: (options) => faults.runFaults({ ...options, progress: process.stderr.isTTY }),
      format: faults.format,
    })
  } else {
    main({
      file: __filename,
      parseArgs,
      run: (options) => runStress({ ...options, progress: process.stderr.isTTY }),
      format,
    })
  }
}
