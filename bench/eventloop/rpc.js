'use strict'
// Request/response services: the main thread calls, 1 or 2 long-lived server threads answer. Every
// row carries the same payload both ways and does the same server work (payload.js touchCall: read
// both ends, write both), and every caller checks its reply (its tag and its caller number), so a
// reply routed to the wrong call counts as a mismatch. Rows:
//   svc.call        a Service: main `await svc.call(lease, size)` (the reply lease is the next
//                   request's); servers `svc.serveSync(handler)`.
//   two channels    what users wrote before Service: a request Channel and a reply Channel;
//                   servers `recvSync({ reuse })` + `sendSync` of the same lease; the main thread
//                   registers the call in a Map keyed by `lease.slot`, `await requests.send()`, and
//                   one reply loop (`for await` over the reply channel) resolves the waiting call.
//   postMessage     `{ id, bytes }` posted to the least-loaded server (fewest calls outstanding,
//                   ties round-robin), echoed; a Map keyed by id routes the replies; the bytes
//                   transferred both ways, or cloned both ways.
//   piscina.run     piscina with minThreads = maxThreads = servers (its defaults otherwise): the
//                   Uint8Array cloned both ways, or `Piscina.move()`d both ways (rpc-piscina.js).
//   runLease        the same piscina through sabpool's adapter: main `await runLease(piscina,
//                   pool, lease, { length, name })` (`require('sabpool/piscina')`), the task
//                   function made with `leaseTask(pool, fn)`; the reply comes in the same slot.
//
// Per payload size and server count (a cell), every row is set up together and measured
// interleaved:
//   warm-up      untimed, per row: a calls/s window, then round trips, `warmupMs` each;
//                a full GC (main thread) before every block and window below, so that each row
//                collects its own garbage, not the previous row's;
//   round trip   one call in flight: back-to-back calls, each timed, in `rpcBlocks` blocks that
//                rotate through the rows (the order reversed every other block), each block
//                `rpcPhaseMs / rpcBlocks` long; 3 untimed calls lead each block, since the servers
//                may have parked while the other rows ran;
//   calls/s      `rpcInFlight` calls per server in flight: that many caller loops, each awaiting
//                its own call and making the next until the window's `rpcWindowMs` are over (the
//                window ends with the last reply). `rpcWindows` windows per row, the rows
//                alternating (order reversed every other round), each after an untimed lead-in of
//                `rpcLeadMs` the same way (the servers were idle while the other rows ran, and
//                the first calls after that wake them and find their waits parking, not
//                spinning); median and p10–p90 over the windows. CPU per call over exactly each window: process.cpuUsage() (every thread
//                of the process: the main thread and the servers) and the main thread's own.

const path = require('node:path')
const { SharedPool, Channel, Service } = require('../..')
const { stampCall, touchCall, replyOk } = require('../payload.js')
const { summarize, median } = require('../stats.js')
const { nextPow2 } = require('../mechanisms/channel.js')
const { fmtSize } = require('../report.js')
const cpu = require('../cpuload.js')
const { threadCpuNs, processCpuNs } = require('./measure.js')

const PISCINA_WORKER = path.join(__dirname, 'rpc-piscina.js')

/** piscina (a devDependency), loaded when the family runs. */
function piscinaClass() {
  try {
    return require('piscina').Piscina
  } catch (err) {
    throw new Error(`the rpc family needs piscina, a devDependency of sabpool (npm install): ${err.message}`, { cause: err })
  }
}

// ---- servers (worker threads) -----------------------------------------------------------------------

const serviceServer = {
  setup(init) {
    const pool = SharedPool.attach(init.pool)
    return { pool, svc: Service.attach(init.svc, pool), mode: 'idle', expect: 0, mismatches: 0, served: 0 }
  },
  /** Serves until the main thread closes the service. */
  run(w) {
    if (w.mode !== 'serve') return
    w.served += w.svc.serveSync((request) => {
      const length = request.length
      if (!touchCall(request.bytes, length)) w.mismatches++
      return length
    })
  },
  abort(w) {
    w.svc.close()
  },
  teardown(w) {
    w.pool.detach()
  },
}

