'use strict'
// Numbers derived from one run: ratios between mechanisms, break-even compute times, targets.
// Everything compares medians measured in the same run, on the same machine.

const { RATIOS, graphPeer } = require('./schema.js')

function cellOf(cells, mechanism, size) {
  return cells.find((c) => c.mechanism === mechanism && c.size === size)
}

/** Whether a cell moves an object graph through sabpool (a codec row) rather than bytes. */
const isGraphRow = (c) => c.group !== 'postMessage' && c.payloadKind !== undefined && c.payloadKind !== 'bytes'

/**
 * Adds `ratios` to each sabpool and floor cell: how many times faster (p50s). Byte rows are
 * compared with the byte mechanisms (clone, transfer, the floor); object-graph rows only with the
 * clone of the same graph, round trip and sender blocked, since a user with objects must
 * serialize them either way.
 */
function addRatios(cells) {
  for (const c of cells) {
    if (c.group === 'postMessage') continue
    if (isGraphRow(c)) {
      const peer = cellOf(cells, graphPeer(c.payloadKind), c.size)
      c.ratios = peer === undefined
        ? { vsGraph: null, sendVsGraph: null }
        : { vsGraph: peer.rt.p50 / c.rt.p50, sendVsGraph: peer.send.p50 / c.send.p50 }
      continue
    }
    const ratios = {}
    for (const [key, refs] of Object.entries(RATIOS)) {
      const rts = refs.map((r) => cellOf(cells, r, c.size)).filter(Boolean).map((r) => r.rt.p50)
      if (rts.length === 0) {
        ratios[key] = null
      } else if (key === 'vsFloor') {
        ratios[key] = c.rt.p50 / rts[0] // distance from the floor: ≥ 1 is slower than hand-rolled
      } else {
        ratios[key] = Math.min(...rts) / c.rt.p50 // speed-up over the faster of the references
      }
    }
    c.ratios = ratios
  }
}

/**
 * Break-even compute time per task, per payload size. Offloading a task pays when
 *   compute > startup / tasks + 2 × transfer
 * with transfer = one-way cost = round trip / 2 (so 2 × transfer = the measured round trip, which
 * moves the input there and a same-size result back, wake-ups included). The service case comes
 * from the service rows (main thread `await recv()`, never blocking; postMessage clone awaited the
 * same way, or the pipeline clone row when the service family did not run); "idle" is the larger of
 * the hot and the idle round trip. `pipeline` is the worker-to-worker case (main in recvSync).
 * For an object-graph task ({matrix}): `graph` = its postMessage clone, `graphValue` / `graphJSON`
 * = sabpool with writeValue / writeJSON (serialized into the slot; main in recvSync).
 */
function breakEven(cells, service, coldStart, sizes, tasks, threshold) {
  const rows = []
  for (const size of sizes) {
    const row = (id) => service.find((c) => c.mechanism === id && c.size === size)
    const sab = row('service-await')
    const svcClone = row('service-clone')
    const clone = cellOf(cells, 'clone-bytes', size)
    const graph = cellOf(cells, 'clone-matrix', size)
    const graphValue = cellOf(cells, 'codec-value-matrix', size)
    const graphJSON = cellOf(cells, 'codec-json-matrix', size)
    const pipeline = cellOf(cells, 'channel', size)
    const cloneRt = svcClone !== undefined ? svcClone.hot.rt.p50 : clone?.rt.p50
    if (sab === undefined || cloneRt === undefined) continue
    const plain = coldStart.plain.p50
    const sabStart = coldStart.sabpool.p50
    const entry = (startup, rt) => ({ roundTrip: rt, transfer: rt / 2, reused: startup / tasks + rt, oneShot: startup + rt })
    rows.push({
      size,
      tasks,
      contended: [sab, svcClone ?? clone, graph, graphValue, graphJSON, pipeline].some((x) => x !== undefined && noisy(x, threshold)),
      startup: { plain, sabpool: sabStart },
      clone: entry(plain, cloneRt),
      cloneIdle: svcClone === undefined ? null : entry(plain, Math.max(svcClone.hot.rt.p50, svcClone.idle.rt.p50)),
      graph: graph ? entry(plain, graph.rt.p50) : null,
      graphValue: graphValue ? entry(sabStart, graphValue.rt.p50) : null,
      graphJSON: graphJSON ? entry(sabStart, graphJSON.rt.p50) : null,
      serviceBusy: entry(sabStart, sab.hot.rt.p50),
      serviceIdle: entry(sabStart, Math.max(sab.hot.rt.p50, sab.idle.rt.p50)),
      pipeline: pipeline ? entry(sabStart, pipeline.rt.p50) : null,
    })
  }
  return rows
}

