'use strict'
// Publish/subscribe: one producer, every subscriber reads every sample. Three parts; in each, the
// rows of a cell are set up together and measured interleaved: rounds rotate through the rows,
// the order reversed every other round, after one untimed warm-up pass of every row; medians and
// p10–p90 over the rounds. The fan-out and event-loop windows of a row hold as many samples as
// its warm-up window's rate says fill about topicWindowMs (at least 4 × topicWindow).
//
// Every sample carries the same stamp: its number in the window (bytes 1–4) and a tag (its low
// byte) in the first and the last byte. Every reader does the same fixed work per sample, whatever
// its size: read the stamp, check that the number is the next one it expects (every subscriber
// sees every sample, in order) and the tags, and let go of it. No row makes a pass over the bytes
// at the receiver (the postMessage rows' clones do one, which is what they cost).
//
// fan-out (topicFanoutSizes × topicSubscribers): the main thread produces, k subscriber workers.
//   Topic await     main `await pool.acquire({ reuse })`, stamps the slot in place,
//                   `await topic.publish(lease, size)`; subscribers `recvSync()`, check, `release()`
//   Topic sync      the same with `acquireSync({ reuse })` + `publishSync()` (blocks the event loop)
//   Channel per sub one Channel per subscriber over one pool: main stamps its own buffer, then per
//                   subscriber `await pool.acquire({ reuse })`, `lease.bytes.set(buffer)`,
//                   `await channel.send(lease, size)`; subscribers `recvSync({ reuse })`, check, release
//   postMessage     the stamped Uint8Array posted to each subscriber's port: one clone per subscriber
//   BroadcastChannel one `bc.postMessage(u8)` per sample: every subscriber's BroadcastChannel gets a clone
//   At most `topicWindow` samples are in flight: the topic's pool has that many slots (the topic
//   that capacity), the channel row's pool topicWindow × k slots (its channels topicWindow each);
//   the message rows' subscribers acknowledge every `topicAckEvery` samples and the last one
//   (a postMessage of their count), and the producer sends only while fewer than topicWindow
//   samples are unacknowledged by some subscriber. A window of `items` samples ends when every
//   subscriber has read every one: the sabpool rows take every slot of their pool back (each
//   slot comes back once its last subscriber released it), the message rows have every
//   subscriber's last acknowledgment. Samples/s = items / window time: a sample counts once all
//   subscribers have read it. CPU per sample over exactly the window: process.cpuUsage(), the main
//   thread's, the subscribers' threads' (their schedstat, read by the main thread), / items.
//
// publish cost (topicCostSizes × topicCostSubscribers): the main thread times each
//   `topic.publishSync(lease, size)` alone (performance.now() around the call), k subscribers
//   keeping up (recvSync, check, release). The untimed `pool.acquireSync()` before it waits for a
//   free slot: the pool has topicWindow slots, the topic that capacity, so a publish never waits
//   for room. The channel row does what one publish replaces: k leases acquired and stamped
//   (untimed), then `channel.trySend(lease, size)` into each subscriber's Channel (capacity for
//   every slot of its pool of topicWindow × k), the k calls timed together.
//
// into the event loop (topicLoopSize): a worker produces, the main thread consumes.
//   for await       main `for await (const sample of subscription)`, check, `release()`; the worker
//                   `acquireSync({ reuse })`, stamp, `publishSync()`
//   postMessage     the worker posts a stamped Uint8Array (cloned) to the main thread, at most
//                   topicWindow unacknowledged; main's 'message' listener checks it and acknowledges
//                   every topicAckEvery samples
//   A window of `items` samples runs from the phase request to the main thread's last sample.

const { SharedPool, Channel, Topic } = require('../..')
const { summarize, median, clamp } = require('../stats.js')
const { nextPow2 } = require('../mechanisms/channel.js')
const { fmtSize } = require('../report.js')
const cpu = require('../cpuload.js')
const { threadCpuNs, processCpuNs, ownThreadId, taskCpuNs } = require('./measure.js')

/** Blocking calls of the main thread give up after this long (a stuck subscriber fails the run). */
const TIMEOUT_MS = 30000

let broadcastNames = 0

/** Writes sample `i`'s number (bytes 1–4) and tag (first and last byte) into `bytes`. */
function stamp(bytes, size, i) {
  const tag = i & 255
  bytes[0] = tag
  bytes[1] = tag
  bytes[2] = (i >>> 8) & 255
  bytes[3] = (i >>> 16) & 255
  bytes[4] = (i >>> 24) & 255
  bytes[size - 1] = tag
}

