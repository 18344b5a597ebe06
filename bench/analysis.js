'use strict'
// Numbers derived from one run: ratios between mechanisms, break-even compute times, targets.
// Everything compares medians measured in the same run, on the same machine.

const { RATIOS } = require('./schema.js')

function cellOf(cells, mechanism, size) {
  return cells.find((c) => c.mechanism === mechanism && c.size === size)
}

/** Adds `ratios` to each sabpool and floor cell: how many times faster (round trip p50). */
function addRatios(cells) {
  for (const c of cells) {
    if (c.group === 'postMessage') continue
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
 * moves the input there and a same-size result back, wake-ups included).
 */
function breakEven(cells, parked, coldStart, sizes, tasks, threshold) {
  const parkedChannel = parked.find((p) => p.mechanism === 'channel')
  const rows = []
  for (const size of sizes) {
    const clone = cellOf(cells, 'clone-bytes', size)
    const graph = cellOf(cells, 'clone-matrix', size)
    const channel = cellOf(cells, 'channel', size)
    if (!clone || !channel) continue
    const plain = coldStart.plain.p50
    const sab = coldStart.sabpool.p50
    const idleRt = parkedChannel ? Math.max(channel.rt.p50, parkedChannel.parked.rt.p50) : channel.rt.p50
    const entry = (startup, rt) => ({ roundTrip: rt, transfer: rt / 2, reused: startup / tasks + rt, oneShot: startup + rt })
    rows.push({
      size,
      tasks,
      contended: [clone, graph, channel, parkedChannel].some((x) => x !== undefined && noisy(x, threshold)),
      startup: { plain, sabpool: sab },
      clone: entry(plain, clone.rt.p50),
      graph: graph ? entry(plain, graph.rt.p50) : null,
      sabpoolBusy: entry(sab, channel.rt.p50),
      sabpoolIdle: entry(sab, idleRt),
    })
  }
  return rows
}

/** Whether other processes took more than `threshold` cores while this cell ran. */
function noisy(x, threshold) {
  return x.cpu !== undefined && x.cpu.othersCores !== null && x.cpu.othersCores > threshold
}

/**
 * The project's targets, each with what this run measured (informative, never asserted). Timing
 * targets that look at several sizes use only the cells that ran without CPU contention when
 * there are any; `contended` says that a number still depends on a contended cell.
 */
function targets(cells, parked, sizes, threshold) {
  const out = []
  const isNoisy = (...xs) => xs.some((x) => x !== undefined && noisy(x, threshold))
  const add = (name, measured, met, note, contended) => out.push({ name, measured, met, note, contended })
  /** The cells of `m` (filtered by `keep`), without contended ones if any are clean. */
  const pick = (m, keep = () => true) => {
    const all = cells.filter((c) => c.mechanism === m && keep(c))
    const clean = all.filter((c) => !noisy(c, threshold))
    return clean.length > 0 ? { list: clean, contended: false } : { list: all, contended: all.length > 0 }
  }
  const small = sizes[0]
  const big = sizes.filter((s) => s <= 16 << 20).pop() ?? sizes[sizes.length - 1]
  const bigName = `${big >= 1 << 20 ? `${big / (1 << 20)} MiB` : `${big / 1024} KiB`}`

  for (const m of ['channel', 'channel-spin', 'ticket']) {
    const a = cellOf(cells, m, small)
    const b = cellOf(cells, m, big)
    if (a && b && big !== small) {
      const r = b.rt.p50 / a.rt.p50
      add(`${m}: round trip O(1) in size (${bigName} ≤ 1.2 × smallest)`, r, r <= 1.2, 'ratio', isNoisy(a, b))
    }
  }
  const ch = cellOf(cells, 'channel', big)
  if (ch && ch.ratios) {
    const refs = ['clone-bytes', 'clone-matrix', 'clone-objects'].map((m) => cellOf(cells, m, big))
    if (ch.ratios.vsClone !== null) add(`channel at ${bigName}: ≥ 30× faster than Uint8Array clone`, ch.ratios.vsClone, ch.ratios.vsClone >= 30, 'times', isNoisy(ch, refs[0]))
    if (ch.ratios.vsGraph !== null) add(`channel at ${bigName}: ≥ 5000× faster than object-graph clone`, ch.ratios.vsGraph, ch.ratios.vsGraph >= 5000, 'times', isNoisy(ch, refs[1], refs[2]))
  }
  for (const m of ['channel', 'channel-spin']) {
    // Both sides of the ratio must be uncontended for a size to count.
    const all = cells.filter((c) => c.mechanism === m && c.ratios && c.ratios.vsFloor !== null)
    const clean = all.filter((c) => !isNoisy(c, cellOf(cells, 'ring', c.size)))
    const use = clean.length > 0 ? clean : all
    if (use.length) {
      const worst = Math.max(...use.map((c) => c.ratios.vsFloor))
      add(`${m}: round trip within 2× of the hand-rolled floor (worst size)`, worst, worst <= 2, 'floor', clean.length === 0)
    }
  }
  for (const m of ['channel', 'channel-spin']) {
    const { list, contended } = pick(m)
    if (list.length) {
      const slowest = Math.min(...list.map((c) => c.throughput.msgsPerSec.p50))
      add(`${m}: streaming ≥ 3 M handoffs/s (slowest size)`, slowest, slowest >= 3e6, 'rate', contended)
    }
  }
  for (const m of ['channel', 'channel-spin']) {
    const { list, contended } = pick(m)
    if (list.length) {
      const worst = Math.max(...list.map((c) => c.send.p50))
      add(`${m}: sender blocked ≤ 1 µs median (worst size)`, worst, worst <= 1000, 'ns', contended)
    }
  }
  const pc = parked.find((p) => p.mechanism === 'channel')
  const pt = parked.find((p) => p.mechanism === 'tiny')
  if (pc && pt) add('parked channel round trip ≤ parked tiny postMessage round trip', pc.parked.rt.p50 / pt.parked.rt.p50, pc.parked.rt.p50 <= pt.parked.rt.p50, 'ratio', isNoisy(pc, pt))
  for (const m of ['channel', 'channel-spin', 'ticket']) {
    const heaps = cells.filter((c) => c.mechanism === m).map((c) => c.heap.bytesPerRoundTrip)
    if (heaps.length) add(`${m}: zero JS heap bytes per handoff (worst size, B per round trip = 2 handoffs)`, Math.max(...heaps), Math.max(...heaps) < 1, 'bytes', false)
  }
  return out
}

module.exports = { addRatios, breakEven, targets, cellOf, noisy }