/** Whether other processes took more than `threshold` cores while this cell ran. */
function noisy(x, threshold) {
  return x.cpu !== undefined && x.cpu.othersCores !== null && x.cpu.othersCores > threshold
}

const PASSES = {
  '≤': (v, goal) => v <= goal,
  '<': (v, goal) => v < goal,
  '≥': (v, goal) => v >= goal,
}

/**
 * The project's targets, each { name, measured, op, goal, unit, pass, noisy } with what this run
 * measured (informative, never asserted). A target over several cells (sizes, consumer counts)
 * takes the worst of them, using only the cells that ran without CPU contention when there are
 * any; `noisy` says that the number still depends on a contended cell.
 */
function targets(cells, parked, sizes, threshold, eventLoop = {}, coldStart = null) {
  const out = []
  const isNoisy = (...xs) => xs.some((x) => x !== undefined && x !== null && noisy(x, threshold))
  const add = (name, measured, op, goal, unit, contended) => {
    if (typeof measured !== 'number' || Number.isNaN(measured)) return
    out.push({ name, measured, op, goal, unit, pass: PASSES[op](measured, goal), noisy: contended })
  }
  /** The worst `v` of `items` ({ v, using: cells }) for a goal `op`, clean items first. */
  const addWorst = (name, items, op, goal, unit) => {
    const valid = items.filter((x) => typeof x.v === 'number' && Number.isFinite(x.v))
    if (valid.length === 0) return
    const clean = valid.filter((x) => !isNoisy(...x.using))
    const use = clean.length > 0 ? clean : valid
    const vs = use.map((x) => x.v)
    add(name, op === '≥' ? Math.min(...vs) : Math.max(...vs), op, goal, unit, clean.length === 0)
  }
  const small = sizes[0]
  const big = sizes.filter((s) => s <= 16 << 20).pop() ?? sizes[sizes.length - 1]
  const sizeName = (b) => (b >= 1 << 20 ? `${b / (1 << 20)} MiB` : b >= 1024 ? `${b / 1024} KiB` : `${b} B`)
  const bigName = sizeName(big)

  // ---- pipeline of workers (main thread in recvSync for the sabpool channel rows) -------------
  for (const m of ['channel', 'channel-spin', 'ticket']) {
    const a = cellOf(cells, m, small)
    const b = cellOf(cells, m, big)
    if (a && b && big !== small) add(`${m}: round trip O(1) in size (${bigName} ≤ 1.2 × smallest)`, b.rt.p50 / a.rt.p50, '≤', 1.2, 'ratio', isNoisy(a, b))
  }
  const ch = cellOf(cells, 'channel', big)
  if (ch && ch.ratios && ch.ratios.vsClone !== null) add(`channel at ${bigName}: faster than Uint8Array clone`, ch.ratios.vsClone, '≥', 30, 'times', isNoisy(ch, cellOf(cells, 'clone-bytes', big)))

  // ---- object graphs: sabpool + a codec against the clone of the same graph ------------------
  // Not slower than postMessage for a user who has objects: the round trip, and what the send
  // blocks the sender (serialization is in both); worst size and graph, with the library's
  // defaults (the tuned rows show what spinning instead of parking changes).
  for (const [codec, what] of [['value', 'writeValue/readValue'], ['json', 'writeJSON/readJSON']]) {
    const rows = cells.filter((c) => isGraphRow(c) && c.codec === codec && !c.tuned && c.ratios && c.ratios.vsGraph !== null)
    const using = (c) => [c, cellOf(cells, graphPeer(c.payloadKind), c.size)]
    addWorst(`objects: sabpool + ${what} round trip, times faster than the clone of the same graph (worst size and graph)`,
      rows.map((c) => ({ v: c.ratios.vsGraph, using: using(c) })), '≥', 1, 'times')
    addWorst(`objects: sabpool + ${what} sender blocked, times shorter than the clone's postMessage (worst size and graph)`,
      rows.map((c) => ({ v: c.ratios.sendVsGraph, using: using(c) })), '≥', 1, 'times')
  }
  for (const m of ['channel', 'channel-spin']) {
    const items = cells.filter((c) => c.mechanism === m && c.ratios && c.ratios.vsFloor !== null)
      .map((c) => ({ v: c.ratios.vsFloor, using: [c, cellOf(cells, 'ring', c.size)] }))
    addWorst(`${m}: all-sync round trip / hand-rolled ring (worst size)`, items, '≤', 1.25, 'floor')
  }
  for (const m of ['channel', 'channel-spin']) {
    const items = cells.filter((c) => c.mechanism === m).map((c) => ({ v: c.throughput.msgsPerSec.p50, using: [c] }))
    addWorst(`${m}: streaming handoffs/s (slowest size)`, items, '≥', 3e6, 'rate')
  }
  for (const m of ['channel', 'channel-spin']) {
    const items = cells.filter((c) => c.mechanism === m).map((c) => ({ v: c.send.p50, using: [c] }))
    addWorst(`${m}: sender blocked, median (worst size)`, items, '≤', 1000, 'ns')
  }
  const pc = parked.find((p) => p.mechanism === 'channel')
  const pt = parked.find((p) => p.mechanism === 'tiny')
  if (pc && pt) add('wake-up rows: parked channel round trip / parked tiny postMessage', pc.parked.rt.p50 / pt.parked.rt.p50, '≤', 1, 'ratio', isNoisy(pc, pt))
  for (const m of ['channel', 'channel-spin', 'ticket']) {
    const heaps = cells.filter((c) => c.mechanism === m).map((c) => c.heap.bytesPerRoundTrip)
    if (heaps.length) add(`${m}: JS heap bytes per round trip (2 handoffs; worst size)`, Math.max(...heaps), '<', 1, 'bytes', false)
  }

  // ---- service round trip ----------------------------------------------------------------------
  const service = eventLoop.service?.cells ?? []
  const svc = (id, key) => service.filter((c) => c.mechanism === id).map((c) => ({ v: c.ratios[key], using: [c] }))
  addWorst('service: await recv() round trip p50 / all-sync channel round trip (worst size)', svc('service-await', 'vsSync'), '≤', 2, 'ratio')
  addWorst("service: await recv() round trip p50 / postMessage's (faster of transfer, clone; worst size)", svc('service-await', 'vsPostMessage'), '≤', 0.2, 'ratio')
  addWorst("service: await recv() round trip p99 / postMessage's p50 (worst size)", svc('service-await', 'p99VsPostMessageP50'), '≤', 1, 'ratio')
  addWorst("service, worker idle: await recv() round trip / postMessage's idle round trip (worst size)", svc('service-await', 'idleVsPostMessage'), '≤', 1, 'ratio')
  addWorst("service, worker idle: main in recvSync round trip / postMessage's idle round trip (worst size)", svc('service-sync', 'idleVsPostMessage'), '≤', 1, 'ratio')

  // ---- wake-up cost to the notifier ------------------------------------------------------------
  const notify = eventLoop.notify?.rows ?? []
  const pmSend = notify.find((r) => r.mechanism === 'notify-postMessage')
  for (const [id, what] of [['notify-trySend', 'trySend, receivers parked'], ['notify-release', 'release, acquirers parked']]) {
    const r = notify.find((x) => x.mechanism === id)
    if (r === undefined) continue
    const one = r.waiters[1].p50
    const two = r.waiters[2].p50
    if (pmSend !== undefined) add(`notifier: ${what} (worst of 1 and 2) / a postMessage send`, Math.max(one, two) / pmSend.waiters[1].p50, '≤', 1, 'ratio', isNoisy(r, pmSend))
    add(`notifier: ${what}: 2 parked / 1 parked (≈ 1)`, two / one, '≤', 1.25, 'ratio', isNoisy(r))
  }

  // ---- fan-out pipeline ------------------------------------------------------------------------
  for (const c of eventLoop.fanout?.cells ?? []) {
    if (c.mechanism !== 'fanout-channel' || c.ratios === undefined) continue
    const peer = eventLoop.fanout.cells.find((x) => x.mechanism === 'fanout-transfer' && x.size === c.size && x.consumers === c.consumers)
    const where = `fan-out ${sizeName(c.size)} × ${c.consumers} consumers`
    add(`${where}: MB/s / recycled transfer's`, c.ratios.vsTransfer, '≥', 1, 'ratio', isNoisy(c, peer))
    add(`${where}: CPU per item (process) / recycled transfer's`, c.ratios.cpuVsTransfer, '<', 1, 'ratio', isNoisy(c, peer))
  }

  // ---- streaming into the event loop -----------------------------------------------------------
  const stream = eventLoop.stream?.cells ?? []
  addWorst('streaming: for await msgs/s / the recvSync figure (worst size)',
    stream.filter((c) => c.mechanism === 'stream-await').map((c) => ({ v: c.ratios.vsSync, using: [c] })), '≥', 0.8, 'ratio')

  // ---- request/response services -----------------------------------------------------------------
  // Each over the server counts (and sizes) measured; the peers' cells count for contention too.
  const rpc = eventLoop.rpc?.cells ?? []
  const svcCalls = rpc.filter((c) => c.mechanism === 'rpc-service')
  const peersOf = (c, ids) => rpc.filter((x) => ids.includes(x.mechanism) && x.size === c.size && x.servers === c.servers)
  for (const [size, goal] of [[64, 10], [1 << 20, 3]]) {
    addWorst(`rpc at ${sizeName(size)}: svc.call calls/s / piscina.run's (faster of clone, move; worst server count)`,
      svcCalls.filter((c) => c.size === size).map((c) => ({ v: c.ratios.vsPiscina, using: [c, ...peersOf(c, ['rpc-piscina-move', 'rpc-piscina-clone'])] })), '≥', goal, 'times')
  }
  addWorst("rpc: svc.call round trip p50 / the hand-written two-channel loop's (worst size and server count)",
    svcCalls.map((c) => ({ v: c.ratios.rtVsChannels, using: [c, ...peersOf(c, ['rpc-channels'])] })), '≤', 1.5, 'ratio')
  addWorst("rpc: svc.call calls/s / the hand-written two-channel loop's (worst size and server count)",
    svcCalls.map((c) => ({ v: c.ratios.rateVsChannels, using: [c, ...peersOf(c, ['rpc-channels'])] })), '≥', 1 / 1.5, 'ratio')

  // ---- publish/subscribe (Topic) -----------------------------------------------------------------
  const topic = eventLoop.topic?.cells ?? []
  const topicCell = (part, id, size, k) => topic.find((x) => x.part === part && x.mechanism === id && x.size === size && x.subscribers === k)
  const topicFanout = topic.filter((c) => c.part === 'fanout' && c.mechanism === 'topic-await' && c.ratios?.vsPostMessage != null)
  const fanBig = Math.max(...topicFanout.map((c) => c.size))
  const fanK = Math.max(...topicFanout.filter((c) => c.size === fanBig).map((c) => c.subscribers))
  const fan = topicCell('fanout', 'topic-await', fanBig, fanK)
  if (fan !== undefined) {
    add(`topic: fan-out ${sizeName(fanBig)} × ${fanK} subscribers, Topic await publish samples/s / postMessage to each's`,
      fan.ratios.vsPostMessage, '≥', 5, 'times', isNoisy(fan, topicCell('fanout', 'topic-postMessage', fanBig, fanK)))
  }
  const publishes = topic.filter((c) => c.part === 'cost' && c.mechanism === 'topic-publishSync')
  const costSizes = [...new Set(publishes.map((c) => c.size))].sort((a, b) => a - b)
  if (costSizes.length > 1) {
    const bigCost = costSizes[costSizes.length - 1]
    addWorst(`topic: publishSync cost ${sizeName(bigCost)} / ${sizeName(costSizes[0])} (O(1) in size; worst subscriber count)`,
      publishes.filter((c) => c.size === bigCost && c.ratios.vsSmallest !== null)
        .map((c) => ({ v: c.ratios.vsSmallest, using: [c, topicCell('cost', 'topic-publishSync', costSizes[0], c.subscribers)] })), '≤', 1.5, 'ratio')
  }
  addWorst('topic: publishSync to k subscribers / k channel trySends (worst size and k ≥ 1)',
    publishes.filter((c) => c.ratios.vsChannel !== null)
      .map((c) => ({ v: c.ratios.vsChannel, using: [c, topicCell('cost', 'topic-trySend', c.size, c.subscribers)] })), '≤', 2, 'ratio')

  // ---- event-loop blocking: every sabpool call the main thread makes in the event-loop rows -----
  const calls = [
    ...service.filter((c) => c.group === 'sabpool' && !c.blocksEventLoop).flatMap((c) => [{ v: c.hot.calls.all.p99, using: [c] }, { v: c.idle.calls.all.p99, using: [c] }]),
    ...stream.filter((c) => !c.blocksEventLoop).map((c) => ({ v: c.calls.all.p99, using: [c] })),
    ...(eventLoop.fanout?.cells ?? []).filter((c) => c.group === 'sabpool').map((c) => ({ v: c.calls.all.p99, using: [c] })),
  ]
  addWorst('event loop: sabpool call on the main thread, p99 (worst event-loop cell)', calls, '≤', 20000, 'ns')
  // The same calls next to the postMessage call of the same pattern (size, hot or idle, consumers):
  // a call that wakes a parked thread pays the machine's wake-up (a futex or eventfd write, and on
  // a VM the host waking an idle vCPU), which postMessage pays as well.
  const peerRatios = []
  for (const c of service.filter((x) => x.mechanism === 'service-await')) {
    const peers = service.filter((x) => x.group === 'postMessage' && x.size === c.size)
    for (const phase of ['hot', 'idle']) {
      const peer = Math.min(...peers.map((x) => x[phase].calls.all.p99))
      if (peers.length > 0 && peer > 0) peerRatios.push({ v: c[phase].calls.all.p99 / peer, using: [c, ...peers] })
    }
  }
  for (const c of (eventLoop.fanout?.cells ?? []).filter((x) => x.group === 'sabpool')) {
    const peer = eventLoop.fanout.cells.find((x) => x.group === 'postMessage' && x.size === c.size && x.consumers === c.consumers)
    if (peer !== undefined && peer.calls.all.p99 > 0) peerRatios.push({ v: c.calls.all.p99 / peer.calls.all.p99, using: [c, peer] })
  }
  addWorst("event loop: sabpool call p99 / postMessage's call p99 in the same pattern (worst service or fan-out cell)", peerRatios, '≤', 1, 'ratio')

  // ---- worker cold start -------------------------------------------------------------------------
  if (coldStart !== null && coldStart.plain && coldStart.sabpool) {
    add('worker cold start: sabpool (load + attach) p50 − plain p50', coldStart.sabpool.p50 - coldStart.plain.p50, '≤', 1e6, 'ns', false)
  }
  return out
}

module.exports = { addRatios, breakEven, targets, cellOf, noisy, isGraphRow }
