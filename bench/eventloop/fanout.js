'use strict'
// Fan-out pipeline: the main thread produces items and 2 or 4 consumer workers process them.
//   sabpool     main: `await pool.acquire({ reuse })`, stamp a few bytes, `await channel.send()`
//               into one channel shared by every consumer; consumers `recvSync({ reuse })`, do the
//               work, `release()`. The pool has `slots` slots.
//   transfer    postMessage with recycled transferred buffers: `slots` ArrayBuffers allocated
//               once; main stamps a free one and transfers it to the least-loaded consumer (fewest
//               buffers outstanding; ties go round-robin), which does the work and transfers it
//               back; main waits for a free buffer in its event loop.
// The work per item is the same for both: check the stamp (item number and tag) and hash the
// first 4 KiB of the payload (a multiply-add over its bytes), whatever the item's size.
//
// A window moves `items` items and ends when the last one has been consumed (sabpool: every slot
// is free again; transfer: every buffer is back); MB/s is items × size / the window's time
// (MB = 1e6 bytes). The end markers of the sabpool consumers are sent after the timed part.
// CPU per item, each over exactly the window / items: process.cpuUsage() (every thread of the
// process), the main thread's own CPU time (threadCpuNs) and the consumers' (their schedstat, read
// by the main thread: taskCpuNs in measure.js). Windows of the two mechanisms alternate (ABBA);
// then one more window each times every main-thread call under an event-loop delay histogram.

const { SharedPool, Channel } = require('../..')
const { summarize } = require('../stats.js')
const { nextPow2 } = require('../mechanisms/channel.js')
const { fmtSize } = require('../report.js')
const cpu = require('../cpuload.js')
const { CallTimes, loopDelay, threadCpuNs, processCpuNs, ownThreadId, taskCpuNs } = require('./measure.js')

/** Bytes of each item the consumers hash. */
const WORK_PREFIX = 4096

/** Writes item `i`'s number (bytes 1–4) and tag (first and last byte) into `bytes`. */
function stampItem(bytes, size, i) {
  const tag = i & 255
  bytes[0] = tag
  bytes[1] = tag
  bytes[2] = (i >>> 8) & 255
  bytes[3] = (i >>> 16) & 255
  bytes[4] = (i >>> 24) & 255
  bytes[size - 1] = tag
}

/** The consumers' work on one item of `length` bytes: check its stamp, hash its first 4 KiB. */
function consume(w, bytes, length) {
  const i = (bytes[1] | (bytes[2] << 8) | (bytes[3] << 16) | (bytes[4] << 24)) >>> 0
  const tag = i & 255
  if (bytes[0] !== tag || bytes[length - 1] !== tag) w.mismatches++
  const end = Math.min(WORK_PREFIX, length)
  let h = 0
  for (let k = 0; k < end; k++) h = (Math.imul(h, 31) + bytes[k]) | 0
  w.sink = (w.sink + h) | 0
  w.items++
  w.itemSum += i
}

function begin(w) {
  w.items = 0
  w.itemSum = 0
}

/** What the consumer did in the last phase, and its thread id (the main thread reads its CPU time). */
function report(w) {
  return { items: w.items, itemSum: w.itemSum, sink: w.sink, tid: w.tid }
}

const channelConsumer = {
  setup(init) {
    const pool = SharedPool.attach(init.channel.pool)
    return { pool, ch: Channel.attach(init.channel, pool), opts: { reuse: undefined }, tid: ownThreadId(), mode: 'idle', expect: 0, mismatches: 0, sink: 0, items: 0, itemSum: 0 }
  },
  begin,
  /** Consumes until a lease of length 0 (one end marker per consumer). */
  run(w) {
    if (w.mode !== 'consume') return
    const { ch, opts } = w
    for (;;) {
      const lease = ch.recvSync(opts)
      if (lease === null) throw new Error('the channel was closed')
      const length = lease.length
      if (length !== 0) consume(w, lease.bytes, length)
      lease.release()
      opts.reuse = lease // released: re-armed by the next receive
      if (length === 0) return
    }
  },
  report,
  abort(w) {
    w.ch.close()
  },
  teardown(w) {
    w.ch.detach()
    w.pool.detach()
  },
}

