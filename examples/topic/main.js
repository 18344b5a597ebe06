'use strict'
// One producer, frames analysed by three workers: the main thread renders each frame into a slot
// once and publishes it; every worker reads the same slot in place (no copy, no clone) and reports
// its own analysis; the slot goes back to the pool after the last worker released it.
//
//   node examples/topic/main.js [--frames 300] [--width 640] [--height 480]

const path = require('node:path')
const { Worker } = require('node:worker_threads')
const { SharedPool, Topic } = require('../..')

const ANALYSES = ['brightness', 'histogram', 'edges']

/** Draws frame `n` (8-bit grey, width × height) into `bytes`: a gradient that moves with n. */
function render(bytes, n, width, height) {
  for (let y = 0; y < height; y++) {
    const row = y * width
    for (let x = 0; x < width; x++) bytes[row + x] = (x + y + n) & 0xff
  }
}

/** The analyses, as the workers compute them, for checking their reports. */
const reference = {
  brightness: (bytes, length) => {
    let sum = 0
    for (let i = 0; i < length; i++) sum += bytes[i]
    return Math.round(sum / length)
  },
  histogram: (bytes, length) => {
    const bins = new Uint32Array(4)
    for (let i = 0; i < length; i++) bins[bytes[i] >>> 6]++
    return Array.from(bins).join(',')
  },
  edges: (bytes, length, width) => {
    let edges = 0
    for (let i = 1; i < length; i++) if (i % width !== 0 && Math.abs(bytes[i] - bytes[i - 1]) > 32) edges++
    return edges
  },
}

async function run({ frames = 300, width = 640, height = 480 } = {}) {
  const size = width * height
  const pool = new SharedPool({ slotSize: size, slots: 8 })
  // Each worker may fall 4 frames behind before the producer waits for it.
  const topic = new Topic(pool, { capacity: 4, maxSubscribers: ANALYSES.length })
  const workers = ANALYSES.map((analysis) => new Worker(path.join(__dirname, 'worker.js'), {
    workerData: { topic: topic.handle, analysis, width },
  }))
  const reports = new Map(ANALYSES.map((a) => [a, []]))
  const done = workers.map((worker, i) => new Promise((resolve, reject) => {
    worker.on('message', (m) => {
      if (m.type === 'result') reports.get(ANALYSES[i]).push(m)
      if (m.type === 'done') resolve()
    })
    worker.once('error', reject)
  }))
  await Promise.all(workers.map((w) => new Promise((resolve) => w.once('message', resolve)))) // subscribed

  const started = performance.now()
  for (let n = 0; n < frames; n++) {
    const lease = await pool.acquire()
    render(lease.bytes, n, width, height)
    await topic.publish(lease, size) // waits while a worker is 4 frames behind
  }
  topic.close() // the workers read what is queued, then their loops end
  await Promise.all(done)
  const ms = performance.now() - started
  await Promise.all(workers.map((w) => w.terminate()))

  // Every worker saw every frame, in order, and computed what the reference computes.
  const check = pool.acquireSync()
  let verified = 0
  for (const analysis of ANALYSES) {
    const got = reports.get(analysis)
    if (got.length !== frames) throw new Error(`${analysis}: ${got.length} results for ${frames} frames`)
    for (let n = 0; n < frames; n += 37) {
      render(check.bytes, n, width, height)
      const expected = reference[analysis](check.bytes, size, width)
      if (got[n].frame !== n || String(got[n].value) !== String(expected)) {
        throw new Error(`${analysis} of frame ${n}: got ${got[n].value}, expected ${expected}`)
      }
      verified++
    }
  }
  check.release()
  return { frames, ms, verified, stats: topic.stats(), pool: pool.stats() }
}

module.exports = { run, reference, render }

if (require.main === module) {
  const args = process.argv.slice(2)
  const opt = (name, fallback) => {
    const i = args.indexOf(`--${name}`)
    return i >= 0 ? Number(args[i + 1]) : fallback
  }
  run({ frames: opt('frames', 300), width: opt('width', 640), height: opt('height', 480) }).then((r) => {
    console.log(`topic: ${r.frames} frames to ${ANALYSES.length} workers in ${r.ms.toFixed(0)} ms ` +
      `(${(r.frames / r.ms * 1000).toFixed(0)} frames/s); ${r.stats.delivered} deliveries, ${r.verified} results verified, ` +
      `${r.pool.inUse} slots in use at the end`)
  }, (error) => {
    console.error(error)
    process.exitCode = 1
  })
}
