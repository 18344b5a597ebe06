'use strict'
// Order statistics over samples. Percentiles use linear interpolation between closest ranks
// (the same definition as numpy's default), so p50 of an even count is the mean of the middle two.

/** Percentile `p` (0..100) of an already sorted array. */
function percentileSorted(sorted, p) {
  const n = sorted.length
  if (n === 0) return NaN
  if (n === 1) return sorted[0]
  const rank = (p / 100) * (n - 1)
  const lo = Math.floor(rank)
  const hi = Math.ceil(rank)
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo)
}

/**
 * Summary of samples, each multiplied by `scale` (e.g. ms → ns with 1e6).
 * Returns { n, min, p10, p50, p90, p99, max, mean }.
 */
function summarize(samples, scale = 1) {
  const sorted = Float64Array.from(samples, (x) => x * scale).sort()
  let sum = 0
  for (const x of sorted) sum += x
  return {
    n: sorted.length,
    min: sorted.length ? sorted[0] : NaN,
    p10: percentileSorted(sorted, 10),
    p50: percentileSorted(sorted, 50),
    p90: percentileSorted(sorted, 90),
    p99: percentileSorted(sorted, 99),
    max: sorted.length ? sorted[sorted.length - 1] : NaN,
    mean: sorted.length ? sum / sorted.length : NaN,
  }
}

function median(values) {
  return percentileSorted(Float64Array.from(values).sort(), 50)
}

function clamp(x, lo, hi) {
  return Math.max(lo, Math.min(hi, x))
}

module.exports = { percentileSorted, summarize, median, clamp }
