'use strict'
// The event-loop families, in report order: what a Node service's main thread does, which never
// blocks (see each module). Each family starts its own long-lived workers (hosts), runs its
// cells interleaved, and ends its workers before the next family starts.
//
// A family module has: id, title, rows (its mechanisms, report order), workers (worker-side parts
// by host id, the shape of mechanisms/index.js's `worker`, plus optional begin(w) at each phase
// start and report(w) for the control 'report' request), hosts or hostsFor(cfg) (the hosts to
// start: ids, or { id, key } when a family starts several of one kind), steps(cfg) (progress
// steps) and run(hosts, cfg, progress) → its result ({ cells } or { rows }).

const { WorkerHost } = require('../host.js')

const FAMILIES = [require('./service.js'), require('./stream.js'), require('./fanout.js'), require('./notify.js'), require('./rpc.js'), require('./topic.js')]

/** Worker-side parts of every family, by host id (bench/worker.js looks here first). */
const WORKERS = Object.assign({}, ...FAMILIES.map((f) => f.workers))

const FAMILY_IDS = FAMILIES.map((f) => f.id)

function hostsOf(f, cfg) {
  return f.hostsFor !== undefined ? f.hostsFor(cfg) : f.hosts.map((id) => ({ id, key: id }))
}

/** Progress steps of the families `cfg.families` selects. */
function eventLoopSteps(cfg) {
  return FAMILIES.filter((f) => cfg.families.includes(f.id)).reduce((a, f) => a + f.steps(cfg), 0)
}

/** Runs the selected families; returns { service, stream, fanout, notify, rpc, topic }, null for those not run. */
async function runEventLoop(cfg, progress) {
  const out = {}
  for (const f of FAMILIES) {
    out[f.id] = null
    if (!cfg.families.includes(f.id)) continue
    const hosts = new Map()
    try {
      for (const { id, key } of hostsOf(f, cfg)) {
        const host = new WorkerHost(id)
        hosts.set(key, host)
        await host.guard(host.next()) // hello
      }
      out[f.id] = await f.run(hosts, cfg, progress)
    } finally {
      await Promise.all([...hosts.values()].map((h) => h.close()))
    }
  }
  return out
}

/** Every cell and row of an event-loop result (for the payload-check count). */
function eventLoopEntries(eventLoop) {
  if (eventLoop == null) return []
  return Object.values(eventLoop).filter(Boolean).flatMap((r) => r.cells ?? r.rows ?? [])
}

module.exports = { FAMILIES, FAMILY_IDS, WORKERS, runEventLoop, eventLoopSteps, eventLoopEntries }
