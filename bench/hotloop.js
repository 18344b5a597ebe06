'use strict'
// Instruction-count probe of the hot calls in one thread, for machines too noisy for timings:
//   valgrind --tool=callgrind node bench/hotloop.js [dir] N pool|channel|ticket
// Run it with two N (say 200000 and 1200000) and divide the difference of the "Collected" totals
// by the difference of N: start-up cancels and what is left is instructions per cycle.
const [dir = '..', nArg = '200000', what = 'pool'] = process.argv.slice(2)
const { SharedPool, Channel } = require(require('node:path').resolve(__dirname, dir))
const n = Number(nArg)
const pool = new SharedPool({ slotSize: 1024, slots: 64 })
const channel = new Channel(pool, { capacity: 64 })
if (what === 'pool') {
  for (let i = 0; i < n; i++) pool.tryAcquire().release()
} else if (what === 'channel') {
  for (let i = 0; i < n; i++) {
    channel.trySend(pool.tryAcquire())
    channel.tryRecv().release()
  }
} else if (what === 'ticket') {
  for (let i = 0; i < n; i++) pool.adopt(pool.tryAcquire().handoff()).release()
} else {
  throw new RangeError(`unknown loop ${what}: pool, channel or ticket`)
}
