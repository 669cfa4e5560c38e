// A paused node (SIGSTOP) is suspected; resumed (SIGCONT) before the
// suspicion times out, it refutes with a higher incarnation and is never
// marked dead. Fast probe timings; a long suspicion so the resume is in time.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import type { ProcessNode } from '../helpers/node.js'
import { waitFor } from '../helpers/wait.js'
import { FAST, logLines, memberEvents, nameOf, startProcessCluster, waitForView } from '../helpers/cluster.js'

const nodes: ProcessNode[] = []
after(async () => {
  for (const n of nodes) if (n.child.exitCode === null) n.child.kill('SIGCONT')
  await Promise.all(nodes.map((n) => n.stop('SIGKILL')))
})

test('a paused node is suspected and, resumed in time, refutes the suspicion', async () => {
  // Suspicion timeout: 20 * 200 ms = 4 s for 3 members, far more than the resume takes.
  nodes.push(...await startProcessCluster(3, { cluster: { config: { ...FAST, suspicion_mult: 20 } } }))
  const [a, b, c] = nodes as [ProcessNode, ProcessNode, ProcessNode]
  c.child.kill('SIGSTOP')
  try {
    await waitFor(() => [a, b].some((o) => memberEvents(o).some((e) => e.member === nameOf(c) && e.state === 'suspect')), { timeout: 5000, message: 'suspicion of the paused node' })
  } finally {
    c.child.kill('SIGCONT')
  }
  await waitFor(() => logLines(c).some((j) => j.msg === 'refuted suspicion about this node'), { timeout: 5000, message: 'refutation' })
  await waitForView([a, b], [c], 'alive', 5000)
  const refutation = logLines(c).find((j) => j.msg === 'refuted suspicion about this node')!
  assert.ok(Number(refutation.incarnation) >= 1)
  for (const o of [a, b]) {
    assert.ok(!memberEvents(o).some((e) => e.member === nameOf(c) && e.state === 'dead'), `${o.host} never marks it dead`)
  }
})
