'use strict'
// The text report (stdout).

const { cellOf, isGraphRow } = require('./analysis.js')

// ---- formatting -------------------------------------------------------------------------------------

function num3(v) {
  const a = Math.abs(v)
  if (a >= 100) return Math.round(v).toLocaleString('en-US')
  if (a >= 10) return v.toFixed(1)
  return v.toFixed(2)
}

const TIME_UNITS = [[1e9, 's'], [1e6, 'ms'], [1e3, 'µs'], [1, 'ns']]

function timeUnit(ns) {
  for (const u of TIME_UNITS) if (Math.abs(ns) >= u[0]) return u
  return TIME_UNITS[TIME_UNITS.length - 1]
}

function fmtNs(ns) {
  if (ns === null || ns === undefined || Number.isNaN(ns)) return '–'
  const [div, unit] = timeUnit(ns)
  return unit === 'ns' ? `${Math.round(ns)} ns` : `${num3(ns / div)} ${unit}`
}

function fmtRange(lo, hi) {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return '–'
  if (timeUnit(lo)[1] !== timeUnit(hi)[1] && lo < timeUnit(hi)[0] / 10) return `${fmtNs(lo)}–${fmtNs(hi)}`
  const [div, unit] = timeUnit(hi)
  const f = (v) => (unit === 'ns' ? String(Math.round(v)) : num3(v / div))
  return `${f(lo)}–${f(hi)} ${unit}`
}

function fmtSize(bytes) {
  if (bytes >= 1 << 30 && bytes % (1 << 30) === 0) return `${bytes / (1 << 30)} GiB`
  if (bytes >= 1 << 20) return `${+(bytes / (1 << 20)).toFixed(2)} MiB`
  if (bytes >= 1024) return `${+(bytes / 1024).toFixed(2)} KiB`
  return `${bytes} B`
}

function fmtBytes(b) {
  if (!Number.isFinite(b)) return '–'
  const a = Math.abs(b)
  if (a < 1024) return `${Math.round(b)} B`
  if (a < 1 << 20) return `${(b / 1024).toFixed(1)} KiB`
  return `${(b / (1 << 20)).toFixed(1)} MiB`
}

function fmtSignedMiB(b) {
  const v = b / (1 << 20)
  return `${v >= 0 ? '+' : ''}${v.toFixed(1)} MiB`
}

function fmtRate(perSec) {
  if (!Number.isFinite(perSec)) return '–'
  if (perSec >= 1e6) return `${num3(perSec / 1e6)} M/s`
  if (perSec >= 1e3) return `${num3(perSec / 1e3)} k/s`
  return `${num3(perSec)} /s`
}

function fmtRateRange(lo, hi) {
  const [div, unit] = hi >= 1e6 ? [1e6, 'M'] : hi >= 1e3 ? [1e3, 'k'] : [1, '']
  return `${num3(lo / div)}–${num3(hi / div)}${unit ? ` ${unit}` : ''}`
}

function fmtParks(p, n) {
  const per = (p.mainRecvWaits + p.workerRecvWaits + p.sendWaits + p.poolWaits) / n
  return `${(per * 100).toFixed(per < 0.1 ? 1 : 0)}%`
}

function fmtTimes(x) {
  return x === null || x === undefined ? '–' : `${num3(x)}×`
}

/** A plain-text table; `align` per column: 'l' or 'r'. Rows that are null print a blank line. */
function table(headers, rows, align) {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.filter(Boolean).map((r) => String(r[i]).length)))
  const line = (cells) => cells.map((c, i) => (align[i] === 'l' ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i]))).join('  ').trimEnd()
  const out = [line(headers), widths.map((w) => '─'.repeat(w)).join('  ')]
  for (const r of rows) out.push(r === null ? '' : line(r))
  return out.join('\n')
}

// ---- sections -----------------------------------------------------------------------------------------

const noisy = (res, x) => x.cpu && x.cpu.othersCores !== null && x.cpu.othersCores > res.cpu.noisyThresholdCores
const name = (res, x) => `${x.short}${noisy(res, x) ? ' !' : ''}`

function cpuLine(res) {
  const c = res.cpu
  if (c.othersCoresBefore === null) return 'CPU use by other processes: unknown (needs Linux /proc/stat).'
  const cells = [...res.cells, ...res.parked, ...(res.processes ? [...res.processes.cells, ...res.processes.parked] : [])].filter((x) => noisy(res, x)).length
  const f = (v) => v.toFixed(2)
  let line = `CPU taken by other processes: ${f(c.othersCoresBefore)} of ${res.meta.cores} cores just before the run, ${f(c.othersCoresDuring)} on average during it.`
  if (cells > 0) {
    line += `\nWARNING: in ${cells} cell(s), marked "!", other processes used more than ${c.noisyThresholdCores} cores: spinning and` +
      '\nwake-up numbers there measure the contention (time slices, context switches), not the mechanism. Re-run on an idle machine.'
  }
  return line
}

function header(res) {
  const m = res.meta
  return [
    `sabpool ${m.sabpool} benchmark — ${m.date}`,
    `${m.cpu}, ${m.cores} cores, ${m.os}; Node ${m.node} (V8 ${m.v8}); preset ${res.config.preset}; run took ${(res.durationMs / 1000).toFixed(1)} s`,
    `Timer: performance.now() costs ≈${Math.round(res.timer.overheadNs)} ns; every latency sample includes one call. Medians (p50) with p10–p90 and p99.`,
    cpuLine(res),
  ].join('\n')
}

