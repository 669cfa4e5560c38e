import { Command } from 'commander'
import { hashPassword } from '../security/password.js'
import { BrokerHaError } from '../errors.js'

/** Prints a scrypt hash to put in mqtt.auth[].password or api.user instead of plain text. */
export function hashPasswordCommand (): Command {
  return new Command('hash-password')
    .description('print a salted scrypt hash of a password, for mqtt.auth and api.user')
    .argument('[password]', 'the password; read from standard input when omitted (keeps it out of shell history)')
    .action(async (password: string | undefined) => {
      const plain = password ?? (await readStdin()).replace(/\r?\n$/, '')
      if (plain === '') throw new BrokerHaError('USAGE', 'hash-password: the password is empty')
      process.stdout.write(`${hashPassword(plain)}\n`)
    })
}

async function readStdin (): Promise<string> {
  const chunks: Buffer[] = []
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks).toString('utf8')
}