const transferConsumer = {
  setup(_init, port) {
    return { port, tid: ownThreadId(), mode: 'idle', expect: 0, mismatches: 0, sink: 0, items: 0, itemSum: 0 }
  },
  begin,
  onMessage(w, u8) {
    consume(w, u8, u8.length)
    w.port.postMessage(u8, [u8.buffer])
  },
  report,
  teardown() {},
}

// ---- main thread ----------------------------------------------------------------------------------

/** Waits for `promise`, or fails as soon as one of `hosts` fails. */
const guarded = (hosts, promise) => Promise.race([promise, ...hosts.map((h) => h.failed)])

async function startConsumers(active) {
  await Promise.all(active.map((h) => h.call('phase', { mode: 'consume' })))
}

/**
 * sabpool: produces `items` items; returns once every one has been consumed, i.e. once every slot
 * of the pool is free again (taken back with `await pool.acquire()`, as a producer would wait).
 */
async function channelItems(st, k, items, calls) {
  const { pool, ch, size, opts, held } = st
  for (let i = 0; i < items; i++) {
    let c = calls !== null ? performance.now() : 0
    const acquiring = pool.acquire(opts)
    if (calls !== null) calls.add(0, performance.now() - c)
    const lease = await acquiring
    stampItem(lease.bytes, size, i)
    if (calls !== null) c = performance.now()
    const sending = ch.send(lease, size)
    if (calls !== null) calls.add(1, performance.now() - c)
    await sending
    opts.reuse = lease // sent: re-armed by the next acquire
  }
  for (let j = 0; j < held.length; j++) held[j] = await pool.acquire()
}

/** After the timed part: frees the slots again and ends the `k` consumers' loops (one end marker each). */
async function channelFinish(st, k) {
  const { ch, held } = st
  for (let j = 0; j < held.length; j++) {
    if (j < k) await ch.send(held[j], 0)
    else held[j].release()
    held[j] = null
  }
  const done = await Promise.all(st.hosts.slice(0, k).map((h) => h.next()))
  if (!done.every((d) => d.done)) throw new Error(`bench bug: expected the consumers' end of phase, got ${JSON.stringify(done)}`)
}

/** transfer: resolves when all `items` buffers have come back. */
function transferItems(st, k, items, calls) {
  const { size, free, outstanding, ports } = st
  outstanding.fill(0)
  return new Promise((resolve) => {
    let produced = 0
    let returned = 0
    const pump = () => {
      while (free.length > 0 && produced < items) {
        const u8 = free.pop()
        stampItem(u8, size, produced)
        let to = -1
        for (let j = 0; j < k; j++) {
          const c = (st.next + j) % k
          if (to < 0 || outstanding[c] < outstanding[to]) to = c
        }
        st.next = (to + 1) % k
        const c = calls !== null ? performance.now() : 0
        ports[to].postMessage(u8, [u8.buffer])
        if (calls !== null) calls.add(0, performance.now() - c)
        outstanding[to]++
        produced++
      }
    }
    st.onReturn = (from, u8) => {
      outstanding[from]--
      free.push(u8)
      if (++returned === items) resolve()
      else pump()
    }
    pump()
  })
}

const ROWS = [
  { id: 'fanout-channel', short: 'sabpool channel', label: 'sabpool: await pool.acquire({ reuse }) + await channel.send(); consumers recvSync + release', host: 'fanout-channel', group: 'sabpool', calls: ['acquire', 'send'], items: channelItems, finish: channelFinish },
  { id: 'fanout-transfer', short: 'postMessage recycled transfer', label: 'postMessage transfer of recycled ArrayBuffers to the least-loaded consumer, transferred back', host: 'fanout-transfer', group: 'postMessage', calls: ['postMessage'], items: transferItems },
]

