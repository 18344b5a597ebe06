'use strict'
// One analysis of every frame, read in place from the published slot.
const { parentPort, workerData } = require('node:worker_threads')
const { Topic } = require('../..')
const { reference } = require('./main.js')

const topic = Topic.attach(workerData.topic) // attaches the topic's pool too
const sub = topic.subscribe()
parentPort.postMessage({ type: 'subscribed' })
const analyse = reference[workerData.analysis]

let frame = 0
for (let sample = sub.recvSync(); sample !== null; sample = sub.recvSync()) {
  // sample.bytes is shared with the other workers: read it, never write it.
  const value = analyse(sample.bytes, sample.length, workerData.width)
  sample.release()
  parentPort.postMessage({ type: 'result', frame: frame++, value })
}
parentPort.postMessage({ type: 'done' })