/** `fn(cell)` for `cells`, size-major in the order of `sizes` and `mechanisms`; null between sizes. */
function groupedRows({ sizes, mechanisms }, cells, fn) {
  const rows = []
  for (const size of sizes) {
    if (rows.length) rows.push(null)
    for (const id of mechanisms) {
      const c = cellOf(cells, id, size)
      if (c) rows.push(fn(c))
    }
  }
  return rows
}

/** A cell's size, name, round trip and sender-blocked columns (both latency tables). */
const latencyColumns = (res, c) => [
  fmtSize(c.size),
  name(res, c),
  fmtNs(c.rt.p50),
  fmtRange(c.rt.p10, c.rt.p90),
  fmtNs(c.rt.p99),
  fmtNs(c.send.p50),
  fmtRange(c.send.p10, c.send.p90),
]

/** A cell's size, name and streaming columns (both streaming tables). */
const streamColumns = (res, c) => [
  fmtSize(c.size),
  name(res, c),
  String(c.window),
  fmtRate(c.throughput.msgsPerSec.p50),
  fmtRateRange(c.throughput.msgsPerSec.p10, c.throughput.msgsPerSec.p90),
  num3(c.throughput.gbPerSec),
]

/** A cell's heap columns: bytes allocated per round trip (`*`: a lower bound, see GC_NOTE). */
const heapColumns = (c) => [
  fmtBytes(c.heap.bytesPerRoundTrip) + (c.heap.gcInside ? '*' : ''),
  fmtBytes(c.heap.arrayBufferBytesPerRoundTrip) + (c.heap.gcInside ? '*' : ''),
]

/** A cell's sample counts and payload check. */
const countColumns = (c) => [
  `${c.rt.n}/${c.heap.n}/${c.throughput.messages}`,
  c.verify.main + c.verify.worker === 0 ? 'ok' : `BAD ${c.verify.main + c.verify.worker}`,
]

const GC_NOTE = '* a GC ran inside every heap window tried: the value is a lower bound.'

/** The byte rows (every mechanism but the object-graph clones and the codec rows). */
const isBytes = (c) => (c.payloadKind ?? 'bytes') === 'bytes'
const byteConfig = (res) => ({ sizes: res.config.sizes, mechanisms: res.config.mechanisms.filter((id) => res.cells.some((c) => c.mechanism === id && isBytes(c))) })

