// aedes' empty replay at CONNECT without a stream pipeline (empty-replay.ts):
// the one stream it is given is answered at once; every other pipeline, in
// this process and in ES modules that imported it, is Node's own.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import stream, { PassThrough, Readable, Transform, Writable } from 'node:stream'
import { promisify } from 'node:util'
import { emptyReplay, skipEmptyReplay } from '../../../src/server/mqtt/empty-replay.js'

test('skipEmptyReplay answers the empty replay on the next tick, without reading it or the transform', async () => {
  assert.equal(skipEmptyReplay(), true)
  assert.equal(skipEmptyReplay(), true, 'a second call keeps the one in place')
  const replay = emptyReplay()
  assert.equal(emptyReplay(), replay, 'one stream, shared by every CONNECT')
  let transformed = 0
  const through = new Transform({ objectMode: true, transform (chunk, _enc, next) { transformed++; next(null, chunk) } })
  let sync = true
  const err = await new Promise<unknown>((resolve) => {
    stream.pipeline(replay, through, (e) => { assert.equal(sync, false, 'not called before pipeline returns'); resolve(e) })
    sync = false
  })
  assert.equal(err, undefined)
  assert.equal(transformed, 0)
  assert.equal(replay.readableEnded, false, 'never read')
})

test("an ES module's `import { pipeline } from 'stream'` sees the same function (aedes' connect handler)", async () => {
  skipEmptyReplay()
  const source = 'data:text/javascript,import { pipeline } from "stream"; export const p = pipeline;'
  const mod = await import(source) as { p: unknown }
  assert.equal(mod.p, stream.pipeline)
})

test('every other pipeline is the real one: data, errors and the promise form', async () => {
  skipEmptyReplay()
  const got: string[] = []
  await new Promise<void>((resolve, reject) => {
    stream.pipeline(Readable.from(['a', 'b', 'c']), new PassThrough({ objectMode: true }),
      new Writable({ objectMode: true, write (chunk: string, _enc, next) { got.push(chunk); next() } }),
      (e) => { if (e != null) reject(e); else resolve() })
  })
  assert.deepEqual(got, ['a', 'b', 'c'])
  const failed = await new Promise<unknown>((resolve) => {
    stream.pipeline(Readable.from(['x']), new Transform({ transform (_c, _e, next) { next(new Error('bad chunk')) } }), resolve)
  })
  assert.match(String(failed), /bad chunk/)
  const sink: string[] = []
  await promisify(stream.pipeline)(Readable.from(['p']), new Writable({ objectMode: true, write (c: string, _e, next) { sink.push(c); next() } }))
  assert.deepEqual(sink, ['p'])
})
