'use strict'

// sabpool/piscina: piscina tasks that carry a lease (runLease on the main side, leaseTask in the
// worker file). The code is lib/piscina.js, loaded like the rest of lib/ (from the addon's code
// caches, so a piscina worker starts as fast as with require('sabpool') alone).

const { loadLib, storeCodeCaches } = require('./lib/load.js')

const { runLease, leaseTask } = loadLib('piscina.js', () => require('./lib/piscina.js'))
storeCodeCaches()

module.exports = { runLease, leaseTask }
