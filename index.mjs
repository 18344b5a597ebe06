// ES module entry point of sabpool: the same objects as the CommonJS entry (index.js), so a
// program that mixes `import` and `require` sees one SharedPool class, not two.
import sabpool from './index.js'

export const { SharedPool, Channel, Service, Topic, Lease, AbortError } = sabpool

export default { SharedPool, Channel, Service, Topic, Lease, AbortError }