function parkCounts(st) {
  if (st.ch === undefined) return null
  const c = st.ch.stats()
  return { consumers: c.recvWaits, mainSend: c.sendWaits, mainAcquire: st.pool.stats().waits }
}

/** One window of `items` items through `k` consumers; `r` accumulates the row's numbers. */
async function window1(r, k, items, calls) {
  const active = r.st.hosts.slice(0, k)
  await startConsumers(active)
  const p0 = parkCounts(r.st)
  const tids = r.st.tids.slice(0, k)
  const consumers0 = tids.map(taskCpuNs)
  const proc0 = processCpuNs()
  const main0 = threadCpuNs()
  const t0 = performance.now()
  await guarded(active, r.row.items(r.st, k, items, calls))
  const ms = performance.now() - t0
  const proc = processCpuNs() - proc0
  const main = main0 === null ? null : threadCpuNs() - main0
  const consumers1 = tids.map(taskCpuNs)
  const p1 = parkCounts(r.st)
  if (r.row.finish !== undefined) await guarded(active, r.row.finish(r.st, k))
  const reports = (await Promise.all(active.map((h) => h.call('report')))).map((x) => x.report)
  // Every item consumed exactly once: the counts and the item numbers add up.
  const got = reports.reduce((a, x) => a + x.items, 0)
  const sum = reports.reduce((a, x) => a + x.itemSum, 0)
  if (got !== items || sum !== (items * (items - 1)) / 2) r.mismatches++
  const consumersCpu = [...consumers0, ...consumers1].includes(null) ? null : consumers1.reduce((a, x, i) => a + x - consumers0[i], 0)
  if (p0 !== null) for (const key of Object.keys(r.parks)) r.parks[key] += p1[key] - p0[key]
  return { ms, proc, main, consumersCpu }
}

async function setUpSize(hostsOf, size, cfg) {
  const slots = cfg.fanoutSlots
  global.gc()
  const pool = new SharedPool({ slotSize: size, slots })
  const ch = new Channel(pool, { capacity: nextPow2(slots) })
  const sab = { pool, ch, size, opts: { reuse: undefined }, held: new Array(slots).fill(null), hosts: hostsOf('fanout-channel') }
  for (const h of sab.hosts) await h.call('setup', { channel: ch.handle, size })
  const free = []
  for (let i = 0; i < slots; i++) free.push(new Uint8Array(size))
  const tr = { size, free, outstanding: new Int32Array(sab.hosts.length), next: 0, onReturn: null, hosts: hostsOf('fanout-transfer') }
  tr.ports = tr.hosts.map((h) => h.port)
  tr.hosts.forEach((h, c) => {
    h.onMessage = (u8) => tr.onReturn(c, u8)
  })
  for (const h of tr.hosts) await h.call('setup', { size })
  // Consumers' thread ids: the main thread reads their CPU time over exactly each window.
  for (const x of [sab, tr]) x.tids = (await Promise.all(x.hosts.map((h) => h.call('report')))).map((m) => m.report.tid)
  return { sab, tr, slots }
}