/** A reader's work on one sample of `length` bytes: its stamp must be the next one `r` expects. */
function see(r, bytes, length) {
  const i = (bytes[1] | (bytes[2] << 8) | (bytes[3] << 16) | (bytes[4] << 24)) >>> 0
  const tag = r.next & 255
  if (length !== r.size || i !== r.next || bytes[0] !== tag || bytes[length - 1] !== tag) r.mismatches++
  r.next++
  r.got++
}

// ---- the worker: a subscriber (fan-out, publish cost) or the producer (into the event loop) -------

/** Message rows: one sample read; acknowledges every `ackEvery` samples and the last. */
function seeMessage(w, u8) {
  see(w, u8, u8.length)
  if (w.got % w.ackEvery === 0 || w.got === w.items) w.port.postMessage(w.got)
}

/** 'post' mode: posts samples while fewer than `window` are unacknowledged. */
function postSome(w) {
  const { buf, size } = w
  while (w.posted < w.items && w.posted - w.acked < w.window) {
    stamp(buf, size, w.posted)
    w.port.postMessage(buf)
    w.posted++
  }
}

const topicWorker = {
  /**
   * init: { size, window, ackEvery, topic?: handle, subscribe?: bool, channel?: handle,
   * broadcast?: name }. Subscribes here, so the main thread's publishes reach exactly the workers
   * it set up for the cell.
   */
  setup(init, port) {
    const w = {
      port,
      tid: ownThreadId(),
      size: init.size,
      window: init.window,
      ackEvery: init.ackEvery,
      mode: 'idle',
      expect: 0,
      mismatches: 0,
      items: 0,
      round: -1,
      got: 0,
      next: 0,
      posted: 0,
      acked: 0,
      buf: new Uint8Array(init.size),
      opts: { reuse: undefined },
      pool: null,
      topic: null,
      sub: null,
      chPool: null,
      ch: null,
      bc: null,
    }
    if (init.topic !== undefined) {
      w.pool = SharedPool.attach(init.topic.pool)
      w.topic = Topic.attach(init.topic, w.pool)
      if (init.subscribe) w.sub = w.topic.subscribe()
    }
    if (init.channel !== undefined) {
      w.chPool = SharedPool.attach(init.channel.pool)
      w.ch = Channel.attach(init.channel, w.chPool)
    }
    if (init.broadcast !== undefined) {
      w.bc = new BroadcastChannel(init.broadcast)
      w.bc.onmessage = (event) => {
        if (w.mode === 'broadcast') seeMessage(w, event.data)
        else w.mismatches++ // a sample outside its row's window
      }
    }
    return w
  },
  begin(w) {
    w.items = w.arg.items
    w.round = w.arg.round
    w.got = 0
    w.next = 0
    w.posted = 0
    w.acked = 0
  },
  /** Blocking modes read (or publish) `items` samples; the message modes only start here. */
  run(w) {
    const n = w.items
    switch (w.mode) {
      case 'topic':
        for (let k = 0; k < n; k++) {
          const sample = w.sub.recvSync()
          if (sample === null) throw new Error('the subscription ended during a window')
          see(w, sample.bytes, sample.length)
          sample.release()
        }
        return
      case 'channel': {
        const { ch, opts } = w
        for (let k = 0; k < n; k++) {
          const lease = ch.recvSync(opts)
          if (lease === null) throw new Error('the channel was closed during a window')
          see(w, lease.bytes, lease.length)
          lease.release()
          opts.reuse = lease // released: re-armed by the next receive
        }
        return
      }
      case 'publish': {
        const { pool, topic, opts, size } = w
        for (let i = 0; i < n; i++) {
          const lease = pool.acquireSync(opts)
          stamp(lease.bytes, size, i)
          if (topic.publishSync(lease, size) !== 1) w.mismatches++ // the main thread's subscription only
          opts.reuse = lease // published: re-armed by the next acquire
        }
        return
      }
      case 'post':
        postSome(w)
        return
      default:
        // 'message' and 'broadcast': the samples arrive as events
    }
  },
  onMessage(w, msg) {
    if (Array.isArray(msg)) {
      // The main thread's acknowledgment [round, count] ('post' mode). One of an earlier window
      // can arrive after this window's phase request (they come over different ports): ignored.
      if (msg[0] !== w.round) return
      if (w.mode !== 'post') {
        w.mismatches++
        return
      }
      w.acked = msg[1]
      postSome(w)
    } else if (w.mode === 'message') {
      seeMessage(w, msg)
    } else {
      w.mismatches++ // a sample outside its row's window
    }
  },
  report(w) {
    return { got: w.got, tid: w.tid }
  },
  abort(w) {
    w.topic?.close()
    w.ch?.close()
  },
  teardown(w) {
    w.sub?.unsubscribe()
    w.bc?.close()
    w.ch?.detach()
    w.chPool?.detach()
    w.pool?.detach()
  },
}

