/**
 * sabpool: a preallocated shared-memory buffer pool for `worker_threads` and processes.
 *
 * A producer borrows a slot ({@link Lease}), writes into it in place, and hands it to another
 * thread — as a tiny {@link Ticket} over `postMessage`, or through a lock-free {@link Channel} —
 * where the consumer reads it in place and releases it. The payload is never copied or cloned.
 *
 * @packageDocumentation
 */

/** Stable `code` of every error sabpool throws. */
export type SabpoolErrorCode =
  /** An option or argument has the wrong type (TypeError). */
  | 'ERR_INVALID_ARG_TYPE'
  /** A method or accessor called on something that is not an object of its class, e.g. unbound (TypeError). */
  | 'ERR_INVALID_THIS'
  /** An option or argument is out of its allowed range (RangeError). */
  | 'ERR_OUT_OF_RANGE'
  /** `slots × slotSize` needs a larger SharedArrayBuffer than this Node can allocate (RangeError). */
  | 'ERR_SABPOOL_TOO_LARGE'
  /** A `length` outside `0..slotSize` (RangeError). */
  | 'ERR_SABPOOL_BAD_LENGTH'
  /** The lease is not owned here any more: released, handed off, sent, adopted twice, or stale. */
  | 'ERR_SABPOOL_STALE_LEASE'
  /** The ticket cannot name a slot of this pool: malformed, from another pool, out of range (TypeError). */
  | 'ERR_SABPOOL_BAD_TICKET'
  /** The handle, its memory or the named file is not a valid sabpool pool or channel (TypeError). */
  | 'ERR_SABPOOL_BAD_HANDLE'
  /** A wait reached its `timeout`. */
  | 'ERR_SABPOOL_TIMEOUT'
  /** A blocking wait of a worker whose parent terminated it while its JavaScript kept running (Deno): it ends the wait so the worker can stop. */
  | 'ERR_SABPOOL_TERMINATED'
  /** The channel is closed: nothing more can be sent. */
  | 'ERR_SABPOOL_CLOSED'
  /** Every participant entry of the pool is taken (see `maxParticipants`). */
  | 'ERR_SABPOOL_TOO_MANY_PARTICIPANTS'
  /** The pool or channel was detached in this thread. */
  | 'ERR_SABPOOL_DETACHED'
  /** Shared memory holds values no correct participant writes (something scribbled on it). */
  | 'ERR_SABPOOL_CORRUPT'
  /** A lock-free retry loop gave up because shared words kept changing under it. */
  | 'ERR_SABPOOL_CONTENDED'
  /** A `reuse` lease is still owned (only a released, handed-off or sent lease can be re-armed), or reserved by a pending call. */
  | 'ERR_SABPOOL_LEASE_IN_USE'
  /** A wait was aborted through its `AbortSignal` (thrown as {@link AbortError}). */
  | 'ABORT_ERR'
  /** A region name that is not 1–200 characters of `A-Z a-z 0-9 . _ -` or starts with '.' (TypeError). */
  | 'ERR_SABPOOL_BAD_NAME'
  /** Creating a file-backed region whose name is taken by a live region or by a foreign file. */
  | 'ERR_SABPOOL_EXISTS'
  /** Opening a file-backed region that does not exist. */
  | 'ERR_SABPOOL_NOT_FOUND'
  /** The operating system refused access to the region file (permissions). */
  | 'ERR_SABPOOL_ACCESS'
  | 'ERR_SABPOOL_NO_SPACE'
  /** Another operating-system error on the region file. */
  | 'ERR_SABPOOL_IO'
  /** File-backed pools and channels are not available on this platform (Windows). */
  | 'ERR_SABPOOL_UNSUPPORTED'
  /** A file-only operation on an in-process pool or channel, or a file-backed channel for an in-process pool (TypeError). */
  | 'ERR_SABPOOL_NOT_FILE'
  /** A service call whose request ended without a reply: its server died, or gave the request lease away without replying. */
  | 'ERR_SABPOOL_NO_REPLY'
  /** A service handler or a `sabpool/piscina` task function returned something that is not a reply (a length, undefined or a Lease of the pool it owns), or a piscina run resolved to something that is not a reply ticket. */
  | 'ERR_SABPOOL_BAD_REPLY'
  /** Default code of the error a service call rejects with when its handler threw something without a string `code`. */
  | 'ERR_SABPOOL_HANDLER'
  /** A codec write that does not fit in the slot (RangeError; `needed` and `available` say how many bytes). */
  | 'ERR_SABPOOL_DOES_NOT_FIT'
  /** `lease.view` at a byte offset that is not a multiple of the element size (RangeError). */
  | 'ERR_SABPOOL_MISALIGNED'
  /** `readJSON`/`readValue` of a payload that is not JSON / not a serialized value. */
  | 'ERR_SABPOOL_BAD_PAYLOAD'
  /** `topic.subscribe()` while `maxSubscribers` subscriptions are live. */
  | 'ERR_SABPOOL_TOO_MANY_SUBSCRIBERS'
  /** A sample's bytes changed after it was published (a topic with `checkWrites`; thrown by `sample.release()`, which released it all the same). */
  | 'ERR_SABPOOL_SAMPLE_WRITTEN'
  /** A defect in sabpool itself (an unexpected native status, a failed internal borrow): please report it. */
  | 'ERR_SABPOOL_INTERNAL'

