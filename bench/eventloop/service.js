'use strict'
// Service round trip: the main thread of a service never blocks, so it sends with
// `await channel.send()` and waits for the reply with `await channel.recv()`; the worker serves in
// `recvSync` + `sendSync` (library defaults, `{ reuse }` on its receives). Next to it, on the same
// worker and channels, the all-sync round trip (main `sendSync` + `recvSync`), and postMessage
// doing the same job with the main thread awaiting the 'message' event: the payload transferred
// there and back, or cloned both ways. Every row carries the same payload size.
//
// Per size, all rows are set up together and measured interleaved:
//   hot     back-to-back round trips, in blocks that rotate through the rows (the first round
//           trips of a block are untimed: the worker may have parked while the other rows ran);
//   calls   a separate pass of hot round trips timing every main-thread call (the duration of the
//           call expression: until `send()`/`recv()` return their promise, or the sync call
//           returns) under an event-loop delay histogram;
//   idle    round trips each preceded by `await setTimeout(pauseMs)` on the main thread (never a
//           blocking wait), so the worker has given up spinning and parked, or its event loop
//           idles; rows alternate round trip by round trip. Call durations are taken in this same
//           pass (four timer reads next to a round trip of tens of µs). The sabpool rows also
//           record whether the worker was parked (channel stats().recvWaiting) when the request
//           went out.

const { SharedPool, Channel } = require('../..')
const { stampBytes, readBytes, check } = require('../payload.js')
const { summarize, clamp } = require('../stats.js')
const { itersFor } = require('../harness.js')
const cpu = require('../cpuload.js')
const { fmtSize } = require('../report.js')
const { CallTimes, loopDelay, delay } = require('./measure.js')

// ---- the worker side of the sabpool row -----------------------------------------------------------

const worker = {
  setup(init) {
    const pool = SharedPool.attach(init.toWorker.pool)
    return {
      pool,
      fromMain: Channel.attach(init.toWorker, pool),
      toMain: Channel.attach(init.toMain, pool),
      opts: { reuse: undefined },
      mode: 'echo',
      expect: 0,
      mismatches: 0,
    }
  },
  /** Echoes until a lease of length 0 arrives (echoed too, so the main thread gets its lease back). */
  run(w) {
    const { fromMain, toMain, opts } = w
    for (;;) {
      const lease = fromMain.recvSync(opts)
      const length = lease.length
      if (length !== 0) check(w, readBytes(lease.bytes, length))
      toMain.sendSync(lease, length)
      opts.reuse = lease // sent: re-armed by the next receive
      if (length === 0) return
    }
  },
  abort(w) {
    w.toMain.close()
    w.fromMain.close()
  },
  teardown(w) {
    w.fromMain.detach()
    w.toMain.detach()
    w.pool.detach()
  },
}

// ---- main-thread loops ----------------------------------------------------------------------------
// Each runs `n` round trips, writing round trip i's duration (ms) to out[off + i] when `out` is not
// null and each call's duration to `calls` when that is not null. A loop stops early once
// performance.now() passes `deadline` (a contended machine must not stretch a pass without
// bound) and returns how many round trips it made.

async function awaitLoop(st, n, out, off, calls, deadline = Infinity) {
  const { toWorker, toMain, size, opts } = st
  for (let i = 0; i < n; i++) {
    const t0 = performance.now()
    const tag = st.seq
    st.seq = (tag + 1) & 255
    stampBytes(st.lease.bytes, size, tag)
    let c = calls !== null ? performance.now() : 0
    const sent = toWorker.send(st.lease, size)
    if (calls !== null) calls.add(0, performance.now() - c)
    await sent
    opts.reuse = st.lease // sent: re-armed by this receive
    if (calls !== null) c = performance.now()
    const reply = toMain.recv(opts)
    if (calls !== null) calls.add(1, performance.now() - c)
    const lease = await reply
    if (lease === null) throw new Error('the worker closed the channel (it failed)')
    if (readBytes(lease.bytes, size) !== tag) st.mismatches++
    st.lease = lease
    const t1 = performance.now()
    if (out !== null) out[off + i] = t1 - t0
    if (t1 > deadline) return i + 1
  }
  return n
}

