#!/usr/bin/env node
'use strict'
// Soak run (npm run soak): streams leases between the main thread and worker threads for a
// while and checks that nothing accumulates.
//
//   node scripts/soak.js [--seconds S] [--warmup S] [--workers N] [--slots N] [--slot-size B]
//                        [--rss-tolerance MIB] [--rss-tolerance-pct P] [--rss-ceiling MIB]
//                        [--heap-tolerance MIB] [--json]
//
// The main thread (async calls only: acquire, send, recv, with a timeout and a long-lived
// AbortSignal) fills leases and sends them to the workers through a channel, or posts them as
// tickets; each worker checks a payload, transforms it in place and sends it back through a
// second channel, or as a ticket; the main thread checks what came back and releases it.
//
// After a warm-up (default 5 s) it forces a full GC in every thread and records RSS, the heaps
// and the pool stats; after --seconds more (default 60) it does it again, then stops the traffic
// and drains. It exits 1 if (see TOLERANCE below for the numbers and why):
//   - RSS outside the JS heaps (RSS minus every isolate's heapTotal) grew by more than
//     max(--rss-tolerance MiB, --rss-tolerance-pct % of the start RSS), default 16 MiB / 10 %;
//   - RSS as a whole grew by more than --rss-ceiling MiB (default 64);
//   - a thread's heap after a full GC grew by more than --heap-tolerance MiB (default 8);
//   - any payload came back damaged, the pool does not add up at the end (inUse 0, acquired ===
//     released + reclaimed, nothing reclaimed), a channel's sent !== received, an abort listener
//     or a timer was left behind, or a worker failed.
//
// `runSoak(options)` is the same run as a function (used by __test__/soak.test.js).

const path = require('node:path')
const v8 = require('node:v8')
const vm = require('node:vm')
const { getEventListeners } = require('node:events')
const { Worker, MessageChannel } = require('node:worker_threads')
const { SharedPool, Channel } = require('..')
const P = require('./soak-payload.js')
const { parseFlags, n, verdictLines, main } = require('./cli-common.js')

// TOLERANCE. Measured here (Node 20, 2 workers, 16 × 1 KiB slots, ~40,000 round trips/s): in a
// 180 s run the RSS rose from 83 to 110 MiB during the first ~55 s and then stayed within
// 0.5 MiB for two minutes; after a full GC the end RSS was 104 MiB, +20.5 MiB. All of that rise
// was the main isolate's heap reservation (heapTotal 13 → 44 MiB, 37.5 after the GC) while its
// live heap after GC stayed at 4.1–4.3 MiB and RSS outside the JS heaps went 51.7 → 47.9 MiB:
// V8 sizing its young generation to the allocation rate of the async waits, not a leak, and
// bounded by V8's own limits (a young generation of at most 3 × 16 MiB semi-spaces here).
// So a plain "RSS grew by < 10 MiB or 10 %" would fail a correct 60 s run, and a warm-up long
// enough to hide it would cost a minute. Instead:
//   - RSS minus the JS heaps' reservations must not grow by more than 16 MiB (or 10 % of a
//     larger process): at ~40,000 round trips/s over 60 s that catches a native leak (addon,
//     Node-API references, backing stores, handles) of ~7 bytes per round trip;
//   - each thread's live heap after a full GC must not grow by more than 8 MiB: a JS leak of a
//     few bytes per round trip (Lease objects, promises, closures, listeners);
//   - RSS as a whole must not grow by more than 64 MiB: 3× the V8 resizing seen above, a
//     ceiling in case the reservations themselves run away.
// The short test run (5 s) applies the same bounds, which there catch leaks of ~100 bytes per
// round trip.
const DEFAULTS = {
  seconds: 60,
  warmup: 5,
  workers: 2,
  slots: 16,
  slotSize: 1024,
  capacity: 8,
  rssToleranceMiB: 16,
  rssTolerancePct: 10,
  rssCeilingMiB: 64,
  heapToleranceMiB: 8,
  /** Self-test: bytes the main thread keeps per round trip once measuring has started (a planted
   * leak), up to `leakTotal` bytes in all, so what is planted does not depend on the throughput. */
  leak: 0,
  leakTotal: Infinity,
  log: null,
}

const MiB = 2 ** 20