/** An error thrown by sabpool: `code` says which, `cause` carries the underlying error if any. */
export interface SabpoolError extends Error {
  code: SabpoolErrorCode
}

/** Thrown when a wait is aborted through its `AbortSignal`; `cause` is `signal.reason`. */
export declare class AbortError extends Error {
  readonly name: 'AbortError'
  readonly code: 'ABORT_ERR'
}

export interface SharedPoolOptions {
  /** Bytes per slot, an integer from 1 to 2^30. */
  slotSize: number
  /** Number of slots, an integer from 1 to 2^24. `slots × slotSize` bytes are allocated once. */
  slots: number
  /**
   * How many threads may be attached at once (each `SharedPool`/`attach` is one participant),
   * 1 to 4096. Default 128.
   */
  maxParticipants?: number
  /**
   * Track every lease this thread takes: one that is garbage-collected while still owned is
   * returned to the pool (counted in `stats().reclaimed`) and reported with a `SabpoolWarning`
   * (code `SABPOOL_LEAKED_LEASE`) saying where it was acquired. Costs about 0.3 µs per lease, so
   * it is meant for debugging. Default: on when the environment has `SABPOOL_TRACK_LEAKS=1`.
   * Without it, leaked slots come back when the thread exits or detaches.
   */
  trackLeaks?: boolean
}

export interface AttachOptions {
  /** As {@link SharedPoolOptions.trackLeaks}, for this thread's attachment. */
  trackLeaks?: boolean
  /** For a handle of a file-backed pool: as {@link ForeignOwnerOptions.allowForeignOwner}. */
  allowForeignOwner?: boolean
}

/** Opening a region file that another user owns. */
export interface ForeignOwnerOptions {
  /**
   * Open the region file even if another user owns it. Default false: such a file is refused with
   * `ERR_SABPOOL_ACCESS`, because its owner can read every payload written into it and can
   * truncate it under the mapping (which kills the processes using it with SIGBUS).
   */
  allowForeignOwner?: boolean
}

/** Where a file-backed region lives. */
export interface FileOptions {
  /** Directory of the region file. Default `/dev/shm` (RAM-backed), or the OS temp dir without it. */
  dir?: string
}

export interface CreateFileOptions extends FileOptions {
  /** 1–200 characters of `A-Z a-z 0-9 . _ -`, not starting with '.'. */
  name: string
  /** Permission bits of the file, exactly (not masked by the umask). Default 0o600: owner only. */
  mode?: number
}

export interface SharedPoolCreateOptions extends SharedPoolOptions, CreateFileOptions {}

export interface SharedPoolOpenOptions extends AttachOptions, FileOptions, ForeignOwnerOptions {}

/** What {@link SharedPool.reclaimDead} did. */
export interface DeadReclaimed {
  /** Participants of dead processes torn down. */
  participants: number
  /** Their leased slots, returned to the pool. */
  slots: number
}

/**
 * What the `diagnostics_channel` named `'sabpool:wait'` publishes once per wait that went past the
 * fast path (subscribe with `diagnostics_channel.subscribe('sabpool:wait', fn)`).
 */
export interface WaitDiagnostic {
  kind: 'pool' | 'channel'
  /** The pool's or channel's random id. */
  id: number
  /** The call that waited: 'acquire', 'acquireSync', 'send', 'sendSync', 'recv', 'recvSync'. */
  op: string
  /** How long it waited, in milliseconds. */
  ms: number
  outcome: 'ok' | 'timeout' | 'abort' | 'error'
}

