// TLS for mqtts and wss listeners (and the HTTPS API): the certificate, key
// and CA files of one listener, checked so that a mistake is named at start
// (the file and the problem: unreadable, not PEM, expired, key does not
// match) and reloaded on SIGHUP or when a file changes. Kubernetes updates a
// mounted Secret by swapping a symlink (`..data`) in the volume's directory,
// so the directories are watched, not the files. A bad reload keeps the
// certificate in use and logs why.
import { readFileSync, watch, type FSWatcher } from 'node:fs'
import { dirname } from 'node:path'
import { createHash, createPrivateKey, X509Certificate } from 'node:crypto'
import { createSecureContext, type SecureContextOptions, type TLSSocket, type PeerCertificate } from 'node:tls'
import { BrokerHaError } from '../../../errors.js'
import type { Logger } from '../../../log.js'

/**
 * TLS 1.2 and 1.3 only, with forward-secret AEAD suites (Mozilla's
 * "intermediate" profile): what IoT stacks of the last years (mbedTLS,
 * wolfSSL, BearSSL, Paho) all speak. TLS 1.3 suites are Node's defaults.
 */
export const TLS_OPTIONS = {
  minVersion: 'TLSv1.2',
  ciphers: [
    'TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256',
    'ECDHE-ECDSA-AES128-GCM-SHA256', 'ECDHE-RSA-AES128-GCM-SHA256',
    'ECDHE-ECDSA-AES256-GCM-SHA384', 'ECDHE-RSA-AES256-GCM-SHA384',
    'ECDHE-ECDSA-CHACHA20-POLY1305', 'ECDHE-RSA-CHACHA20-POLY1305'
  ].join(':'),
  honorCipherOrder: true
} as const satisfies SecureContextOptions

export interface TlsFiles {
  /** Config key prefix for messages: `mqtt.listeners[1]`, `api.tls`. */
  key: string
  cert: string
  keyFile: string
  ca?: string | undefined
}

export interface TlsMaterial {
  options: SecureContextOptions
  /** Expiry of the server certificate. */
  notAfter: Date
  subject: string
  /** Of the files' contents: a reload that finds the same files changes nothing. */
  digest: string
}

