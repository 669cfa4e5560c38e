// The terminal's size, following resizes, so the app fills the screen.
import { useEffect, useState } from 'react'
import { useStdout } from 'ink'

export interface TerminalSize { columns: number, rows: number }

export function useTerminalSize (): TerminalSize {
  const { stdout } = useStdout()
  const read = (): TerminalSize => ({ columns: stdout.columns > 0 ? stdout.columns : 80, rows: stdout.rows > 0 ? stdout.rows : 24 })
  const [size, setSize] = useState(read)
  useEffect(() => {
    const onResize = (): void => setSize(read())
    stdout.on('resize', onResize)
    return () => { stdout.off('resize', onResize) }
  }, [stdout])
  return size
}