/**
 * Plain, structured-cloneable description of a pool: pass it to a worker. An in-process pool's
 * carries its SharedArrayBuffer; a file-backed pool's carries its name and directory.
 */
export type PoolHandle =
  | { readonly kind: 'sabpool.pool', readonly version: number, readonly buffer: SharedArrayBuffer }
  | { readonly kind: 'sabpool.pool', readonly version: number, readonly name: string, readonly dir: string }

/** Plain, structured-cloneable description of a channel; carries its pool's handle. */
export type ChannelHandle =
  | { readonly kind: 'sabpool.channel', readonly version: number, readonly buffer: SharedArrayBuffer, readonly pool: PoolHandle }
  | { readonly kind: 'sabpool.channel', readonly version: number, readonly name: string, readonly dir: string, readonly pool: PoolHandle }

/** What `lease.handoff()` returns and `pool.adopt()` takes: small enough to post anywhere. */
export interface Ticket {
  /** The pool's id ({@link SharedPool.id}). */
  pool: number
  slot: number
  generation: number
  /** Bytes in use, as set on the lease when it was handed off. */
  length: number
}

export interface ReuseOptions {
  /**
   * A Lease object this thread no longer owns (released, handed off or sent) to re-arm for the
   * new slot instead of allocating a new Lease: hot loops that pass it allocate nothing per
   * message. Any other reference to that object now refers to the new slot, so only pass leases
   * you are done with. `ERR_SABPOOL_LEASE_IN_USE` if it is still owned, or reserved: a call that
   * waits (`recv`, `recvSync`, `acquire`, `acquireSync`) reserves it until it settles.
   */
  reuse?: Lease
}

export interface WaitOptions {
  /** Milliseconds to wait at most; then the call fails with `ERR_SABPOOL_TIMEOUT`. Default: no limit. */
  timeout?: number
  /**
   * Aborts the wait with an {@link AbortError}. Anything with the shape of an AbortSignal (a boolean
   * `aborted`, `addEventListener` and `removeEventListener`) works; anything else is refused up
   * front with `ERR_INVALID_ARG_TYPE`.
   */
  signal?: AbortSignal
}

export interface BlockingWaitOptions {
  /** Milliseconds to wait at most; then the call throws `ERR_SABPOOL_TIMEOUT`. Default: no limit. */
  timeout?: number
  /**
   * How many times to poll shared memory before parking the thread. Polling keeps a handoff at
   * sub-microsecond latency while the other side is busy; parking costs a wake-up (tens of µs).
   * Default 4000 (about 35 µs on the machine it was measured on).
   */
  spin?: number
}

export interface PoolStats {
  slots: number
  /** Slots leased, handed off or queued right now. */
  inUse: number
  free: number
  /** Highest `inUse` seen. */
  highWater: number
  /** Successful acquires, summed over every thread. */
  acquired: number
  /** Releases, summed over every thread. */
  released: number
  /** Slots returned because the thread holding them went away (exit, crash, detach). */
  reclaimed: number
  /** Times a thread parked waiting for a free slot. */
  waits: number
  /** Threads waiting for a free slot right now. */
  waiting: number
}