// ---- main thread: shared helpers ---------------------------------------------------------------

/** Waits for `promise`, or fails as soon as one of `hosts` fails. */
const guarded = (hosts, promise) => Promise.race([promise, ...hosts.map((h) => h.failed)])

/** Starts a phase (`round` numbers it) on every host of `active` and waits until each is ready. */
async function startPhase(active, mode, items, round = 0) {
  const ready = await guarded(active, Promise.all(active.map((h) => h.call('phase', { mode, items, round }))))
  if (!ready.every((r) => r.ready)) throw new Error(`bench bug: expected the subscribers' ready, got ${JSON.stringify(ready)}`)
}

/** Waits for every host's end of phase, then checks each read all `items` samples; returns how many did not. */
async function endPhase(active, items) {
  const done = await guarded(active, Promise.all(active.map((h) => h.next())))
  if (!done.every((d) => d.done)) throw new Error(`bench bug: expected the end of phase, got ${JSON.stringify(done)}`)
  const reports = await guarded(active, Promise.all(active.map((h) => h.call('report'))))
  return reports.filter((r) => r.report.got !== items).length
}

async function setUpHosts(active, init) {
  for (let j = 0; j < active.length; j++) await active[j].call('setup', init(j))
}

async function teardownHosts(active) {
  let bad = 0
  for (const h of active) bad += (await h.call('teardown')).mismatches
  return bad
}

/**
 * After a cell, its subscribers gone: every slot of the cell's pools is free again, and the topic
 * delivered each sample once to each of the `k` subscribers, dropping none. Returns how many of
 * these fail (each also written to stderr): a slot or a sample the topic lost.
 */
function leaks(where, topic, k, pools) {
  const bad = []
  for (const pool of pools) {
    const { inUse } = pool.stats()
    if (inUse !== 0) bad.push(`${inUse} slot(s) still in use`)
  }
  const t = topic.stats()
  if (t.subscribers !== 0) bad.push(`${t.subscribers} subscriber(s) still live`)
  if (t.delivered !== t.published * k) bad.push(`${t.published} samples published to ${k} subscriber(s) but ${t.delivered} delivered`)
  if (t.dropped !== 0 || t.stray !== 0) bad.push(`dropped ${t.dropped}, stray ${t.stray}`)
  for (const b of bad) process.stderr.write(`\nbench: topic ${where}: ${b}\n`)
  return bad.length
}

/**
 * Samples per window of a row, from its warm-up window (`items` in `ms`): enough for about
 * topicWindowMs, at least four windows' worth of samples in flight, at most topicMaxItems.
 */
const calibrated = (items, ms, cfg) => clamp(Math.round((items / ms) * cfg.topicWindowMs), 4 * cfg.topicWindow, cfg.topicMaxItems)

/** The warm-up window's samples: topicWarmBytes of payload, at least four windows' worth. */
const warmItems = (size, cfg) => Math.max(4 * cfg.topicWindow, Math.round(cfg.topicWarmBytes / size))

/** Samples/s over a row's windows (median, p10–p90, min, max). */
function rateOf(windows) {
  const rate = summarize(windows.map((x) => (x.items / x.ms) * 1e3))
  return { p10: rate.p10, p50: rate.p50, p90: rate.p90, min: rate.min, max: rate.max }
}

/** The order of `rows` in round `r`: reversed every other round. */
const roundOrder = (rows, r) => (r % 2 === 0 ? rows : [...rows].reverse())

function releaseAll(held) {
  for (let j = 0; j < held.length; j++) {
    held[j].release()
    held[j] = null
  }
}

// ---- fan-out --------------------------------------------------------------------------------------

/** Topic await: returns once every sample was released by every subscriber (every slot is back). */
async function topicAwaitItems(st, k, items) {
  const { pool, topic, size, opts, held } = st
  for (let i = 0; i < items; i++) {
    const lease = await pool.acquire(opts)
    stamp(lease.bytes, size, i)
    if ((await topic.publish(lease, size)) !== k) st.mismatches++
    opts.reuse = lease // published: re-armed by the next acquire
  }
  for (let j = 0; j < held.length; j++) held[j] = await pool.acquire({ timeout: TIMEOUT_MS })
}

