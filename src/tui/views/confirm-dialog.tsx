// A yes/no question drawn in a box; the caller handles the keys (y, n, Esc)
// so the dialog itself only renders props.
import { Box, Text } from 'ink'

export function ConfirmDialog ({ question, width }: { question: string, width: number }) {
  return (
    <Box borderStyle='round' borderColor='yellow' paddingX={1} width={Math.min(width, Math.max(30, question.length + 4))} flexDirection='column'>
      <Text wrap='truncate'>{question}</Text>
      <Text dimColor>y: yes   n/Esc: no</Text>
    </Box>
  )
}
