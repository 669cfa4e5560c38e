// The `?` overlay: every key, by view.
import { Box, Text } from 'ink'

const HELP: Array<[string, string]> = [
  ['1..5, Tab', 'switch view: Overview, Clients, Topics, Events, Metrics'],
  ['r', 'refresh now'],
  ['q, Ctrl-C', 'quit (restores the terminal)'],
  ['?', 'this help (any key closes it)'],
  ['lists', '↑/↓ (k/j), PgUp/PgDn, g/Home, G/End select; o sort by the'],
  ['', 'next column, O reverse'],
  ['Overview', 'the selected member\'s details below the alerts'],
  ['Clients', '/ filter (Enter keeps, Esc clears), Enter or d detail,'],
  ['', 'K disconnect (asks first)'],
  ['Topics', '/ retained filter, s subscribers topic (Esc clears),'],
  ['', 'Enter: subscribers of the selected topic, v auto/text/json/hex'],
  ['Events', 'space pause, n members, f channel, / filter, c clear'],
  ['Metrics', 'rates from /metrics of each member, sparklines']
]

export function HelpView ({ width }: { width: number }) {
  return (
    <Box flexDirection='column' borderStyle='round' paddingX={1} width={Math.min(width, 78)}>
      <Text bold>broker-ha admin: keys</Text>
      {HELP.map(([k, v], i) => <Text key={i} wrap='truncate'><Text color='cyan'>{k.padEnd(11)}</Text>{v}</Text>)}
    </Box>
  )
}