/** Topic sync: the same, blocking the main thread. */
async function topicSyncItems(st, k, items) {
  const { pool, topic, size, syncOpts, held } = st
  for (let i = 0; i < items; i++) {
    const lease = pool.acquireSync(syncOpts)
    stamp(lease.bytes, size, i)
    if (topic.publishSync(lease, size) !== k) st.mismatches++
    syncOpts.reuse = lease
  }
  for (let j = 0; j < held.length; j++) held[j] = pool.acquireSync({ timeout: TIMEOUT_MS })
}

/** One Channel per subscriber: the payload copied into a slot per subscriber, sent to each. */
async function channelItems(st, k, items) {
  const { chPool, channels, src, size, chOpts, chHeld } = st
  for (let i = 0; i < items; i++) {
    stamp(src, size, i)
    for (let j = 0; j < k; j++) {
      const lease = await chPool.acquire(chOpts)
      lease.bytes.set(src)
      await channels[j].send(lease, size)
      chOpts.reuse = lease // sent: re-armed by the next acquire
    }
  }
  for (let j = 0; j < chHeld.length; j++) chHeld[j] = await chPool.acquire({ timeout: TIMEOUT_MS })
}

/** Message rows: resolves when every subscriber has acknowledged all `items` samples. */
function messageItems(st, k, items, broadcast) {
  const { src, size, ports, acked, window } = st
  acked.fill(0)
  return new Promise((resolve) => {
    let produced = 0
    const pump = () => {
      let low = items
      for (let j = 0; j < k; j++) if (acked[j] < low) low = acked[j]
      while (produced < items && produced - low < window) {
        stamp(src, size, produced)
        if (broadcast) st.bc.postMessage(src)
        else for (let j = 0; j < k; j++) ports[j].postMessage(src)
        produced++
      }
      if (low === items) {
        st.onAck = null
        resolve()
      }
    }
    st.onAck = (j, n) => {
      acked[j] = n
      pump()
    }
    pump()
  })
}

const FANOUT_ROWS = [
  {
    id: 'topic-await',
    part: 'fanout',
    short: 'Topic await publish',
    label: 'sabpool Topic: main `await pool.acquire({ reuse })`, stamp in place, `await topic.publish()`; subscribers recvSync + release',
    group: 'sabpool',
    mode: 'topic',
    produce: topicAwaitItems,
    held: 'held',
  },
  {
    id: 'topic-sync',
    part: 'fanout',
    short: 'Topic publishSync (sync)',
    label: 'sabpool Topic: main acquireSync({ reuse }) + publishSync() (blocks the event loop); subscribers recvSync + release',
    group: 'sabpool',
    mode: 'topic',
    produce: topicSyncItems,
    held: 'held',
    blocksEventLoop: true,
  },
  {
    id: 'topic-channels',
    part: 'fanout',
    short: 'Channel per subscriber',
    label: 'one sabpool Channel per subscriber: the payload copied (set) into a slot per subscriber, `await send()` to each',
    group: 'sabpool',
    mode: 'channel',
    produce: channelItems,
    held: 'chHeld',
  },
  {
    id: 'topic-postMessage',
    part: 'fanout',
    short: 'postMessage to each',
    label: "postMessage(u8) to each subscriber's port: one structured clone per subscriber",
    group: 'postMessage',
    mode: 'message',
    produce: (st, k, items) => messageItems(st, k, items, false),
    held: null,
  },
  {
    id: 'topic-broadcast',
    part: 'fanout',
    short: 'BroadcastChannel',
    label: 'BroadcastChannel: one bc.postMessage(u8) per sample, every subscriber gets a clone',
    group: 'postMessage',
    mode: 'broadcast',
    produce: (st, k, items) => messageItems(st, k, items, true),
    held: null,
  },
]

/** One window of `items` samples through the cell's `k` subscribers; `r` accumulates the row's numbers. */
async function fanoutWindow(cell, r, items) {
  const { st, k, active, tids } = cell
  await startPhase(active, r.row.mode, items)
  const subs0 = tids.map(taskCpuNs)
  const proc0 = processCpuNs()
  const main0 = threadCpuNs()
  const t0 = performance.now()
  await guarded(active, r.row.produce(st, k, items))
  const ms = performance.now() - t0
  const proc = processCpuNs() - proc0
  const main = main0 === null ? null : threadCpuNs() - main0
  const subs1 = tids.map(taskCpuNs)
  if (r.row.held !== null) releaseAll(st[r.row.held])
  r.incomplete += await endPhase(active, items)
  const subs = [...subs0, ...subs1].includes(null) ? null : subs1.reduce((a, x, i) => a + x - subs0[i], 0)
  return { items, ms, proc, main, subs }
}