const channelServer = {
  setup(init) {
    const pool = SharedPool.attach(init.requests.pool)
    return {
      pool,
      requests: Channel.attach(init.requests, pool),
      replies: Channel.attach(init.replies, pool),
      opts: { reuse: undefined },
      mode: 'idle',
      expect: 0,
      mismatches: 0,
    }
  },
  /** Serves until the main thread closes the request channel. */
  run(w) {
    if (w.mode !== 'serve') return
    const { requests, replies, opts } = w
    for (;;) {
      const lease = requests.recvSync(opts)
      if (lease === null) return
      const length = lease.length
      if (!touchCall(lease.bytes, length)) w.mismatches++
      replies.sendSync(lease, length)
      opts.reuse = lease // sent: re-armed by the next receive
    }
  },
  abort(w) {
    w.requests.close()
    w.replies.close()
  },
  teardown(w) {
    w.requests.detach()
    w.replies.detach()
    w.pool.detach()
  },
}

const messageServer = {
  setup(init, port) {
    return { port, transfer: init.transfer, mode: 'idle', expect: 0, mismatches: 0 }
  },
  onMessage(w, msg) {
    const bytes = msg.bytes
    if (!touchCall(bytes, bytes.length)) w.mismatches++
    if (w.transfer) w.port.postMessage(msg, [bytes.buffer])
    else w.port.postMessage(msg)
  },
  teardown() {},
}

// ---- the rows (main thread) -------------------------------------------------------------------------
// Each row: setUp(cx) → st (its servers set up and serving), caller(st, j) → the state of caller j
// (its payload), call(st, caller) one checked call (mismatches counted in st.mismatches),
// tearDown(st, callers) → the servers' payload mismatches. `st.failed`, when present, rejects if
// the row's machinery fails outside a call.

/** The next tag of caller `c`. */
function nextTag(c) {
  c.tag = (c.tag + 1) & 255
  return c.tag
}

/** Waits for the servers' end of phase (their serve loop returned). */
async function serveEnded(hosts) {
  for (const h of hosts) {
    const done = await h.next()
    if (!done.done) throw new Error(`bench bug: expected the end of ${h.label}'s serve loop, got ${JSON.stringify(done)}`)
  }
}

async function teardownHosts(hosts) {
  let bad = 0
  for (const h of hosts) bad += (await h.call('teardown')).mismatches
  return bad
}

const serviceRow = {
  id: 'rpc-service',
  short: 'svc.call',
  label: 'sabpool Service: main `await svc.call(lease, size)`; servers in svc.serveSync(handler)',
  group: 'sabpool',
  host: 'rpc-service',
  async setUp(cx) {
    const pool = new SharedPool({ slotSize: cx.size, slots: cx.slots })
    const svc = new Service(pool, { capacity: nextPow2(cx.slots) })
    const hosts = cx.hosts('rpc-service')
    for (const h of hosts) await h.call('setup', { pool: pool.handle, svc: svc.handle })
    for (const h of hosts) await h.call('phase', { mode: 'serve' })
    return { pool, svc, hosts, size: cx.size, mismatches: 0 }
  },
  caller: (st, j) => ({ j, tag: 0, lease: st.pool.tryAcquire() }),
  async call(st, c) {
    const size = st.size
    const tag = nextTag(c)
    stampCall(c.lease.bytes, size, c.j, tag)
    const reply = await st.svc.call(c.lease, size)
    if (reply.length !== size || !replyOk(reply.bytes, size, c.j, tag)) st.mismatches++
    c.lease = reply
  },
  async tearDown(st, callers) {
    const stats = st.svc.stats()
    if (stats.inFlight !== 0 || stats.calls !== stats.replies) throw new Error(`bench bug: the service's calls did not all get replies: ${JSON.stringify(stats)}`)
    st.svc.close()
    await serveEnded(st.hosts)
    for (const c of callers) c.lease.release()
    const bad = await teardownHosts(st.hosts)
    st.pool.detach()
    return bad
  },
}

