#!/usr/bin/env node
'use strict'
// sabpool's built-in benchmark: every mechanism, side by side, in one run on this machine.
//   node bench/index.js [--quick | --full] [--processes] [--sizes 1k,1m] [--only channel,clone] [--json FILE] [--svg FILE]
// The report goes to stdout, progress to stderr. See README.md ("npm run bench") and --help.

const { spawnSync } = require('node:child_process')

// Every cell starts from a full GC, and the heap window needs one: re-run with --expose-gc.
if (typeof global.gc !== 'function') {
  const r = spawnSync(process.execPath, ['--expose-gc', ...process.execArgv, __filename, ...process.argv.slice(2)], { stdio: 'inherit' })
  process.exit(r.status ?? 1)
}

const fs = require('node:fs')
const { USAGE, parseArgs, configure } = require('./cli.js')
const { MECHANISMS, TINY } = require('./mechanisms/index.js')
const { WorkerHost } = require('./host.js')
const { runCell, runParked } = require('./runner.js')
const { timerOverheadNs, stopObservingGc } = require('./harness.js')
const { measureColdStart } = require('./coldstart.js')
const { runProcesses, processSteps } = require('./processes.js')
const { runEventLoop, eventLoopSteps, eventLoopEntries } = require('./eventloop/index.js')
const { threadCpuSource, LOOP_DELAY_RESOLUTION_MS } = require('./eventloop/measure.js')
const { collectMeta } = require('./meta.js')
const { addRatios, breakEven, targets } = require('./analysis.js')
const { render, fmtSize } = require('./report.js')
const { renderSvg } = require('./svg.js')
const { SCHEMA } = require('./schema.js')
const cpu = require('./cpuload.js')

/** Cells during which other processes used more than this many cores get flagged. */
const NOISY = 0.25

/** "[12/40] channel 1 MiB — round trip ×5000 (1:23)" on stderr; rewritten in place on a terminal. */
class Progress {
  constructor(total) {
    this.total = total
    this.done = 0
    this.label = ''
    this.start = performance.now()
    this.tty = process.stderr.isTTY === true
  }

