'use strict'
// `--processes`: the same cells as the thread section (runner.js), measured between the bench
// process and a child_process.fork()ed child. Every cell gets a fresh child, which is ended (and
// killed, after an error) before the next one starts: at most the bench process and one child run
// at a time. Cells run size-major, like the thread cells. After a cell, whatever it created (the
// sabpool files) is cleaned up, whether it succeeded or not.

const { PROCESS_MECHANISMS } = require('./mechanisms/index.js')
const { ProcessHost } = require('./proc-host.js')
const { runCell, runParked } = require('./runner.js')
const { cellOf } = require('./analysis.js')
const { fmtSize } = require('./report.js')

/** Round trips and streams of one cell (or its parked variant) with a fresh child. */
async function withChild(m, run) {
  const host = new ProcessHost(m)
  let ok = false
  let out
  let cleanupError
  try {
    await host.guard(host.next()) // hello
    out = await run(host)
    ok = true
  } catch (err) {
    // A sync mechanism sees "closed" or a timeout; the child's own report says why.
    if (host.failure === null) await Promise.race([host.failed.catch(() => {}), new Promise((resolve) => setTimeout(resolve, 200))])
    if (host.failure !== null && host.failure !== err) err.message += `\n  (${host.failure.message})`
    throw err
  } finally {
    cleanupError = host.cleanUp()
    await host.close({ kill: !ok })
  }
  // Only reached when the cell succeeded: after a failure the cell's own error wins.
  if (cleanupError !== null) throw cleanupError
  return out
}

/**
 * Runs every process cell (mechanisms × `cfg.processes.sizes`) and the parked variant of every
 * process mechanism at `cfg.processes.parkedSize`. `progress` is index.js's Progress; `thread`
 * the thread section's { cells, parked } (for the sabpool rows' distance to the thread channel).
 */
async function runProcesses(cfg, progress, thread) {
  const mechanisms = PROCESS_MECHANISMS.filter((m) => cfg.processes.mechanisms.includes(m.id))
  const cells = []
  const parked = []
  for (const size of cfg.processes.sizes) {
    for (const m of mechanisms) {
      progress.step(`${m.id} ${fmtSize(size)} (process)`)
      const cell = await withChild(m, (host) => runCell(host, m, size, cfg, (p) => progress.phase(p)))
      cells.push({ ...cell, label: m.label, short: m.short, group: m.group })
    }
  }
  for (const m of mechanisms) {
    progress.step(`${m.id} parked (process)`)
    const p = await withChild(m, (host) => runParked(host, m, cfg.processes.parkedSize, cfg, (ph) => progress.phase(ph)))
    parked.push({ ...p, label: m.label, short: m.short })
  }
  addProcessRatios(cells, parked, cfg.processes.mechanisms[0], thread)
  return { cells, parked }
}

/** Steps runProcesses reports to `progress`. */
function processSteps(cfg) {
  if (!cfg.processes) return 0
  return cfg.processes.mechanisms.length * (cfg.processes.sizes.length + 1)
}

/**
 * Each process row's distance to the sabpool row of the same size, from medians of this run:
 * `vsSabpool` = its round trip / sabpool's (> 1: that many times slower than sabpool) and
 * `streamVsSabpool` = sabpool's messages/s / its own (> 1: sabpool streams that many times more).
 * The sabpool row gets 1 and 1, plus `vsThread`: its round trip / the thread section's `channel`
 * row's (the same protocol between two threads; null when that row was not run). Parked rows get
 * the same for the busy and the parked round trips.
 */
function addProcessRatios(cells, parked, sabpoolId, thread = { cells: [], parked: [] }) {
  const div = (a, b) => (b === undefined ? null : a / b)
  for (const c of cells) {
    const ref = cellOf(cells, sabpoolId, c.size)
    c.ratios = ref === undefined ? { vsSabpool: null, streamVsSabpool: null } : {
      vsSabpool: c.rt.p50 / ref.rt.p50,
      streamVsSabpool: ref.throughput.msgsPerSec.p50 / c.throughput.msgsPerSec.p50,
    }
    if (c.mechanism === sabpoolId) c.ratios.vsThread = div(c.rt.p50, cellOf(thread.cells, 'channel', c.size)?.rt.p50)
  }
  const pref = parked.find((p) => p.mechanism === sabpoolId)
  for (const p of parked) {
    p.ratios = { busyVsSabpool: div(p.busy.rt.p50, pref?.busy.rt.p50), parkedVsSabpool: div(p.parked.rt.p50, pref?.parked.rt.p50) }
    if (p.mechanism === sabpoolId) {
      const t = thread.parked.find((x) => x.mechanism === 'channel')
      p.ratios.busyVsThread = div(p.busy.rt.p50, t?.busy.rt.p50)
      p.ratios.parkedVsThread = div(p.parked.rt.p50, t?.parked.rt.p50)
    }
  }
}

module.exports = { runProcesses, processSteps, addProcessRatios }