/** The two-channel row's reply loop: routes each reply to the call waiting for its slot. */
async function replyLoop(st) {
  for await (const lease of st.replies) {
    const resolve = st.waiting.get(lease.slot)
    if (resolve === undefined) {
      st.mismatches++ // a reply no call waits for
      lease.release()
      continue
    }
    st.waiting.delete(lease.slot)
    resolve(lease)
  }
}

const channelsRow = {
  id: 'rpc-channels',
  short: 'two channels + Map',
  label: 'hand-written: request and reply Channels, main `await requests.send()` + one `for await` reply loop routing by lease.slot; servers recvSync + sendSync',
  group: 'sabpool',
  host: 'rpc-channels',
  async setUp(cx) {
    const pool = new SharedPool({ slotSize: cx.size, slots: cx.slots })
    const capacity = nextPow2(cx.slots) // room for every slot: a reply never waits
    const requests = new Channel(pool, { capacity })
    const replies = new Channel(pool, { capacity })
    const hosts = cx.hosts('rpc-channels')
    const st = { pool, requests, replies, hosts, waiting: new Map(), size: cx.size, mismatches: 0, closing: false }
    const loop = replyLoop(st)
    st.loop = loop
    st.failed = loop.then(() => {
      if (!st.closing) throw new Error('the reply loop ended while calls were being made')
    })
    st.failed.catch(() => {})
    for (const h of hosts) await h.call('setup', { requests: requests.handle, replies: replies.handle })
    for (const h of hosts) await h.call('phase', { mode: 'serve' })
    return st
  },
  caller: (st, j) => ({ j, tag: 0, lease: st.pool.tryAcquire() }),
  async call(st, c) {
    const size = st.size
    const tag = nextTag(c)
    const lease = c.lease
    stampCall(lease.bytes, size, c.j, tag)
    const reply = new Promise((resolve) => st.waiting.set(lease.slot, resolve))
    await st.requests.send(lease, size)
    const back = await reply
    if (back.length !== size || !replyOk(back.bytes, size, c.j, tag)) st.mismatches++
    c.lease = back
  },
  async tearDown(st, callers) {
    st.closing = true
    st.requests.close()
    await serveEnded(st.hosts)
    st.replies.close()
    await st.loop
    if (st.waiting.size !== 0) throw new Error(`bench bug: ${st.waiting.size} two-channel calls got no reply`)
    for (const c of callers) c.lease.release()
    const bad = await teardownHosts(st.hosts)
    st.requests.detach()
    st.replies.detach()
    st.pool.detach()
    return bad
  },
}

function messageRow({ id, short, label, transfer }) {
  const host = transfer ? 'rpc-transfer' : 'rpc-clone'
  return {
    id,
    short,
    label,
    group: 'postMessage',
    host,
    async setUp(cx) {
      const hosts = cx.hosts(host)
      const st = { hosts, ports: hosts.map((h) => h.port), transfer, size: cx.size, pending: new Map(), outstanding: new Int32Array(hosts.length), next: 0, id: 0, mismatches: 0 }
      hosts.forEach((h, s) => {
        h.onMessage = (msg) => {
          st.outstanding[s]--
          const resolve = st.pending.get(msg.id)
          if (resolve === undefined) {
            st.mismatches++ // a reply no call waits for
            return
          }
          st.pending.delete(msg.id)
          resolve(msg.bytes)
        }
      })
      for (const h of hosts) await h.call('setup', { transfer })
      return st
    },
    caller: (st, j) => ({ j, tag: 0, bytes: new Uint8Array(st.size) }),
    async call(st, c) {
      const size = st.size
      const tag = nextTag(c)
      stampCall(c.bytes, size, c.j, tag)
      st.id = (st.id + 1) >>> 0
      const id = st.id
      const k = st.ports.length
      let to = -1
      for (let i = 0; i < k; i++) {
        const s = (st.next + i) % k
        if (to < 0 || st.outstanding[s] < st.outstanding[to]) to = s
      }
      st.next = (to + 1) % k
      st.outstanding[to]++
      const reply = new Promise((resolve) => st.pending.set(id, resolve))
      const msg = { id, bytes: c.bytes }
      if (st.transfer) st.ports[to].postMessage(msg, [c.bytes.buffer])
      else st.ports[to].postMessage(msg)
      const bytes = await reply
      if (bytes.length !== size || !replyOk(bytes, size, c.j, tag)) st.mismatches++
      if (st.transfer) c.bytes = bytes
    },
    async tearDown(st) {
      if (st.pending.size !== 0) throw new Error(`bench bug: ${st.pending.size} postMessage calls got no reply`)
      const bad = await teardownHosts(st.hosts)
      for (const h of st.hosts) h.onMessage = null
      return bad
    },
  }
}

