'use strict'
// Streaming into the event loop: a worker produces as fast as it can (`acquireSync({ reuse })`,
// stamp, `sendSync`) and the main thread consumes, releasing every lease, in one of three ways:
//   for await   `for await (const lease of channel)` (each step is a `recv()`);
//   recvSync    a blocking loop: the all-sync figure (the event loop is held for the whole stream);
//   recvMany    `recvMany(capacity)` until it comes back empty, then one `await recv()`.
// None of the consumers passes `reuse` (the async iterator cannot), so each allocates a Lease per
// message and the ratios compare only how the main thread waits. The pool has `win` slots (the
// streaming window of the pipeline rows): the producer blocks while all are in flight.
//
// A window is one phase of the worker: it produces `count` messages and then a lease of length
// 0; the rate is count over the time from the first message to that last one received. Windows
// of the three consumers alternate (the order reversed every other round); then one more window
// per consumer times every main-thread call under an event-loop delay histogram.

const { SharedPool, Channel } = require('../..')
const { stampBytes, readBytes, check } = require('../payload.js')
const { summarize, clamp } = require('../stats.js')
const { windowFor } = require('../runner.js')
const { nextPow2 } = require('../mechanisms/channel.js')
const { fmtSize } = require('../report.js')
const cpu = require('../cpuload.js')
const { CallTimes, loopDelay } = require('./measure.js')

// ---- the producer (worker) ----------------------------------------------------------------------

const producer = {
  setup(init) {
    const pool = SharedPool.attach(init.channel.pool)
    return { pool, ch: Channel.attach(init.channel, pool), size: init.size, opts: { reuse: undefined }, mode: 'idle', expect: 0, mismatches: 0 }
  },
  run(w) {
    if (w.mode !== 'produce') return
    const { pool, ch, size, opts } = w
    const count = w.arg.count
    for (let i = 0; i < count; i++) {
      const lease = pool.acquireSync(opts)
      stampBytes(lease.bytes, size, i & 255)
      ch.sendSync(lease, size)
      opts.reuse = lease // sent: re-armed by the next acquire
    }
    const last = pool.acquireSync(opts)
    ch.sendSync(last, 0)
    opts.reuse = last
  },
  abort(w) {
    w.ch.close() // the main thread's receive returns null
  },
  teardown(w) {
    w.ch.detach()
    w.pool.detach()
  },
}

// ---- the consumers (main thread) ------------------------------------------------------------------
// Each returns { msgs, ms }: the messages before the end marker and the time from the first
// message to the end marker. `calls` (a CallTimes, or null) gets every sabpool call's duration.

const closedEarly = () => new Error('the producer closed the channel (it failed)')

async function forAwaitConsumer(st, calls) {
  const { ch } = st
  let first = 0
  let n = 0
  if (calls === null) {
    for await (const lease of ch) {
      if (n++ === 0) first = performance.now()
      const length = lease.length
      if (length === 0) {
        lease.release()
        return { msgs: n - 1, ms: performance.now() - first }
      }
      check(st, readBytes(lease.bytes, length))
      lease.release()
    }
    throw closedEarly()
  }
  // The same steps as `for await`, with the iterator's next() and each release timed.
  const it = ch[Symbol.asyncIterator]()
  for (;;) {
    let c = performance.now()
    const step = it.next()
    calls.add(0, performance.now() - c)
    const { value: lease, done } = await step
    if (done) throw closedEarly()
    if (n++ === 0) first = performance.now()
    const length = lease.length
    if (length !== 0) check(st, readBytes(lease.bytes, length))
    c = performance.now()
    lease.release()
    calls.add(1, performance.now() - c)
    if (length === 0) {
      const ms = performance.now() - first
      await it.return()
      return { msgs: n - 1, ms }
    }
  }
}

function syncConsumer(st, calls) {
  const { ch } = st
  let first = 0
  let n = 0
  for (;;) {
    let c = calls !== null ? performance.now() : 0
    const lease = ch.recvSync()
    if (calls !== null) calls.add(0, performance.now() - c)
    if (lease === null) throw closedEarly()
    if (n++ === 0) first = performance.now()
    const length = lease.length
    if (length !== 0) check(st, readBytes(lease.bytes, length))
    if (calls !== null) c = performance.now()
    lease.release()
    if (calls !== null) calls.add(1, performance.now() - c)
    if (length === 0) return { msgs: n - 1, ms: performance.now() - first }
  }
}

async function manyConsumer(st, calls) {
  const { ch, capacity } = st
  let first = 0
  let n = 0
  for (;;) {
    let c = calls !== null ? performance.now() : 0
    let batch = ch.recvMany(capacity)
    if (calls !== null) calls.add(0, performance.now() - c)
    if (batch === null) throw closedEarly()
    if (batch.length === 0) {
      if (calls !== null) c = performance.now()
      const next = ch.recv()
      if (calls !== null) calls.add(1, performance.now() - c)
      const lease = await next
      if (lease === null) throw closedEarly()
      batch = [lease]
    }
    for (let i = 0; i < batch.length; i++) {
      const lease = batch[i]
      if (n++ === 0) first = performance.now()
      const length = lease.length
      if (length !== 0) check(st, readBytes(lease.bytes, length))
      if (calls !== null) c = performance.now()
      lease.release()
      if (calls !== null) calls.add(2, performance.now() - c)
      if (length === 0) {
        if (i !== batch.length - 1) throw new Error('bench bug: messages after the end marker')
        return { msgs: n - 1, ms: performance.now() - first }
      }
    }
  }
}

