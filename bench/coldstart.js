'use strict'
// Worker cold start: `new Worker(file)` until its first message arrives on the main thread,
// i.e. thread + isolate + Node bootstrap + loading the script (and, for sabpool, loading the addon
// and attaching a pool). One untimed start first, so that the files are in the page cache.

const path = require('node:path')
const { Worker } = require('node:worker_threads')
const { SharedPool } = require('..')
const { summarize } = require('./stats.js')

const FILE = path.join(__dirname, 'coldstart-worker.js')

async function startOnce(workerData) {
  const t0 = performance.now()
  const worker = new Worker(FILE, { workerData })
  await new Promise((resolve, reject) => {
    worker.once('message', resolve)
    worker.once('error', reject)
  })
  const ms = performance.now() - t0
  await worker.terminate()
  return ms
}

/** Returns { plain, sabpool }: summaries in ns. */
async function measureColdStart(repeats, onProgress) {
  const pool = new SharedPool({ slotSize: 1024, slots: 4 })
  const out = {}
  for (const [name, data] of [['plain', {}], ['sabpool', { pool: pool.handle }]]) {
    onProgress(name)
    await startOnce(data)
    const samples = []
    for (let i = 0; i < repeats; i++) {
      global.gc()
      samples.push(await startOnce(data))
    }
    out[name] = summarize(samples, 1e6)
  }
  pool.detach()
  return out
}

module.exports = { measureColdStart }