async function runFanoutCell(hostsAll, size, k, cfg) {
  const W = cfg.topicWindow
  const active = hostsAll.slice(0, k)
  global.gc()
  const pool = new SharedPool({ slotSize: size, slots: W })
  const topic = new Topic(pool, { capacity: W })
  const chPool = new SharedPool({ slotSize: size, slots: W * k })
  const channels = Array.from({ length: k }, () => new Channel(chPool, { capacity: nextPow2(W) }))
  const broadcast = `sabpool-bench-topic-${process.pid}-${++broadcastNames}`
  const bc = new BroadcastChannel(broadcast)
  const st = {
    pool, topic, chPool, channels, bc, size, window: W,
    opts: { reuse: undefined },
    syncOpts: { reuse: undefined, timeout: TIMEOUT_MS },
    chOpts: { reuse: undefined },
    held: new Array(W).fill(null),
    chHeld: new Array(W * k).fill(null),
    src: new Uint8Array(size),
    ports: active.map((h) => h.port),
    acked: new Int32Array(k),
    onAck: null,
    mismatches: 0,
  }
  const cell = { st, k, active, tids: [] }
  try {
    active.forEach((h, j) => {
      h.onMessage = (n) => {
        if (st.onAck === null) st.mismatches++ // an acknowledgment outside a window
        else st.onAck(j, n)
      }
    })
    await setUpHosts(active, (j) => ({ size, window: W, ackEvery: cfg.topicAckEvery, topic: topic.handle, subscribe: true, channel: channels[j].handle, broadcast }))
    cell.tids = (await Promise.all(active.map((h) => h.call('report')))).map((m) => m.report.tid)
    const rows = FANOUT_ROWS.map((row) => ({ row, windows: [], incomplete: 0, items: 0 }))
    const cpu0 = cpu.sample()
    for (const r of rows) {
      const warm = await fanoutWindow(cell, r, warmItems(size, cfg)) // untimed
      r.items = calibrated(warm.items, warm.ms, cfg)
    }
    for (let w = 0; w < cfg.topicRepeats; w++) {
      for (const r of roundOrder(rows, w)) {
        global.gc() // each row collects its own garbage (the clones), not the previous row's
        r.windows.push(await fanoutWindow(cell, r, r.items))
      }
    }
    const othersCores = cpu.othersCores(cpu0, cpu.sample())
    const workerBad = await teardownHosts(active)
    const lost = leaks(`fan-out ${fmtSize(size)} × ${k}`, topic, k, [pool, chPool])
    return rows.map((r) => {
      const perSample = (key) => (r.windows.some((x) => x[key] === null) ? null : median(r.windows.map((x) => x[key] / x.items)))
      return {
        family: 'topic',
        part: 'fanout',
        mechanism: r.row.id,
        label: r.row.label,
        short: r.row.short,
        group: r.row.group,
        blocksEventLoop: r.row.blocksEventLoop === true,
        size,
        subscribers: k,
        window: W,
        ackEvery: cfg.topicAckEvery,
        work: 'check the stamp (number, first and last byte), let go',
        throughput: {
          repeats: r.windows.length,
          items: r.windows.reduce((a, x) => a + x.items, 0),
          itemsPerWindow: r.items,
          samplesPerSec: rateOf(r.windows),
        },
        cpuPerSample: { process: perSample('proc'), main: perSample('main'), subscribers: perSample('subs') },
        verify: { main: st.mismatches + r.incomplete + lost, worker: workerBad },
        cpu: { othersCores },
      }
    })
  } finally {
    for (const h of active) h.onMessage = null
    bc.close()
    topic.close()
    for (const ch of channels) ch.detach()
    chPool.detach()
    pool.detach()
  }
}

// ---- publish cost -------------------------------------------------------------------------------

/** publishSync timed alone, `n` times; the untimed acquireSync waits until the subscribers are through a slot. */
function publishBatch(st, k, n, out, off) {
  const { pool, topic, size, syncOpts } = st
  for (let i = 0; i < n; i++) {
    const lease = pool.acquireSync(syncOpts)
    stamp(lease.bytes, size, i)
    const t0 = performance.now()
    const reached = topic.publishSync(lease, size)
    const t1 = performance.now()
    if (out !== null) out[off + i] = t1 - t0
    if (reached !== k) st.mismatches++
    syncOpts.reuse = lease
  }
}