function piscinaRow({ id, short, label, move }) {
  return {
    id,
    short,
    label,
    group: 'piscina',
    host: null,
    async setUp(cx) {
      return { piscina: cx.piscina().piscina, move: move ? piscinaClass().move : null, runOptions: { name: move ? 'move' : 'clone' }, size: cx.size, mismatches: 0 }
    },
    caller: (st, j) => ({ j, tag: 0, bytes: new Uint8Array(st.size) }),
    async call(st, c) {
      const size = st.size
      const tag = nextTag(c)
      stampCall(c.bytes, size, c.j, tag)
      const bytes = await st.piscina.run(st.move !== null ? st.move(c.bytes) : c.bytes, st.runOptions)
      if (bytes.length !== size || !replyOk(bytes, size, c.j, tag)) st.mismatches++
      if (st.move !== null) c.bytes = bytes
    },
    async tearDown() {
      return 0 // the servers' check shows in the reply (touchCall), counted by the caller
    },
  }
}

const adapterRow = {
  id: 'rpc-piscina-lease',
  short: 'sabpool/piscina runLease',
  label: "piscina through sabpool's adapter: main `await runLease(piscina, pool, lease, { length })`; the task function made with leaseTask(pool, fn)",
  group: 'sabpool',
  host: null,
  async setUp(cx) {
    const { piscina, pool } = cx.piscina()
    const { runLease } = require('sabpool/piscina')
    return { piscina, pool, runLease, size: cx.size, options: { length: cx.size, name: 'lease' }, mismatches: 0 }
  },
  caller: (st, j) => ({ j, tag: 0, lease: st.pool.tryAcquire() }),
  async call(st, c) {
    const size = st.size
    const tag = nextTag(c)
    stampCall(c.lease.bytes, size, c.j, tag)
    const reply = await st.runLease(st.piscina, st.pool, c.lease, st.options)
    if (reply.length !== size || !replyOk(reply.bytes, size, c.j, tag)) st.mismatches++
    c.lease = reply
  },
  async tearDown(st, callers) {
    for (const c of callers) c.lease.release()
    const inUse = st.pool.stats().inUse
    if (inUse !== 0) throw new Error(`bench bug: ${inUse} slots of the adapter row's pool are still in use`)
    return 0 // the servers' check shows in the reply (touchCall), counted by the caller
  },
}

const ROWS = [
  serviceRow,
  channelsRow,
  messageRow({ id: 'rpc-transfer', short: 'postMessage transfer', label: 'postMessage({ id, bytes }) with the buffer transferred, transferred back; replies routed by id', transfer: true }),
  messageRow({ id: 'rpc-clone', short: 'postMessage clone', label: 'postMessage({ id, bytes }) cloned, cloned back; replies routed by id', transfer: false }),
  piscinaRow({ id: 'rpc-piscina-move', short: 'piscina.run move', label: 'piscina.run(Piscina.move(bytes)); the task returns Piscina.move(bytes)', move: true }),
  piscinaRow({ id: 'rpc-piscina-clone', short: 'piscina.run clone', label: 'piscina.run(bytes) cloned; the task returns the bytes (cloned back)', move: false }),
  adapterRow,
]

const HOST_IDS = [...new Set(ROWS.map((r) => r.host).filter((h) => h !== null))]

// ---- measurement loops ------------------------------------------------------------------------------

/**
 * Calls of caller 0, one in flight, until `deadline` has passed and at least `min` were made (at
 * most `max`); call i's round trip (ms) goes to out[off + i] when `out` is not null. Returns how
 * many calls it made.
 */
