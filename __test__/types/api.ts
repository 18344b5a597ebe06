// Type test of sabpool's public API: every export, constructor, method, option and result type.
// Checked with `tsc --noEmit` (never run) by __test__/types.test.js, under two configurations:
// tsconfig.json (module nodenext: this file is CommonJS, so 'sabpool' resolves through the
// `require` condition to index.d.ts) and tsconfig.bundler.json (moduleResolution bundler: the
// `import` condition, index.d.mts). `// @ts-expect-error` lines must stay errors: they prove the
// types are not `any`.

import { Worker } from 'node:worker_threads'
import {
  SharedPool,
  Channel,
  Lease,
  AbortError,
  type SabpoolError,
  type SabpoolErrorCode,
  type SharedPoolOptions,
  type PoolHandle,
  type ChannelHandle,
  type Ticket,
  type ReuseOptions,
  type WaitOptions,
  type BlockingWaitOptions,
  type PoolStats,
  type ChannelOptions,
  type ChannelStats,
  Service,
  type ServiceStats,
  type ServiceHandle,
  type ServiceReply,
  Topic,
  type Subscription,
  type Sample,
  type TopicStats,
  type TopicHandle,
  type SubscriptionStats,
} from 'sabpool'

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false
function assertType<T extends true>(): T | void {}
function expectType<T>(value: T): T {
  return value
}

// ---- SharedPool ------------------------------------------------------------------------------

const options: SharedPoolOptions = { slotSize: 1 << 20, slots: 8, maxParticipants: 16 }
const pool = new SharedPool(options)
new SharedPool({ slotSize: 64, slots: 2 })
// @ts-expect-error slots is required
new SharedPool({ slotSize: 64 })
// @ts-expect-error slotSize must be a number
new SharedPool({ slotSize: '64', slots: 2 })
// @ts-expect-error unknown option
new SharedPool({ slotSize: 64, slots: 2, capacity: 4 })

expectType<number>(pool.slotSize)
expectType<number>(pool.slots)
expectType<number>(pool.id)
const handle: PoolHandle = pool.handle
expectType<'sabpool.pool'>(handle.kind)
expectType<number>(handle.version)
// An in-process pool's handle carries its buffer, a file-backed pool's its name: narrow first.
// @ts-expect-error buffer exists only on in-process handles
void handle.buffer
if ('buffer' in handle) expectType<SharedArrayBuffer>(handle.buffer)
else expectType<string>(handle.name)
// @ts-expect-error geometry is read-only
pool.slots = 3

const attached: SharedPool = SharedPool.attach(handle)
// @ts-expect-error attach takes a pool handle, not a channel handle
SharedPool.attach(new Channel(pool, { capacity: 4 }).handle)

const maybe = pool.tryAcquire()
assertType<Equal<typeof maybe, Lease | null>>()
// @ts-expect-error the result may be null
maybe.release()
if (maybe) maybe.release()
pool.tryAcquire({ reuse: maybe ?? undefined })

async function waits(signal: AbortSignal): Promise<void> {
  const a = await pool.acquire()
  assertType<Equal<typeof a, Lease>>()
  const b = await pool.acquire({ timeout: 100, signal })
  const waitOptions: WaitOptions = { timeout: Infinity }
  await pool.acquire(waitOptions)
  a.release()
  b.release()
  // @ts-expect-error acquire() returns a promise
  pool.acquire().release()
}

const blocking: BlockingWaitOptions = { timeout: 10, spin: 0 }
const s = pool.acquireSync(blocking)
assertType<Equal<typeof s, Lease>>()
const reuse: ReuseOptions = { reuse: s }
s.release()
pool.acquireSync({ ...reuse, spin: 100 }).release()

const stats: PoolStats = pool.stats()
const poolStatKeys: Array<keyof PoolStats> = ['slots', 'inUse', 'free', 'highWater', 'acquired', 'released', 'reclaimed', 'waits', 'waiting']
expectType<number>(stats.inUse + stats.free + stats.highWater + stats.acquired + stats.released + stats.reclaimed + stats.waits + stats.waiting + stats.slots)
void poolStatKeys

// ---- Lease and tickets ---------------------------------------------------------------------

const lease = pool.acquireSync()
expectType<number>(lease.slot)
expectType<number>(lease.generation)
expectType<Uint8Array>(lease.bytes)
expectType<boolean>(lease.owned)
lease.length = 100
lease.bytes.fill(7, 0, lease.length)
// @ts-expect-error slot is read-only
lease.slot = 2
// @ts-expect-error bytes is read-only
lease.bytes = new Uint8Array(4)
// @ts-expect-error leases come from a pool, not a constructor
new Lease()

