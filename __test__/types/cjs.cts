// CommonJS consumer written as `import x = require()`: the `require` condition, index.d.ts.
import sabpool = require('sabpool')

const pool: sabpool.SharedPool = new sabpool.SharedPool({ slotSize: 16, slots: 2 })
const lease: sabpool.Lease = pool.acquireSync({ spin: 0 })
const ticket: sabpool.Ticket = lease.handoff()
pool.adopt(ticket).release()
const channel = new sabpool.Channel(pool, { capacity: 2 })
const stats: sabpool.ChannelStats = channel.stats()
const err = new sabpool.AbortError()
// @ts-expect-error tryAcquire takes options, not a number
pool.tryAcquire(3)

export = { stats, err }
