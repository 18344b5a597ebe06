// Type test of 'sabpool/piscina' (piscina.d.ts), checked with `tsc --noEmit` by
// __test__/types.test.js under both configurations, like api.ts. piscina's own types are used
// here only to check that a real Piscina is what runLease takes.

import { Piscina } from 'piscina'
import { SharedPool, type Lease, type Ticket } from 'sabpool'
import {
  runLease,
  leaseTask,
  type PiscinaLike,
  type RunLeaseOptions,
  type LeaseTaskFunction,
  type LeaseTaskReply,
} from 'sabpool/piscina'

function expectType<T>(value: T): T {
  return value
}

const pool = new SharedPool({ slotSize: 1024, slots: 4 })
const piscina = new Piscina({ filename: 'worker.js', workerData: { pool: pool.handle } })
const like: PiscinaLike = piscina

async function main(): Promise<void> {
  const lease = await pool.acquire()
  const reply: Lease = await runLease(piscina, pool, lease)
  reply.release()
  const options: RunLeaseOptions<{ op: string }> = { task: { op: 'invert' }, length: 10, name: 'invert', signal: new AbortController().signal, transferList: [] }
  expectType<Promise<Lease>>(runLease(like, pool, await pool.acquire(), options))
  // @ts-expect-error length is a number
  void runLease(piscina, pool, lease, { length: '10' })
  // @ts-expect-error the task's type is checked when given
  void runLease<{ op: string }>(piscina, pool, lease, { task: { op: 1 } })
  // @ts-expect-error unknown option
  void runLease(piscina, pool, lease, { timeout: 5 })
  // @ts-expect-error the pool comes before the lease
  void runLease(piscina, lease, pool)
  // @ts-expect-error anything without run() is no piscina
  void runLease({}, pool, lease)
}

// Worker side: a function of (lease, task) returning a length, undefined or a Lease (or a promise of one).
const byLength = leaseTask(pool, (lease) => lease.length)
const inPlace = leaseTask(pool, (lease) => { lease.bytes[0] = 1 })
const other = leaseTask(pool, () => pool.acquireSync())
const later = leaseTask<{ delay: number }>(pool, async (lease, task) => {
  await new Promise((resolve) => setTimeout(resolve, task.delay))
  return lease.length
})
expectType<(message: unknown) => Ticket | Promise<Ticket>>(byLength)
const fn: LeaseTaskFunction<string> = (lease, task) => task.length
const reply: LeaseTaskReply = 3
// @ts-expect-error a string is no reply
leaseTask(pool, () => 'done')
// @ts-expect-error leaseTask takes the pool first
leaseTask(() => 1, pool)

export { main, inPlace, other, later, fn, reply }