async function runSize(hostsOf, size, cfg, progress) {
  const { sab, tr, slots } = await setUpSize(hostsOf, size, cfg)
  const cells = []
  for (const k of cfg.fanoutConsumers) {
    progress.step(`fan-out ${fmtSize(size)} × ${k} consumers`)
    const report = (p) => progress.phase(p)
    const cpu0 = cpu.sample()
    const items = Math.max(2 * slots, Math.round(cfg.fanoutBytes / cfg.fanoutRepeats / size))
    const rows = ROWS.map((row) => ({ row, st: row.id === 'fanout-channel' ? sab : tr, windows: [], mismatches: 0, parks: { consumers: 0, mainSend: 0, mainAcquire: 0 } }))
    report('warm-up')
    for (const r of rows) await window1(r, k, items, null)
    for (const r of rows) for (const key of Object.keys(r.parks)) r.parks[key] = 0
    for (let w = 0; w < cfg.fanoutRepeats; w++) {
      report(`window ${w + 1}/${cfg.fanoutRepeats}`)
      for (const r of w % 2 === 0 ? rows : [...rows].reverse()) r.windows.push(await window1(r, k, items, null))
    }
    for (const r of rows) r.parksMeasured = { ...r.parks } // the call-timing window below is not counted
    for (const r of rows) {
      report(`call durations: ${r.row.short}`)
      r.calls = new CallTimes(r.row.calls, items + k + 1)
      const eld = await loopDelay()
      await window1(r, k, items, r.calls)
      r.loopDelay = await eld.stop()
    }
    const othersCores = cpu.othersCores(cpu0, cpu.sample())
    for (const r of rows) {
      const mb = summarize(r.windows.map((x) => (items * size) / x.ms / 1e3))
      const perItem = (key) => (r.windows.some((x) => x[key] === null) ? null : summarize(r.windows.map((x) => x[key] / items)).p50)
      const n = items * r.windows.length
      cells.push({
        family: 'fanout',
        mechanism: r.row.id,
        label: r.row.label,
        short: r.row.short,
        group: r.row.group,
        size,
        consumers: k,
        slots,
        work: `stamp check + hash of the first ${WORK_PREFIX} bytes`,
        throughput: { repeats: r.windows.length, items: n, itemsPerWindow: items, mbPerSec: { p10: mb.p10, p50: mb.p50, p90: mb.p90 } },
        cpuPerItem: { process: perItem('proc'), main: perItem('main'), consumers: perItem('consumersCpu') },
        calls: r.calls.summary(),
        loopDelay: r.loopDelay,
        parks: r.row.id === 'fanout-channel' ? { consumers: r.parksMeasured.consumers / n, mainSend: r.parksMeasured.mainSend / n, mainAcquire: r.parksMeasured.mainAcquire / n } : null,
        verify: { main: r.mismatches, worker: 0 },
        cpu: { othersCores },
      })
    }
  }
  // Consumers' payload checks, counted per mechanism over both consumer counts.
  for (const [id, hosts] of [['fanout-channel', sab.hosts], ['fanout-transfer', tr.hosts]]) {
    let bad = 0
    for (const h of hosts) bad += (await h.call('teardown')).mismatches
    for (const c of cells) if (c.mechanism === id && c.size === size) c.verify.worker = bad
  }
  for (const h of tr.hosts) h.onMessage = null
  sab.ch.detach()
  sab.pool.detach()
  return cells
}

module.exports = {
  id: 'fanout',
  title: 'fan-out pipeline',
  rows: ROWS,
  workers: { 'fanout-channel': channelConsumer, 'fanout-transfer': transferConsumer },
  /** One host per consumer: as many of each kind as the largest consumer count. */
  hostsFor: (cfg) => {
    const n = Math.max(...cfg.fanoutConsumers)
    return ['fanout-channel', 'fanout-transfer'].flatMap((id) => Array.from({ length: n }, (_, i) => ({ id, key: `${id}#${i}` })))
  },
  steps: (cfg) => cfg.fanoutSizes.length * cfg.fanoutConsumers.length,
  async run(hosts, cfg, progress) {
    const n = Math.max(...cfg.fanoutConsumers)
    const hostsOf = (id) => Array.from({ length: n }, (_, i) => hosts.get(`${id}#${i}`))
    const cells = []
    for (const size of cfg.fanoutSizes) cells.push(...await runSize(hostsOf, size, cfg, progress))
    for (const c of cells) {
      if (c.mechanism !== 'fanout-channel') continue
      const t = cells.find((x) => x.mechanism === 'fanout-transfer' && x.size === c.size && x.consumers === c.consumers)
      const cpuRatio = t && c.cpuPerItem.process !== null && t.cpuPerItem.process !== null ? c.cpuPerItem.process / t.cpuPerItem.process : null
      c.ratios = { vsTransfer: t ? c.throughput.mbPerSec.p50 / t.throughput.mbPerSec.p50 : null, cpuVsTransfer: cpuRatio }
    }
    return { cells }
  },
}
