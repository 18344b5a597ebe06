'use strict'
// Runs one cell (mechanism × payload size) on a mechanism's long-lived worker:
//   echo phase: warm-up → round trips (timed) → sender-blocked (timed send calls) → JS heap window
//   sink phase: streaming throughput, `repeats` windows
// and the parked-latency variant (round trips with the consumer idle long enough to park).
// The host is a WorkerHost (host.js: a worker thread) or a ProcessHost (proc-host.js: a child
// process, `--processes`); both have the same interface.

const { loopsFor, warmUp, itersFor, heapPerRoundTrip } = require('./harness.js')
const { summarize, clamp } = require('./stats.js')
const cpu = require('./cpuload.js')

/** Slots/messages in flight while streaming: ≤ 64 and ≤ 256 MiB of payload, a power of two. */
function windowFor(size) {
  const w = clamp(Math.floor((256 << 20) / size), 2, 64)
  return 2 ** Math.floor(Math.log2(w))
}

/** Counter deltas of mechanisms that expose counters (the sabpool channels), else null. */
function countersSince(m, st, before) {
  if (m.counters === undefined) return null
  const now = m.counters(st)
  const out = {}
  for (const k of Object.keys(now)) out[k] = now[k] - before[k]
  return out
}

async function startPhase(host, m, st, mode) {
  await host.call('phase', { mode })
  m.beginPhase(st, mode)
}

async function endPhase(host, m, st, mode) {
  m.endPhase(st, mode)
  // The worker's side posts { done } when its blocking loop returns (bench/worker.js).
  if (m.worker.run !== undefined) {
    const reply = await host.next()
    if (!reply.done) throw new Error(`bench bug: expected the end of the worker's phase, got ${JSON.stringify(reply)}`)
  }
}

async function setUpCell(host, m, size, window) {
  global.gc()
  const { st, init } = m.setup(size, window, host.port)
  host.onMessage = (msg) => m.onMessage(st, msg)
  await host.call('setup', init)
  if (m.attached !== undefined) m.attached(st)
  return st
}

async function tearDownCell(host, m, st) {
  const { mismatches } = await host.call('teardown')
  m.teardown(st)
  host.onMessage = null
  return { main: st.mismatches, worker: mismatches }
}

/**
 * One cell. `report(phase)` shows progress. Returns every number of the cell (times in ns).
 */
async function runCell(host, m, size, cfg, report) {
  const window = windowFor(size)
  const loops = loopsFor(m)
  const cpu0 = cpu.sample(host.pids)
  const st = await setUpCell(host, m, size, window)
  const guard = (p) => host.guard(Promise.resolve(p))

  await startPhase(host, m, st, 'echo')
  report('warm-up')
  const meanMs = await guard(warmUp(loops, m, st, cfg.warmupMs, cfg.maxIters))
  const n = itersFor(cfg.phaseMs, meanMs, cfg.minIters, cfg.maxIters)
  global.gc()
  const rss0 = process.memoryUsage.rss()

  report(`round trip ×${n}`)
  const rt = new Float64Array(n)
  const c0 = m.counters?.(st)
  await guard(loops.roundTrips(m, st, n, rt, null, 0))
  const rtParks = countersSince(m, st, c0)

  report(`sender blocked ×${n}`)
  const sendBlocked = new Float64Array(n)
  await guard(loops.roundTrips(m, st, n, null, sendBlocked, 0))

  report('heap window')
  const heap = await guard(heapPerRoundTrip(loops, m, st, meanMs, cfg))
  await guard(endPhase(host, m, st, 'echo'))

  // Streaming: `repeats` windows of streamMs / repeats each, every window carrying at least a
  // full `window` of messages, or 3 (and only 3 windows) when messages are so slow (the big
  // object-graph clones) that a full window would not fit in the budget.
  const slice = cfg.streamMs / cfg.streamRepeats
  const minMsgs = meanMs * window <= slice ? window : 3
  const repeats = minMsgs * meanMs <= slice ? cfg.streamRepeats : Math.min(3, cfg.streamRepeats)
  await startPhase(host, m, st, 'sink')
  report('streaming warm-up')
  // The sink paths get optimised too. A sync stream sends `minMsgs` at a time (a window, or 3 when
  // messages are slow), so its warm-up sends at least that many.
  await guard(loops.stream(m, st, cfg.warmupMs, m.sync ? minMsgs : 1, window))
  const c1 = m.counters?.(st)
  const rates = []
  let streamed = 0
  for (let r = 0; r < repeats; r++) {
    report(`streaming ${r + 1}/${repeats}`)
    const { msgs, ms } = await guard(loops.stream(m, st, cfg.streamMs / repeats, minMsgs, window))
    rates.push((msgs / ms) * 1e3)
    streamed += msgs
  }
  const streamParks = countersSince(m, st, c1)
  await guard(endPhase(host, m, st, 'sink'))
  const rss1 = process.memoryUsage.rss()

  const mismatches = await tearDownCell(host, m, st)
  const msgsPerSec = summarize(rates)
  return {
    mechanism: m.id,
    size,
    window,
    rt: summarize(rt, 1e6),
    send: summarize(sendBlocked, 1e6),
    throughput: {
      repeats,
      messages: streamed,
      msgsPerSec: { p10: msgsPerSec.p10, p50: msgsPerSec.p50, p90: msgsPerSec.p90 },
      gbPerSec: (msgsPerSec.p50 * size) / 1e9,
    },
    heap,
    rss: { growthBytes: rss1 - rss0 },
    verify: mismatches,
    cpu: { othersCores: cpu.othersCores(cpu0, cpu.sample(host.pids)) },
    // How often a thread slept in a blocking call: during the timed round trips, and while streaming.
    parks: rtParks === null ? null : { roundTrip: rtParks, stream: streamParks },
  }
}

/**
 * Round trips with the worker busy (back to back) and parked (the main thread sleeps `pauseMs`
 * before each round trip, so the worker has long given up spinning and sleeps in Atomics.wait or
 * in its event loop). Both the round trip and the send call are timed in the same pass.
 */
async function runParked(host, m, size, cfg, report) {
  const loops = loopsFor(m)
  const cpu0 = cpu.sample(host.pids)
  const st = await setUpCell(host, m, size, windowFor(size))
  const guard = (p) => host.guard(Promise.resolve(p))
  await startPhase(host, m, st, 'echo')
  report('warm-up')
  const meanMs = await guard(warmUp(loops, m, st, cfg.warmupMs, cfg.maxIters))
  const out = {}
  for (const [name, n, pause] of [
    ['busy', itersFor(cfg.phaseMs, meanMs, cfg.minIters, cfg.maxIters), 0],
    ['parked', cfg.parkedIters, cfg.pauseMs],
  ]) {
    report(`${name} ×${n}`)
    const rt = new Float64Array(n)
    const send = new Float64Array(n)
    const c0 = m.counters?.(st)
    await guard(loops.roundTrips(m, st, n, rt, send, pause))
    out[name] = { rt: summarize(rt, 1e6), send: summarize(send, 1e6), parks: countersSince(m, st, c0) }
  }
  await guard(endPhase(host, m, st, 'echo'))
  const mismatches = await tearDownCell(host, m, st)
  return { mechanism: m.id, size, pauseMs: cfg.pauseMs, ...out, verify: mismatches, cpu: { othersCores: cpu.othersCores(cpu0, cpu.sample(host.pids)) } }
}

module.exports = { runCell, runParked, windowFor }