/** A borrowed slot. Owned by the thread that holds it until released, handed off or sent. */
export declare class Lease {
  private constructor()
  /** Index of the slot in the pool. */
  readonly slot: number
  /** Moves on every time the slot is acquired or handed off; makes old tickets and leases stale. */
  readonly generation: number
  /**
   * The whole slot (`slotSize` bytes) as a view into the shared memory. Throws
   * `ERR_SABPOOL_STALE_LEASE` once the lease is no longer owned. Keep no copies of this view
   * past `release()`: the slot is then someone else's.
   */
  readonly bytes: Uint8Array
  /** Bytes in use, 0..slotSize; travels with `handoff()` and channel sends. */
  length: number
  /** True while this thread owns the slot. */
  readonly owned: boolean
  /** Returns the slot to the pool. Throws `ERR_SABPOOL_STALE_LEASE` if not owned. */
  release(): void
  /**
   * Gives up ownership and returns a ticket for another thread's `pool.adopt()`. Throws
   * `ERR_SABPOOL_STALE_LEASE` if not owned.
   */
  handoff(): Ticket
  /**
   * Writes `text` as UTF-8 at `offset` (default 0) straight into the slot (no intermediate
   * buffer) and sets `length` to where it ends; returns the bytes written. Lone surrogates are
   * written as U+FFFD. `ERR_SABPOOL_DOES_NOT_FIT` (RangeError with `needed` and `available`) if it
   * does not fit: then nothing changed.
   */
  writeString(text: string, offset?: number): number
  /** Decodes UTF-8 from `offset` (default 0), `length` bytes (default: up to `lease.length`); invalid bytes read as U+FFFD. */
  readString(offset?: number, length?: number): string
  /** Writes `JSON.stringify(value)` at offset 0 and sets `length`; returns the bytes written. `ERR_INVALID_ARG_TYPE` for what JSON cannot hold (BigInt, cycles, undefined). */
  writeJSON(value: unknown): number
  /** `JSON.parse` of the payload; `ERR_SABPOOL_BAD_PAYLOAD` if it is not JSON. */
  readJSON(): unknown
  /**
   * Writes `value` in the V8 serialization format (structured clone's: Map, Set, Date, BigInt,
   * typed arrays, -0, NaN, ...) at offset 0 and sets `length`; returns the bytes written. Node
   * serializes into a buffer of its own, copied into the slot once.
   */
  writeValue(value: unknown): number
  /** Deserializes the payload, reading it in place; `ERR_SABPOOL_BAD_PAYLOAD` if it is not a serialized value. */
  readValue(): unknown
  /**
   * A typed array (or DataView) over the slot from `byteOffset` (default 0), `length` elements
   * (bytes for a DataView; default: as many as fit). Slots start on 64-byte boundaries of the
   * pool's memory, so any offset that is a multiple of the element size is aligned; others throw
   * `ERR_SABPOOL_MISALIGNED`, and views past the slot `ERR_OUT_OF_RANGE`. Valid while the lease is owned.
   */
  view<T extends SlotView>(Ctor: SlotViewConstructor<T>, byteOffset?: number, length?: number): T
}

/** What `lease.view` makes: a typed array or a DataView. */
export type SlotView =
  | Int8Array | Uint8Array | Uint8ClampedArray | Int16Array | Uint16Array | Int32Array | Uint32Array
  | Float32Array | Float64Array | BigInt64Array | BigUint64Array | DataView

/** A typed array constructor, or DataView. */
export interface SlotViewConstructor<T extends SlotView> {
  new (buffer: ArrayBufferLike, byteOffset?: number, length?: number): T
  readonly prototype: T
}

/**
 * A preallocated pool of fixed-size slots: in one SharedArrayBuffer (`new SharedPool`, shared
 * between the threads of a process) or in a memory-mapped file (`SharedPool.create`, shared
 * between processes too).
 */
export declare class SharedPool {
  /**
   * Allocates `slots × slotSize` bytes of shared memory once.
   * @throws TypeError / RangeError naming the option when an option is invalid.
   */
  constructor(options: SharedPoolOptions)
  /**
   * Creates a pool in the memory-mapped file `<dir>/sabpool.<name>.pool` that other processes
   * open by name. A file of that name left by processes that are all gone is replaced.
   * @throws `ERR_SABPOOL_EXISTS` when a live pool or a foreign file has the name,
   *         `ERR_SABPOOL_BAD_NAME` (TypeError) for a bad name.
   */
  static create(options: SharedPoolCreateOptions): SharedPool
  /**
   * Opens a pool made with {@link SharedPool.create} (in any process), validating the file, and
   * reclaims the slots of participants whose process has died.
   * @throws `ERR_SABPOOL_NOT_FOUND`, `ERR_SABPOOL_BAD_HANDLE` for a file that is not a pool.
   */
  static open(name: string, options?: SharedPoolOpenOptions): SharedPool
  /**
   * Attaches to a pool created in another thread (or, for a file-backed pool's handle, opens it):
   * the same memory, no copy.
   * @throws `ERR_SABPOOL_BAD_HANDLE` when `handle` is not a valid pool handle.
   */
  static attach(handle: PoolHandle, options?: AttachOptions): SharedPool
  /** The name of a file-backed pool; undefined for an in-process pool. */
  readonly name: string | undefined
  /** Path of a file-backed pool's file; undefined for an in-process pool. */
  readonly path: string | undefined
  /**
   * Removes a file-backed pool's name; processes that have it open keep using it and the memory
   * is freed when the last one detaches. false if the name was gone or names another pool now.
   * @throws `ERR_SABPOOL_NOT_FILE` (TypeError) for an in-process pool.
   */
  unlink(): boolean
  /**
   * Returns the leased slots of participants whose process has died (killed, crashed, exited
   * without detaching). Opening the pool and a wait starved for a whole park slice do this too.
   */
  reclaimDead(): DeadReclaimed
  readonly slotSize: number
  readonly slots: number
  /** Random id of this pool; tickets carry it. */
  readonly id: number
  /** Pass this to workers (workerData or postMessage). */
  readonly handle: PoolHandle
  /** A free slot, or null when every slot is in use. Lock-free; never waits. */
  tryAcquire(options?: ReuseOptions): Lease | null
  /** Waits for a free slot without blocking the event loop. */
  acquire(options?: WaitOptions & ReuseOptions): Promise<Lease>
  /** Waits for a free slot, blocking the thread (meant for workers). */
  acquireSync(options?: BlockingWaitOptions & ReuseOptions): Lease
  /**
   * Takes ownership of a slot handed off by another thread.
   * @throws `ERR_SABPOOL_BAD_TICKET` for a malformed ticket or another pool's,
   *         `ERR_SABPOOL_STALE_LEASE` for a ticket already adopted or out of date.
   */
  adopt(ticket: Ticket): Lease
  /** Pool-wide counters, summed over every attached thread. Cheap enough to poll. */
  stats(): PoolStats
  /**
   * Detaches this thread now; every lease it still holds returns to the pool. Happens on its own
   * when the thread exits or this object is garbage-collected.
   */
  detach(): void
}

