'use strict'
// Task functions of the piscina rows (rpc.js), selected with piscina.run's `name` option: the same
// server work as every other row of the family (payload.js touchCall), on a Uint8Array that arrived
// cloned (and is returned cloned) or moved (and is returned moved), or, through sabpool's piscina
// adapter, on the lease of the pool in workerData (attached once per thread, at load), replied in
// the same slot.

const { move, workerData } = require('piscina')
const { SharedPool } = require('sabpool')
const { leaseTask } = require('sabpool/piscina')
const { touchCall } = require('../payload.js')

const pool = SharedPool.attach(workerData.pool)

module.exports = {
  clone(bytes) {
    touchCall(bytes, bytes.length)
    return bytes
  },
  move(bytes) {
    touchCall(bytes, bytes.length)
    return move(bytes)
  },
  lease: leaseTask(pool, (lease) => {
    const length = lease.length
    touchCall(lease.bytes, length)
    return length
  }),
}
