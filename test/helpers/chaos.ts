// Small helpers for the chaos integration tests (not a test file itself).
import { readdirSync, readFileSync } from 'node:fs'

/** A random 127.x.y.2 to start the node address scan at, so parallel files do not meet. */
export function randomBaseAddress (): string {
  return `127.${100 + Math.floor(Math.random() * 100)}.${Math.floor(Math.random() * 256)}.2`
}

export function alive (pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch {
    return false
  }
  // A zombie (exited, not yet reaped) is not running.
  try { return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8')) } catch { return true }
}

/** Process ids whose parent is `ppid` (Linux /proc). */
export function childrenOf (ppid: number): number[] {
  const out: number[] = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
      // pid (comm) state ppid ...: comm may contain spaces, so split after the last ')'.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      if (Number(fields[1]) === ppid) out.push(Number(entry))
    } catch { /* gone meanwhile */ }
  }
  return out
}
