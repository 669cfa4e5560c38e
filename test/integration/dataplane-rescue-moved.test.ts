// A rescue that comes after its session moved on. A node that takes a dead
// home's sessions over asks its peers for what they sent the home and it
// never settled (rescue.ts); the publishers of those messages were
// acknowledged when the home was declared dead, on the promise of that
// rescue. If the session's client resumes on another node before the answer
// arrives (a slow, starved peer answers late: 14 s in the 64 KiB reconnect
// storm), the session leaves the node that asked, and the answer must follow
// it there. Four `broker-ha serve` processes: A is the session's home, B the
// publisher's node, C the replica holder that takes the session over, D
// where the client resumes. B is held with SIGSTOP so that its answer comes
// after the move, which makes the window certain instead of a race.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { ProcessNode } from '../helpers/node.js'
import { keyedClusterPerTest, nameOf } from '../helpers/cluster.js'
import { waitFor } from '../helpers/wait.js'
import { metricSum, metricByLabel } from '../helpers/metrics.js'
import { connect, connectWithConnack, waitForCount } from '../helpers/mqtt-clients.js'
import { rendezvous } from '../../src/server/cluster/dataplane/session-replication.js'

// A SIGSTOPped node is SIGKILLed after each test too.
const { start, clients } = keyedClusterPerTest()

/**
 * `nextHolder`: where C puts the replica of the session it took over. On
 * D, C's takeover request reaches B before B's link drops (B answers it
 * when it wakes). On B, storing the session waits for the stopped B until
 * its link drops; the request then goes to D only, and B hears of the
 * takeover when it is back (announceTakeovers), after the session left C.
 */
async function rescueAfterMove (nextHolder: 'B' | 'D'): Promise<void> {
  const [a, b, c, d] = await start(4) as [ProcessNode, ProcessNode, ProcessNode, ProcessNode]
  // A client id whose replica A keeps on C (rendezvous over A's peers), and C then on `nextHolder`.
  let id = ''
  const next = nameOf(nextHolder === 'B' ? b : d)
  for (let i = 0; id === ''; i++) {
    const candidate = `moved-rescue-${i}`
    if (rendezvous(candidate, [b, c, d].map(nameOf)) === nameOf(c) && rendezvous(candidate, [b, d].map(nameOf)) === next) id = candidate
  }
  const topic = `rescue/${id}`

  const first = await connect(a.mqttUrl, { clientId: id, clean: false, protocolVersion: 4 })
  await first.subscribeAsync(topic, { qos: 1 })
  await first.endAsync()
  const pub = await connect(b.mqttUrl, { protocolVersion: 4 })
  clients.push(pub)
  // Routed B -> A, queued on A, held by C: the PUBACK waited for all of it.
  await pub.publishAsync(topic, 'before', { qos: 1 })
  await waitFor(async () => await metricSum(c.apiUrl, 'broker_cluster_session_replica_queued_messages') === 1, { message: 'the replica on C holding the first message' })

  // A stops before it settles the second message: B keeps it on A's link, unsettled.
  a.child.kill('SIGSTOP')
  const payload = 'rescued'.padEnd(4096, '.')
  const acked = pub.publishAsync(topic, payload, { qos: 1 })
  await waitFor(async () => ((await metricByLabel(b.apiUrl, 'broker_cluster_link_buffered_bytes', 'peer'))[nameOf(a)] ?? 0) >= 4096, { message: 'B holding the second message for A' })
  // B answers nothing from now on: C's rescue request waits in B's socket.
  b.child.kill('SIGSTOP')
  await a.stop('SIGKILL')
  await waitFor(async () => await metricSum(c.apiUrl, 'broker_cluster_sessions_promoted_total') === 1, { timeout: 20_000, message: 'C taking the session over' })

  // The client resumes on D, which fetches the session from C (B, stopped, is given up on once its link drops).
  const { client: back, connack, got } = await connectWithConnack(d.mqttUrl, { clientId: id, clean: false, protocolVersion: 4, connectTimeout: 30_000 })
  clients.push(back)
  assert.equal(connack.sessionPresent, true)
  await waitForCount(got, 1, 'the message the replica held', 10_000)
  await waitFor(async () => await metricSum(c.apiUrl, 'broker_cluster_home_sessions') === 0, { message: 'the session gone from C' })

  // B wakes: A is dead, so it acknowledges the message it keeps for the rescue, and answers C's request with it.
  b.child.kill('SIGCONT')
  await acked
  await waitForCount(got, 2, 'the message A never settled, rescued by C and passed on to D', 20_000)
  assert.deepEqual(got.map((m) => m.payload.slice(0, 7)), ['before', 'rescued'])
  assert.equal(await metricSum(c.apiUrl, 'broker_cluster_home_sessions'), 0, 'the session stayed on D')
}

test('a publish the dead home never settled reaches its session after the node that took the session over passed it on before the rescue came', async () => {
  await rescueAfterMove('D')
})

test('same, when the peer holding the publish hears of the takeover only once back from the dead, after the session moved on', async () => {
  await rescueAfterMove('B')
})
