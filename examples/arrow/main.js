'use strict'
// Apache Arrow record batches through a pool: the main thread writes a table's IPC stream into a
// slot, a worker opens it in place with tableFromIPC (its column arrays are views of the slot's
// shared memory, not copies) and sums a column. The Table must not outlive the lease: once the
// lease is released, its columns see whatever the slot's next owner writes.
//
//   node examples/arrow/main.js [--rows 100000] [--batches 8]

const path = require('node:path')
const { Worker } = require('node:worker_threads')
const { tableFromArrays, tableToIPC } = require('apache-arrow')
const { SharedPool, Channel } = require('../..')

async function run({ rows = 100_000, batches = 8 } = {}) {
  const slotSize = 16 * rows + 4096 // two 8-byte columns, plus the IPC framing
  const pool = new SharedPool({ slotSize, slots: 4 })
  const toWorker = new Channel(pool, { capacity: 4 })
  const back = new Channel(pool, { capacity: 4 })
  const worker = new Worker(path.join(__dirname, 'worker.js'), {
    workerData: { pool: pool.handle, toWorker: toWorker.handle, back: back.handle },
  })
  const results = []
  try {
    for (let b = 0; b < batches; b++) {
      const price = Float64Array.from({ length: rows }, (_, i) => (i % 100) * 0.25 + b)
      const qty = BigInt64Array.from({ length: rows }, (_, i) => BigInt(i % 7))
      const ipc = tableToIPC(tableFromArrays({ price, qty }), 'stream')
      const lease = await pool.acquire()
      lease.bytes.set(ipc) // at offset 0: slots are 64-byte aligned, as Arrow's buffers need
      lease.length = ipc.length
      await toWorker.send(lease)
      const reply = await back.recv()
      const [sum, inPlace] = reply.view(Float64Array, 0, 2)
      reply.release()
      let expected = 0
      for (let i = 0; i < rows; i++) expected += price[i]
      if (sum !== expected) throw new Error(`batch ${b}: the worker summed ${sum}, expected ${expected}`)
      results.push({ sum, inPlace: inPlace === 1 })
    }
  } finally {
    toWorker.close()
    await new Promise((resolve) => worker.once('exit', resolve))
  }
  return { rows, batches, results, stats: pool.stats() }
}

module.exports = { run }

if (require.main === module) {
  const args = process.argv.slice(2)
  const opt = (name, fallback) => {
    const i = args.indexOf(`--${name}`)
    return i >= 0 ? Number(args[i + 1]) : fallback
  }
  run({ rows: opt('rows', 100_000), batches: opt('batches', 8) }).then((r) => {
    const inPlace = r.results.every((x) => x.inPlace)
    console.log(`arrow: ${r.batches} record batches of ${r.rows} rows summed by a worker, ` +
      `${inPlace ? 'read in place (columns are views of the slot)' : 'COPIED'}; ${r.stats.inUse} slots in use at the end`)
    if (!inPlace) process.exitCode = 1
  }, (error) => {
    console.error(error)
    process.exitCode = 1
  })
}