function latencyTable(res) {
  const config = byteConfig(res)
  if (config.mechanisms.length === 0) return ''
  const rows = groupedRows(config, res.cells, (c) => [
    ...latencyColumns(res, c),
    c.ratios ? fmtTimes(c.ratios.vsClone) : '',
    c.ratios ? fmtTimes(c.ratios.vsTransfer) : '',
    c.ratios ? fmtTimes(c.ratios.vsFloor) : '',
    c.parks ? fmtParks(c.parks.roundTrip, c.rt.n) : '',
  ])
  return [
    'PIPELINE OF WORKERS — ROUND TRIP (payload there and back: the receiver touches the first and last byte and replies',
    'with it; the sabpool channel rows and the floor block in recvSync / pop on both sides, like two workers)',
    'and SENDER BLOCKED (duration of the send call alone). Byte payloads; object graphs have their own table below.',
    'Ratios use round-trip medians of the same size: ×clone / ×transfer = times faster than that mechanism;',
    'floor = times slower than the hand-rolled ring (1× = as fast as hand-written Atomics code).',
    'parked (sabpool channels) = receive waits that had to sleep (main + worker) per timed round trip: a park costs a wake-up.',
    table(
      ['size', 'mechanism', 'rt p50', 'rt p10–p90', 'rt p99', 'send p50', 'send p10–p90', '×clone', '×transfer', 'floor', 'parked'],
      rows,
      ['r', 'l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
    ),
  ].join('\n')
}

/**
 * Object graphs: the postMessage clone of a graph next to sabpool carrying the same graph through
 * a codec, per graph and size.
 */
function objectsTable(res) {
  const graphRows = res.cells.filter((c) => !isBytes(c))
  if (graphRows.length === 0) return ''
  const rows = []
  for (const kind of ['matrix', 'objects']) {
    for (const size of res.config.sizes) {
      const group = res.config.mechanisms.map((id) => cellOf(graphRows, id, size)).filter((c) => c !== undefined && c.payloadKind === kind)
      if (group.length === 0) continue
      if (rows.length) rows.push(null)
      for (const c of group) {
        const graph = isGraphRow(c)
        rows.push([
          ...latencyColumns(res, c),
          graph ? fmtTimes(c.ratios?.vsGraph) : '',
          graph ? fmtTimes(c.ratios?.sendVsGraph) : '',
          fmtRate(c.throughput.msgsPerSec.p50),
          ...heapColumns(c),
          ...countColumns(c),
        ])
      }
    }
  }
  const anyGc = graphRows.some((c) => c.heap.gcInside)
  return [
    'OBJECT GRAPHS — what a user with objects (not bytes) gets. {matrix} = { matrix: Array(bytes/8) } of doubles;',
    '[{…}] = bytes/32 × { id, name, value }. clone = postMessage of the graph, echoed; sabpool+value / +JSON = the same',
    'graph serialized into a slot (lease.writeValue: V8 serialization, the format structured clone uses, one copy into',
    'the slot; lease.writeJSON: UTF-8 straight into the slot), sendSync, deserialized from the slot in place by the',
    'worker, written back into the same slot and returned; main in recvSync. send = serialize + send call (postMessage',
    'serializes inside its call too). ×graph / ×send = times faster than the clone of the same graph (round trip, send);',
    'the serialization walk stays on both sides, so what sabpool removes is the transport: the message port, the copy',
    'of the serialized bytes, the receiver\'s event loop. msgs/s = streaming; heap/rt = main-thread bytes allocated per',
    'round trip (the graph read back is new objects either way).',
    table(
      ['size', 'mechanism', 'rt p50', 'rt p10–p90', 'rt p99', 'send p50', 'send p10–p90', '×graph', '×send', 'msgs/s', 'heap/rt', 'ArrayBuffer/rt', 'n rt/heap/stream', 'check'],
      rows,
      ['r', 'l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'l'],
    ),
    anyGc ? GC_NOTE : '',
  ].filter((l) => l !== '').join('\n')
}

function streamTable(res) {
  const config = byteConfig(res)
  if (config.mechanisms.length === 0) return ''
  const rows = groupedRows(config, res.cells, (c) => [
    ...streamColumns(res, c),
    ...heapColumns(c),
    fmtSignedMiB(c.rss.growthBytes),
    ...countColumns(c),
  ])
  const anyGc = res.cells.some((c) => isBytes(c) && c.heap.gcInside)
  return [
    'STREAMING (the main thread sends as fast as it can with at most `win` messages in flight; the worker touches',
    'each payload and releases the slot / acks) and MEMORY (main thread). GB/s = payload bytes made available to the',
    'worker per second (copied for clones, moved for transfer/sabpool/ring). heap and ArrayBuffer = bytes the main',
    'thread allocated per round trip (one send + one receive), from memoryUsage() deltas across a GC-free window.',
    'RSS Δ = process RSS after the cell minus after its warm-up. n = round trips timed / heap window / messages streamed.',
    table(
      ['size', 'mechanism', 'win', 'msgs/s p50', 'p10–p90', 'GB/s', 'heap/rt', 'ArrayBuffer/rt', 'RSS Δ', 'n rt/heap/stream', 'check'],
      rows,
      ['r', 'l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'l'],
    ),
    anyGc ? GC_NOTE : '',
  ].join('\n')
}

function parkedTable(res) {
  if (res.parked.length === 0) return ''
  const rows = res.parked.map((p) => [
    name(res, p),
    fmtNs(p.busy.rt.p50),
    fmtRange(p.busy.rt.p10, p.busy.rt.p90),
    fmtNs(p.parked.rt.p50),
    fmtRange(p.parked.rt.p10, p.parked.rt.p90),
    fmtNs(p.parked.rt.p99),
    fmtNs(p.busy.send.p50),
    fmtNs(p.parked.send.p50),
    String(p.parked.rt.n),
  ])
  return [
    `WAKE-UP: round trips back to back (busy) and with the main thread sleeping ${res.config.pauseMs} ms before each one, so the worker`,
    `has parked (Atomics.wait, or its idle event loop for postMessage); ${fmtSize(res.config.parkedSize)} slots, a number for postMessage.`,
    table(
      ['mechanism', 'busy rt p50', 'busy p10–p90', 'parked rt p50', 'parked p10–p90', 'parked p99', 'busy send', 'parked send', 'n'],
      rows,
      ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
    ),
  ].join('\n')
}

// ---- event-loop families --------------------------------------------------------------------------

const pct = (x) => (x === null || x === undefined || !Number.isFinite(x) ? '–' : `${(x * 100).toFixed(x < 0.1 ? 1 : 0)}%`)
const check = (x) => (x.verify.main + x.verify.worker === 0 ? 'ok' : `BAD ${x.verify.main + x.verify.worker}`)

/** Rows of `cells` for each size of `sizes`, in `ids` order, a blank line between sizes. */
function bySize(sizes, ids, cells, fn, extra = () => true) {
  const rows = []
  for (const size of sizes) {
    const group = []
    for (const id of ids) for (const c of cells) if (c.mechanism === id && c.size === size && extra(c)) group.push(fn(c))
    if (group.length === 0) continue
    if (rows.length) rows.push(null)
    rows.push(...group)
  }
  return rows
}

const ids = (cells) => [...new Set(cells.map((c) => c.mechanism))]
const sizesOf = (cells) => [...new Set(cells.map((c) => c.size))].sort((a, b) => a - b)

function serviceTable(res) {
  const S = res.eventLoop?.service
  if (!S) return ''
  const rows = bySize(sizesOf(S.cells), ids(S.cells), S.cells, (c) => [
    fmtSize(c.size),
    name(res, c),
    fmtNs(c.hot.rt.p50),
    fmtRange(c.hot.rt.p10, c.hot.rt.p90),
    fmtNs(c.hot.rt.p99),
    fmtTimes(c.ratios.vsSync),
    fmtTimes(c.ratios.vsPostMessage),
    fmtNs(c.idle.rt.p50),
    fmtRange(c.idle.rt.p10, c.idle.rt.p90),
    fmtNs(c.idle.rt.p99),
    c.hot.parks ? `${pct(c.hot.parks.worker)}/${pct(c.hot.parks.main)}` : '',
    c.idle.parks ? `${pct(c.idle.parks.workerParkedAtSend)}/${pct(c.idle.parks.main)}` : '',
    `${c.hot.rt.n}/${c.idle.rt.n}`,
    check(c),
  ])
  return [
    'SERVICE ROUND TRIP: the main thread never blocks. sabpool await recv(): main `await send()` + `await recv({ reuse })`;',
    'the worker serves in recvSync/sendSync (library defaults). sabpool recvSync: the same worker, main in sendSync + recvSync',
    '(the all-sync round trip: blocks the event loop). postMessage transfer / clone: the same payload posted (buffer',
    'transferred, or cloned) and echoed, main awaiting the reply. hot = back to back; idle = main idles',
    `${res.config.pauseMs} ms (await setTimeout) before each round trip, so the worker has parked (or its event loop idles).`,
    '×sync = hot p50 / the all-sync row\'s; ×pM = hot p50 / the faster postMessage row\'s. parked hot w/m = receive waits',
    'that slept per round trip, worker / main; idle w/m = round trips that found the worker parked in recvSync when the',
    'request went out / main\'s receive waits that slept per round trip (sabpool rows). Rows of one size are interleaved.',
    'n = hot / idle round trips.',
    table(
      ['size', 'row', 'hot p50', 'hot p10–p90', 'hot p99', '×sync', '×pM', 'idle p50', 'idle p10–p90', 'idle p99', 'parked hot w/m', 'idle w/m', 'n', 'check'],
      rows,
      ['r', 'l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'l'],
    ),
  ].join('\n')
}

function streamIntoLoopTable(res) {
  const S = res.eventLoop?.stream
  if (!S) return ''
  const rows = bySize(sizesOf(S.cells), ids(S.cells), S.cells, (c) => [
    fmtSize(c.size),
    name(res, c),
    String(c.window),
    fmtRate(c.throughput.msgsPerSec.p50),
    fmtRateRange(c.throughput.msgsPerSec.p10, c.throughput.msgsPerSec.p90),
    fmtTimes(c.ratios.vsSync),
    pct(c.parks.main),
    pct(c.parks.producer),
    String(c.throughput.messages),
    check(c),
  ])
  return [
    'STREAMING INTO THE EVENT LOOP: a worker produces (acquireSync + sendSync) as fast as it can into a pool of `win` slots;',
    'the main thread consumes and releases each lease with for await, with recvSync (the sync figure: blocks the event',
    'loop) or with recvMany(capacity) + one await recv() when empty. No consumer passes reuse (the iterator cannot).',
    '×sync = msgs/s p50 / the recvSync row\'s. parked = waits that slept per message: main\'s receives, the producer\'s',
    'acquires and sends. Windows of the three consumers alternate.',
    table(
      ['size', 'consumer', 'win', 'msgs/s p50', 'p10–p90', '×sync', 'main parked', 'producer parked', 'n msgs', 'check'],
      rows,
      ['r', 'l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'l'],
    ),
  ].join('\n')
}

function fanoutTable(res) {
  const F = res.eventLoop?.fanout
  if (!F) return ''
  const rows = []
  for (const size of sizesOf(F.cells)) {
    for (const k of [...new Set(F.cells.map((c) => c.consumers))].sort((a, b) => a - b)) {
      const group = F.cells.filter((c) => c.size === size && c.consumers === k)
      if (group.length === 0) continue
      if (rows.length) rows.push(null)
      for (const c of group) {
        rows.push([
          fmtSize(c.size),
          String(c.consumers),
          name(res, c),
          num3(c.throughput.mbPerSec.p50),
          `${num3(c.throughput.mbPerSec.p10)}–${num3(c.throughput.mbPerSec.p90)}`,
          c.ratios ? fmtTimes(c.ratios.vsTransfer) : '',
          fmtNs(c.cpuPerItem.process),
          fmtNs(c.cpuPerItem.main),
          fmtNs(c.cpuPerItem.consumers),
          c.ratios ? fmtTimes(c.ratios.cpuVsTransfer) : '',
          c.parks ? `${pct(c.parks.consumers)}/${pct(c.parks.mainSend)}/${pct(c.parks.mainAcquire)}` : '',
          `${c.throughput.items}`,
          check(c),
        ])
      }
    }
  }
  const first = F.cells[0]
  return [
    `FAN-OUT PIPELINE: main produces, 2 or 4 consumer workers each ${first ? first.work : ''} of every item.`,
    'sabpool: main `await pool.acquire({ reuse })` + stamp + `await channel.send()` into one shared channel; consumers',
    `recvSync + release. recycled transfer: ${first ? first.slots : ''} ArrayBuffers allocated once (as many as the pool's slots), transferred to the`,
    'least-loaded consumer (fewest outstanding, ties round-robin) and back; main waits for a free one in its event loop.',
    'MB/s = payload produced and consumed per second (1e6 B). CPU per item = process.cpuUsage() over the window / items',
    '(every thread), main = the main thread\'s CPU time, consumers = theirs summed; ×tr = sabpool / transfer (MB/s, CPU).',
    'parked = waits that slept per item: consumers\' receives / main\'s sends / main\'s acquires. Windows alternate ABBA.',
    table(
      ['size', 'cons', 'mechanism', 'MB/s p50', 'p10–p90', '×tr', 'CPU/item', 'main', 'consumers', 'CPU ×tr', 'parked c/s/a', 'items', 'check'],
      rows,
      ['r', 'r', 'l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'l'],
    ),
  ].join('\n')
}

function blockingTable(res) {
  const E = res.eventLoop
  if (!E || (!E.service && !E.stream && !E.fanout)) return ''
  const rows = []
  const line = (family, c, variant, calls, delay) => [
    family,
    fmtSize(c.size),
    `${name(res, c)}${variant}${c.consumers ? ` ×${c.consumers}` : ''}${c.blocksEventLoop ? ' (sync)' : ''}`,
    String(calls.all.n),
    fmtNs(calls.all.p50),
    fmtNs(calls.all.p99),
    fmtNs(calls.all.max),
    calls.slowest === null ? '–' : `${calls.slowest} ${fmtNs(calls.byCall[calls.slowest].p99)}`,
    delay ? fmtNs(delay.p99) : '–',
    delay ? fmtNs(delay.max) : '–',
  ]
  const add = (group) => {
    if (group.length === 0) return
    if (rows.length) rows.push(null)
    rows.push(...group)
  }
  if (E.service) {
    for (const size of sizesOf(E.service.cells)) {
      const cs = E.service.cells.filter((c) => c.size === size)
      add([...cs.map((c) => line('service', c, ' hot', c.hot.calls, c.loopDelay ?? c.hot.loopDelay)), ...cs.map((c) => line('service', c, ' idle', c.idle.calls, null))])
    }
  }
  if (E.stream) for (const size of sizesOf(E.stream.cells)) add(E.stream.cells.filter((c) => c.size === size).map((c) => line('stream', c, '', c.calls, c.loopDelay)))
  if (E.fanout) for (const size of sizesOf(E.fanout.cells)) add(E.fanout.cells.filter((c) => c.size === size).map((c) => line('fan-out', c, '', c.calls, c.loopDelay)))
  return [
    'EVENT-LOOP BLOCKING: how long each call the main thread makes holds it — performance.now() around the call expression',
    '(until send()/recv()/acquire()/next() return their promise; sync calls until they return; postMessage for the peers),',
    'every call of a separate pass (idle rows: the same pass); property reads (bytes, length) are not timed. p50/p99/max',
    'over all calls of the row; slowest = the kind of call with the largest max, and its p99. loop = how late the 1 ms',
    'timer of monitorEventLoopDelay ran during that pass (p99, max): the longest stretch the loop was held, microtask',
    'chains included (not measured for the idle rows). (sync) rows block the event loop by design: they are the reference.',
    table(
      ['family', 'size', 'row', 'calls', 'call p50', 'call p99', 'call max', 'slowest: p99', 'loop p99', 'loop max'],
      rows,
      ['l', 'r', 'l', 'r', 'r', 'r', 'r', 'l', 'r', 'r'],
    ),
  ].join('\n')
}

function notifyTable(res) {
  const N = res.eventLoop?.notify
  if (!N) return ''
  const cols = (r, k) => (r.waiters[k] === undefined ? ['', ''] : [fmtNs(r.waiters[k].p50), fmtRange(r.waiters[k].p10, r.waiters[k].p90)])
  const rows = N.rows.map((r) => [name(res, r), ...cols(r, 0), ...cols(r, 1), ...cols(r, 2), String(Math.max(...Object.values(r.waiters).map((w) => w.n)))])
  return [
    'WAKE-UP COST TO THE NOTIFIER: duration of the call that frees a resource, for the main thread calling it, with 0, 1 or 2',
    'worker threads parked waiting for it (recvSync on the channel, acquireSync on the exhausted pool, Atomics.wait on the',
    'word; the waiter count is polled before each call). postMessage: a send to a worker idling in its event loop.',
    table(
      ['call', '0 waiting', 'p10–p90', '1 waiting', 'p10–p90', '2 waiting', 'p10–p90', 'n'],
      rows,
      ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
    ),
  ].join('\n')
}

function rpcTable(res) {
  const R = res.eventLoop?.rpc
  if (!R) return ''
  const rows = []
  for (const size of sizesOf(R.cells)) {
    for (const k of [...new Set(R.cells.map((c) => c.servers))].sort((a, b) => a - b)) {
      const group = R.cells.filter((c) => c.size === size && c.servers === k)
      if (group.length === 0) continue
      if (rows.length) rows.push(null)
      for (const c of group) {
        const t = c.throughput.callsPerSec
        rows.push([
          fmtSize(c.size),
          String(c.servers),
          name(res, c),
          fmtNs(c.rt.p50),
          fmtRange(c.rt.p10, c.rt.p90),
          fmtNs(c.rt.p99),
          fmtRate(t.p50),
          fmtRateRange(t.p10, t.p90),
          fmtNs(c.cpuPerCall.process),
          fmtNs(c.cpuPerCall.main),
          fmtTimes(c.ratios.rtVsService),
          fmtTimes(c.ratios.rateVsService),
          `${c.rt.n}/${c.throughput.calls}`,
          check(c),
        ])
      }
    }
  }
  const first = R.cells[0]
  return [
    'REQUEST/RESPONSE SERVICES: the main thread calls, 1 or 2 server threads answer; every server reads and writes the',
    'first and last byte, every caller checks its reply. svc.call: `await svc.call(lease, size)`, servers in',
    'svc.serveSync(handler). two channels + Map: the hand-written loop (request and reply Channels, main `await send()`',
    'and one `for await` reply loop routing by lease.slot; servers recvSync + sendSync). postMessage: { id, bytes } to',
    'the least-loaded server, echoed, routed by id (transferred or cloned). piscina.run: the Uint8Array cloned, or',
    'Piscina.move()d, both ways. sabpool/piscina runLease: the same piscina through the adapter (runLease + leaseTask),',
    'the reply in the request\'s slot. rt = round trip with one call in flight; calls/s = ' +
      `${first ? first.inFlight / first.servers : ''} calls per server in flight (median and p10–p90 over windows).`,
    'CPU/call = process.cpuUsage() over the window / calls (every thread), main = the main thread\'s. ×rt = round trip',
    'p50 / svc.call\'s, ×rate = svc.call\'s calls/s / this row\'s (> 1: svc.call is better). Rows of a cell are interleaved.',
    'n = round trips / calls in the windows.',
    table(
      ['size', 'srv', 'row', 'rt p50', 'rt p10–p90', 'rt p99', 'calls/s p50', 'p10–p90', 'CPU/call', 'main', '×rt', '×rate', 'n', 'check'],
      rows,
      ['r', 'r', 'l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'l'],
    ),
  ].join('\n')
}

function topicTable(res) {
  const T = res.eventLoop?.topic
  if (!T) return ''
  const part = (p) => T.cells.filter((c) => c.part === p)
  const fanout = part('fanout')
  const cost = part('cost')
  const loop = part('loop')
  const ratio = (c, key) => (c.ratios && c.ratios[key] !== undefined ? fmtTimes(c.ratios[key]) : '')
  const rate = (c) => [fmtRate(c.throughput.samplesPerSec.p50), fmtRateRange(c.throughput.samplesPerSec.p10, c.throughput.samplesPerSec.p90)]
  /** Rows of `cells` grouped by size and subscriber count (a blank line between groups). */
  const grouped = (cells, fn) => {
    const rows = []
    for (const size of sizesOf(cells)) {
      for (const k of [...new Set(cells.map((c) => c.subscribers))].sort((a, b) => a - b)) {
        const group = cells.filter((c) => c.size === size && c.subscribers === k)
        if (group.length === 0) continue
        if (rows.length) rows.push(null)
        rows.push(...group.map(fn))
      }
    }
    return rows
  }
  const out = []
  const first = fanout[0] ?? loop[0] ?? cost[0]
  if (fanout.length > 0) {
    out.push(
      `PUBLISH/SUBSCRIBE FAN-OUT: main produces, ${[...new Set(fanout.map((c) => c.subscribers))].join(', ')} subscriber workers read every sample: check its stamp`,
      '(its number, the first and the last byte) and let go of it, the same fixed work in every row.',
      'Topic await: main `await pool.acquire({ reuse })`, stamps the slot, `await topic.publish()`; Topic sync: acquireSync +',
      'publishSync (blocks the event loop); subscribers recvSync + release. Channel per subscriber: main copies its buffer',
      'into a slot per subscriber (set) and `await send()`s each. postMessage: the Uint8Array posted to each subscriber',
      '(a clone each); BroadcastChannel: one post, a clone per subscriber. At most ' + `${first.window} samples in flight (message`,
      `rows: the subscribers acknowledge every ${first.ackEvery}).`,
      'samples/s: a sample counts once every subscriber has read it (median and p10–p90 over windows). ×pM / ×bc / ×ch =',
      'Topic samples/s / postMessage\'s / BroadcastChannel\'s / Channel per subscriber\'s. CPU/sample = process.cpuUsage()',
      'over the window / samples (every thread), main = the main thread\'s, subs = the subscribers\' summed. Rows interleaved.',
      table(
        ['size', 'subs', 'row', 'samples/s p50', 'p10–p90', '×pM', '×bc', '×ch', 'CPU/sample', 'main', 'subs', 'n', 'check'],
        grouped(fanout, (c) => [
          fmtSize(c.size), String(c.subscribers), name(res, c), ...rate(c),
          ratio(c, 'vsPostMessage'), ratio(c, 'vsBroadcast'), ratio(c, 'vsChannels'),
          fmtNs(c.cpuPerSample.process), fmtNs(c.cpuPerSample.main), fmtNs(c.cpuPerSample.subscribers),
          String(c.throughput.items), check(c),
        ]),
        ['r', 'r', 'l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'l'],
      ),
    )
  }
  if (cost.length > 0) {
    if (out.length) out.push('')
    out.push(
      `PUBLISH COST: the main thread times each \`topic.publishSync(lease, size)\` alone, ${[...new Set(cost.map((c) => c.subscribers))].join(', ')} subscribers keeping up`,
      '(recvSync + release); the untimed acquireSync before it waits for a free slot, so a publish never waits for room.',
      'channel.trySend × k: what one publish replaces, a trySend into each subscriber\'s own Channel, the k calls timed together.',
      'per sub = p50 / k; +sub = what a subscriber adds, (p50 − the 0-subscriber p50) / k; ×ch = publish p50 / the k',
      'trySends\' p50; ×size = publish p50 / the smallest size\'s (same k).',
      table(
        ['size', 'subs', 'row', 'call p50', 'p10–p90', 'p99', 'per sub', '+sub', '×ch', '×size', 'n', 'check'],
        grouped(cost, (c) => [
          fmtSize(c.size), String(c.subscribers), name(res, c), fmtNs(c.call.p50), fmtRange(c.call.p10, c.call.p90), fmtNs(c.call.p99),
          c.perSubscriber === null ? '–' : fmtNs(c.perSubscriber), c.addedPerSubscriber == null ? '' : fmtNs(c.addedPerSubscriber),
          ratio(c, 'vsChannel'), ratio(c, 'vsSmallest'), String(c.call.n), check(c),
        ]),
        ['r', 'r', 'l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'l'],
      ),
    )
  }
  if (loop.length > 0) {
    if (out.length) out.push('')
    out.push(
      'PUBLISH/SUBSCRIBE INTO THE EVENT LOOP: a worker publishes (acquireSync + publishSync), the main thread reads with',
      '`for await (const sample of subscription)` + release; postMessage: the worker posts the Uint8Array (cloned) to main,',
      `at most ${first.window} unacknowledged (main acknowledges every ${first.ackEvery}). ×pM = samples/s / postMessage's.`,
      table(
        ['size', 'row', 'samples/s p50', 'p10–p90', '×pM', 'CPU/sample', 'main', 'n', 'check'],
        loop.map((c) => [fmtSize(c.size), name(res, c), ...rate(c), ratio(c, 'vsPostMessage'), fmtNs(c.cpuPerSample.process), fmtNs(c.cpuPerSample.main), String(c.throughput.items), check(c)]),
        ['r', 'l', 'r', 'r', 'r', 'r', 'r', 'r', 'l'],
      ),
    )
  }
  return out.join('\n')
}

function breakEvenSection(res) {
  const cs = res.coldStart
  const lines = [
    `WORKER COLD START (new Worker → first message, ${cs.plain.n} starts each): plain ${fmtNs(cs.plain.p50)} (${fmtRange(cs.plain.p10, cs.plain.p90)}),`,
    `with sabpool loaded and a pool attached ${fmtNs(cs.sabpool.p50)} (${fmtRange(cs.sabpool.p10, cs.sabpool.p90)}).`,
  ]
  if (res.breakEven.length === 0) return lines.join('\n')
  const N = res.config.amortiseTasks
  lines.push(
    '',
    'BREAK-EVEN: offloading a task pays when compute > startup / tasks + 2 × transfer, with 2 × transfer = the measured',
    `round trip (input there, same-size result back). "reused" amortises the cold start over ${N} tasks on one worker;`,
    '"one-shot" pays it for one task. The service case (the main thread never blocks) uses the service rows: clone =',
    'postMessage clone awaited, sabpool = await recv(); busy = back-to-back tasks, idle = the worker must be woken (max',
    'of the hot and the idle round trip): the realistic case for tasks longer than the spin window. pipeline = the',
    'worker-to-worker case (the sabpool channel row above, both sides in recvSync), busy. A task whose input and result',
    'are an object graph ({matrix}) must serialize it either way: graph = its postMessage clone, graph value / graph',
    'JSON = sabpool + writeValue / writeJSON (the object-graph rows, main in recvSync).',
  )
  const rows = res.breakEven.map((b) => [
    `${fmtSize(b.size)}${b.contended ? ' !' : ''}`,
    fmtNs(b.clone.roundTrip),
    b.cloneIdle ? fmtNs(b.cloneIdle.roundTrip) : '–',
    fmtNs(b.serviceBusy.roundTrip),
    fmtNs(b.serviceIdle.roundTrip),
    fmtNs(b.clone.reused),
    b.cloneIdle ? fmtNs(b.cloneIdle.reused) : '–',
    b.graph ? fmtNs(b.graph.reused) : '–',
    b.graphValue ? fmtNs(b.graphValue.reused) : '–',
    b.graphJSON ? fmtNs(b.graphJSON.reused) : '–',
    fmtNs(b.serviceBusy.reused),
    fmtNs(b.serviceIdle.reused),
    b.pipeline ? fmtNs(b.pipeline.reused) : '–',
    fmtNs(b.clone.oneShot),
    fmtNs(b.serviceIdle.oneShot),
  ])
  lines.push(table(
    ['size', 'clone rt', 'clone idle', 'sabpool rt', 'sabpool idle', `clone ×${N}`, `clone idle ×${N}`, `graph ×${N}`, `graph value ×${N}`, `graph JSON ×${N}`, `sabpool ×${N}`, `sabpool idle ×${N}`, `pipeline ×${N}`, 'clone 1-shot', 'sabpool 1-shot'],
    rows,
    ['r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
  ))
  for (const b of res.breakEven) {
    lines.push(`${fmtSize(b.size)}${b.contended ? ' (!)' : ''}: a service offloading to a reused worker pays off for tasks computing more than ${fmtNs(b.clone.reused)} with a Uint8Array clone` +
      (b.graph ? ` (${fmtNs(b.graph.reused)} with the {matrix} graph${b.graphValue ? `, ${fmtNs(b.graphValue.reused)} for that graph through sabpool + writeValue` : ''})` : '') +
      `, more than ${fmtNs(b.serviceBusy.reused)} with sabpool (${fmtNs(b.serviceIdle.reused)} if the worker must be woken` +
      (b.cloneIdle ? `; clone ${fmtNs(b.cloneIdle.reused)}` : '') + ');' +
      ` a one-shot worker needs ${fmtNs(b.clone.oneShot)} (clone) or ${fmtNs(b.serviceIdle.oneShot)} (sabpool).`)
  }
  return lines.join('\n')
}

function fmtTarget(unit, v) {
  switch (unit) {
    case 'ratio': return `${v.toFixed(2)}×`
    case 'times': return fmtTimes(v)
    case 'floor': return `${v.toFixed(2)}× floor`
    case 'rate': return fmtRate(v)
    case 'ns': return fmtNs(v)
    case 'bytes': return `${v.toFixed(1)} B`
    default: return String(v)
  }
}

function targetsTable(res) {
  if (res.targets.length === 0) return ''
  return [
    'TARGETS (informative: measured in this run, not asserted; a target over several cells takes the worst of those',
    'without CPU contention when there are any; "!" = the number still comes from a contended cell)',
    table(
      ['target', 'measured', 'goal', ''],
      res.targets.map((t) => [t.name, fmtTarget(t.unit, t.measured), `${t.op} ${fmtTarget(t.unit, t.goal)}`, `${t.pass ? 'met' : 'MISSED'}${t.noisy ? ' !' : ''}`]),
      ['l', 'r', 'r', 'l'],
    ),
  ].join('\n')
}

// ---- --processes ------------------------------------------------------------------------------------

function processesSection(res) {
  if (!res.processes) return ''
  const P = res.processes
  const latency = groupedRows(res.config.processes, P.cells, (c) => [
    ...latencyColumns(res, c),
    fmtTimes(c.ratios.vsSabpool),
    c.ratios.vsThread === undefined ? '' : fmtTimes(c.ratios.vsThread),
    c.parks ? fmtParks(c.parks.roundTrip, c.rt.n) : '',
  ])
  const stream = groupedRows(res.config.processes, P.cells, (c) => [
    ...streamColumns(res, c),
    fmtTimes(c.ratios.streamVsSabpool),
    ...heapColumns(c),
    ...countColumns(c),
  ])
  const parked = P.parked.map((p) => [
    name(res, p),
    fmtNs(p.busy.rt.p50),
    fmtRange(p.busy.rt.p10, p.busy.rt.p90),
    fmtTimes(p.ratios.busyVsSabpool),
    fmtNs(p.parked.rt.p50),
    fmtRange(p.parked.rt.p10, p.parked.rt.p90),
    fmtNs(p.parked.rt.p99),
    fmtTimes(p.ratios.parkedVsSabpool),
    p.ratios.parkedVsThread === undefined ? '' : fmtTimes(p.ratios.parkedVsThread),
    String(p.parked.rt.n),
  ])
  const anyGc = P.cells.some((c) => c.heap.gcInside)
  return [
    'ACROSS PROCESSES (--processes): this process and a child_process.fork()ed child, a fresh child per cell; the same',
    'round-trip, sender-blocked, streaming and heap method as above, with the child in the worker\'s place.',
    '  sabpool channel: SharedPool.create + a Channel.create each way, files under /dev/shm opened by name in the child;',
    '    blocked calls spin (default budget), then park on a futex. parked = receive waits that slept per round trip.',
    '  process.send JSON base64: default serialization, the bytes as a base64 string (encoded inside the send call,',
    '    decoded on receipt; the child decodes, touches and re-encodes).',
    "  process.send advanced: serialization 'advanced' (structured clone) of a Uint8Array, echoed.",
    '  raw socket pair (floor): an extra stdio pipe, frames of a 4-byte length + the bytes; the child echoes them with',
    '    blocking readSync/writeSync, this process writes with socket.write and reassembles chunks in its event loop.',
    '×sabpool = times slower than the sabpool channel row of the same size (round trip p50s; streaming: sabpool\'s',
    "msgs/s over this row's). ×thread = the sabpool row's round trip over the thread section's sabpool channel row",
    '(1× = crossing the process boundary costs nothing). Medians (p50) with p10–p90.',
    table(
      ['size', 'mechanism', 'rt p50', 'rt p10–p90', 'rt p99', 'send p50', 'send p10–p90', '×sabpool', '×thread', 'parked'],
      latency,
      ['r', 'l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
    ),
    '',
    table(
      ['size', 'mechanism', 'win', 'msgs/s p50', 'p10–p90', 'GB/s', '×sabpool', 'heap/rt', 'ArrayBuffer/rt', 'n rt/heap/stream', 'check'],
      stream,
      ['r', 'l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'l'],
    ),
    ...(anyGc ? [GC_NOTE] : []),
    '',
    `WAKE-UP across processes (${fmtSize(res.config.processes.parkedSize)}): busy = back to back; parked = this process sleeps ${res.config.pauseMs} ms before each`,
    'round trip, so the child has parked (futex, or its idle event loop).',
    table(
      ['mechanism', 'busy rt p50', 'busy p10–p90', '×sabpool', 'parked rt p50', 'parked p10–p90', 'parked p99', '×sabpool', '×thread', 'n'],
      parked,
      ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
    ),
  ].join('\n')
}

function render(res) {
  return [header(res), latencyTable(res), streamTable(res), objectsTable(res), parkedTable(res), serviceTable(res), streamIntoLoopTable(res),
    fanoutTable(res), blockingTable(res), notifyTable(res), rpcTable(res), topicTable(res), breakEvenSection(res), targetsTable(res), processesSection(res)]
    .filter((s) => s !== '')
    .join('\n\n') + '\n'
}

module.exports = { render, fmtNs, fmtSize, fmtBytes, num3 }