/** k trySends (one per subscriber's channel) timed together, `n` times. */
function sendBatch(st, k, n, out, off) {
  const { chPool, channels, size, leases, chSyncOpts } = st
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < k; j++) {
      const lease = chPool.acquireSync(chSyncOpts[j])
      stamp(lease.bytes, size, i)
      leases[j] = lease
    }
    const t0 = performance.now()
    for (let j = 0; j < k; j++) if (!channels[j].trySend(leases[j], size)) st.full++
    const t1 = performance.now()
    if (out !== null) out[off + i] = t1 - t0
    for (let j = 0; j < k; j++) {
      const lease = leases[j]
      if (lease.owned) lease.release() // not sent: only a bench bug (the channels hold every slot)
      chSyncOpts[j].reuse = lease
      leases[j] = null
    }
  }
}

const COST_ROWS = [
  { id: 'topic-publishSync', part: 'cost', short: 'topic.publishSync', label: 'topic.publishSync(lease, size), timed alone; subscribers recvSync + release', group: 'sabpool', mode: 'topic', batch: publishBatch },
  { id: 'topic-trySend', part: 'cost', short: 'channel.trySend × k', label: "channel.trySend(lease, size) into each subscriber's Channel, the k calls timed together", group: 'sabpool', mode: 'channel', batch: sendBatch },
]

async function costPass(cell, r, n, out, off) {
  const { st, k, active } = cell
  if (k > 0) await startPhase(active, r.row.mode, n)
  r.row.batch(st, k, n, out, off)
  if (k > 0) r.incomplete += await endPhase(active, n)
}

async function runCostCell(hostsAll, size, k, cfg) {
  const W = cfg.topicWindow
  const active = hostsAll.slice(0, k)
  global.gc()
  const pool = new SharedPool({ slotSize: size, slots: W })
  const topic = new Topic(pool, { capacity: W })
  const chPool = k > 0 ? new SharedPool({ slotSize: size, slots: W * k }) : null
  const channels = Array.from({ length: k }, () => new Channel(chPool, { capacity: nextPow2(W * k) }))
  const st = {
    pool, topic, chPool, channels, size,
    syncOpts: { reuse: undefined, timeout: TIMEOUT_MS },
    chSyncOpts: Array.from({ length: k }, () => ({ reuse: undefined, timeout: TIMEOUT_MS })),
    leases: new Array(k).fill(null),
    mismatches: 0,
    full: 0,
  }
  const cell = { st, k, active }
  try {
    await setUpHosts(active, (j) => ({ size, window: W, ackEvery: cfg.topicAckEvery, topic: topic.handle, subscribe: true, channel: channels[j].handle }))
    const n = cfg.topicCostIters
    const rows = (k === 0 ? COST_ROWS.slice(0, 1) : COST_ROWS).map((row) => ({ row, samples: new Float64Array(n * cfg.topicCostRounds), incomplete: 0 }))
    const cpu0 = cpu.sample()
    for (const r of rows) await costPass(cell, r, n, null, 0) // warm-up
    for (let round = 0; round < cfg.topicCostRounds; round++) {
      for (const r of roundOrder(rows, round)) {
        global.gc()
        await costPass(cell, r, n, r.samples, round * n)
      }
    }
    const othersCores = cpu.othersCores(cpu0, cpu.sample())
    const workerBad = await teardownHosts(active)
    const lost = leaks(`publish cost ${fmtSize(size)} × ${k}`, topic, k, chPool === null ? [pool] : [pool, chPool])
    return rows.map((r) => {
      const call = summarize(r.samples, 1e6)
      return {
        family: 'topic',
        part: 'cost',
        mechanism: r.row.id,
        label: r.row.label,
        short: r.row.short,
        group: r.row.group,
        size,
        subscribers: k,
        window: W,
        call,
        perSubscriber: k > 0 ? call.p50 / k : null,
        verify: { main: st.mismatches + st.full + r.incomplete + lost, worker: workerBad },
        cpu: { othersCores },
      }
    })
  } finally {
    topic.close()
    for (const ch of channels) ch.detach()
    chPool?.detach()
    pool.detach()
  }
}

// ---- into the event loop -----------------------------------------------------------------------