const ticket: Ticket = lease.handoff()
expectType<number>(ticket.pool + ticket.slot + ticket.generation + ticket.length)
const adopted: Lease = pool.adopt(ticket)
pool.adopt({ pool: pool.id, slot: 0, generation: 1, length: 0 }).release()
// @ts-expect-error a ticket needs all four numbers
pool.adopt({ pool: pool.id, slot: 0 })
adopted.release()

// Handles and tickets travel through workerData and postMessage.
const worker = new Worker('./worker.js', { workerData: { pool: pool.handle } })
worker.postMessage(pool.acquireSync().handoff())

// ---- Channel -------------------------------------------------------------------------------

const channelOptions: ChannelOptions = { capacity: 8, spin: 1000 }
const channel = new Channel(pool, channelOptions)
// @ts-expect-error capacity is required
new Channel(pool, {})
// @ts-expect-error a channel needs a pool
new Channel({ capacity: 8 })

const channelHandle: ChannelHandle = channel.handle
expectType<'sabpool.channel'>(channelHandle.kind)
expectType<PoolHandle>(channelHandle.pool)
if ('buffer' in channelHandle) expectType<SharedArrayBuffer>(channelHandle.buffer)
const remote: Channel = Channel.attach(channelHandle)
Channel.attach(channelHandle, attached)
expectType<SharedPool>(remote.pool)
expectType<boolean>(channel.closed)

const l1 = pool.acquireSync()
expectType<boolean>(channel.trySend(l1))
expectType<boolean>(channel.trySend(l1, 10))
channel.sendSync(l1)
channel.sendSync(l1, 10, { timeout: 5, spin: 0 })
// @ts-expect-error length is a number
channel.sendSync(l1, '10')
expectType<number>(channel.sendMany([l1, pool.acquireSync()]))

const r1 = channel.tryRecv()
assertType<Equal<typeof r1, Lease | null>>()
const r2 = channel.recvSync({ timeout: 5, spin: 10, reuse: l1 })
assertType<Equal<typeof r2, Lease | null>>()
const many = channel.recvMany(4)
assertType<Equal<typeof many, Lease[] | null>>()

async function channelWaits(signal: AbortSignal): Promise<number> {
  await channel.send(pool.acquireSync())
  await channel.send(pool.acquireSync(), 3, { timeout: 10, signal })
  const got = await channel.recv({ timeout: 10, signal, reuse: l1 })
  assertType<Equal<typeof got, Lease | null>>()
  let total = 0
  for await (const l of channel) {
    assertType<Equal<typeof l, Lease>>()
    total += l.length
    l.release()
  }
  const it: AsyncIterable<Lease> = channel
  void it
  return total
}

const cstats: ChannelStats = channel.stats()
expectType<number>(cstats.capacity + cstats.queued + cstats.sent + cstats.received + cstats.sendWaits + cstats.recvWaits)
expectType<number>(cstats.sendWaiting + cstats.recvWaiting)
expectType<boolean>(cstats.closed)
expectType<boolean>(channel.close())
channel.detach()
pool.detach()

// ---- file-backed pools and channels (cross-process) ------------------------------------

const filePool: SharedPool = SharedPool.create({ name: 'jobs', slotSize: 1024, slots: 64, mode: 0o600, dir: '/dev/shm' })
SharedPool.create({ name: 'jobs', slotSize: 1024, slots: 64 })
// @ts-expect-error a file-backed pool needs a name
SharedPool.create({ slotSize: 1024, slots: 64 })
const opened: SharedPool = SharedPool.open('jobs', { dir: '/dev/shm', trackLeaks: false })
SharedPool.open('jobs')
// @ts-expect-error the name is a string
SharedPool.open(7)
expectType<string | undefined>(filePool.name)
expectType<string | undefined>(filePool.path)
expectType<boolean>(filePool.unlink())
const dead = filePool.reclaimDead()
expectType<number>(dead.participants)
expectType<number>(dead.slots)
const fileChannel: Channel = Channel.create(filePool, { name: 'jobs-in', capacity: 64, spin: 100, mode: 0o640 })
// @ts-expect-error capacity is required
Channel.create(filePool, { name: 'jobs-in' })
const openedChannel: Channel = Channel.open('jobs-in', opened, { spin: 0 })
expectType<boolean>(openedChannel.unlink())
expectType<string | undefined>(fileChannel.path)
Channel.attach(fileChannel.handle, opened)

// ---- errors --------------------------------------------------------------------------------

