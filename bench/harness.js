'use strict'
// Measurement loops shared by every mechanism. Nothing here knows a mechanism: the loops call
// its prepare/send/wait (sync) or prepare/send + onMessage callbacks (async) hooks.
//
// Times are taken with performance.now() (≈45 ns per call here, ≈30 ns resolution): every
// round-trip sample contains one timer call; the report prints the measured overhead.

const { PerformanceObserver } = require('node:perf_hooks')
const { summarize, clamp } = require('./stats.js')

const SLEEP = new Int32Array(new SharedArrayBuffer(4))

/** Blocks this thread for `ms` milliseconds without spinning (the CPU may go idle, as in real life). */
function sleep(ms) {
  Atomics.wait(SLEEP, 0, 0, ms)
}

// ---- the loops ----------------------------------------------------------------------------------
// A round-trip loop records, per iteration, the round trip (prepare + send + wait for the reply)
// into `rtOut` and/or the duration of the send call alone into `sendOut` (either may be null: a
// loop with both null takes no timestamps at all, for the heap window). `pauseMs` > 0 sleeps
// before each iteration (outside the timing) so that the other side goes idle and parks.

function syncRoundTrips(m, st, n, rtOut, sendOut, pauseMs, sleepCell) {
  const prepare = m.prepare
  const send = m.send
  const wait = m.wait
  for (let i = 0; i < n; i++) {
    if (pauseMs > 0) Atomics.wait(sleepCell, 0, 0, pauseMs)
    const t0 = rtOut !== null ? performance.now() : 0
    prepare(st)
    const t1 = sendOut !== null ? performance.now() : 0
    send(st)
    if (sendOut !== null) sendOut[i] = performance.now() - t1
    wait(st)
    if (rtOut !== null) rtOut[i] = performance.now() - t0
  }
}

function syncStream(m, st, budgetMs, minMsgs, window) {
  const streamSend = m.streamSend
  // Messages between clock reads: a window, or fewer when the runner asks for fewer messages
  // than a window (messages so slow that a window would overrun the budget many times).
  const chunk = Math.max(1, Math.min(window, minMsgs))
  const t0 = performance.now()
  let sent = 0
  do {
    for (let k = 0; k < chunk; k++) streamSend(st)
    sent += chunk
  } while (sent < minMsgs || performance.now() - t0 < budgetMs)
  m.streamDrain(st)
  return { msgs: sent, ms: performance.now() - t0 }
}

function asyncRoundTrips(m, st, n, rtOut, sendOut, pauseMs) {
  return new Promise((resolve) => {
    const prepare = m.prepare
    const send = m.send
    let i = 0
    let t0 = 0
    const next = () => {
      if (pauseMs > 0) sleep(pauseMs)
      if (rtOut !== null) t0 = performance.now()
      prepare(st)
      const t1 = sendOut !== null ? performance.now() : 0
      send(st)
      if (sendOut !== null) sendOut[i] = performance.now() - t1
    }
    st.onReply = () => {
      if (rtOut !== null) rtOut[i] = performance.now() - t0
      if (++i === n) resolve()
      else next()
    }
    if (n === 0) resolve()
    else next()
  })
}

/** Streams with at most `window` messages not yet acknowledged by the worker. */
function asyncStream(m, st, budgetMs, minMsgs, window) {
  return new Promise((resolve) => {
    const streamSend = m.streamSend
    const t0 = performance.now()
    let sent = 0
    let acked = 0
    let stop = false
    const pump = () => {
      while (!stop && sent - acked < window) {
        streamSend(st)
        sent++
        if (sent >= minMsgs && performance.now() - t0 >= budgetMs) stop = true
      }
    }
    st.onAck = () => {
      acked++
      if (!stop && sent >= minMsgs && performance.now() - t0 >= budgetMs) stop = true
      if (stop && acked === sent) resolve({ msgs: sent, ms: performance.now() - t0 })
      else pump()
    }
    pump()
  })
}

// A sync loop called with several mechanisms' functions would see several call targets and be
// deoptimised to a generic call; the hand-written floor would then pay for the harness. Each sync
// mechanism therefore gets its own compiled copy of the loops (new Function: separate feedback).
function fresh(fn) {
  return new Function(`'use strict'; return (${fn.toString()})`)()
}

const loopCache = new Map()

/** { roundTrips(m, st, n, rtOut, sendOut, pauseMs), stream(m, st, budgetMs, minMsgs, window) } */
function loopsFor(m) {
  let loops = loopCache.get(m.id)
  if (loops === undefined) {
    if (m.sync) {
      const rt = fresh(syncRoundTrips)
      loops = {
        roundTrips: (mm, st, n, rtOut, sendOut, pauseMs) => rt(mm, st, n, rtOut, sendOut, pauseMs, SLEEP),
        stream: fresh(syncStream),
      }
    } else {
      loops = { roundTrips: asyncRoundTrips, stream: asyncStream }
    }
    loopCache.set(m.id, loops)
  }
  return loops
}

// ---- warm-up and iteration counts ---------------------------------------------------------------

/**
 * Runs round trips in doubling chunks until `warmupMs` has passed (at least one round trip), so
 * that both threads' code is optimised and caches and pages are warm. Returns the mean round-trip
 * time of the fastest chunk in ms (one descheduling on a busy machine must not collapse the
 * iteration counts): the basis of every iteration count in the cell.
 */