const ROWS = [
  { id: 'stream-await', short: 'sabpool for await', label: 'main: for await (const lease of channel) + release', consume: forAwaitConsumer, calls: ['next', 'release'], blocks: false },
  { id: 'stream-sync', short: 'sabpool recvSync', label: 'main: recvSync() + release in a blocking loop (the sync figure)', consume: syncConsumer, calls: ['recvSync', 'release'], blocks: true },
  { id: 'stream-many', short: 'sabpool recvMany loop', label: 'main: recvMany(capacity), when empty one await recv(); release each', consume: manyConsumer, calls: ['recvMany', 'recv', 'release'], blocks: false },
]

/** Counters of the pool and the channel: the main thread's parked receives and the producer's parked sends/acquires. */
function parkCounts(st) {
  const c = st.ch.stats()
  return { main: c.recvWaits, producer: c.sendWaits + st.pool.stats().waits }
}

/** One window: the producer sends `count` messages, r.row consumes them (its payload mismatches go to r.mismatches). */
async function window1(host, st, r, count, calls) {
  st.expect = 0
  const m0 = st.mismatches
  await host.call('phase', { mode: 'produce', count })
  const out = await host.guard(Promise.resolve(r.row.consume(st, calls)))
  r.mismatches += st.mismatches - m0
  const done = await host.next()
  if (!done.done) throw new Error(`bench bug: expected the end of the producer's phase, got ${JSON.stringify(done)}`)
  if (out.msgs !== count) throw new Error(`stream: received ${out.msgs} messages, the producer sent ${count}`)
  return out
}

async function runSize(host, size, cfg, report) {
  const cpu0 = cpu.sample()
  global.gc()
  const win = windowFor(size)
  const pool = new SharedPool({ slotSize: size, slots: win })
  const capacity = nextPow2(win)
  const ch = new Channel(pool, { capacity })
  const st = { pool, ch, capacity, size, expect: 0, mismatches: 0 }
  await host.call('setup', { channel: ch.handle, size })

  const rows = ROWS.map((row) => ({ row, rates: [], messages: 0, mismatches: 0, parks: { main: 0, producer: 0 } }))
  report('warm-up')
  for (const r of rows) {
    const { msgs, ms } = await window1(host, st, r, cfg.streamWarmCount, null)
    const slice = cfg.streamMs / cfg.streamRepeats
    r.count = clamp(Math.round((msgs / ms) * slice), cfg.streamWarmCount, cfg.streamMaxCount)
  }
  for (let k = 0; k < cfg.streamRepeats; k++) {
    report(`streaming ${k + 1}/${cfg.streamRepeats}`)
    for (const r of k % 2 === 0 ? rows : [...rows].reverse()) {
      const p0 = parkCounts(st)
      const { msgs, ms } = await window1(host, st, r, r.count, null)
      const p1 = parkCounts(st)
      r.parks.main += p1.main - p0.main
      r.parks.producer += p1.producer - p0.producer
      r.rates.push((msgs / ms) * 1e3)
      r.messages += msgs
    }
  }
  for (const r of rows) {
    report(`call durations: ${r.row.short}`)
    r.calls = new CallTimes(r.row.calls, r.count + 2)
    const eld = await loopDelay()
    await window1(host, st, r, r.count, r.calls)
    r.loopDelay = await eld.stop()
  }
  const { mismatches } = await host.call('teardown')
  ch.detach()
  pool.detach()
  const othersCores = cpu.othersCores(cpu0, cpu.sample())
  return rows.map((r) => {
    const rate = summarize(r.rates)
    return {
      family: 'stream',
      mechanism: r.row.id,
      label: r.row.label,
      short: r.row.short,
      group: 'sabpool',
      size,
      window: win,
      blocksEventLoop: r.row.blocks,
      throughput: { repeats: r.rates.length, messages: r.messages, msgsPerSec: { p10: rate.p10, p50: rate.p50, p90: rate.p90 } },
      calls: r.calls.summary(),
      loopDelay: r.loopDelay,
      parks: { main: r.parks.main / r.messages, producer: r.parks.producer / r.messages },
      // One producer serves every row: its payload check counts for each.
      verify: { main: r.mismatches, worker: mismatches },
      cpu: { othersCores },
    }
  })
}

module.exports = {
  id: 'stream',
  title: 'streaming into the event loop',
  hosts: ['stream-producer'],
  rows: ROWS,
  workers: { 'stream-producer': producer },
  steps: (cfg) => cfg.sizes.length,
  async run(hosts, cfg, progress) {
    const cells = []
    for (const size of cfg.sizes) {
      progress.step(`streaming into the event loop ${fmtSize(size)}`)
      cells.push(...await runSize(hosts.get('stream-producer'), size, cfg, (p) => progress.phase(p)))
    }
    for (const c of cells) {
      const sync = cells.find((x) => x.mechanism === 'stream-sync' && x.size === c.size)
      c.ratios = { vsSync: sync === undefined ? null : c.throughput.msgsPerSec.p50 / sync.throughput.msgsPerSec.p50 }
    }
    return { cells }
  },
}
