// ES module consumer: `import` resolves through the `import` condition to index.d.mts.
import sabpool, { SharedPool, Channel, Lease, AbortError, type Ticket, type SabpoolErrorCode } from 'sabpool'
import * as ns from 'sabpool'
import { createRequire } from 'node:module'
import { runLease, leaseTask } from 'sabpool/piscina'

const pool = new SharedPool({ slotSize: 16, slots: 2 })
const lease: Lease = pool.acquireSync()
const ticket: Ticket = lease.handoff()
pool.adopt(ticket).release()
new Channel(pool, { capacity: 2 }).close()

// The default export carries the same classes.
const p2: SharedPool = new sabpool.SharedPool({ slotSize: 16, slots: 1 })
const same: typeof SharedPool = sabpool.SharedPool
const alsoSame: typeof AbortError = ns.AbortError
// @ts-expect-error the default export has only the four classes
sabpool.binding
const code: SabpoolErrorCode = 'ERR_SABPOOL_CLOSED'

// require() from ESM gets the CommonJS types: the same classes.
const required = createRequire(import.meta.url)('sabpool') as typeof import('sabpool')
const p3: SharedPool = new required.SharedPool({ slotSize: 16, slots: 1 })

// 'sabpool/piscina' imports from ESM too, with the same Lease and SharedPool.
const task: (message: unknown) => unknown = leaseTask(pool, (l: Lease) => l.length)
const run: (piscina: { run(task: unknown): Promise<unknown> }, pool: SharedPool, lease: Lease) => Promise<Lease> = runLease

export { p2, same, alsoSame, code, p3, task, run }
