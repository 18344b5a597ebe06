'use strict'
// Opens each table in place and sums its `price` column; answers [sum, 1 if read in place].
const { workerData } = require('node:worker_threads')
const { tableFromIPC } = require('apache-arrow')
const { SharedPool, Channel } = require('../..')

const pool = SharedPool.attach(workerData.pool)
const toWorker = Channel.attach(workerData.toWorker, pool)
const back = Channel.attach(workerData.back, pool)

for (let lease = toWorker.recvSync(); lease !== null; lease = toWorker.recvSync()) {
  const table = tableFromIPC(lease.bytes.subarray(0, lease.length))
  const price = table.getChild('price')
  let sum = 0
  let inPlace = 1
  for (const chunk of price.data) {
    // The column's memory is the pool's: no copy was made (a misaligned offset would copy).
    if (chunk.values.buffer !== lease.bytes.buffer) inPlace = 0
    const values = chunk.values
    for (let i = 0; i < values.length; i++) sum += values[i]
  }
  // Done with the table before the slot moves on: its columns are views of this slot.
  lease.view(Float64Array, 0, 2).set([sum, inPlace])
  lease.length = 16
  back.sendSync(lease)
}