function parseArgs(argv) {
  return parseFlags(argv, {
    '--seconds': 'seconds', '--warmup': 'warmup', '--workers': 'workers', '--slots': 'slots',
    '--slot-size': 'slotSize', '--capacity': 'capacity', '--rss-tolerance': 'rssToleranceMiB',
    '--rss-tolerance-pct': 'rssTolerancePct', '--rss-ceiling': 'rssCeilingMiB',
    '--heap-tolerance': 'heapToleranceMiB', '--leak': 'leak', '--leak-total': 'leakTotal',
  })
}

function memory() {
  const m = process.memoryUsage()
  return { rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, arrayBuffers: m.arrayBuffers }
}

/** Runs the soak; resolves with a report { ok, violations, ... } (rejects only on bad options). */
async function runSoak(options = {}) {
  const o = { ...DEFAULTS, ...options }
  if (!(o.seconds > 0) || !(o.warmup >= 0)) throw new RangeError('seconds must be > 0 and warmup >= 0')
  const log = o.log ?? (() => {})
  const violations = []
  const fail = (m) => { if (violations.length < 100) violations.push(m) }

  v8.setFlagsFromString('--expose-gc')
  const gc = vm.runInNewContext('gc')
  const memBuffer = new SharedArrayBuffer(24 * o.workers)
  const workerMem = new Float64Array(memBuffer) // per worker: heapUsed, heapTotal, heapUsed after GC
  const ctlBuffer = new SharedArrayBuffer(4 * (1 + o.workers))
  const ctl = new Int32Array(ctlBuffer) // [0] GC request epoch, [1 + i] last epoch worker i did
  /** Full GC in this thread (a few rounds: finalizers run between them) and in every worker. */
  const settle = async () => {
    const epoch = Atomics.add(ctl, 0, 1) + 1
    for (let i = 0; i < 3; i++) {
      gc()
      await new Promise((r) => setImmediate(r))
    }
    const by = performance.now() + 5000
    while (performance.now() < by) {
      let all = true
      for (let i = 0; i < o.workers; i++) if (Atomics.load(ctl, 1 + i) !== epoch) all = false
      if (all) return
      await new Promise((r) => setTimeout(r, 2))
    }
    fail('workers did not run the requested GC within 5 s')
  }
  const snapshot = () => {
    const m = memory()
    const workers = Array.from({ length: o.workers }, (_, i) => ({
      heapUsed: workerMem[3 * i], heapTotal: workerMem[3 * i + 1], heapAfterGc: workerMem[3 * i + 2],
    }))
    const heaps = m.heapTotal + workers.reduce((a, w) => a + w.heapTotal, 0)
    return { ...m, workers, native: m.rss - heaps }
  }

  const pool = new SharedPool({ slotSize: o.slotSize, slots: o.slots })
  const down = new Channel(pool, { capacity: o.capacity })
  const up = new Channel(pool, { capacity: o.capacity })
  const abort = new AbortController()
  const signal = abort.signal
  const timersBefore = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length

  let produced = 0
  let consumed = 0
  let mainCalls = 0
  let ticketsOut = 0
  let ticketsIn = 0
  let damaged = 0
  const leaked = []
  let leakedBytes = 0
  let measuring = false

  function received(lease) {
    const problem = P.checkReturned(lease)
    if (problem !== null) {
      damaged++
      fail(`payload came back damaged: ${problem}`)
    }
    if (measuring && o.leak > 0 && leakedBytes < o.leakTotal) {
      leaked.push(Buffer.alloc(o.leak, 1))
      leakedBytes += o.leak
    }
    lease.release()
    mainCalls++
    consumed++
  }

  const workers = []
  const ports = []
  const workerDone = []
  for (let i = 0; i < o.workers; i++) {
    const { port1, port2 } = new MessageChannel()
    const worker = new Worker(path.join(__dirname, 'soak-worker.js'), {
      workerData: { index: i, downHandle: down.handle, upHandle: up.handle, port: port2, mem: memBuffer, ctl: ctlBuffer },
      transferList: [port2],
    })
    const errors = []
    worker.on('error', (err) => errors.push(err))
    let done = null
    worker.on('message', (msg) => {
      if (msg.type === 'ticket') {
        ticketsIn++
        mainCalls++
        received(pool.adopt(msg.ticket))
      } else if (msg.type === 'done') {
        done = msg
      }
    })
    workerDone.push(new Promise((resolve) => worker.once('exit', (code) => resolve({ code, errors, done: () => done }))))
    workers.push(worker)
    ports.push(port1)
  }

  let stopping = false
  let seq = 0
  let x = 0x2545f491
  const rand = () => {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    return x >>> 0
  }

  async function producer() {
    while (!stopping) {
      let lease
      try {
        lease = await pool.acquire({ timeout: 2000, signal })
      } catch (err) {
        fail(`acquire failed: ${err.code} ${err.message}`)
        return
      }
      mainCalls++
      P.stamp(lease, seq++, P.HEADER + (rand() % (o.slotSize - P.HEADER + 1)))
      produced++
      if ((rand() & 7) === 0) {
        ports[rand() % ports.length].postMessage(lease.handoff())
        ticketsOut++
        mainCalls++
      } else {
        try {
          await down.send(lease, undefined, { timeout: 10_000, signal })
          mainCalls++
        } catch (err) {
          fail(`send failed: ${err.code} ${err.message}`)
          lease.release()
          consumed++
          return
        }
      }
    }
  }

  async function consumer() {
    let spare
    while (!stopping || consumed < produced) {
      let lease
      try {
        lease = await up.recv({ timeout: 250, signal, reuse: spare })
      } catch (err) {
        if (err.code === 'ERR_SABPOOL_TIMEOUT') continue
        fail(`recv failed: ${err.code} ${err.message}`)
        return
      }
      mainCalls++
      if (lease === null) return
      received(lease)
      spare = lease
    }
  }

  // ---- run ------------------------------------------------------------------------------------------
  const t0 = performance.now()
  const tasks = [producer(), producer(), consumer(), consumer()]
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

  // Half-way through the warm-up, a first GC everywhere: the code it runs is paged in before the
  // start snapshot, like everything else the run does.
  await sleep(o.warmup * 500)
  await settle()
  await sleep(o.warmup * 500)
  await settle()
  const start = { memory: snapshot(), pool: pool.stats(), produced, consumed, t: performance.now() }
  measuring = true
  log(`start (after ${o.warmup} s warm-up and GC): rss ${(start.memory.rss / MiB).toFixed(1)} MiB, heap ${(start.memory.heapUsed / MiB).toFixed(1)} MiB, ${produced} round trips so far`)
  const tick = setInterval(() => {
    const m = snapshot()
    log(`  ${((performance.now() - start.t) / 1000).toFixed(0)} s: rss ${(m.rss / MiB).toFixed(1)} MiB (outside JS heaps ${(m.native / MiB).toFixed(1)}), main heap ${(m.heapUsed / MiB).toFixed(1)} / ${(m.heapTotal / MiB).toFixed(1)} MiB, ${n(consumed - start.consumed)} round trips`)
  }, o.logEvery ?? 10_000)
  await sleep(o.seconds * 1000)
  clearInterval(tick)
  await settle()
  const end = { memory: snapshot(), pool: pool.stats(), produced, consumed, t: performance.now() }

  // ---- stop and drain ---------------------------------------------------------------------------------
  stopping = true
  await Promise.all(tasks.slice(0, 2)) // producers stop after their current lease
  const drainBy = performance.now() + 15_000
  while (consumed < produced && performance.now() < drainBy) await sleep(5)
  if (consumed < produced) fail(`${produced - consumed} payloads never came back`)
  down.close()
  const ended = await Promise.all(workerDone)
  up.close()
  await Promise.all(tasks)
  for (const port of ports) port.close()

  let workerHandled = 0
  ended.forEach(({ code, errors, done }, i) => {
    if (code !== 0) fail(`worker ${i} exited with code ${code}${errors.length ? `: ${errors[0].stack}` : ''}`)
    const d = done()
    if (d === null) fail(`worker ${i} did not report`)
    else {
      workerHandled += d.handled
      if (d.bad > 0) fail(`worker ${i} got ${d.bad} damaged payloads`)
    }
  })

  // ---- checks -------------------------------------------------------------------------------------------
  const rssGrowth = end.memory.rss - start.memory.rss
  const nativeGrowth = end.memory.native - start.memory.native
  const nativeLimit = Math.max(o.rssToleranceMiB * MiB, (o.rssTolerancePct / 100) * start.memory.rss)
  if (nativeGrowth > nativeLimit) {
    fail(`RSS outside the JS heaps grew by ${(nativeGrowth / MiB).toFixed(1)} MiB, more than the ${(nativeLimit / MiB).toFixed(1)} MiB allowed (RSS ${(start.memory.rss / MiB).toFixed(1)} → ${(end.memory.rss / MiB).toFixed(1)} MiB)`)
  }
  if (rssGrowth > o.rssCeilingMiB * MiB) {
    fail(`RSS grew by ${(rssGrowth / MiB).toFixed(1)} MiB, more than the ${o.rssCeilingMiB} MiB ceiling`)
  }
  const heapGrowth = end.memory.heapUsed - start.memory.heapUsed
  if (heapGrowth > o.heapToleranceMiB * MiB) {
    fail(`main-thread heap (after GC) grew by ${(heapGrowth / MiB).toFixed(1)} MiB, more than ${o.heapToleranceMiB} MiB`)
  }
  end.memory.workers.forEach((w, i) => {
    const growth = w.heapAfterGc - start.memory.workers[i].heapAfterGc
    if (growth > o.heapToleranceMiB * MiB) fail(`worker ${i} heap (after GC) grew by ${(growth / MiB).toFixed(1)} MiB, more than ${o.heapToleranceMiB} MiB`)
  })
  const ps = pool.stats()
  if (ps.inUse !== 0) fail(`pool: inUse ${ps.inUse} after the drain`)
  if (ps.acquired !== ps.released + ps.reclaimed) fail(`pool: acquired ${ps.acquired} !== released ${ps.released} + reclaimed ${ps.reclaimed}`)
  if (ps.reclaimed !== 0) fail(`pool: ${ps.reclaimed} slots reclaimed, but no thread died holding any`)
  if (ps.acquired !== produced) fail(`pool: acquired ${ps.acquired}, main produced ${produced}`)
  if (ps.waiting !== 0) fail(`pool: ${ps.waiting} waiters still registered`)
  for (const [name, channel] of [['down', down], ['up', up]]) {
    const s = channel.stats()
    if (s.sent !== s.received || s.queued !== 0) fail(`channel ${name}: sent ${s.sent}, received ${s.received}, queued ${s.queued}`)
  }
  const listeners = getEventListeners(signal, 'abort').length
  if (listeners !== 0) fail(`${listeners} abort listeners left on the signal`)
  await sleep(10)
  const timersAfter = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length
  if (timersAfter > timersBefore) fail(`${timersAfter - timersBefore} timers left behind by waits`)
  abort.abort()
  for (const c of [down, up]) c.detach()
  pool.detach()

  const measured = (end.t - start.t) / 1000
  const roundTrips = end.consumed - start.consumed
  return {
    ok: violations.length === 0,
    violations,
    seconds: measured,
    warmup: o.warmup,
    workers: o.workers,
    roundTrips,
    roundTripsTotal: consumed,
    ticketsOut,
    ticketsIn,
    damaged,
    ops: mainCalls + 2 * workerHandled,
    opsPerSec: (mainCalls + 2 * workerHandled) / ((end.t - t0) / 1000),
    start: { ...start.memory, pool: start.pool },
    end: { ...end.memory, pool: end.pool },
    rssGrowth,
    nativeGrowth,
    nativeLimit,
    rssCeiling: o.rssCeilingMiB * MiB,
    heapGrowth,
    pool: ps,
  }
}

