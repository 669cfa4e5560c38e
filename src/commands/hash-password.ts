import { Command } from 'commander'
import { hashPassword } from '../security/password.js'
import { BrokerHaError } from '../errors.js'

/**
 * Prints a scrypt hash to put in mqtt.auth[].password or api.user instead of
 * plain text. On a terminal it asks twice without echo, as mosquitto_passwd
 * does; from a pipe it reads the password from standard input.
 */
export function hashPasswordCommand (): Command {
  return new Command('hash-password')
    .description('print a salted scrypt hash of a password, for mqtt.auth and api.user (asks twice, hidden, on a terminal)')
    .argument('[password]', 'the password; better left out: it is then asked for (terminal) or read from standard input, and stays out of shell history')
    .action(async (password: string | undefined) => {
      const plain = password ?? (process.stdin.isTTY === true ? await askTwice() : (await readStdin()).replace(/\r?\n$/, ''))
      if (plain === '') throw new BrokerHaError('USAGE', 'hash-password: the password is empty')
      process.stdout.write(`${hashPassword(plain)}\n`)
    })
}

async function askTwice (): Promise<string> {
  const first = await readHidden('Password: ')
  const second = await readHidden('Reenter password: ')
  if (first !== second) throw new BrokerHaError('USAGE', 'hash-password: the passwords do not match')
  return first
}

/** One line from the terminal with echo off; Ctrl-C or Ctrl-D on an empty line gives up. */
function readHidden (prompt: string): Promise<string> {
  const stdin = process.stdin
  process.stderr.write(prompt)
  return new Promise((resolve, reject) => {
    let text = ''
    const finish = (error?: BrokerHaError): void => {
      stdin.off('data', onData)
      stdin.setRawMode(false)
      stdin.pause()
      process.stderr.write('\n')
      if (error === undefined) resolve(text)
      else reject(error)
    }
    const onData = (chunk: Buffer): void => {
      for (const char of chunk.toString('utf8')) {
        if (char === '\r' || char === '\n') return finish()
        if (char === '\u0003' || (char === '\u0004' && text === '')) return finish(new BrokerHaError('USAGE', 'hash-password: no password given'))
        if (char === '\u007f' || char === '\b') text = [...text].slice(0, -1).join('')
        else if (char >= ' ') text += char
      }
    }
    stdin.setRawMode(true)
    stdin.resume()
    stdin.on('data', onData)
  })
}

async function readStdin (): Promise<string> {
  const chunks: Buffer[] = []
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks).toString('utf8')
}
