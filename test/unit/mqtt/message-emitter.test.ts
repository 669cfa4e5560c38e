import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Fifo, messageEmitter } from '../../../src/server/mqtt/message-emitter.js'

test('Fifo: first in, first out across its compactions, and length follows', () => {
  const q = new Fifo<number>()
  for (let i = 0; i < 5000; i++) q.push(i)
  for (let i = 0; i < 3000; i++) assert.equal(q.shift(), i)
  for (let i = 5000; i < 6000; i++) q.push(i)
  assert.equal(q.length, 3000)
  for (let i = 3000; i < 6000; i++) assert.equal(q.shift(), i)
  assert.equal(q.length, 0)
  assert.equal(q.shift(), undefined)
})

test('a backlog of 200,000 messages that no subscription matches drains without overflowing the stack, in order', async () => {
  const mq = messageEmitter(1)
  let release: () => void = () => {}
  mq.on('busy', (_m, done) => { release = done })
  mq.emit({ topic: 'busy' })
  const completed: number[] = []
  for (let i = 0; i < 200_000; i++) mq.emit({ topic: `nobody/${i}` }, () => { completed.push(i) })
  assert.equal(completed.length, 0, 'all waiting behind the busy one')
  release()
  assert.equal(completed.length, 200_000)
  assert.ok(completed.every((v, i) => v === i), 'in emit order')
})

test('a backlog is delivered in emit order to a subscriber that completes on a later turn', async () => {
  const mq = messageEmitter(10)
  const got: number[] = []
  mq.on('t/+', (m, done) => { got.push(m.n as number); setImmediate(done) })
  await new Promise<void>((resolve) => {
    for (let i = 0; i < 50_000; i++) mq.emit({ topic: `t/${i % 7}`, n: i }, i === 49_999 ? () => resolve() : undefined)
  })
  assert.deepEqual(got, Array.from({ length: 50_000 }, (_, i) => i))
})