async function roundTrips(r, min, max, out, off, deadline) {
  const { row, st } = r
  const call = row.call
  const c = r.callers[0]
  for (let i = 0; i < max; i++) {
    const t0 = performance.now()
    await call(st, c)
    const t1 = performance.now()
    if (out !== null) out[off + i] = t1 - t0
    if (t1 > deadline && i + 1 >= min) return i + 1
  }
  return max
}

/**
 * Every caller of `r` in flight, each making calls until `deadline` has passed: returns
 * { calls, ms, proc, main }, with the CPU time (ns) of the process and of the main thread. The
 * window ends when the last call in flight has its reply.
 */
async function window1(r, deadline) {
  const { row, st } = r
  const call = row.call
  let calls = 0
  const loop = async (c) => {
    do {
      await call(st, c)
      calls++
    } while (performance.now() < deadline)
  }
  const proc0 = processCpuNs()
  const main0 = threadCpuNs()
  const t0 = performance.now()
  await Promise.all(r.callers.map(loop))
  const ms = performance.now() - t0
  const proc = processCpuNs() - proc0
  const main = main0 === null ? null : threadCpuNs() - main0
  return { calls, ms, proc, main }
}

// ---- one cell: a payload size and a server count ---------------------------------------------------

async function runCell(hostsOf, size, servers, cfg, report) {
  const cpu0 = cpu.sample()
  const inFlight = cfg.rpcInFlight * servers
  let piscina = null
  const cx = {
    size,
    servers,
    slots: inFlight, // one lease per caller; replies come back in the request's slot
    hosts: (id) => hostsOf(id).slice(0, servers),
    /** The cell's piscina (`servers` threads) and the pool its adapter row's leases come from. */
    piscina() {
      if (piscina === null) {
        const Piscina = piscinaClass()
        const pool = new SharedPool({ slotSize: size, slots: inFlight })
        piscina = { pool, piscina: new Piscina({ filename: PISCINA_WORKER, workerData: { pool: pool.handle }, minThreads: servers, maxThreads: servers }) }
      }
      return piscina
    },
  }
  const rows = []
  try {
    for (const row of ROWS) {
      global.gc()
      const st = await row.setUp(cx)
      rows.push({ row, st, callers: Array.from({ length: inFlight }, (_, j) => row.caller(st, j)), rt: null, count: 0, windows: [] })
    }
    const failures = [...HOST_IDS.flatMap((id) => cx.hosts(id).map((h) => h.failed)), ...rows.map((r) => r.st.failed).filter(Boolean)]
    const guard = (p) => Promise.race([p, ...failures])

    // Warm-up, untimed: a window of every caller in flight (it also starts the piscina threads
    // and has them load their task file), then round trips.
    report('warm-up')
    for (const r of rows) {
      await guard(window1(r, performance.now() + cfg.warmupMs))
      await guard(roundTrips(r, 1, cfg.maxIters, null, 0, performance.now() + cfg.warmupMs))
      r.rt = new Float64Array(cfg.maxIters)
    }

    // Round trips: blocks rotating through the rows, each block a row's share of rpcPhaseMs (and
    // at least its share of minIters).
    const blocks = cfg.rpcBlocks
    const blockMs = cfg.rpcPhaseMs / blocks
    const perBlock = Math.max(1, Math.ceil(cfg.minIters / blocks))
    const maxPerBlock = Math.floor(cfg.maxIters / blocks)
    for (let b = 0; b < blocks; b++) {
      report(`round trips, block ${b + 1}/${blocks}`)
      for (const r of b % 2 === 0 ? rows : [...rows].reverse()) {
        global.gc() // each row collects its own garbage, not the previous row's
        await guard(roundTrips(r, 3, 3, null, 0, 0)) // untimed lead-in
        r.count += await guard(roundTrips(r, perBlock, maxPerBlock, r.rt, r.count, performance.now() + blockMs))
      }
    }

    // Calls/s: windows of every caller in flight, the rows alternating.
    for (let w = 0; w < cfg.rpcWindows; w++) {
      report(`calls in flight, window ${w + 1}/${cfg.rpcWindows}`)
      for (const r of w % 2 === 0 ? rows : [...rows].reverse()) {
        global.gc()
        await guard(window1(r, performance.now() + cfg.rpcLeadMs)) // untimed lead-in
        r.windows.push(await guard(window1(r, performance.now() + cfg.rpcWindowMs)))
      }
    }

    for (const r of rows) r.workerMismatches = await r.row.tearDown(r.st, r.callers)
  } finally {
    if (piscina !== null) {
      await piscina.piscina.destroy()
      piscina.pool.detach()
    }
  }
  const othersCores = cpu.othersCores(cpu0, cpu.sample())

  return rows.map((r) => {
    const rate = summarize(r.windows.map((x) => (x.calls / x.ms) * 1e3))
    const calls = r.windows.reduce((a, x) => a + x.calls, 0)
    const mainCpu = r.windows.some((x) => x.main === null) ? null : median(r.windows.map((x) => x.main / x.calls))
    return {
      family: 'rpc',
      mechanism: r.row.id,
      label: r.row.label,
      short: r.row.short,
      group: r.row.group,
      size,
      servers,
      inFlight,
      rt: summarize(r.rt.subarray(0, r.count), 1e6),
      throughput: { windows: r.windows.length, calls, callsPerSec: { p10: rate.p10, p50: rate.p50, p90: rate.p90, min: rate.min, max: rate.max } },
      cpuPerCall: { process: median(r.windows.map((x) => x.proc / x.calls)), main: mainCpu },
      verify: { main: r.st.mismatches, worker: r.workerMismatches },
      cpu: { othersCores },
    }
  })
}