async function syncLoop(st, n, out, off, calls, deadline = Infinity) {
  const { toWorker, toMain, size, opts } = st
  for (let i = 0; i < n; i++) {
    const t0 = performance.now()
    const tag = st.seq
    st.seq = (tag + 1) & 255
    stampBytes(st.lease.bytes, size, tag)
    let c = calls !== null ? performance.now() : 0
    toWorker.sendSync(st.lease, size)
    if (calls !== null) calls.add(0, performance.now() - c)
    opts.reuse = st.lease
    if (calls !== null) c = performance.now()
    const lease = toMain.recvSync(opts)
    if (calls !== null) calls.add(1, performance.now() - c)
    if (lease === null) throw new Error('the worker closed the channel (it failed)')
    if (readBytes(lease.bytes, size) !== tag) st.mismatches++
    st.lease = lease
    const t1 = performance.now()
    if (out !== null) out[off + i] = t1 - t0
    if (t1 > deadline) return i + 1
  }
  return n
}

/** postMessage rows: the reply is awaited as a promise resolved by the port's 'message' listener. */
async function messageLoop(st, n, out, off, calls, deadline = Infinity) {
  const { port, size, transfer } = st
  for (let i = 0; i < n; i++) {
    const t0 = performance.now()
    const tag = st.seq
    st.seq = (tag + 1) & 255
    const cur = st.cur
    stampBytes(cur, size, tag)
    const reply = new Promise((resolve) => {
      st.resolve = resolve
    })
    const c = calls !== null ? performance.now() : 0
    if (transfer) port.postMessage(cur, [cur.buffer])
    else port.postMessage(cur)
    if (calls !== null) calls.add(0, performance.now() - c)
    const msg = await reply
    if (readBytes(msg, size) !== tag) st.mismatches++
    if (transfer) st.cur = msg
    const t1 = performance.now()
    if (out !== null) out[off + i] = t1 - t0
    if (t1 > deadline) return i + 1
  }
  return n
}

// ---- the rows ---------------------------------------------------------------------------------------

const ROWS = [
  { id: 'service-await', short: 'sabpool await recv()', label: 'sabpool Channel: main `await send()` + `await recv()`, worker recvSync/sendSync', host: 'service-channel', group: 'sabpool', calls: ['send', 'recv'], loop: awaitLoop, blocks: false },
  { id: 'service-sync', short: 'sabpool recvSync (all-sync)', label: 'sabpool Channel: main sendSync + recvSync (blocks the event loop), the same worker', host: 'service-channel', group: 'sabpool', calls: ['sendSync', 'recvSync'], loop: syncLoop, blocks: true },
  { id: 'service-transfer', short: 'postMessage transfer', label: 'postMessage of the Uint8Array with its buffer transferred, transferred back; main awaits the reply', host: 'transfer', group: 'postMessage', calls: ['postMessage'], loop: messageLoop, blocks: false },
  { id: 'service-clone', short: 'postMessage clone', label: 'postMessage clone of the Uint8Array, cloned back; main awaits the reply', host: 'clone-bytes', group: 'postMessage', calls: ['postMessage'], loop: messageLoop, blocks: false },
]

const HOSTS = [...new Set(ROWS.map((r) => r.host))]

/** Main-thread state and the worker's init of each host, for one size. */
function setUp(hostId, size, host) {
  if (hostId === 'service-channel') {
    const pool = new SharedPool({ slotSize: size, slots: 2 })
    const toWorker = new Channel(pool, { capacity: 2 })
    const toMain = new Channel(pool, { capacity: 2 })
    const st = { pool, toWorker, toMain, size, lease: null, opts: { reuse: undefined }, seq: 0, mismatches: 0 }
    return { st, init: { toWorker: toWorker.handle, toMain: toMain.handle, size } }
  }
  const st = { port: host.port, size, transfer: hostId === 'transfer', cur: new Uint8Array(size), seq: 0, mismatches: 0, resolve: null }
  host.onMessage = (msg) => {
    const resolve = st.resolve
    st.resolve = null
    resolve(msg)
  }
  return { st, init: hostId === 'transfer' ? { size } : { kind: 'bytes', size } }
}

