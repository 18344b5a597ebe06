// Types of the ES module entry point (index.mjs): the same declarations as index.d.ts.
import { SharedPool, Channel, Service, Topic, Lease, AbortError } from './index.js'

export * from './index.js'

declare const sabpool: {
  SharedPool: typeof SharedPool
  Channel: typeof Channel
  Service: typeof Service
  Topic: typeof Topic
  Lease: typeof Lease
  AbortError: typeof AbortError
}
export default sabpool