/** for await: main reads `items` samples the worker publishes. */
async function loopAwait(st, items) {
  let got = 0
  for await (const sample of st.sub) {
    see(st.reader, sample.bytes, sample.length)
    sample.release()
    if (++got === items) break
  }
}

/** postMessage: resolves when main has read `items` posted samples. */
function loopMessage(st, items) {
  const { reader, port, ackEvery, round } = st
  return new Promise((resolve) => {
    st.onSample = (u8) => {
      see(reader, u8, u8.length)
      // Every ackEvery samples; none after the last (the worker has posted them all).
      if (reader.got % ackEvery === 0 && reader.got < items) port.postMessage([round, reader.got])
      if (reader.got === items) {
        st.onSample = null
        resolve()
      }
    }
  })
}

const LOOP_ROWS = [
  { id: 'topic-loop-await', part: 'loop', short: 'Topic for await', label: 'main `for await (const sample of subscription)` + release; the worker acquireSync + publishSync', group: 'sabpool', mode: 'publish', consume: loopAwait },
  { id: 'topic-loop-postMessage', part: 'loop', short: 'postMessage to main', label: "the worker posts a Uint8Array (cloned) to main, at most the window unacknowledged; main's 'message' listener", group: 'postMessage', mode: 'post', consume: loopMessage },
]

async function loopWindow(st, host, r, items) {
  const reader = st.reader
  reader.got = 0
  reader.next = 0
  st.round++
  const proc0 = processCpuNs()
  const main0 = threadCpuNs()
  const t0 = performance.now()
  const consumed = r.row.consume(st, items) // listening before the producer starts
  await startPhase([host], r.row.mode, items, st.round)
  await guarded([host], consumed)
  const ms = performance.now() - t0
  const proc = processCpuNs() - proc0
  const main = main0 === null ? null : threadCpuNs() - main0
  const done = await host.guard(host.next())
  if (!done.done) throw new Error(`bench bug: expected the producer's end of phase, got ${JSON.stringify(done)}`)
  if (reader.got !== items) reader.mismatches++
  return { items, ms, proc, main }
}

async function runLoop(hostsAll, cfg) {
  const W = cfg.topicWindow
  const size = cfg.topicLoopSize
  const host = hostsAll[0]
  global.gc()
  const pool = new SharedPool({ slotSize: size, slots: W })
  const topic = new Topic(pool, { capacity: W })
  const sub = topic.subscribe()
  const st = { sub, port: host.port, ackEvery: cfg.topicAckEvery, reader: { size, next: 0, got: 0, mismatches: 0 }, onSample: null, round: 0 }
  try {
    host.onMessage = (u8) => {
      if (st.onSample === null) st.reader.mismatches++ // a sample outside its window
      else st.onSample(u8)
    }
    await host.call('setup', { size, window: W, ackEvery: cfg.topicAckEvery, topic: topic.handle, subscribe: false })
    const rows = LOOP_ROWS.map((row) => ({ row, windows: [], items: 0 }))
    const cpu0 = cpu.sample()
    for (const r of rows) {
      const warm = await loopWindow(st, host, r, warmItems(size, cfg)) // untimed
      r.items = calibrated(warm.items, warm.ms, cfg)
    }
    for (let w = 0; w < cfg.topicRepeats; w++) {
      for (const r of roundOrder(rows, w)) {
        global.gc()
        r.windows.push(await loopWindow(st, host, r, r.items))
      }
    }
    const othersCores = cpu.othersCores(cpu0, cpu.sample())
    const workerBad = (await host.call('teardown')).mismatches
    sub.unsubscribe()
    const lost = leaks(`into the event loop ${fmtSize(size)}`, topic, 1, [pool])
    return rows.map((r) => {
      return {
        family: 'topic',
        part: 'loop',
        mechanism: r.row.id,
        label: r.row.label,
        short: r.row.short,
        group: r.row.group,
        size,
        window: W,
        ackEvery: cfg.topicAckEvery,
        throughput: {
          repeats: r.windows.length,
          items: r.windows.reduce((a, x) => a + x.items, 0),
          itemsPerWindow: r.items,
          samplesPerSec: rateOf(r.windows),
        },
        cpuPerSample: {
          process: median(r.windows.map((x) => x.proc / x.items)),
          main: r.windows.some((x) => x.main === null) ? null : median(r.windows.map((x) => x.main / x.items)),
        },
        verify: { main: st.reader.mismatches + lost, worker: workerBad },
        cpu: { othersCores },
      }
    })
  } finally {
    host.onMessage = null
    if (sub.active) sub.unsubscribe()
    topic.close()
    pool.detach()
  }
}