async function warmUp(loops, m, st, warmupMs, maxIters) {
  const start = performance.now()
  let chunk = 1
  let done = 0
  let best = Infinity
  for (;;) {
    const t0 = performance.now()
    await loops.roundTrips(m, st, chunk, null, null, 0)
    best = Math.min(best, (performance.now() - t0) / chunk)
    done += chunk
    if (performance.now() - start >= warmupMs || done >= maxIters) return best
    chunk = Math.min(chunk * 2, maxIters)
  }
}

/** Iterations that fill `budgetMs` at `meanMs` each, within [min, max]. */
function itersFor(budgetMs, meanMs, min, max) {
  return clamp(Math.round(budgetMs / Math.max(meanMs, 1e-6)), min, max)
}

// ---- JS heap per round trip -------------------------------------------------------------------------
//
// Method: global.gc() twice (full GCs; empties the young generation and finishes freeing dead
// ArrayBuffers), then read process.memoryUsage()
// (heapUsed and arrayBuffers), run n untimed round trips, read it again. With no GC inside the
// window, the difference is exactly what this (main) thread allocated; a PerformanceObserver on
// 'gc' entries tells whether a GC ran inside the window (then n is halved and the window retried,
// up to 3 times; a result that still saw a GC is flagged as a lower bound). Of three such windows
// the smallest per-round-trip result is reported. n is sized from a
// probe window so that the window stays far below the young generation's capacity. The bytes that
// memoryUsage() itself allocates are measured with an empty window and subtracted.

const gcSpans = []
let gcObserver = null

function observeGc() {
  if (gcObserver !== null) return
  gcObserver = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) gcSpans.push([e.startTime, e.startTime + e.duration])
  })
  gcObserver.observe({ entryTypes: ['gc'] })
}

function stopObservingGc() {
  if (gcObserver !== null) gcObserver.disconnect()
  gcObserver = null
}

/** Lets queued 'gc' performance entries reach the observer. */
function settle() {
  return new Promise((resolve) => setImmediate(() => setImmediate(resolve)))
}

async function window1(loops, m, st, n) {
  // Twice: V8 frees dead ArrayBuffer backing stores on a background sweeper after a GC; the second
  // GC waits for that sweep, so no free from before the window lands inside it.
  global.gc()
  global.gc()
  const tA = performance.now()
  const a = process.memoryUsage()
  await loops.roundTrips(m, st, n, null, null, 0)
  const b = process.memoryUsage()
  const tB = performance.now()
  await settle()
  const gcInside = gcSpans.some(([s, e]) => e >= tA && s <= tB)
  return { heap: b.heapUsed - a.heapUsed, ab: b.arrayBuffers - a.arrayBuffers, gcInside }
}

const HEAP_WINDOW_BYTES = 2 << 20 // stay far below the young generation (16 MiB here)
const AB_WINDOW_BYTES = 32 << 20 // external memory growth beyond ~64 MiB triggers GC in V8

async function heapPerRoundTrip(loops, m, st, meanMs, cfg) {
  observeGc()
  // The empty window: what memoryUsage() and the loop's own set-up allocate.
  const empties = []
  for (let i = 0; i < 3; i++) empties.push(await window1(loops, m, st, 0))
  const base = empties.sort((x, y) => x.heap - y.heap)[1]
  const probeN = clamp(Math.round(20 / Math.max(meanMs, 1e-6)), 1, 16)
  const probe = await window1(loops, m, st, probeN)
  const perHeap = Math.max(0, probe.heap - base.heap) / probeN
  const perAb = Math.max(0, probe.ab - base.ab) / probeN
  let n = Math.min(
    cfg.heapMaxIters,
    itersFor(cfg.heapBudgetMs, meanMs, 1, cfg.heapMaxIters),
    perHeap > 0 ? Math.floor(HEAP_WINDOW_BYTES / perHeap) : Infinity,
    perAb > 0 ? Math.floor(AB_WINDOW_BYTES / perAb) : Infinity,
  )
  n = Math.max(1, n)
  // Three windows, the smallest result wins: one-off allocations (JIT code, feedback, a lazily
  // created object) are additive noise; what every message allocates is in all three.
  let best = null
  for (let k = 0; k < 3; k++) {
    let w
    let m1 = n
    for (let attempt = 0; attempt < 3; attempt++) {
      w = await window1(loops, m, st, m1)
      if (!w.gcInside || m1 === 1) break
      m1 = Math.max(1, m1 >> 1)
    }
    const r = {
      n: m1,
      bytesPerRoundTrip: (w.heap - base.heap) / m1,
      arrayBufferBytesPerRoundTrip: (w.ab - base.ab) / m1,
      gcInside: w.gcInside,
    }
    const better = best === null || (best.gcInside && !r.gcInside) ||
      (best.gcInside === r.gcInside && r.bytesPerRoundTrip + r.arrayBufferBytesPerRoundTrip < best.bytesPerRoundTrip + best.arrayBufferBytesPerRoundTrip)
    if (better) best = r
  }
  return best
}

// ---- timer overhead ---------------------------------------------------------------------------------

/** Median cost of one performance.now() call, ns (what each latency sample carries). */
function timerOverheadNs() {
  const n = 200000
  const out = new Float64Array(21)
  for (let r = 0; r < out.length; r++) {
    const t0 = performance.now()
    let x = 0
    for (let i = 0; i < n; i++) x += performance.now()
    out[r] = ((performance.now() - t0) * 1e6) / n
    if (x === 0) out[r] = NaN
  }
  return summarize(out).p50
}

module.exports = {
  sleep,
  loopsFor,
  warmUp,
  itersFor,
  heapPerRoundTrip,
  stopObservingGc,
  timerOverheadNs,
}
