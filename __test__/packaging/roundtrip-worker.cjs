'use strict'
const { parentPort, workerData } = require('node:worker_threads')
const { Channel } = require('sabpool')

const back = Channel.attach(workerData.back)
parentPort.once('message', (ticket) => {
  const lease = back.pool.adopt(ticket)
  const bytes = lease.bytes
  for (let i = 0; i < lease.length; i++) {
    if (bytes[i] !== (i & 0xff)) throw new Error(`worker: byte ${i} is ${bytes[i]}`)
    bytes[i] = ~bytes[i]
  }
  back.sendSync(lease)
  back.close()
  parentPort.close()
})
parentPort.postMessage('ready')