function format(r) {
  const mib = (b) => `${(b / MiB).toFixed(1)} MiB`
  const lines = [
    `sabpool soak: ${r.seconds.toFixed(1)} s measured after a ${r.warmup} s warm-up, ${r.workers} workers, ${n(r.roundTrips)} round trips (${n(r.roundTrips / r.seconds)}/s), ${n(r.ops)} library calls in all; ${n(r.ticketsOut)} tickets out, ${n(r.ticketsIn)} in`,
    ...['start', 'end'].map((k) => {
      const m = r[k]
      return `  ${k.padEnd(5)}: rss ${mib(m.rss)} (outside JS heaps ${mib(m.native)}), main heap ${mib(m.heapUsed)} used / ${mib(m.heapTotal)} total, external ${mib(m.external)}, worker heaps after GC ${m.workers.map((w) => `${mib(w.heapAfterGc)} / ${mib(w.heapTotal)}`).join(', ')}; pool inUse ${m.pool.inUse}, acquired ${n(m.pool.acquired)}`
    }),
    `  growth: rss ${mib(r.rssGrowth)} (ceiling ${mib(r.rssCeiling)}), outside JS heaps ${mib(r.nativeGrowth)} (limit ${mib(r.nativeLimit)}), main heap after GC ${mib(r.heapGrowth)}`,
    `  pool after the drain: ${JSON.stringify(r.pool)}`,
  ]
  lines.push(...verdictLines(r))
  return lines.join('\n')
}

module.exports = { runSoak, format, parseArgs, DEFAULTS }

if (require.main === module) {
  main({
    file: __filename,
    parseArgs,
    run: (options, json) => runSoak({ ...options, log: json ? null : (m) => console.log(m) }),
    format,
  })
}
