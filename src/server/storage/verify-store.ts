// Run as a child process by durable-store.ts before a node maps its store:
// reads every record. Exits 0 when the store reads whole; 1 with the reason
// on stderr when a record does not decode or the B-tree holds fewer records
// than its own count says (an overwritten branch page hides what is below
// it); a crash (SIGSEGV, SIGBUS on overwritten or truncated pages) is seen
// by the parent as the signal. Nothing is written.
import { open } from 'lmdb'

const path = process.argv[2]
if (path === undefined) {
  process.stderr.write('usage: verify-store <path>\n')
  process.exit(1)
}
try {
  const db = open({ path, readOnly: true, compression: false, encoding: 'msgpack', sharedStructuresKey: undefined })
  const expected = (db.getStats() as { entryCount: number }).entryCount
  let n = 0
  for (const { value } of db.getRange({})) {
    if (value === undefined) throw new Error('a record does not decode')
    n++
  }
  if (n !== expected) throw new Error(`${n} records readable of the ${expected} it holds`)
  process.stdout.write(`${n}\n`)
  process.exit(0)
} catch (err) {
  process.stderr.write(`${(err as Error).message}\n`)
  process.exit(1)
}
