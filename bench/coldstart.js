'use strict'
// Worker cold start: `new Worker(file)` until its first message arrives on the main thread,
// i.e. thread + isolate + Node bootstrap + loading the script (and, for sabpool, loading the addon
// and attaching a pool). One untimed start of each kind first, so that the files are in the page
// cache; then plain and sabpool starts alternate, so that load on the machine hits both alike.
// The sabpool workers also time their own steps (performance.now() in the worker), which is the
// `breakdown`: less noisy than the difference of two start-up times.

const path = require('node:path')
const { Worker } = require('node:worker_threads')
const { SharedPool } = require('..')
const { summarize, median } = require('./stats.js')

const FILE = path.join(__dirname, 'coldstart-worker.js')

/** Resolves to { ms, steps }: the start-up time seen by this thread, and the worker's own timings. */
async function startOnce(workerData) {
  const t0 = performance.now()
  const worker = new Worker(FILE, { workerData: { ...workerData, startedAt: performance.timeOrigin + t0 } })
  const steps = await new Promise((resolve, reject) => {
    worker.once('message', resolve)
    worker.once('error', reject)
  })
  const ms = performance.now() - t0
  await worker.terminate()
  return { ms, steps }
}

/**
 * Returns { plain, sabpool, sabpoolMinusPlain, breakdown }: summaries in ns (from stats.js), the
 * difference of the two p50s in ns, and for the sabpool starts, summaries of the worker's own
 * steps: `bootstrap` (`new Worker` to the worker's first line), `require` (require('sabpool')) and
 * `attach` (SharedPool.attach).
 */
async function measureColdStart(repeats, onProgress) {
  const pool = new SharedPool({ slotSize: 1024, slots: 4 })
  const kinds = [['plain', {}], ['sabpool', { pool: pool.handle }]]
  const samples = { plain: [], sabpool: [] }
  const steps = { bootstrap: [], require: [], attach: [] }
  for (const [, data] of kinds) await startOnce(data)
  for (let i = 0; i < repeats; i++) {
    // Alternate which kind goes first, so neither always follows the other's teardown.
    const order = i % 2 === 0 ? kinds : [kinds[1], kinds[0]]
    for (const [name, data] of order) {
      if (i === 0) onProgress(name)
      if (typeof global.gc === 'function') global.gc()
      const r = await startOnce(data)
      samples[name].push(r.ms)
      if (name === 'sabpool') for (const k of Object.keys(steps)) steps[k].push(r.steps[k])
    }
  }
  pool.detach()
  return {
    plain: summarize(samples.plain, 1e6),
    sabpool: summarize(samples.sabpool, 1e6),
    sabpoolMinusPlain: (median(samples.sabpool) - median(samples.plain)) * 1e6,
    breakdown: Object.fromEntries(Object.entries(steps).map(([k, v]) => [k, summarize(v, 1e6)])),
  }
}

module.exports = { measureColdStart }
