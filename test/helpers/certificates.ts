// Test certificates, made at test time with the openssl command-line tool
// (on Debian's base image and in CI), into a temporary directory: nothing
// private is committed. A CA, and certificates it (or a stranger) signs.
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export interface Issued {
  cert: string
  key: string
}

export interface CertificateOptions {
  cn: string
  /** subjectAltName, e.g. `IP:127.0.0.5,DNS:localhost`. */
  san?: string
  /** Validity in days; negative: already expired. */
  days?: number
  /** Signed by this CA instead of the default one. */
  ca?: Issued
  /** clientAuth (client certificates) or serverAuth (default). */
  usage?: 'clientAuth' | 'serverAuth'
}

export class TestCertificates {
  readonly dir = mkdtempSync(join(tmpdir(), 'broker-ha-certs-'))
  readonly ca: Issued
  private n = 0

  constructor () {
    this.ca = this.authority('test-ca')
  }

  /** A self-signed CA. */
  authority (cn: string): Issued {
    const base = join(this.dir, `${cn}-${this.n++}`)
    openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${base}.key`,
      '-out', `${base}.pem`, '-days', '2', '-subj', `/CN=${cn}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign')
    return { cert: `${base}.pem`, key: `${base}.key` }
  }

  /** A leaf certificate signed by the test CA (or options.ca). */
  issue (options: CertificateOptions, into?: string): Issued {
    const base = into ?? join(this.dir, `${options.cn}-${this.n++}`)
    const ca = options.ca ?? this.ca
    openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${base}.key`, '-out', `${base}.csr`, '-subj', `/CN=${options.cn}`)
    const ext = `${base}.ext`
    writeFileSync(ext, [
      'basicConstraints=CA:FALSE',
      `extendedKeyUsage=${options.usage ?? 'serverAuth'}`,
      ...(options.san === undefined ? [] : [`subjectAltName=${options.san}`])
    ].join('\n') + '\n')
    openssl('x509', '-req', '-in', `${base}.csr`, '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial', '-days', String(options.days ?? 2), '-extfile', ext, '-out', `${base}.pem`)
    return { cert: `${base}.pem`, key: `${base}.key` }
  }

  /** A server certificate for a loopback address. */
  server (host: string, cn = 'broker-ha-test'): Issued {
    return this.issue({ cn, san: `IP:${host},DNS:localhost` })
  }

  client (cn: string, options: Partial<CertificateOptions> = {}): Issued {
    return this.issue({ cn, usage: 'clientAuth', ...options })
  }

  cleanup (): void {
    rmSync(this.dir, { recursive: true, force: true })
  }
}

function openssl (...args: string[]): void {
  execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] })
}