export interface ChannelOptions {
  /** Ring entries: a power of two from 2 to 2^24. */
  capacity: number
  /**
   * Default `spin` of this Channel object's blocking calls (see {@link BlockingWaitOptions.spin});
   * each thread's attachment has its own (`Channel.attach(handle, pool, { spin })`).
   */
  spin?: number
}

export interface ChannelCreateOptions extends ChannelOptions, CreateFileOptions {}

export interface ChannelOpenOptions extends FileOptions, ForeignOwnerOptions {
  /** As {@link ChannelOptions.spin}. */
  spin?: number
}

export interface ChannelStats {
  capacity: number
  /** Leases in the ring now (also counting, for a moment, a cell a late sender had to skip). */
  queued: number
  /** Leases sent, over every thread (ring positions filled, less the cells skipped). */
  sent: number
  /** Leases received, over every thread. */
  received: number
  /** Times a sender parked because the ring was full. */
  sendWaits: number
  /** Times a receiver parked because the ring was empty. */
  recvWaits: number
  /** Senders waiting for room right now, over every thread. */
  sendWaiting: number
  /** Receivers waiting for a lease right now, over every thread. */
  recvWaiting: number
  closed: boolean
}

/**
 * A bounded, lock-free, multi-producer multi-consumer ring of leases in shared memory: a sender
 * publishes a filled slot and a receiver takes it with atomics alone — no `postMessage`, no copy.
 * FIFO per producer.
 */