/**
 * Ratios of each cell to the svc.call row of the same size and server count (> 1: svc.call is
 * better): rtVsService = this row's round trip p50 / svc.call's, rateVsService = svc.call's
 * calls/s / this row's. The svc.call row also gets its goals' ratios: vsPiscina = its calls/s /
 * the faster piscina.run row's, rtVsChannels = its round trip p50 / the two-channel loop's,
 * rateVsChannels = its calls/s / the two-channel loop's.
 */
function addRpcRatios(cells) {
  for (const c of cells) {
    const same = (id) => cells.find((x) => x.mechanism === id && x.size === c.size && x.servers === c.servers)
    const svc = same('rpc-service')
    const rate = (x) => x.throughput.callsPerSec.p50
    c.ratios = {
      rtVsService: svc === undefined ? null : c.rt.p50 / svc.rt.p50,
      rateVsService: svc === undefined ? null : rate(svc) / rate(c),
    }
    if (c.mechanism !== 'rpc-service') continue
    const ch = same('rpc-channels')
    const pis = ['rpc-piscina-move', 'rpc-piscina-clone'].map(same).filter(Boolean)
    c.ratios.vsPiscina = pis.length === 0 ? null : rate(c) / Math.max(...pis.map(rate))
    c.ratios.rtVsChannels = ch === undefined ? null : c.rt.p50 / ch.rt.p50
    c.ratios.rateVsChannels = ch === undefined ? null : rate(c) / rate(ch)
  }
}

module.exports = {
  id: 'rpc',
  title: 'request/response services',
  rows: ROWS,
  workers: { 'rpc-service': serviceServer, 'rpc-channels': channelServer, 'rpc-transfer': messageServer, 'rpc-clone': messageServer },
  /** As many servers of each kind as the largest server count. */
  hostsFor: (cfg) => {
    const n = Math.max(...cfg.rpcServers)
    return HOST_IDS.flatMap((id) => Array.from({ length: n }, (_, i) => ({ id, key: `${id}#${i}` })))
  },
  steps: (cfg) => cfg.rpcSizes.length * cfg.rpcServers.length,
  async run(hosts, cfg, progress) {
    const n = Math.max(...cfg.rpcServers)
    const hostsOf = (id) => Array.from({ length: n }, (_, i) => hosts.get(`${id}#${i}`))
    const cells = []
    for (const size of cfg.rpcSizes) {
      for (const servers of cfg.rpcServers) {
        progress.step(`request/response ${fmtSize(size)} × ${servers} server${servers === 1 ? '' : 's'}`)
        cells.push(...await runCell(hostsOf, size, servers, cfg, (p) => progress.phase(p)))
      }
    }
    addRpcRatios(cells)
    return { cells }
  },
}
