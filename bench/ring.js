'use strict'
// The floor: what an expert writes by hand with a SharedArrayBuffer and Atomics, no library.
//
// A single-producer single-consumer ring of int32 values (slot indices). The head (consumer) and
// tail (producer) positions sit on separate 64-byte cache lines, as do the two "someone is parked"
// flags, so the two threads only share the lines they must. A blocked side spins `spin` polls of
// the other side's position (the same default budget as sabpool's, 2000), then sets its flag and
// parks in Atomics.wait; the other side calls Atomics.notify only when it sees that flag set.
// Positions are free-running int32 counters (wrap-around safe: only differences are used).

const HEAD = 0 // consumer position            (bytes   0..63)
const TAIL = 16 // producer position           (bytes  64..127)
const RECV_PARKED = 32 // consumer parked flag (bytes 128..191)
const SEND_PARKED = 48 // producer parked flag (bytes 192..255)
const CELLS = 64 // cells start at byte 256

const DEFAULT_SPIN = 2000

class Ring {
  static byteLength(capacity) {
    return (CELLS + capacity) * 4
  }

  /** `capacity` must be a power of two; both threads construct a Ring over the same buffer. */
  constructor(buffer, capacity, spin = DEFAULT_SPIN) {
    if ((capacity & (capacity - 1)) !== 0) throw new RangeError('ring capacity must be a power of two')
    this.i32 = new Int32Array(buffer)
    this.capacity = capacity
    this.mask = capacity - 1
    this.spin = spin
  }

  /** Producer: appends `value`, waiting while the ring is full. */
  push(value) {
    const i32 = this.i32
    const tail = i32[TAIL] // only this thread writes it
    if (((tail - Atomics.load(i32, HEAD)) | 0) === this.capacity) this.#waitNotFull(tail)
    i32[CELLS + (tail & this.mask)] = value
    Atomics.store(i32, TAIL, (tail + 1) | 0)
    if (Atomics.load(i32, RECV_PARKED) !== 0) Atomics.notify(i32, TAIL, 1)
  }

  /** Consumer: removes and returns the oldest value, waiting while the ring is empty. */
  pop() {
    const i32 = this.i32
    const head = i32[HEAD] // only this thread writes it
    if (Atomics.load(i32, TAIL) === head) this.#waitNotEmpty(head)
    const value = i32[CELLS + (head & this.mask)]
    Atomics.store(i32, HEAD, (head + 1) | 0)
    if (Atomics.load(i32, SEND_PARKED) !== 0) Atomics.notify(i32, HEAD, 1)
    return value
  }

  #waitNotEmpty(head) {
    const i32 = this.i32
    for (let i = 0; i < this.spin; i++) if (Atomics.load(i32, TAIL) !== head) return
    // Dekker-style handshake: flag first, then re-check; the producer stores the tail first, then
    // reads the flag. Both are sequentially consistent, so one of them sees the other.
    Atomics.store(i32, RECV_PARKED, 1)
    while (Atomics.load(i32, TAIL) === head) Atomics.wait(i32, TAIL, head)
    Atomics.store(i32, RECV_PARKED, 0)
  }

  #waitNotFull(tail) {
    const i32 = this.i32
    const full = (tail - this.capacity) | 0 // head value that means "full"
    for (let i = 0; i < this.spin; i++) if (Atomics.load(i32, HEAD) !== full) return
    Atomics.store(i32, SEND_PARKED, 1)
    let head
    while ((head = Atomics.load(i32, HEAD)) === full) Atomics.wait(i32, HEAD, head)
    Atomics.store(i32, SEND_PARKED, 0)
  }
}

module.exports = { Ring, DEFAULT_SPIN }