// ---- ratios --------------------------------------------------------------------------------------

/**
 * Fan-out, the Topic rows: samples/s over each peer's (> 1: the topic is faster). Publish cost,
 * the publishSync rows: vsChannel = publish p50 / the k trySends' p50 (k ≥ 1), and, at every
 * size but the smallest, vsSmallest = publish p50 / the smallest size's (same k), and
 * addedPerSubscriber = (p50 − the 0-subscriber p50) / k. Loop, the
 * for await row: vsPostMessage = samples/s / the postMessage row's.
 */
function addTopicRatios(cells) {
  const rate = (c) => c.throughput.samplesPerSec.p50
  const find = (part, id, size, k) => cells.find((x) => x.part === part && x.mechanism === id && x.size === size && (k === undefined || x.subscribers === k))
  const costSizes = [...new Set(cells.filter((c) => c.part === 'cost').map((c) => c.size))].sort((a, b) => a - b)
  for (const c of cells) {
    if (c.part === 'fanout' && (c.mechanism === 'topic-await' || c.mechanism === 'topic-sync')) {
      const peer = (id) => find('fanout', id, c.size, c.subscribers)
      const vs = (id) => (peer(id) === undefined ? null : rate(c) / rate(peer(id)))
      c.ratios = { vsPostMessage: vs('topic-postMessage'), vsBroadcast: vs('topic-broadcast'), vsChannels: vs('topic-channels') }
    } else if (c.part === 'cost' && c.mechanism === 'topic-publishSync') {
      const send = c.subscribers > 0 ? find('cost', 'topic-trySend', c.size, c.subscribers) : undefined
      const small = costSizes.length > 1 && c.size !== costSizes[0] ? find('cost', 'topic-publishSync', costSizes[0], c.subscribers) : undefined
      c.ratios = { vsChannel: send === undefined ? null : c.call.p50 / send.call.p50, vsSmallest: small === undefined ? null : c.call.p50 / small.call.p50 }
      // What each subscriber adds to a publish: (p50 − the 0-subscriber p50) / k.
      const none = c.subscribers > 0 ? find('cost', 'topic-publishSync', c.size, 0) : undefined
      c.addedPerSubscriber = none === undefined ? null : (c.call.p50 - none.call.p50) / c.subscribers
    } else if (c.part === 'loop' && c.mechanism === 'topic-loop-await') {
      const peer = find('loop', 'topic-loop-postMessage', c.size)
      c.ratios = { vsPostMessage: peer === undefined ? null : rate(c) / rate(peer) }
    }
  }
}

const ROWS = [...FANOUT_ROWS, ...COST_ROWS, ...LOOP_ROWS]
const HOST = 'topic-worker'

module.exports = {
  id: 'topic',
  title: 'publish/subscribe (Topic)',
  rows: ROWS,
  workers: { [HOST]: topicWorker },
  /** One host per subscriber: as many as the largest subscriber count (at least one, the loop's producer). */
  hostsFor: (cfg) => {
    const n = Math.max(1, ...cfg.topicSubscribers, ...cfg.topicCostSubscribers)
    return Array.from({ length: n }, (_, i) => ({ id: HOST, key: `${HOST}#${i}` }))
  },
  steps: (cfg) => cfg.topicFanoutSizes.length * cfg.topicSubscribers.length + cfg.topicCostSizes.length * cfg.topicCostSubscribers.length + 1,
  async run(hosts, cfg, progress) {
    const n = Math.max(1, ...cfg.topicSubscribers, ...cfg.topicCostSubscribers)
    const all = Array.from({ length: n }, (_, i) => hosts.get(`${HOST}#${i}`))
    const cells = []
    for (const size of cfg.topicFanoutSizes) {
      for (const k of cfg.topicSubscribers) {
        progress.step(`topic fan-out ${fmtSize(size)} × ${k} subscriber${k === 1 ? '' : 's'}`)
        const got = await runFanoutCell(all, size, k, cfg)
        cells.push(...got)
      }
    }
    for (const size of cfg.topicCostSizes) {
      for (const k of cfg.topicCostSubscribers) {
        progress.step(`topic publish cost ${fmtSize(size)} × ${k} subscriber${k === 1 ? '' : 's'}`)
        cells.push(...await runCostCell(all, size, k, cfg))
      }
    }
    progress.step(`topic into the event loop ${fmtSize(cfg.topicLoopSize)}`)
    cells.push(...await runLoop(all, cfg))
    addTopicRatios(cells)
    return { cells }
  },
}