/** Park counters of the sabpool row (null for postMessage): receives that slept, each side. */
function parkCounts(st) {
  if (st.toWorker === undefined) return null
  return { worker: st.toWorker.stats().recvWaits, main: st.toMain.stats().recvWaits }
}

function addParks(acc, before, after) {
  if (before === null) return
  acc.worker += after.worker - before.worker
  acc.main += after.main - before.main
}

/** Best mean round-trip time (ms) over doubling chunks for `warmupMs` (at most twice that). */
async function warmUp(row, st, warmupMs, maxIters) {
  const start = performance.now()
  let best = Infinity
  let done = 0
  for (let chunk = 1; ; chunk = Math.min(chunk * 2, maxIters)) {
    const t0 = performance.now()
    const made = await row.loop(st, chunk, null, 0, null, start + 2 * warmupMs)
    best = Math.min(best, (performance.now() - t0) / made)
    done += made
    if (performance.now() - start >= warmupMs || done >= maxIters) return best
  }
}

/** Runs the service rows at `size`; `hosts` maps a host id to its WorkerHost. */
async function runSize(hosts, size, cfg, report) {
  const cpu0 = cpu.sample()
  const states = new Map()
  for (const id of HOSTS) {
    global.gc()
    const host = hosts.get(id)
    const { st, init } = setUp(id, size, host)
    await host.call('setup', init)
    states.set(id, st)
  }
  const guard = (p) => Promise.race([p, ...HOSTS.map((id) => hosts.get(id).failed)])
  for (const id of HOSTS) {
    await hosts.get(id).call('phase', { mode: 'echo' })
    const st = states.get(id)
    st.seq = 0
    if (st.pool !== undefined) st.lease = st.pool.tryAcquire()
  }
  const rows = ROWS.map((row) => ({ row, st: states.get(row.host), parksHot: { worker: 0, main: 0 }, idleWorkerParked: 0, idleMainParks: 0 }))

  report('warm-up')
  for (const r of rows) r.meanMs = await guard(warmUp(r.row, r.st, cfg.warmupMs, cfg.maxIters))
  for (const r of rows) {
    r.n = itersFor(cfg.phaseMs, r.meanMs, cfg.minIters, cfg.maxIters)
    r.hot = new Float64Array(r.n)
  }

  // Hot: blocks rotating through the rows, the order reversed every other block. Each block gets
  // n / blocks round trips and stops early after twice its share of phaseMs.
  const blocks = cfg.serviceBlocks
  const blockBudgetMs = (2 * cfg.phaseMs) / blocks
  for (const r of rows) r.count = 0
  for (let b = 0; b < blocks; b++) {
    report(`hot round trips, block ${b + 1}/${blocks}`)
    for (const r of b % 2 === 0 ? rows : [...rows].reverse()) {
      const want = Math.min(Math.ceil(r.n / blocks), r.n - r.count)
      if (want <= 0) continue
      await guard(r.row.loop(r.st, clamp(Math.ceil(want / 10), 1, 10), null, 0, null)) // untimed lead-in
      const p0 = parkCounts(r.st)
      r.count += await guard(r.row.loop(r.st, want, r.hot, r.count, null, performance.now() + blockBudgetMs))
      addParks(r.parksHot, p0, parkCounts(r.st))
    }
  }

  // Calls: a separate hot pass per row, every main-thread call timed, under the loop-delay histogram.
  for (const r of rows) {
    report(`call durations: ${r.row.short}`)
    r.hotCalls = new CallTimes(r.row.calls, r.n)
    const eld = await loopDelay()
    await guard(r.row.loop(r.st, r.n, null, 0, r.hotCalls, performance.now() + 2 * cfg.phaseMs))
    r.loopDelay = await eld.stop()
  }

  // Idle: every round trip after pauseMs of an idle event loop, the rows alternating. For the
  // sabpool rows, whether the worker was parked when the request went out (the premise of the
  // row; the two rows share the worker, so its own park counts could not be told apart), and the
  // main thread's receive waits that slept during the round trip.
  const idleN = cfg.idleIters
  for (const r of rows) {
    r.idle = new Float64Array(idleN)
    r.idleCalls = new CallTimes(r.row.calls, idleN)
  }
  for (let i = 0; i < idleN; i++) {
    if (i % 10 === 0) report(`idle round trips ${i}/${idleN}`)
    for (const r of rows) {
      await delay(cfg.pauseMs)
      const ch = r.st.toWorker === undefined ? null : r.st
      if (ch !== null && ch.toWorker.stats().recvWaiting > 0) r.idleWorkerParked++
      const m0 = ch === null ? 0 : ch.toMain.stats().recvWaits
      await guard(r.row.loop(r.st, 1, r.idle, i, r.idleCalls))
      if (ch !== null) r.idleMainParks += ch.toMain.stats().recvWaits - m0
    }
  }

  // End the sabpool worker's loop: a lease of length 0, echoed.
  const ch = states.get('service-channel')
  ch.toWorker.sendSync(ch.lease, 0)
  ch.opts.reuse = ch.lease
  const last = ch.toMain.recvSync(ch.opts)
  if (last === null) throw new Error('the worker closed the channel (it failed)')
  last.release()
  ch.lease = null
  const done = await hosts.get('service-channel').next()
  if (!done.done) throw new Error(`bench bug: expected the end of the service worker's phase, got ${JSON.stringify(done)}`)

  const workerMismatches = new Map()
  for (const id of HOSTS) {
    const { mismatches } = await hosts.get(id).call('teardown')
    workerMismatches.set(id, mismatches)
    hosts.get(id).onMessage = null
  }
  ch.toWorker.detach()
  ch.toMain.detach()
  ch.pool.detach()
  const othersCores = cpu.othersCores(cpu0, cpu.sample())

  const perRt = (p, n) => ({ worker: p.worker / n, main: p.main / n })
  return rows.map((r) => ({
    family: 'service',
    mechanism: r.row.id,
    label: r.row.label,
    short: r.row.short,
    group: r.row.group,
    size,
    blocksEventLoop: r.row.blocks,
    hot: {
      rt: summarize(r.hot.subarray(0, r.count), 1e6),
      calls: r.hotCalls.summary(),
      loopDelay: r.loopDelay,
      parks: r.st.toWorker === undefined ? null : perRt(r.parksHot, r.count),
    },
    idle: {
      pauseMs: cfg.pauseMs,
      rt: summarize(r.idle, 1e6),
      calls: r.idleCalls.summary(),
      parks: r.st.toWorker === undefined ? null : { workerParkedAtSend: r.idleWorkerParked / idleN, main: r.idleMainParks / idleN },
    },
    // The two sabpool rows share one worker: its payload check counts for both.
    verify: { main: r.st.mismatches, worker: workerMismatches.get(r.row.host) },
    cpu: { othersCores },
  }))
}

