'use strict'
// How much CPU other processes took while we measured. Spinning mechanisms need both of their
// threads on a core: on a 2-core machine one busy neighbour turns a 0.3 µs handoff into a
// context switch (tens of µs) or a scheduler time slice (milliseconds). The report says so
// instead of letting such numbers pass as the library's.
//
// Linux: machine-wide busy time from /proc/stat minus this process's own CPU time
// (process.cpuUsage() counts every thread of the process, workers included). Elsewhere: null.

const fs = require('node:fs')
const os = require('node:os')

function readStat() {
  try {
    const f = fs.readFileSync('/proc/stat', 'utf8').split('\n', 1)[0].trim().split(/\s+/).slice(1).map(Number)
    const idle = f[3] + (f[4] || 0) // idle + iowait
    const total = f.slice(0, 8).reduce((a, b) => a + b, 0) // user nice system idle iowait irq softirq steal
    return { idle, total }
  } catch {
    return null
  }
}

function sample() {
  return { stat: readStat(), own: process.cpuUsage(), t: performance.now() }
}

/** Average number of cores used by other processes between two samples (null if unknown). */
function othersCores(a, b) {
  if (a.stat === null || b.stat === null) return null
  const total = b.stat.total - a.stat.total
  if (total <= 0) return null
  const cores = os.cpus().length
  const busyCores = ((total - (b.stat.idle - a.stat.idle)) / total) * cores
  const wallUs = (b.t - a.t) * 1e3
  const ownCores = (b.own.user - a.own.user + b.own.system - a.own.system) / wallUs
  return Math.max(0, busyCores - ownCores)
}

/** Samples for `ms` while this process idles: what the neighbours use before we start. */
async function idleProbe(ms) {
  const a = sample()
  await new Promise((resolve) => setTimeout(resolve, ms))
  return othersCores(a, sample())
}

module.exports = { sample, othersCores, idleProbe }
