'use strict'
// How much CPU other processes took while we measured. Spinning mechanisms need both of their
// threads on a core: on a 2-core machine one busy neighbour turns a 0.3 µs handoff into a
// context switch (tens of µs) or a scheduler time slice (milliseconds). The report says so
// instead of letting such numbers pass as the library's.
//
// Linux: machine-wide busy time from /proc/stat minus this process's own CPU time
// (process.cpuUsage() counts every thread of the process, workers included) and minus the CPU time
// of the bench's own child processes (`--processes`). Elsewhere: null.

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

/** Fields of /proc/<pid>/stat from the 3rd (state) on, or null. */
function procStat(pid) {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
    return s.slice(s.lastIndexOf(')') + 2).split(' ')
  } catch {
    return null
  }
}

/**
 * CPU time of our child processes in clock ticks: the children that have exited (this process's
 * cutime + cstime) plus the live ones in `pids` (their utime + stime). Null if unknown.
 */
function childTicks(pids) {
  const self = procStat('self')
  if (self === null) return null
  let sum = Number(self[13]) + Number(self[14]) // cutime, cstime: fields 16 and 17
  for (const pid of pids) {
    const f = procStat(pid)
    if (f !== null) sum += Number(f[11]) + Number(f[12]) // utime, stime: fields 14 and 15
  }
  return sum
}

/** `pids`: live child processes whose CPU time counts as ours (the `--processes` children). */
function sample(pids = []) {
  return { stat: readStat(), own: process.cpuUsage(), kids: childTicks(pids), t: performance.now() }
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
  // Our children's ticks are in the same unit as /proc/stat's (USER_HZ).
  const kidsCores = a.kids !== null && b.kids !== null ? ((b.kids - a.kids) / total) * cores : 0
  return Math.max(0, busyCores - ownCores - kidsCores)
}

/** Samples for `ms` while this process idles: what the neighbours use before we start. */
async function idleProbe(ms) {
  const a = sample()
  await new Promise((resolve) => setTimeout(resolve, ms))
  return othersCores(a, sample())
}

module.exports = { sample, othersCores, idleProbe }