  #elapsed() {
    const s = Math.round((performance.now() - this.start) / 1000)
    return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`
  }

  step(label) {
    this.done++
    this.label = `[${this.done}/${this.total}] ${label}`
    if (!this.tty) process.stderr.write(`${this.label} (${this.#elapsed()})\n`)
    else this.phase('')
  }

  phase(what) {
    if (!this.tty) return
    const line = `${this.label}${what ? ` — ${what}` : ''} (${this.#elapsed()})`
    process.stderr.write(`\r\x1b[2K${line.slice(0, (process.stderr.columns || 100) - 1)}`)
  }

  finish() {
    if (this.tty) process.stderr.write('\r\x1b[2K')
    process.stderr.write(`done in ${((performance.now() - this.start) / 1000).toFixed(1)} s\n`)
  }
}

async function main() {
  let opts
  try {
    opts = parseArgs(process.argv.slice(2))
  } catch (err) {
    process.stderr.write(`${err.message}\n\n${USAGE}\n`)
    return 2
  }
  if (opts.help) {
    process.stdout.write(`${USAGE}\n`)
    return 0
  }
  const cfg = configure(opts)
  const mechanisms = MECHANISMS.filter((m) => cfg.mechanisms.includes(m.id))
  const parkedMechanisms = mechanisms.filter((m) => m.id === 'channel' || m.id === 'ring')
  if (parkedMechanisms.length > 0) parkedMechanisms.push(TINY)

  const started = performance.now()
  const meta = collectMeta(process.argv.slice(2))
  const progress = new Progress(2 + cfg.sizes.length * mechanisms.length + parkedMechanisms.length + eventLoopSteps(cfg) + processSteps(cfg))

  progress.step('timer overhead, CPU idle probe')
  const othersBefore = await cpu.idleProbe(cfg.preset === 'quick' ? 200 : 500)
  const cpuRun0 = cpu.sample()
  const timer = { overheadNs: timerOverheadNs() }

  progress.step('worker cold start')
  const coldStart = await measureColdStart(cfg.coldStartRepeats, (name) => progress.phase(name))

  const hosts = new Map()
  for (const m of [...mechanisms, ...parkedMechanisms]) {
    if (hosts.has(m.id)) continue
    const host = new WorkerHost(m.id)
    hosts.set(m.id, host)
    await host.next() // hello
  }

  const cells = []
  const parked = []
  try {
    // Size-major order: all mechanisms of one size run close together in time.
    for (const size of cfg.sizes) {
      for (const m of mechanisms) {
        progress.step(`${m.id} ${fmtSize(size)}`)
        const cell = await runCell(hosts.get(m.id), m, size, cfg, (p) => progress.phase(p))
        cells.push({ ...cell, label: m.label, short: m.short, group: m.group, payloadKind: m.payloadKind ?? 'bytes', ...(m.codec ? { codec: m.codec, tuned: m.tuned } : {}) })
      }
    }
    for (const m of parkedMechanisms) {
      progress.step(`${m.id} parked`)
      const p = await runParked(hosts.get(m.id), m, cfg.parkedSize, cfg, (ph) => progress.phase(ph))
      parked.push({ ...p, label: m.label, short: m.short })
    }
  } finally {
    await Promise.all([...hosts.values()].map((h) => h.close()))
  }
  // The event-loop families, once the pipeline workers are gone; each starts and ends its own.
  const eventLoop = await runEventLoop(cfg, progress)
  // --processes: after the workers are gone, so that only this process and one child run.
  let processes = null
  try {
    if (cfg.processes) processes = await runProcesses(cfg, progress, { cells, parked })
  } finally {
    stopObservingGc()
  }
  const othersDuring = cpu.othersCores(cpuRun0, cpu.sample())
  progress.finish()

  addRatios(cells)
  const res = {
    schema: SCHEMA,
    meta,
    config: cfg,
    timer,
    cpu: { othersCoresBefore: othersBefore, othersCoresDuring: othersDuring, noisyThresholdCores: NOISY },
    durationMs: performance.now() - started,
    units: { time: 'ns', bytes: 'bytes', rate: 'messages per second', gbPerSec: '1e9 payload bytes per second' },
    cells,
    parked,
    eventLoop,
    coldStart,
    processes,
    breakEven: breakEven(cells, eventLoop.service?.cells ?? [], coldStart, cfg.sizes, cfg.amortiseTasks, NOISY),
    targets: [],
    methods: {
      roundTrip: 'main stamps the first and last byte, sends; the worker reads both and sends the payload back; main reads both. One performance.now() pair per sample.',
      sendBlocked: 'duration of the send call alone (postMessage(...), handoff()+postMessage(ticket), channel.sendSync, ring push), in a separate pass.',
      objects: 'object-graph rows: the clone rows post { matrix: Array(bytes/8) } or bytes/32 { id, name, value } objects (the worker echoes what it got); sabpool + writeValue / + JSON = the same graph serialized into a slot (lease.writeValue: V8 serialization, one copy into the slot; lease.writeJSON: UTF-8 encoded straight into the slot), sendSync, the worker recvSync + readValue/readJSON (from the slot in place), checks the tag, writes the graph it got back into the same slot and sends it; main deserializes and checks; library defaults, the tuned rows { spin: 1e9 } on every blocking call. Sender blocked = serialize + sendSync. Slots sized from the graph\'s serialized size, at most 256 MiB of pool. vsGraph / sendVsGraph = the clone row of the same graph\'s round trip / send p50 over this row\'s.',
      mainWait: 'postMessage mechanisms, including the sabpool ticket (its reply is a postMessage): main waits in its event loop; sabpool channel and the floor: main blocks in recvSync / ring pop (spin, then Atomics.wait).',
      throughput: 'main sends as fast as it can with at most `window` messages in flight; the worker touches each payload and releases/acks it; median of `repeats` windows.',
      heap: 'global.gc(), then process.memoryUsage() heapUsed/arrayBuffers before and after n untimed round trips on the main thread; windows with a GC inside (PerformanceObserver "gc") are retried with half n; the allocation of memoryUsage() itself is subtracted.',
      rss: 'process RSS after the cell minus RSS after its warm-up (process-wide, includes the worker).',
      parked: 'main sleeps pauseMs (Atomics.wait) before each round trip so the worker has parked.',
      coldStart: 'new Worker(file) until its first message arrives; one untimed start first.',
      service: 'per size, rows set up together and interleaved: hot = back-to-back round trips in serviceBlocks blocks rotating through the rows (a few untimed round trips lead each block); idle = each round trip after `await setTimeout(pauseMs)` on the main thread, rows alternating round trip by round trip. ' +
        'sabpool await: main `await send(lease)` + `await recv({ reuse })`; sabpool all-sync: main sendSync + recvSync({ reuse }), the same worker and channels; the worker recvSync({ reuse }) + sendSync, library defaults otherwise. postMessage transfer / clone: main posts the Uint8Array (buffer transferred, or cloned), awaits a promise resolved by the port\'s message listener; the worker echoes it the same way. ' +
        'Ratios: vsSync = hot p50 / the all-sync row\'s; vsPostMessage = hot p50 / the faster postMessage row\'s hot p50; p99VsPostMessageP50 = hot p99 / that p50; idleVsPostMessage = idle p50 / the faster postMessage row\'s idle p50.',
      stream: 'a worker produces (acquireSync({ reuse }), stamp, sendSync) `count` messages per window, then a lease of length 0; main consumes with for await / recvSync() / recvMany(capacity) + one await recv() when empty, releasing each (no reuse: the iterator cannot). Rate = count / time from the first message to the end marker; windows of the three consumers alternate; median of streamRepeats windows.',
      fanout: 'sabpool: main `await pool.acquire({ reuse })`, stamps item number and tag, `await channel.send()` into one channel read by every consumer (recvSync({ reuse }) + release). transfer: fanoutSlots Uint8Arrays allocated once, each stamped and transferred to the least-loaded consumer (fewest outstanding, ties round-robin), transferred back; main waits in its event loop. ' +
        'Consumers (both): check the stamp, hash the first 4096 bytes. MB/s = items × size / window time (1e6 bytes). CPU per item over exactly the window: process.cpuUsage() delta / items; main: its thread CPU time (' + threadCpuSource() + ') / items; consumers: their threads\' /proc/self/task/<tid>/schedstat, read by the main thread at both ends, summed / items; medians over fanoutRepeats windows, the mechanisms alternating ABBA.',
      calls: 'every sabpool call (and postMessage for the peers) the main thread makes in the service, stream and fan-out rows, timed with performance.now() around the call expression (until it returns its promise, or returns for sync calls), values stored in preallocated Float64Arrays; in a separate pass (one more window or round-trip pass per row) except for the idle service round trips, where the calls are timed in the same pass. p99 and max over every call of the cell.',
      loopDelay: 'perf_hooks.monitorEventLoopDelay({ resolution: ' + LOOP_DELAY_RESOLUTION_MS + ' }) over the call-timing pass of each row (not for the idle round trips); one timer is let fire before the histogram is read.',
      rpc: 'per size and server count (1, 2), rows set up together and interleaved: svc.call = main `await svc.call(lease, size)`, servers svc.serveSync(handler); two channels = a request and a reply Channel, main registers a resolver in a Map keyed by lease.slot and `await requests.send()`, one `for await` reply loop resolves it, servers recvSync({ reuse }) + sendSync; postMessage = { id, bytes } to the least-loaded server, transferred or cloned, echoed, routed by id; piscina = piscina.run(Piscina.move(bytes)) or piscina.run(bytes) (cloned), minThreads = maxThreads = servers; sabpool/piscina = the same piscina, main `await runLease(piscina, pool, lease, { length, name })`, the task function leaseTask(pool, fn) replying in the same slot. ' +
        'Every server reads both ends and writes tag + 1 there, every caller checks its tag and caller number. Round trip: one call in flight, rpcBlocks blocks of rpcPhaseMs / rpcBlocks per row rotating through the rows, 3 untimed calls leading each block. Calls/s: rpcInFlight calls per server in flight until rpcWindowMs are over (then the last replies), each window after an untimed lead-in of rpcLeadMs, rpcWindows windows per row alternating; median and p10-p90 over windows. ' +
        'CPU per call: process.cpuUsage() over the window / calls, and the main thread\'s (' + threadCpuSource() + '); medians over windows. Ratios: rtVsService = rt p50 / svc.call\'s, rateVsService = svc.call\'s calls/s / this row\'s; svc.call rows: vsPiscina = calls/s / the faster piscina row\'s, rtVsChannels = rt p50 / the two-channel row\'s, rateVsChannels = calls/s / the two-channel row\'s.',
      topic: 'publish/subscribe, rows of a cell set up together and interleaved (rounds rotate through the rows, reversed every other round, after an untimed pass of each; medians and p10-p90 over rounds); every reader checks each sample\'s number (bytes 1-4, the next one it expects) and tags (first and last byte) and lets go of it, no pass over the bytes. ' +
        'Fan-out (topicFanoutSizes x topicSubscribers workers): Topic await = main `await pool.acquire({ reuse })`, stamp in place, `await topic.publish(lease, size)`; Topic sync = acquireSync + publishSync; subscribers recvSync + release; Channel per subscriber = main stamps its buffer, per subscriber `await pool.acquire({ reuse })` + lease.bytes.set(buffer) + `await send()`, subscribers recvSync({ reuse }) + release; postMessage = the Uint8Array posted to each subscriber (a clone each); BroadcastChannel = one bc.postMessage, a clone per subscriber. ' +
        'At most topicWindow samples in flight (the topic\'s capacity and pool slots; the channel pool topicWindow x k slots; message rows: the producer waits while topicWindow samples are unacknowledged by some subscriber, acknowledged every topicAckEvery). A row\'s windows hold as many samples as its untimed first window (topicWarmBytes) says fill topicWindowMs; a window ends when every subscriber has read every one (every slot back in its pool; every subscriber\'s last acknowledgment); samples/s = items / window time. CPU per sample: process.cpuUsage(), the main thread\'s, the subscribers\' schedstat, over exactly the window / items. ' +
        'Publish cost (topicCostSizes x topicCostSubscribers): performance.now() around each publishSync(lease, size) alone, subscribers keeping up, the untimed acquireSync waiting for a free slot (pool slots = topic capacity: a publish never waits for room); trySend x k = k leases acquired (untimed), a trySend into each subscriber\'s Channel, the k calls timed together. vsChannel = publish p50 / the k trySends\' p50; vsSmallest = publish p50 / the smallest size\'s. ' +
        'Into the event loop (topicLoopSize): a worker acquireSync + publishSync, main `for await` over its subscription + release; or the worker posts the Uint8Array (cloned) to main, at most topicWindow unacknowledged, acknowledged every topicAckEvery; a window runs from the phase request to main\'s last sample.',
      notify: 'the main thread times trySend / release / Atomics.notify with 0, 1, 2 workers parked (recvSync on the channel, acquireSync on the exhausted pool, Atomics.wait on the word), polling the waiter count (stats().recvWaiting / stats().waiting / its own counter) before each call and again after notifySettleMs; woken workers take what was freed and park again. postMessage: port.postMessage(0) to a worker idle in its event loop, after notifySettleMs. notifyRounds rounds of every case interleave; median of notifyIters samples each.',
      ...(processes === null ? {} : {
        processes: 'the same cells, round trips and streams between this process and a child_process.fork()ed child (a fresh child per cell, ended before the next one starts): ' +
          'sabpool = SharedPool.create/Channel.create in files under /dev/shm, opened by name in the child (SharedPool.open/Channel.open), a channel each way, waits spin (default budget) then park on futexes, every blocking call passes { timeout } only; ' +
          'process.send JSON = the payload as a base64 string (encoded inside the timed send call, decoded with Buffer.from(s, "base64"); the child decodes, touches and re-encodes); ' +
          'process.send advanced = serialization "advanced", a Uint8Array, echoed; ' +
          'raw pipe = an extra stdio pipe (socket pair), 4-byte length + payload frames, the child blocks in readSync/writeSync on a preallocated buffer and echoes, this process writes with socket.write and reassembles "data" chunks. ' +
          'Ratios: vsSabpool = round trip p50 / the sabpool row\'s; streamVsSabpool = the sabpool row\'s msgs/s p50 / this row\'s; vsThread (sabpool rows) = round trip p50 / the thread section\'s channel row\'s. Parked rows: the same, busy and parked. CPU of the child counts as ours in cpu.othersCores.',
      }),
    },
  }
  res.targets = targets(cells, parked, cfg.sizes, NOISY, eventLoop, coldStart)

  process.stdout.write(render(res))
  if (opts.json) {
    fs.writeFileSync(opts.json, `${JSON.stringify(res, null, 2)}\n`)
    process.stderr.write(`wrote ${opts.json}\n`)
  }
  if (opts.svg) {
    fs.writeFileSync(opts.svg, renderSvg(res))
    process.stderr.write(`wrote ${opts.svg}\n`)
  }
  const all = [...cells, ...parked, ...eventLoopEntries(eventLoop), ...(processes === null ? [] : [...processes.cells, ...processes.parked])]
  const bad = all.filter((c) => c.verify.main + c.verify.worker > 0).length
  if (bad > 0) {
    process.stderr.write(`error: ${bad} cell(s) received payloads with the wrong content (see "check")\n`)
    return 1
  }
  return 0
}

main().then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`\nbenchmark failed: ${err && err.stack ? err.stack : err}\n`)
    process.exit(1)
  },
)