/** Reads and checks the files; throws CONFIG_INVALID naming the key, the file and the problem. */
export function loadTlsMaterial (files: TlsFiles, now = new Date()): TlsMaterial {
  const fail = (field: string, file: string, problem: string): never => {
    throw new BrokerHaError('CONFIG_INVALID', `config error: ${files.key}.${field}: ${file}: ${problem}`, { key: `${files.key}.${field}` })
  }
  const read = (field: string, file: string): string => {
    try {
      return readFileSync(file, 'utf8')
    } catch (err) {
      return fail(field, file, `cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
    }
  }
  const certPem = read('cert', files.cert)
  const keyPem = read('key', files.keyFile)
  const caPem = files.ca === undefined ? undefined : read('ca', files.ca)
  if (!certPem.includes('-----BEGIN CERTIFICATE-----')) fail('cert', files.cert, 'not a PEM certificate (no -----BEGIN CERTIFICATE----- block)')
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(keyPem)) fail('key', files.keyFile, 'not a PEM private key (no -----BEGIN ... PRIVATE KEY----- block)')
  if (caPem !== undefined && !caPem.includes('-----BEGIN CERTIFICATE-----')) fail('ca', files.ca!, 'not a PEM certificate (no -----BEGIN CERTIFICATE----- block)')
  let cert: X509Certificate
  try {
    cert = new X509Certificate(certPem)
  } catch (err) {
    return fail('cert', files.cert, `not a valid certificate: ${(err as Error).message}`)
  }
  const notAfter = new Date(cert.validTo)
  const notBefore = new Date(cert.validFrom)
  if (notAfter.getTime() < now.getTime()) fail('cert', files.cert, `certificate expired on ${notAfter.toISOString()} (${cert.subject.replace(/\n/g, ', ')})`)
  if (notBefore.getTime() > now.getTime()) fail('cert', files.cert, `certificate is not valid before ${notBefore.toISOString()}`)
  let privateKey
  try {
    privateKey = createPrivateKey(keyPem)
  } catch (err) {
    return fail('key', files.keyFile, `not a usable private key (encrypted keys are not supported): ${(err as Error).message}`)
  }
  if (!cert.checkPrivateKey(privateKey)) fail('key', files.keyFile, `private key does not match the certificate ${files.cert}`)
  if (caPem !== undefined) {
    try {
      // Each block must parse; createSecureContext would otherwise skip bad ones silently.
      for (const block of caPem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []) new X509Certificate(block)
    } catch (err) {
      fail('ca', files.ca!, `not a valid certificate: ${(err as Error).message}`)
    }
  }
  const options: SecureContextOptions = { ...TLS_OPTIONS, cert: certPem, key: keyPem, ...(caPem === undefined ? {} : { ca: caPem }) }
  try {
    createSecureContext(options)
  } catch (err) {
    fail('cert', files.cert, `rejected by TLS: ${(err as Error).message}`)
  }
  const digest = createHash('sha256').update(certPem).update('\0').update(keyPem).update('\0').update(caPem ?? '').digest('hex')
  return { options, notAfter, subject: cert.subject.replace(/\n/g, ', '), digest }
}

/**
 * One listener's certificate, reloadable: apply() is given each new
 * material (tls.Server.setSecureContext); a failed load keeps the old.
 */
export class ReloadableTls {
  material: TlsMaterial
  private watchers: FSWatcher[] = []
  private timer: NodeJS.Timeout | undefined

  constructor (private readonly files: TlsFiles, private readonly log: Logger, private readonly apply: (m: TlsMaterial) => void) {
    this.material = loadTlsMaterial(files)
  }

  /** Loads the files again; true when a new certificate is in use. */
  reload (why: string): boolean {
    let next: TlsMaterial
    try {
      next = loadTlsMaterial(this.files)
    } catch (err) {
      this.log.error({ listener: this.files.key, why, err: (err as Error).message }, 'TLS certificate reload failed: keeping the certificate in use')
      return false
    }
    if (next.digest === this.material.digest) return false
    this.apply(next)
    this.material = next
    this.log.info({ listener: this.files.key, why, subject: next.subject, notAfter: next.notAfter.toISOString() }, 'TLS certificate reloaded')
    return true
  }

  /** Watches the files' directories; changes come in bursts (a Secret update swaps several links), so they settle first. */
  watch (settleMs = 250): void {
    const dirs = new Set([this.files.cert, this.files.keyFile, ...(this.files.ca === undefined ? [] : [this.files.ca])].map((f) => dirname(f)))
    for (const dir of dirs) {
      try {
        const watcher = watch(dir, { persistent: false }, () => {
          clearTimeout(this.timer)
          this.timer = setTimeout(() => this.reload('file changed'), settleMs)
          this.timer.unref()
        })
        watcher.on('error', (err) => this.log.warn({ dir, err: err.message }, 'TLS certificate directory watch failed; SIGHUP still reloads'))
        this.watchers.push(watcher)
      } catch (err) {
        this.log.warn({ dir, err: (err as Error).message }, 'cannot watch TLS certificate directory; SIGHUP still reloads')
      }
    }
  }

  close (): void {
    clearTimeout(this.timer)
    for (const w of this.watchers) w.close()
    this.watchers = []
  }
}

export type IdentityField = 'cn' | 'san_dns' | 'san_email' | 'san_uri'

const SAN_PREFIX: Record<Exclude<IdentityField, 'cn'>, string> = { san_dns: 'DNS:', san_email: 'email:', san_uri: 'URI:' }

/** The identity a verified client certificate gives, or undefined (no certificate, not verified, field absent). */
export function certificateIdentity (socket: TLSSocket, field: IdentityField): string | undefined {
  if (!socket.authorized) return undefined
  const cert = socket.getPeerCertificate()
  return identityOf(cert, field)
}

export function identityOf (cert: PeerCertificate | undefined, field: IdentityField): string | undefined {
  if (cert === undefined || cert === null || Object.keys(cert).length === 0) return undefined
  if (field === 'cn') {
    const cn = (cert.subject as unknown as Record<string, string | string[] | undefined> | undefined)?.CN
    return Array.isArray(cn) ? cn[0] : cn
  }
  const prefix = SAN_PREFIX[field]
  // "DNS:a.example, email:x@y, URI:spiffe://..." (Node's own escaping quotes entries with commas).
  for (const entry of (cert.subjectaltname ?? '').split(', ')) {
    if (entry.startsWith(prefix)) return entry.slice(prefix.length).replace(/^"|"$/g, '')
  }
  return undefined
}
