/**
 * `sabpool/piscina`: piscina tasks that carry a {@link Lease} instead of a buffer. The main side
 * ({@link runLease}) hands the slot off and posts only its ticket through `piscina.run`; the
 * worker side ({@link leaseTask}) adopts it, runs your function on it and hands the reply slot
 * back. Every failure returns the slots to the pool. piscina itself is not required by these
 * types or by the code: pass your `Piscina` instance.
 *
 * @packageDocumentation
 */

import type { Lease, SharedPool, Ticket } from './index'

/** What runLease needs of a piscina instance (`new Piscina(...)`): its `run()`. */
export interface PiscinaLike {
  run(task: unknown, options?: object): Promise<unknown>
}

export interface RunLeaseOptions<Task = unknown> {
  /** Passed to the worker function as its second argument (structured-cloned by piscina). */
  task?: Task
  /** Bytes of the slot in use, 0..slotSize, set on the lease before it goes. Default: `lease.length`. */
  length?: number
  /**
   * Aborts the run (piscina's own abort: a queued task is dropped, a running one has its worker
   * thread terminated); the run rejects with piscina's `AbortError`, and the slots come back.
   */
  signal?: AbortSignal | null
  /** The export of the worker file to run (piscina's `name`). */
  name?: string | null
  /** Another worker file (piscina's `filename`). */
  filename?: string | null
  /** Objects to transfer with the task (piscina's `transferList`). */
  transferList?: readonly unknown[]
}

/**
 * Runs a piscina task on `lease`'s slot and resolves with the reply: a Lease this thread owns
 * (the same slot, or another one of the pool). `lease` is handed off: it is no longer yours,
 * whatever the outcome. Rejects with the task's error (its `code` kept, which piscina's structured
 * clone would drop), with `ERR_SABPOOL_BAD_REPLY` for a result that is no reply, or with
 * piscina's own errors (abort, destroy, a thread that exited); the run's slots go back to the
 * pool, those a terminated or exited worker thread held once that thread is gone. Bad arguments
 * reject with `ERR_INVALID_ARG_TYPE`, `ERR_SABPOOL_BAD_LENGTH`, `ERR_SABPOOL_BAD_TICKET` (a lease
 * of another pool) or `ERR_SABPOOL_STALE_LEASE` (a lease not owned), and leave the lease as it was.
 */
export declare function runLease<Task = unknown>(
  piscina: PiscinaLike,
  pool: SharedPool,
  lease: Lease,
  options?: RunLeaseOptions<Task>,
): Promise<Lease>

/**
 * What a leaseTask function returns (or resolves to): a length (the reply is the request slot
 * with that length), undefined (the request slot as it is) or another Lease of the pool that
 * this thread owns (the request slot is then released).
 */
export type LeaseTaskReply = number | undefined | void | Lease

/** The function a piscina worker file wraps with {@link leaseTask}. */
export type LeaseTaskFunction<Task = unknown> = (lease: Lease, task: Task) => LeaseTaskReply | PromiseLike<LeaseTaskReply>

/**
 * Wraps `fn` into a piscina task function (export it from the worker file) for the tasks
 * {@link runLease} posts: adopts each request slot from `pool` (attach it once per thread, at
 * module level), calls `fn(lease, task)` and hands the reply back as a ticket. A throw or
 * rejection releases the request lease, if still owned, and fails the run with that error; a
 * value that is no reply releases the slots and fails it with `ERR_SABPOOL_BAD_REPLY`. Throws
 * `ERR_INVALID_ARG_TYPE` for a `pool` that is not a SharedPool or an `fn` that is not a function.
 */
export declare function leaseTask<Task = unknown>(
  pool: SharedPool,
  fn: LeaseTaskFunction<Task>,
): (message: unknown) => Ticket | Promise<Ticket>
