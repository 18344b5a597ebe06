'use strict'
// The cross-process floor for "copy the bytes through the kernel": no serialization, no IPC
// framework. An extra stdio 'pipe' of the forked child (a Unix socket pair) carries frames of a
// 4-byte little-endian length and the payload bytes. The child blocks in read(2)/write(2)
// (fs.readSync/fs.writeSync on its blocking end, fd 4) into one preallocated buffer, touches the
// frame and writes it back (echo) or writes a 4-byte ack (streaming). The bench process writes
// with socket.write() and receives in its event loop ('data' chunks of up to 64 KiB, copied into
// one preallocated frame buffer unless a frame arrives in a single chunk), as any Node program
// reading a socket does. A frame of length 0 ends a child phase.

const fs = require('node:fs')
const { stampBytes, readBytes, check } = require('../payload.js')

const FD = 4 // stdio: ['ignore', 'ignore', 'inherit', 'ipc', 'pipe']
const HEADER = 4

function frame(size) {
  const b = Buffer.alloc(HEADER + size)
  b.writeUInt32LE(size, 0)
  return b
}

/** Parent side: a chunk of the child's output. */
function onData(st, chunk) {
  if (st.mode === 'sink') {
    st.ackBytes += chunk.length
    while (st.ackBytes >= HEADER) {
      st.ackBytes -= HEADER
      st.onAck()
    }
    return
  }
  const need = HEADER + st.size
  let f
  if (st.filled === 0 && chunk.length === need) {
    f = chunk // the whole frame in one read: no copy
  } else {
    if (st.filled + chunk.length > need) throw new Error(`bench bug: ${st.filled + chunk.length} bytes for a ${need}-byte frame`)
    chunk.copy(st.recv, st.filled)
    st.filled += chunk.length
    if (st.filled < need) return
    st.filled = 0
    f = st.recv
  }
  const payload = f.subarray(HEADER)
  if (f.readUInt32LE(0) !== st.size || readBytes(payload, st.size) !== st.tag) st.mismatches++
  st.onReply()
}

/** Child side: reads one frame into w.buf; returns its payload length (0: end of phase). */
function readFrame(w) {
  const buf = w.buf
  const need = buf.length
  let filled = 0
  while (filled < need) {
    const n = fs.readSync(FD, buf, filled, need - filled)
    if (n === 0) throw new Error('the bench process closed the pipe')
    filled += n
    if (filled >= HEADER && buf.readUInt32LE(0) === 0) return 0
  }
  const length = buf.readUInt32LE(0)
  if (length !== w.size) throw new Error(`bad frame length ${length}`)
  return length
}

function writeAll(buf, length) {
  let done = 0
  while (done < length) done += fs.writeSync(FD, buf, done, length - done)
}

module.exports = {
  id: 'proc-pipe',
  label: 'raw socket pair (extra stdio pipe), length-prefixed frames echoed (floor)',
  short: 'raw socket pair (floor)',
  group: 'process',
  sync: false,
  processes: true,
  serialization: 'json', // only the control messages use the IPC channel
  pipe: true, // the child gets an extra stdio 'pipe' as fd 4

  setup(size, window, port) {
    const socket = port.socket
    const frames = []
    for (let i = 0; i < window; i++) frames.push(frame(size))
    const st = {
      socket,
      size,
      window,
      frames,
      payloads: frames.map((f) => f.subarray(HEADER)),
      recv: Buffer.alloc(HEADER + size),
      filled: 0,
      ackBytes: 0,
      next: 0,
      seq: 0,
      tag: 0,
      mode: 'echo',
      mismatches: 0,
      onReply: null,
      onAck: null,
      listener: null,
    }
    st.listener = (chunk) => onData(st, chunk)
    socket.on('data', st.listener)
    port.defer(() => socket.off('data', st.listener))
    return { st, init: { size } }
  },
  beginPhase(st, mode) {
    st.mode = mode
    st.seq = 0
    st.filled = 0
    st.ackBytes = 0
  },
  prepare(st) {
    st.tag = st.seq
    st.seq = (st.seq + 1) & 255
    stampBytes(st.payloads[0], st.size, st.tag)
  },
  send(st) {
    st.socket.write(st.frames[0])
  },
  onMessage() {
    throw new Error('bench bug: the raw pipe mechanism got an IPC message')
  },
  streamSend(st) {
    // At most `window` frames are unacknowledged, and a frame is acknowledged after the child
    // read all of it: the frame written `window` sends ago is free again.
    const i = st.next
    st.next = (i + 1) % st.window
    stampBytes(st.payloads[i], st.size, st.seq)
    st.seq = (st.seq + 1) & 255
    st.socket.write(st.frames[i])
  },
  endPhase(st) {
    const end = Buffer.alloc(HEADER) // length 0
    st.socket.write(end)
  },
  teardown(st) {
    st.socket.off('data', st.listener)
    st.frames.length = 0
    st.payloads.length = 0
  },

  // Runs in the child process (bench/proc-child.js): a blocking loop per phase.
  worker: {
    setup(init) {
      return { size: init.size, buf: Buffer.alloc(HEADER + init.size), ack: Buffer.alloc(HEADER), mode: 'echo', expect: 0, mismatches: 0 }
    },
    run(w) {
      const echo = w.mode === 'echo'
      const payload = w.buf.subarray(HEADER)
      for (;;) {
        const length = readFrame(w)
        if (length === 0) return
        check(w, readBytes(payload, length))
        if (echo) writeAll(w.buf, HEADER + length)
        else writeAll(w.ack, HEADER)
      }
    },
    teardown(w) {
      w.buf = null
    },
  },
}
