'use strict'
// Task functions of the piscina rows (rpc.js), selected with piscina.run's `name` option: the same
// server work as every other row of the family (payload.js touchCall) on a Uint8Array that arrived
// cloned (and is returned cloned) or moved (and is returned moved).

const { move } = require('piscina')
const { touchCall } = require('../payload.js')

module.exports = {
  clone(bytes) {
    touchCall(bytes, bytes.length)
    return bytes
  },
  move(bytes) {
    touchCall(bytes, bytes.length)
    return move(bytes)
  },
}
