// One node per storage.dir. LMDB lets several processes open one store, so
// two nodes pointed at the same directory (a volume shared by two
// containers, `broker-ha serve` started twice in one folder) would both
// take every session on it for their own, and --reset-storage would move a
// live node's store aside. So the node holds `broker-ha.lock` in the
// directory for as long as it runs: who holds it (pid, host, node name,
// since when, a random token), touched every BEAT_MS.
//
// A lock left by a process that is gone must not keep its node down (a
// SIGKILL, an OOM kill, a pod rescheduled with its volume). It is stale
// when its holder was on this host and its pid is gone or is ours (a
// container's pid 1 after a restart), or when it was not touched for
// STALE_MS (a holder on another host that died). A live holder on this host
// is refused at once; one on another host that touched it lately is waited
// for, STALE_MS at most, then refused.
import { randomUUID } from 'node:crypto'
import { mkdirSync, openSync, closeSync, readFileSync, renameSync, statSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { BrokerHaError } from '../../errors.js'

export const LOCK_FILE = 'broker-ha.lock'
const BEAT_MS = 2000
const STALE_MS = 10_000

interface Holder { pid: number, host: string, node: string, since: string, token: string }

export interface DirLockOptions {
  dir: string
  node: string
  /** Called when the lock file is found taken over by another process while held (logged by the caller). */
  lost?: (by: string) => void
}

export class DirLock {
  private readonly path: string
  private readonly me: Holder
  private timer: NodeJS.Timeout | undefined
  private readonly lost: ((by: string) => void) | undefined

  private constructor (path: string, me: Holder, lost: ((by: string) => void) | undefined) {
    this.path = path
    this.me = me
    this.lost = lost
  }

  /** Takes the directory's lock (waiting out a holder on another host, STALE_MS at most); throws STORAGE_IN_USE when it is held. */
  static async acquire (options: DirLockOptions): Promise<DirLock> {
    try {
      mkdirSync(options.dir, { recursive: true })
    } catch (err) {
      throw new BrokerHaError('STORAGE_CORRUPT', `storage.dir ${options.dir} cannot be created: ${(err as Error).message}`, { key: 'storage.dir', cause: err })
    }
    const path = join(options.dir, LOCK_FILE)
    const me: Holder = { pid: process.pid, host: hostname(), node: options.node, since: new Date().toISOString(), token: randomUUID() }
    const deadline = Date.now() + STALE_MS + BEAT_MS
    for (;;) {
      if (createExclusive(path, me)) break
      const held = readHolder(path)
      if (held === undefined || isStale(path, held)) {
        // Taken over whole (write then rename), then checked: of two nodes doing this at once, one stays.
        const tmp = `${path}.${me.token}`
        writeFileSync(tmp, JSON.stringify(me))
        renameSync(tmp, path)
        if (readHolder(path)?.token === me.token) break
        continue
      }
      if (held.host === me.host || Date.now() >= deadline) throw inUse(options.dir, held)
      await sleep(500)
    }
    const lock = new DirLock(path, me, options.lost)
    lock.timer = setInterval(() => lock.beat(), BEAT_MS)
    lock.timer.unref()
    return lock
  }

  /** Touches the lock; reports once if another process took it over. */
  private beat (): void {
    const held = readHolder(this.path)
    if (held?.token !== this.me.token) {
      clearInterval(this.timer)
      this.lost?.(held === undefined ? 'nobody (the lock file is gone)' : describe(held))
      return
    }
    const now = new Date()
    try { utimesSync(this.path, now, now) } catch { /* the next beat tells */ }
  }

  /** Gives the lock up (on stop), if it is still ours. */
  release (): void {
    clearInterval(this.timer)
    if (readHolder(this.path)?.token !== this.me.token) return
    try { unlinkSync(this.path) } catch { /* gone already */ }
  }
}

function createExclusive (path: string, me: Holder): boolean {
  let fd: number
  try {
    fd = openSync(path, 'wx')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false
    throw new BrokerHaError('STORAGE_CORRUPT', `storage.dir lock ${path} cannot be created: ${(err as Error).message}`, { key: 'storage.dir', cause: err })
  }
  try { writeFileSync(fd, JSON.stringify(me)) } finally { closeSync(fd) }
  return true
}

/** The holder a lock file names; undefined when it is gone or unreadable (a crash while it was written). */
function readHolder (path: string): Holder | undefined {
  try {
    const h = JSON.parse(readFileSync(path, 'utf8')) as Partial<Holder>
    if (typeof h.pid !== 'number' || typeof h.host !== 'string' || typeof h.token !== 'string') return undefined
    return { pid: h.pid, host: h.host, node: String(h.node ?? ''), since: String(h.since ?? ''), token: h.token }
  } catch {
    return undefined
  }
}

function isStale (path: string, held: Holder): boolean {
  if (held.host === hostname() && (held.pid === process.pid || !alive(held.pid))) return true
  // A live holder touches it every BEAT_MS (a pid alive on this host but not touching it is another process by that pid).
  try {
    return Date.now() - statSync(path).mtimeMs > STALE_MS
  } catch {
    return true
  }
}

function alive (pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch (err) {
    // EPERM: it exists, owned by another user.
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
  // A killed process its parent has not reaped yet (a zombie) still answers signal 0.
  try {
    return !/\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'))
  } catch (err) {
    // Gone since; anything else (no /proc): taken as alive.
    return (err as NodeJS.ErrnoException).code !== 'ENOENT'
  }
}

function describe (h: Holder): string {
  return `pid ${h.pid} on host ${h.host}${h.node === '' ? '' : ` (node ${h.node})`}${h.since === '' ? '' : ` since ${h.since}`}`
}

function inUse (dir: string, held: Holder): BrokerHaError {
  return new BrokerHaError('STORAGE_IN_USE', `storage.dir ${dir} is in use by ${describe(held)}: two nodes must not share one store. Stop that process, or give this node its own storage.dir (the lock is ${join(dir, LOCK_FILE)}; a lock whose process is gone is taken over by itself)`, { key: 'storage.dir' })
}