export declare class Channel implements AsyncIterable<Lease> {
  constructor(pool: SharedPool, options: ChannelOptions)
  /**
   * Creates a channel in the memory-mapped file `<dir>/sabpool.<name>.channel` for a file-backed
   * pool, so other processes can open it by name. A channel file of an earlier pool is replaced.
   * @throws `ERR_SABPOOL_NOT_FILE` (TypeError) when `pool` is not file-backed, `ERR_SABPOOL_EXISTS`.
   */
  static create(pool: SharedPool, options: ChannelCreateOptions): Channel
  /**
   * Opens a channel made with {@link Channel.create}; received leases belong to `pool`, which
   * must be the channel's pool.
   * @throws `ERR_SABPOOL_NOT_FOUND`, `ERR_SABPOOL_BAD_HANDLE` (not a channel, or another pool's).
   */
  static open(name: string, pool: SharedPool, options?: ChannelOpenOptions): Channel
  /**
   * Attaches to a channel created in another thread. Received leases belong to `pool` if given
   * (it must be the channel's pool), otherwise to a fresh attachment, `channel.pool`.
   */
  static attach(handle: ChannelHandle, pool?: SharedPool, options?: { spin?: number } & ForeignOwnerOptions): Channel
  /** The name of a file-backed channel; undefined for an in-process channel. */
  readonly name: string | undefined
  /** Path of a file-backed channel's file; undefined for an in-process channel. */
  readonly path: string | undefined
  /** Removes a file-backed channel's name (see {@link SharedPool.unlink}). */
  unlink(): boolean
  readonly pool: SharedPool
  readonly handle: ChannelHandle
  readonly closed: boolean
  /**
   * Sends without waiting. true: the lease now belongs to the channel. false: the ring is full
   * and the lease is still yours. `length` defaults to `lease.length`.
   * @throws `ERR_SABPOOL_CLOSED`, `ERR_SABPOOL_STALE_LEASE`.
   */
  trySend(lease: Lease, length?: number): boolean
  /** Sends, waiting while the ring is full, without blocking the event loop. */
  send(lease: Lease, length?: number, options?: WaitOptions): Promise<void>
  /** Sends, blocking the thread while the ring is full (meant for workers). */
  sendSync(lease: Lease, length?: number, options?: BlockingWaitOptions): void
  /** A queued lease, now owned by this thread, or null (empty, or closed and drained). */
  tryRecv(options?: ReuseOptions): Lease | null
  /**
   * Waits for a lease without blocking the event loop; null once the channel is closed and
   * drained. Keeps the process alive while pending.
   */
  recv(options?: WaitOptions & ReuseOptions): Promise<Lease | null>
  /** Waits for a lease, blocking the thread (meant for workers); null once closed and drained. */
  recvSync(options?: BlockingWaitOptions & ReuseOptions): Lease | null
  /** Sends as many leases as fit, in order, with one wake-up; returns how many were sent. */
  sendMany(leases: Lease[]): number
  /** Up to `max` queued leases with one wake-up; null once closed and drained. */
  recvMany(max: number): Lease[] | null
  /** Receives until the channel is closed and drained. */
  [Symbol.asyncIterator](): AsyncIterator<Lease>
  /**
   * Closes the channel for every thread: sends fail with `ERR_SABPOOL_CLOSED`, waiting senders
   * are woken with that error, receivers drain what is queued and then get null. Returns false
   * if it was already closed.
   */
  close(): boolean
  stats(): ChannelStats
  /** Detaches this thread from the channel (its pool stays attached). */
  detach(): void
}

/** What a service handler returns: a length (the request slot is the reply, with that many bytes), undefined (the request as it is) or another Lease this thread owns (the request slot then goes back to the pool). */
export type ServiceReply = number | undefined | void | Lease

export interface ServiceOptions {
  /** How many requests may wait to be served: a power of two, 2 to 2^24. `call` waits while they are all taken. */
  capacity: number
}

export interface ServiceCreateOptions extends ServiceOptions, CreateFileOptions {}

export interface ServiceOpenOptions extends FileOptions, ForeignOwnerOptions {}

export type ServiceHandle =
  | { readonly kind: 'sabpool.service'; readonly version: number; readonly table: SharedArrayBuffer; readonly requests: ChannelHandle; readonly ports: readonly ChannelHandle[] }
  | { readonly kind: 'sabpool.service'; readonly version: number; readonly name: string; readonly dir: string; readonly pool: PoolHandle }

export interface ServeOptions {
  /** How many requests the async handler works on at a time (default 1). */
  concurrency?: number
}

/** Counters of the whole service, over every thread and process using it. */
export interface ServiceStats {
  /** Requests sent by `call`/`callSync`. */
  calls: number
  /** Sent, not answered yet and not given up. */
  inFlight: number
  replies: number
  /** Calls answered with their handler's error. */
  errors: number
  /** Calls given up after their request was sent: their replies are returned to the pool when they come. */
  timeouts: number
  aborts: number
  /** Calls whose request ended without a reply (`ERR_SABPOOL_NO_REPLY`: the server died). */
  lost: number
  /** Replies that came after their call gave up (returned to the pool). */
  late: number
  /** Leases found in the request channel that no call sent (returned to the pool). */
  stray: number
  /** Serve loops running in live threads and processes. */
  servers: number
}

/**
 * Request/response over a pool: `call` sends a request lease to whichever server takes it first
 * and resolves with the reply lease (now yours), or rejects with the handler's error. Any number of
 * threads call and serve; each call gets its own reply. Requests, replies and the bookkeeping are
 * in shared memory; a server that dies makes the calls it had taken reject with
 * `ERR_SABPOOL_NO_REPLY`, and its slots go back to the pool.
 */