try {
  pool.acquireSync({ timeout: 0 })
} catch (err) {
  const e = err as SabpoolError
  const code: SabpoolErrorCode = e.code
  if (code === 'ERR_SABPOOL_TIMEOUT' || code === 'ERR_SABPOOL_STALE_LEASE' || code === 'ABORT_ERR') void code
  if (code === 'ERR_SABPOOL_EXISTS' || code === 'ERR_SABPOOL_NOT_FOUND' || code === 'ERR_SABPOOL_BAD_NAME') void code
  // @ts-expect-error not one of sabpool's codes
  const bad: SabpoolErrorCode = 'ERR_NOPE'
  void bad
  if (err instanceof AbortError) {
    expectType<'AbortError'>(err.name)
    expectType<'ABORT_ERR'>(err.code)
    expectType<Error>(err)
  }
}

// ---- Service ----------------------------------------------------------------------------------

const svc = new Service(pool, { capacity: 8 })
// @ts-expect-error capacity is required
new Service(pool, {})
const svcHandle: ServiceHandle = svc.handle
Service.attach(svcHandle, pool)
Service.create(pool, { name: 'jobs', capacity: 4 })
Service.open('jobs', pool, { dir: '/tmp' })
async function services(lease: Lease): Promise<void> {
  const reply = await svc.call(lease, 10, { timeout: 5, signal: new AbortController().signal })
  expectType<Lease>(reply)
  expectType<Lease>(svc.callSync(lease, undefined, { timeout: 5 }))
  // @ts-expect-error callSync takes no signal
  svc.callSync(lease, 1, { signal: new AbortController().signal })
  const handler = (req: Lease): ServiceReply => req.length
  expectType<number>(svc.serveSync(handler))
  expectType<Promise<number>>(svc.serve(async (req) => req, { concurrency: 4 }))
  // @ts-expect-error a handler returns a length, undefined or a Lease
  svc.serveSync(() => 'text')
  const st: ServiceStats = svc.stats()
  expectType<number>(st.inFlight + st.servers + st.lost + st.late)
  expectType<boolean>(svc.close())
}

// ---- Topic ------------------------------------------------------------------------------------

const topic = new Topic(pool, { capacity: 16, maxSubscribers: 4, history: 1, onFull: 'drop-oldest', checkWrites: false })
// @ts-expect-error onFull is 'block' or 'drop-oldest'
new Topic(pool, { capacity: 2, onFull: 'drop' })
// @ts-expect-error capacity is required
new Topic(pool, {})
const topicHandle: TopicHandle = topic.handle
Topic.attach(topicHandle)
Topic.attach(topicHandle, pool)
Topic.create(pool, { name: 'frames', capacity: 4, dir: '/tmp' })
Topic.open('frames', pool, { dir: '/tmp' })
expectType<'block' | 'drop-oldest'>(topic.options.onFull)
async function topics(lease: Lease): Promise<void> {
  const sub: Subscription = topic.subscribe()
  expectType<number>(await topic.publish(lease, 8, { timeout: 5, signal: new AbortController().signal }))
  expectType<number>(topic.publishSync(lease))
  expectType<boolean>(topic.tryPublish(lease, 1))
  // @ts-expect-error publishSync takes no signal
  topic.publishSync(lease, 1, { signal: new AbortController().signal })
  const sample = await sub.recv({ timeout: 10 })
  if (sample !== null) {
    expectType<Sample>(sample)
    expectType<Uint8Array>(sample.bytes)
    expectType<number>(sample.length + sample.seq + sample.slot)
    sample.release()
  }
  expectType<Sample | null>(sub.recvSync({ timeout: 1, spin: 10 }))
  expectType<Sample | null>(sub.tryRecv())
  for await (const s of sub) expectType<Sample>(s).release()
  const ss: SubscriptionStats = sub.stats()
  expectType<number>(ss.lag + ss.delivered + ss.dropped)
  expectType<boolean>(sub.unsubscribe())
  const ts: TopicStats = topic.stats()
  expectType<number>(ts.subscribers + ts.published + ts.delivered + ts.dropped + ts.subscriptions[0].lag)
  expectType<boolean>(topic.close())
}

// ---- payload codecs ---------------------------------------------------------------------------

function codecs(lease: Lease): void {
  expectType<number>(lease.writeString('text', 4))
  expectType<string>(lease.readString(0, 4))
  expectType<number>(lease.writeJSON({ a: 1 }))
  expectType<unknown>(lease.readJSON())
  expectType<number>(lease.writeValue(new Map()))
  expectType<unknown>(lease.readValue())
  expectType<Float64Array>(lease.view(Float64Array, 8, 2))
  expectType<DataView>(lease.view(DataView))
  expectType<BigInt64Array>(lease.view(BigInt64Array))
  // @ts-expect-error view takes a typed array constructor
  lease.view(Array)
  // @ts-expect-error writeString takes a string
  lease.writeString(5)
}

export { waits, channelWaits, services, topics, codecs }
