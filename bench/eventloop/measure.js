'use strict'
// What the event-loop families measure besides latency and throughput: how long each call the
// main thread makes holds it (CallTimes), the main thread's event-loop delay over a pass
// (loopDelay), the CPU time of one thread (threadCpuNs), and waits that never block the event loop.

const fs = require('node:fs')
const { monitorEventLoopDelay } = require('node:perf_hooks')
const { setTimeout: delay } = require('node:timers/promises')
const { summarize } = require('../stats.js')

/**
 * Durations of the calls a pass makes on the main thread, one preallocated Float64Array per kind
 * of call (`names`), each sized for `capacity` calls: recording is a store and an increment. A call
 * beyond the capacity is counted in `dropped` instead of growing the array in the timed loop.
 */
class CallTimes {
  constructor(names, capacity) {
    this.names = names
    this.data = names.map(() => new Float64Array(capacity))
    this.n = new Int32Array(names.length)
    this.dropped = 0
  }

  /** Records `ms` for the call kind at index `k`. */
  add(k, ms) {
    const i = this.n[k]
    if (i < this.data[k].length) {
      this.data[k][i] = ms
      this.n[k] = i + 1
    } else {
      this.dropped++
    }
  }

  /** { all, byCall: { name: summary }, slowest, dropped }: summaries in ns, `slowest` the call with the largest max. */
  summary() {
    const byCall = {}
    let total = 0
    for (let k = 0; k < this.names.length; k++) total += this.n[k]
    const all = new Float64Array(total)
    let at = 0
    let slowest = null
    for (let k = 0; k < this.names.length; k++) {
      const used = this.data[k].subarray(0, this.n[k])
      all.set(used, at)
      at += used.length
      const s = summarize(used, 1e6)
      byCall[this.names[k]] = s
      if (s.n > 0 && (slowest === null || s.max > byCall[slowest].max)) slowest = this.names[k]
    }
    return { all: summarize(all, 1e6), byCall, slowest, dropped: this.dropped }
  }
}

/** Sampling interval of the event-loop delay histogram, ms (its finest). */
const LOOP_DELAY_RESOLUTION_MS = 1

/**
 * Starts an event-loop delay histogram (perf_hooks.monitorEventLoopDelay: a 1 ms timer on this
 * thread's loop records the time between its runs) and resolves once it has taken its first
 * reading: the histogram only records from its second run on, so a pass that holds the loop from
 * the start would otherwise go unseen. `stop()` lets one more timer run (it records how late it
 * was: the longest stretch the loop was held) and returns { n, p50, p99, max } in ns, the 1 ms
 * interval itself subtracted (0 = the timer ran on time).
 */
async function loopDelay() {
  const h = monitorEventLoopDelay({ resolution: LOOP_DELAY_RESOLUTION_MS })
  h.enable()
  await delay(2 * LOOP_DELAY_RESOLUTION_MS + 1)
  return {
    async stop() {
      await delay(LOOP_DELAY_RESOLUTION_MS + 1)
      h.disable()
      const n = typeof h.count === 'number' ? h.count : null
      if (n === 0) return { n, p50: 0, p99: 0, max: 0 }
      const late = (v) => Math.max(0, v - LOOP_DELAY_RESOLUTION_MS * 1e6)
      return { n, p50: late(h.percentile(50)), p99: late(h.percentile(99)), max: late(h.max) }
    },
  }
}

/**
 * CPU time this thread has used, ns: process.threadCpuUsage() where Node has it (≥ 23.9),
 * else Linux's /proc/thread-self/schedstat (time on CPU, ns; a synchronous read runs on the
 * calling thread), else null. process.cpuUsage() is no substitute: it counts the whole process.
 */
function threadCpuNs() {
  if (typeof process.threadCpuUsage === 'function') {
    const u = process.threadCpuUsage()
    return (u.user + u.system) * 1e3
  }
  try {
    return Number(fs.readFileSync('/proc/thread-self/schedstat', 'latin1').split(' ', 1)[0])
  } catch {
    return null
  }
}

/** This thread's kernel thread id (Linux), or null. */
function ownThreadId() {
  try {
    return Number(fs.readlinkSync('/proc/thread-self').split('/').pop())
  } catch {
    return null
  }
}

/**
 * CPU time (ns) of thread `tid` of this process, read by any thread (so one thread can take
 * another's over exactly its own time window); null where Linux's schedstat is unavailable.
 */
function taskCpuNs(tid) {
  if (tid === null) return null
  try {
    return Number(fs.readFileSync(`/proc/self/task/${tid}/schedstat`, 'latin1').split(' ', 1)[0])
  } catch {
    return null
  }
}

/** Which source threadCpuNs() uses here (for the report's methods). */
function threadCpuSource() {
  if (typeof process.threadCpuUsage === 'function') return 'process.threadCpuUsage()'
  return threadCpuNs() === null ? 'unavailable' : '/proc/thread-self/schedstat'
}

/** process.cpuUsage() (every thread of this process) in ns. */
function processCpuNs() {
  const u = process.cpuUsage()
  return (u.user + u.system) * 1e3
}

const SLEEP = new Int32Array(new SharedArrayBuffer(4))

/** Blocks this thread for `ms` (only the notifier probe uses it, never a service pass). */
function sleepSync(ms) {
  Atomics.wait(SLEEP, 0, 0, ms)
}

/**
 * Polls `ready()` every `everyMs` (sleeping in between, so the polled threads get the CPU) until
 * it is true; throws after `timeoutMs` with `what` in the message instead of hanging the run.
 */
function pollSync(ready, what, everyMs = 0.05, timeoutMs = 10000) {
  const deadline = performance.now() + timeoutMs
  while (!ready()) {
    if (performance.now() > deadline) throw new Error(`bench: timed out after ${timeoutMs} ms waiting for ${what}`)
    sleepSync(everyMs)
  }
}

module.exports = { CallTimes, loopDelay, threadCpuNs, threadCpuSource, ownThreadId, taskCpuNs, processCpuNs, delay, sleepSync, pollSync, LOOP_DELAY_RESOLUTION_MS }