export declare class Service {
  /** A service for an in-process pool; share `service.handle` with the threads that call or serve. */
  constructor(pool: SharedPool, options: ServiceOptions)
  /** A service for a file-backed pool (`SharedPool.create`), in files next to it, for other processes. */
  static create(pool: SharedPool, options: ServiceCreateOptions): Service
  /** Opens a service another process made with `Service.create`, for the same pool opened there. */
  static open(name: string, pool: SharedPool, options?: ServiceOpenOptions): Service
  /** Attaches to a service made in another thread; `pool` is the service's pool attached in this thread. */
  static attach(handle: ServiceHandle, pool: SharedPool, options?: ForeignOwnerOptions): Service
  readonly handle: ServiceHandle
  readonly pool: SharedPool
  readonly closed: boolean
  /**
   * Sends `lease` (its first `length` bytes, default `lease.length`) as a request; resolves with
   * the reply lease. Waits while the request ring is full. Rejects with the handler's error (the
   * request slot went back to the pool), `ERR_SABPOOL_TIMEOUT`, `ABORT_ERR` (a reply that comes
   * later is returned to the pool), `ERR_SABPOOL_CLOSED`, or `ERR_SABPOOL_NO_REPLY`. If it fails
   * before the request was sent (closed, full until the timeout, aborted), the lease is still yours.
   */
  call(lease: Lease, length?: number, options?: WaitOptions): Promise<Lease>
  /** `call`, blocking this thread (meant for workers). */
  callSync(lease: Lease, length?: number, options?: { timeout?: number }): Lease
  /** Serves on this thread, blocking it, until the service is closed and drained; returns how many requests it served. */
  serveSync(handler: (request: Lease) => ServiceReply): number
  /** Serves in the event loop; resolves with how many requests it served once the service is closed and drained. */
  serve(handler: (request: Lease) => ServiceReply | Promise<ServiceReply>, options?: ServeOptions): Promise<number>
  /**
   * Closes the service everywhere: new calls reject with `ERR_SABPOOL_CLOSED` (the lease stays the
   * caller's); queued requests are still served, then serve loops return. With no server
   * attached, the queued requests are answered with `ERR_SABPOOL_CLOSED`. False if already closed.
   */
  close(): boolean
  stats(): ServiceStats
  /** Removes the service's files (file-backed only). */
  unlink(): boolean
}

export interface TopicOptions {
  /** Unread samples each subscription may have queued, 1 to 65536. */
  capacity: number
  /** Subscriptions that may be live at once, 1 to 31 (default 8). */
  maxSubscribers?: number
  /** How many of the newest samples the topic keeps for a subscription that joins later, 0 to `capacity` (default 0). */
  history?: number
  /**
   * What a publish does when a subscription has `capacity` unread samples: `'block'` (default)
   * waits for it (`tryPublish` returns false); `'drop-oldest'` drops that subscription's oldest
   * unread sample (its reference is released, counted in `dropped`).
   */
  onFull?: 'block' | 'drop-oldest'
  /**
   * Debug aid: the publisher checksums each sample, and each subscriber's `release()` checks it,
   * throwing `ERR_SABPOOL_SAMPLE_WRITTEN` if the bytes changed (costs a pass over the bytes per
   * publish and per release).
   */
  checkWrites?: boolean
}

export interface TopicCreateOptions extends TopicOptions, CreateFileOptions {}

export interface TopicOpenOptions extends FileOptions, ForeignOwnerOptions {}

export type TopicHandle =
  | { readonly kind: 'sabpool.topic'; readonly version: number; readonly table: SharedArrayBuffer; readonly pool: PoolHandle }
  | { readonly kind: 'sabpool.topic'; readonly version: number; readonly name: string; readonly dir: string; readonly pool: PoolHandle }

export interface SubscriptionStats {
  /** Samples queued for the subscription and not read yet. */
  lag: number
  /** Samples it took. */
  delivered: number
  /** Samples dropped for it (`onFull: 'drop-oldest'`). */
  dropped: number
}

/** Counters of the whole topic, over every thread and process using it. */
export interface TopicStats {
  /** Live subscriptions. */
  subscribers: number
  published: number
  /** Samples taken by subscribers (each subscriber's take counts once). */
  delivered: number
  dropped: number
  /** Ring entries that did not hold what a publisher writes (only a scribble makes them). */
  stray: number
  /** One entry per live subscription. */
  subscriptions: SubscriptionStats[]
}

