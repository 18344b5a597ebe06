'use strict'

// Region backends: where a pool's or channel's shared memory lives, chosen once when the object is
// made. Both have the same small interface:
//
//   buffer                 the memory (SharedArrayBuffer or mapped file) as an ArrayBuffer-like
//   isFile                 true for a mapped file (other processes can reach it)
//   name                   the name a file region was created or opened with; undefined in-process
//   handle(kind, pool)     the frozen, structured-cloneable handle (`pool`: a channel's pool handle)
//   waitSite(spec)         where a kind of wait parks (see lib/wait.js for `spec`)
//   path(ref)              path of the region file; undefined in-process
//   unlink(ref)            removes the file's name; ERR_SABPOOL_NOT_FILE in-process
//   detachAtExit(attachment)  file regions: detach on process 'exit'; in-process: nothing to do
//
// MemoryRegion is a SharedArrayBuffer, shared by the threads it is posted to; waits park with JS
// Atomics. FileRegion is a memory-mapped file, shared with other processes; waits park on futexes,
// natively (V8's own wait list cannot reach another process).

const { binding, LAYOUT_VERSION } = require('./native.js')
const { makeError, reclass } = require('./errors.js')
const { WaitSite, FileWaitSite } = require('./wait.js')

/** Runs a native call that is not on a hot path; its error gets the class of its code. */
function nativeCall(call) {
  try {
    return call()
  } catch (error) {
    throw reclass(error)
  }
}

/** How to make each kind of object in a file, for the not-a-file message. */
const CREATE_IN_FILE = { pool: 'SharedPool.create', channel: 'Channel.create' }

class MemoryRegion {
  /** `what`: 'pool' or 'channel'. */
  constructor(buffer, what) {
    this.buffer = buffer
    this.what = what
  }

  get isFile() {
    return false
  }

  get name() {
    return undefined
  }

  handle(kind, pool) {
    return Object.freeze(pool === undefined
      ? { kind, version: LAYOUT_VERSION, buffer: this.buffer }
      : { kind, version: LAYOUT_VERSION, buffer: this.buffer, pool })
  }

  waitSite(spec) {
    return new WaitSite(spec)
  }

  path(_ref) {
    return undefined
  }

  unlink(_ref) {
    throw makeError('ERR_SABPOOL_NOT_FILE',
      `unlink: this ${this.what} is not backed by a file (create it with ${CREATE_IN_FILE[this.what]})`)
  }

  detachAtExit(_attachment) {}
}

class FileRegion {
  /** The file `<dir>/sabpool.<name>.<kind>` that `attachment` (a native attachment) has mapped. */
  constructor(attachment, name, dir) {
    this.buffer = nativeCall(() => binding.regionBuffer(attachment.id))
    this.name = name
    this.dir = dir
  }

  get isFile() {
    return true
  }

  handle(kind, pool) {
    return Object.freeze(pool === undefined
      ? { kind, version: LAYOUT_VERSION, name: this.name, dir: this.dir }
      : { kind, version: LAYOUT_VERSION, name: this.name, dir: this.dir, pool })
  }

  waitSite(spec) {
    return new FileWaitSite(spec)
  }

  path(ref) {
    return nativeCall(() => binding.regionPath(ref))
  }

  unlink(ref) {
    return nativeCall(() => binding.regionUnlink(ref))
  }

  /**
   * `process.exit()` and uncaught exceptions end a process without running the addon's
   * environment cleanup, so file attachments are detached on 'exit' here: other processes get
   * their slots back at once instead of at the next dead-process check.
   */
  detachAtExit(attachment) {
    if (!exitHooked) {
      exitHooked = true
      process.once('exit', () => {
        for (const ref of fileAttachments) ref.deref()?.detach()
        fileAttachments.clear()
      })
    }
    // A process that opens pools again and again must not accumulate references: drop those whose
    // attachment was collected whenever the set has doubled since the last time.
    if (fileAttachments.size >= 2 * Math.max(fileAttachmentsKept, 16)) {
      for (const ref of fileAttachments) if (ref.deref() === undefined) fileAttachments.delete(ref)
      fileAttachmentsKept = fileAttachments.size
    }
    fileAttachments.add(new WeakRef(attachment))
  }
}

/** File attachments of this thread to detach on 'exit' (weakly held). */
const fileAttachments = new Set()
/** Size of `fileAttachments` after it was last cleared of collected attachments. */
let fileAttachmentsKept = 0
let exitHooked = false

module.exports = { MemoryRegion, FileRegion, nativeCall }
