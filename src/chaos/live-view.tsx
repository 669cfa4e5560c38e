// The live view of a run on a terminal (Ink): nodes and their state, the
// current fault, message counters and progress. It only renders the
// progress snapshot it is given; the runner owns the data.
import { Box, Text, render } from 'ink'
import type { ChaosProgress } from './runner.js'

const STATE_COLOR: Record<string, string> = { up: 'green', starting: 'cyan', paused: 'yellow', killed: 'red', stopped: 'gray' }

export function progressBar (fraction: number, width: number): string {
  const f = Math.min(1, Math.max(0, fraction))
  const full = Math.round(f * width)
  return '█'.repeat(full) + '░'.repeat(width - full)
}

export function ChaosView ({ progress, now, lines }: { progress: ChaosProgress, now: number, lines: readonly string[] }) {
  const elapsed = progress.phase === 'running' ? now - progress.startedAt : 0
  const c = progress.counters
  return (
    <Box flexDirection='column'>
      <Text bold>broker-ha chaos  <Text color='cyan'>{progress.phase}</Text>  {progress.phase === 'running' ? `${Math.floor(elapsed / 1000)}/${Math.round(progress.durationMs / 1000)} s` : ''}</Text>
      <Text>{progressBar(progress.phase === 'running' ? elapsed / progress.durationMs : progress.phase === 'starting' ? 0 : 1, 40)}  faults {progress.faultsDone}/{progress.faultsTotal}</Text>
      <Box flexDirection='column' marginTop={1}>
        {progress.nodes.map((n) => (
          <Text key={n.name}>{n.name.padEnd(10)} {n.host.padEnd(16)} <Text color={STATE_COLOR[n.state] ?? 'white'}>{n.state}</Text></Text>
        ))}
      </Box>
      <Box marginTop={1}>
        <Text>fault: {progress.fault === undefined ? <Text dimColor>none</Text> : <Text color='yellow'>{progress.fault}</Text>}</Text>
      </Box>
      <Text>published {c.published}  acknowledged {c.acked}  unacknowledged {c.failed}  delivered {c.delivered}  retained ops {c.retained}  connections {c.connects}</Text>
      <Box flexDirection='column' marginTop={1}>
        {lines.map((l, i) => <Text key={i} dimColor>{l}</Text>)}
      </Box>
    </Box>
  )
}

/** Renders the view until stop() is called; update() hands it a new snapshot and log line. */
export interface LiveView {
  update: (p: ChaosProgress, line?: string) => void
  stop: () => void
}

export function startLiveView (stdout: NodeJS.WriteStream = process.stdout): LiveView {
  let progress: ChaosProgress | undefined
  const lines: string[] = []
  // Ctrl-C stays a signal (the runner cleans up on SIGINT), so Ink must not take the keyboard.
  const instance = render(<Text>starting…</Text>, { stdout, exitOnCtrlC: false, patchConsole: false })
  const draw = (): void => { if (progress !== undefined) instance.rerender(<ChaosView progress={progress} now={Date.now()} lines={lines} />) }
  const timer = setInterval(draw, 250)
  return {
    update: (p, line) => {
      progress = p
      if (line !== undefined) {
        lines.push(`${new Date().toISOString().slice(11, 19)} ${line}`)
        if (lines.length > 8) lines.shift()
      }
    },
    stop: () => {
      clearInterval(timer)
      draw()
      instance.unmount()
    }
  }
}