/** Adds each row's ratios: round trip p50 over the all-sync row's and over postMessage's faster row. */
function addServiceRatios(cells) {
  for (const c of cells) {
    const same = (id) => cells.find((x) => x.mechanism === id && x.size === c.size)
    const sync = same('service-sync')
    const pms = ['service-transfer', 'service-clone'].map(same).filter(Boolean)
    const best = (key) => (pms.length === 0 ? null : Math.min(...pms.map((p) => p[key].rt.p50)))
    const hotPm = best('hot')
    const idlePm = best('idle')
    c.ratios = {
      vsSync: sync === undefined ? null : c.hot.rt.p50 / sync.hot.rt.p50,
      vsPostMessage: hotPm === null ? null : c.hot.rt.p50 / hotPm,
      p99VsPostMessageP50: hotPm === null ? null : c.hot.rt.p99 / hotPm,
      idleVsPostMessage: idlePm === null ? null : c.idle.rt.p50 / idlePm,
    }
  }
}

module.exports = {
  id: 'service',
  title: 'service round trip',
  hosts: HOSTS,
  rows: ROWS,
  workers: { 'service-channel': worker },
  steps: (cfg) => cfg.sizes.length,
  async run(hosts, cfg, progress) {
    const cells = []
    for (const size of cfg.sizes) {
      progress.step(`service round trip ${fmtSize(size)}`)
      cells.push(...await runSize(hosts, size, cfg, (p) => progress.phase(p)))
    }
    addServiceRatios(cells)
    return { cells }
  },
}
