// How a message payload is shown: as text when it is readable UTF-8, as
// indented JSON when it parses, else as a hex dump. The operator can force a
// mode; `auto` picks the most readable one that fits the bytes.

export type PreviewMode = 'auto' | 'text' | 'json' | 'hex'
export const PREVIEW_MODES: PreviewMode[] = ['auto', 'text', 'json', 'hex']

export interface Preview { mode: Exclude<PreviewMode, 'auto'>, lines: string[] }

function isReadableText (buf: Buffer): boolean {
  const text = buf.toString('utf8')
  // U+FFFD appears when the bytes are not valid UTF-8; control characters
  // other than tab and line breaks would garble the terminal.
  // eslint-disable-next-line no-control-regex
  return !text.includes('\uFFFD') && !/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/.test(text)
}

export function hexDump (buf: Buffer, maxLines: number): string[] {
  const lines: string[] = []
  for (let offset = 0; offset < buf.length && lines.length < maxLines; offset += 16) {
    const chunk = buf.subarray(offset, offset + 16)
    const hex = [...chunk].map((b) => b.toString(16).padStart(2, '0')).join(' ')
    const ascii = [...chunk].map((b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '.')).join('')
    lines.push(`${offset.toString(16).padStart(6, '0')}  ${hex.padEnd(47, ' ')}  ${ascii}`)
  }
  return lines
}

export function previewPayload (payload: Buffer, mode: PreviewMode, maxLines = 8): Preview {
  if (mode === 'hex') return { mode: 'hex', lines: hexDump(payload, maxLines) }
  const readable = isReadableText(payload)
  if (mode === 'json' || (mode === 'auto' && readable)) {
    try {
      const value: unknown = JSON.parse(payload.toString('utf8'))
      // "21.5", "true" or "\"on\"" parse as JSON too, but they are what sensors
      // send as text: auto calls a payload JSON only when it is a document
      // (an object or a list), and v forces JSON for the rest.
      if (mode === 'json' || (typeof value === 'object' && value !== null)) {
        return { mode: 'json', lines: JSON.stringify(value, null, 2).split('\n').slice(0, maxLines) }
      }
    } catch {
      if (mode === 'json') return { mode: 'hex', lines: hexDump(payload, maxLines) }
    }
  }
  if (mode === 'text' || readable) {
    // Control characters are shown as dots so a forced text view cannot garble the screen.
    // eslint-disable-next-line no-control-regex
    const text = payload.toString('utf8').replace(/[\u0000-\u0008\u000b-\u001f\u007f]/g, '.')
    return { mode: 'text', lines: text.split(/\r?\n/).slice(0, maxLines) }
  }
  return { mode: 'hex', lines: hexDump(payload, maxLines) }
}
