// The load generator's public surface: `broker-ha bench` and the bench suite use these.
export { runBench, type BenchResult, type BenchProgress } from './run.js'
export { parseDuration, parseCount, PATTERNS, type BenchOptions, type Pattern } from './plan.js'
export { formatTable, jsonReport, progressLine } from './report.js'