/**
 * One published sample as a subscriber sees it. `bytes` is the slot's memory, shared with every
 * other subscriber of the sample: read it, never write it. `release()` when done; the slot goes
 * back to the pool after the last subscriber's release.
 */
declare class Sample {
  private constructor()
  /** The slot (`slotSize` bytes; the sample is the first `length`). Read only. */
  readonly bytes: Uint8Array
  readonly length: number
  /** Position of the sample in the topic (30 bits, wrapping): consecutive samples differ by one. */
  readonly seq: number
  readonly slot: number
  readonly released: boolean
  /** As `lease.readString`. */
  readString(offset?: number, length?: number): string
  /** As `lease.readJSON`. */
  readJSON(): unknown
  /** As `lease.readValue`. */
  readValue(): unknown
  /** As `lease.view`; shared with the other subscribers: read only. */
  view<T extends SlotView>(Ctor: SlotViewConstructor<T>, byteOffset?: number, length?: number): T
  /** Lets go of the sample. `ERR_SABPOOL_STALE_LEASE` on a second release; `ERR_SABPOOL_SAMPLE_WRITTEN` (after releasing) with `checkWrites` if its bytes changed. */
  release(): void
}

/** A subscriber's queue of samples: every sample published after `subscribe()` (plus the history), in order. */
declare class Subscription {
  private constructor()
  /** False once unsubscribed (or retired). */
  readonly active: boolean
  /** The next queued sample, or null if there is none now. */
  tryRecv(): Sample | null
  /** Waits for the next sample, blocking this thread; null once the topic is closed and this subscription drained, or after `unsubscribe()`. */
  recvSync(options?: BlockingWaitOptions): Sample | null
  /** Waits for the next sample without blocking the event loop; null once closed and drained, or after `unsubscribe()`. */
  recv(options?: WaitOptions): Promise<Sample | null>
  [Symbol.asyncIterator](): AsyncIterator<Sample>
  /** Ends the subscription: queued and held samples are let go (held Sample objects go stale). False if it had ended. */
  unsubscribe(): boolean
  stats(): SubscriptionStats & { active: boolean }
}

/** Types only: samples and subscriptions are made by a Topic, never constructed. */
export type { Sample, Subscription }

/**
 * Publish/subscribe over a pool: a published slot is read in place by every subscription live
 * when it was published, and goes back to the pool after the last of them releases it. A
 * subscriber that dies (thread exit, `terminate()`, a killed process) is retired: its references
 * are dropped, and it never wedges a blocking publisher.
 */
export declare class Topic {
  /** A topic for an in-process pool; share `topic.handle` with the threads that publish or subscribe. */
  constructor(pool: SharedPool, options: TopicOptions)
  /** A topic for a file-backed pool (`SharedPool.create`), in a table file next to it, for other processes. */
  static create(pool: SharedPool, options: TopicCreateOptions): Topic
  /** Opens a topic another process made with `Topic.create`, for the same pool opened there. */
  static open(name: string, pool: SharedPool, options?: TopicOpenOptions): Topic
  /** Attaches to a topic made in another thread; `pool` is its pool attached in this thread (attached from the handle when omitted). */
  static attach(handle: TopicHandle, pool?: SharedPool, options?: ForeignOwnerOptions): Topic
  readonly handle: TopicHandle
  readonly pool: SharedPool
  readonly closed: boolean
  readonly options: Required<TopicOptions>
  /** A new subscription in this thread. `ERR_SABPOOL_TOO_MANY_SUBSCRIBERS` when `maxSubscribers` are live; `ERR_SABPOOL_CLOSED` once closed. */
  subscribe(): Subscription
  /** Publishes the lease's first `length` bytes (default `lease.length`) to every subscription; resolves with how many it reached. Waits while one is full (`'block'`). On a rejection the lease is still yours. */
  publish(lease: Lease, length?: number, options?: WaitOptions): Promise<number>
  /** `publish`, blocking this thread. */
  publishSync(lease: Lease, length?: number, options?: { timeout?: number }): number
  /** Publishes without waiting; false (the lease still yours) if a subscription is full (`'block'`). */
  tryPublish(lease: Lease, length?: number): boolean
  /** Closes the topic everywhere: publishes throw `ERR_SABPOOL_CLOSED`, subscribers drain and then get null; the history is let go. False if already closed. */
  close(): boolean
  stats(): TopicStats
  /** Removes the topic's file (file-backed only). */
  unlink(): boolean
}
