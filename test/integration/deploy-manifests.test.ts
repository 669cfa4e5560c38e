// deploy/k8s: every overlay is built with kustomize (`kubectl kustomize`, or a
// standalone `kustomize`), every object is validated against the Kubernetes
// schemas (kubernetes-models; the ServiceMonitor against the Prometheus
// Operator CRD's), the corrections the seed's manifests needed are asserted
// (headless Service, probes, security context, grace period, ...), and every
// config the manifests carry (ConfigMap + the StatefulSet's environment, with
// $(VAR) references expanded as the kubelet does) passes
// `broker-ha serve --check-config`. Without a kustomize of version 4 or later
// the build tests skip, saying so; the config files are checked either way.
import { test, describe } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, writeFileSync, rmSync, readdirSync, readFileSync, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseAllDocuments, parse } from 'yaml'
import { Namespace } from 'kubernetes-models/v1/Namespace'
import { Service } from 'kubernetes-models/v1/Service'
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap'
import { Secret } from 'kubernetes-models/v1/Secret'
import { StatefulSet } from 'kubernetes-models/apps/v1/StatefulSet'
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget'
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy'
import { ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor'
import type { IContainer } from 'kubernetes-models/v1/Container'
import type { IEnvVar } from 'kubernetes-models/v1/EnvVar'
import { ROOT, BIN } from '../helpers/node.js'

const K8S = join(ROOT, 'deploy', 'k8s')
const OVERLAYS = readdirSync(join(K8S, 'overlays')).sort()
/** What the kubelet would give the pod; any IPv4 does for --check-config. */
const POD_IP = '10.42.0.7'
/** Stands in for the Secret the operator creates: `openssl rand -base64 32` (32 bytes: AES-256). */
const TEST_KEY = 'q3J0k9Vb2X8m1YtZp6Lr4Hs7Dc5Wf0Ge+Na/Ku2Ti8o='
/** How long stop() may spend leaving the cluster (src/server/cluster/swim-membership.ts). */
const LEAVE_MS = 2000

interface K8sObject { apiVersion: string, kind: string, metadata: { name: string, namespace?: string, labels?: Record<string, string> }, [key: string]: unknown }

const MODELS: Record<string, new (data: never) => { validate: () => void }> = {
  'v1/Namespace': Namespace,
  'v1/Service': Service,
  'v1/ConfigMap': ConfigMap,
  'v1/Secret': Secret,
  'apps/v1/StatefulSet': StatefulSet,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy,
  'monitoring.coreos.com/v1/ServiceMonitor': ServiceMonitor,
  'cert-manager.io/v1/Certificate': class Certificate {
    // No typed model is published for cert-manager; the fields it requires (its CRD's schema).
    constructor (private readonly o: { spec?: { secretName?: unknown, issuerRef?: { name?: unknown }, dnsNames?: unknown[], commonName?: unknown } }) {}
    validate (): void {
      const spec = this.o.spec
      assert.equal(typeof spec?.secretName, 'string', 'Certificate spec.secretName')
      assert.equal(typeof spec?.issuerRef?.name, 'string', 'Certificate spec.issuerRef.name')
      assert.ok((spec?.dnsNames?.length ?? 0) > 0 || typeof spec?.commonName === 'string', 'Certificate names')
    }
  }
}

/** A kustomize that builds these overlays (`patches`, directories in `resources`: v4+), or why not. */
function findKustomize (): { command: string, args: string[] } | { skip: string } {
  const standalone = spawnSync('kustomize', ['version'], { encoding: 'utf8' })
  if (standalone.status === 0 && majorOf(standalone.stdout) >= 4) return { command: 'kustomize', args: ['build'] }
  const kubectl = spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8' })
  if (kubectl.error !== undefined || kubectl.status !== 0) {
    return { skip: 'neither kubectl nor kustomize is installed (kubectl >= 1.21 or kustomize >= 4 needed)' }
  }
  // kubectl >= 1.24 prints its kustomize version; 1.21-1.23 embed v4 without saying.
  const kustomize = /Kustomize Version: v?(\d+)/.exec(kubectl.stdout)
  const minor = /Minor:"(\d+)|Client Version: v1\.(\d+)/.exec(kubectl.stdout)
  const kubectlMinor = minor === null ? 0 : Number(minor[1] ?? minor[2])
  if ((kustomize !== null && Number(kustomize[1]) >= 4) || (kustomize === null && kubectlMinor >= 21)) {
    return { command: 'kubectl', args: ['kustomize'] }
  }
  return { skip: `kubectl 1.${kubectlMinor} embeds kustomize older than v4 (Debian bookworm's kubernetes-client has v2.0.3), which cannot build these overlays; install kubectl >= 1.21 or kustomize >= 4` }
}

function majorOf (text: string): number {
  const m = /v(\d+)\./.exec(text)
  return m === null ? 0 : Number(m[1])
}

function build (tool: { command: string, args: string[] }, overlay: string): K8sObject[] {
  const r = spawnSync(tool.command, [...tool.args, join(K8S, 'overlays', overlay)], { encoding: 'utf8' })
  assert.equal(r.status, 0, `${tool.command} ${tool.args.join(' ')} ${overlay}:\n${r.stderr}`)
  return parseAllDocuments(r.stdout).map((d) => d.toJS() as K8sObject).filter((o) => o !== null)
}

function only (objects: K8sObject[], kind: string, predicate: (o: K8sObject) => boolean = () => true): K8sObject[] {
  return objects.filter((o) => o.kind === kind && predicate(o))
}

function one<T = K8sObject> (objects: K8sObject[], kind: string, predicate?: (o: K8sObject) => boolean): T {
  const found = only(objects, kind, predicate)
  assert.equal(found.length, 1, `exactly one ${kind}`)
  return found[0] as T
}

function matches (selector: Record<string, string> | undefined, labels: Record<string, string> | undefined): boolean {
  if (selector === undefined || Object.keys(selector).length === 0) return false
  return Object.entries(selector).every(([k, v]) => labels?.[k] === v)
}

/** The container's environment as the kubelet would set it: $(VAR) of earlier variables expanded. */
function containerEnv (container: IContainer, pod: { namespace: string }): Record<string, string> {
  const env: Record<string, string> = {}
  for (const v of (container.env ?? []) as IEnvVar[]) {
    let value: string
    if (v.value !== undefined) {
      value = v.value.replace(/\$\((\w+)\)/g, (whole, name: string) => env[name] ?? whole)
    } else if (v.valueFrom?.fieldRef?.fieldPath === 'metadata.namespace') {
      value = pod.namespace
    } else if (v.valueFrom?.fieldRef?.fieldPath === 'status.podIP') {
      value = POD_IP
    } else if (v.valueFrom?.secretKeyRef !== undefined) {
      value = TEST_KEY
    } else {
      throw new Error(`env ${v.name}: a source this test does not know how to fill in`)
    }
    env[v.name] = value
  }
  return env
}

interface CheckResult { effective: Record<string, unknown>, stderr: string }

/** `broker-ha serve --config FILE --check-config` with the given environment. */
function checkConfig (configText: string, env: Record<string, string>): CheckResult {
  const dir = mkdtempSync(join(tmpdir(), 'broker-ha-deploy-'))
  try {
    const path = join(dir, 'config.yaml')
    writeFileSync(path, configText)
    const r = spawnSync(process.execPath, [BIN, 'serve', '--config', path, '--check-config'], {
      encoding: 'utf8',
      cwd: dir,
      env: { PATH: process.env.PATH ?? '', ...env }
    })
    assert.equal(r.status, 0, `--check-config refused the config:\n${r.stderr}`)
    return { effective: parse(r.stdout) as Record<string, unknown>, stderr: r.stderr }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

function at (object: Record<string, unknown>, path: string): unknown {
  return path.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown> | undefined)?.[k], object)
}

const tool = findKustomize()

test('every config file under deploy/ passes --check-config (no kustomize needed)', () => {
  const files = (readdirSync(join(ROOT, 'deploy'), { recursive: true }) as string[]).filter((f) => f.endsWith('config.yaml'))
  assert.ok(files.length >= 3, `config files found: ${files.join(', ')}`)
  for (const file of files) {
    const { stderr } = checkConfig(readFileSync(join(ROOT, 'deploy', file), 'utf8'), {
      BROKER_DISCOVERY_DOMAIN: '_gossip._tcp.broker-headless.broker-ha.svc.cluster.local',
      BROKER_CLUSTER_ADVERTISE: POD_IP,
      BROKER_CLUSTER_CONFIG_SECRET_KEY: TEST_KEY
    })
    assert.doesNotMatch(stderr, /warning/, `${file}: ${stderr}`)
  }
})

for (const overlay of OVERLAYS) {
  describe(`overlay ${overlay}`, { skip: 'skip' in tool ? tool.skip : false }, () => {
    const objects = 'skip' in tool ? [] : build(tool, overlay)

    test('every object is valid against its Kubernetes schema', () => {
      assert.ok(objects.length > 0)
      for (const o of objects) {
        const Model = MODELS[`${o.apiVersion}/${o.kind}`]
        assert.ok(Model !== undefined, `no schema for ${o.apiVersion} ${o.kind} (${o.metadata.name}): add it to this test`)
        assert.doesNotThrow(() => new Model(o as never).validate(), `${o.kind} ${o.metadata.name}`)
      }
      const ns = one(objects, 'Namespace').metadata.name
      for (const o of objects.filter((x) => x.kind !== 'Namespace')) assert.equal(o.metadata.namespace, ns, `${o.kind} ${o.metadata.name} namespace`)
    })

    test('the StatefulSet: probes, security context, grace period, anti-affinity, resources, no service links', () => {
      const sts = one<StatefulSet>(objects, 'StatefulSet')
      const pod = sts.spec!.template.spec!
      const podLabels = sts.spec!.template.metadata!.labels
      assert.ok(matches(sts.spec!.selector.matchLabels, podLabels))
      assert.equal(pod.enableServiceLinks, false)
      assert.equal(pod.securityContext?.runAsNonRoot, true)
      assert.equal(pod.securityContext?.seccompProfile?.type, 'RuntimeDefault')
      assert.ok(pod.affinity?.podAntiAffinity !== undefined, 'pod anti-affinity')
      const [container] = pod.containers
      assert.ok(container !== undefined)
      assert.equal(container.securityContext?.readOnlyRootFilesystem, true)
      assert.equal(container.securityContext?.allowPrivilegeEscalation, false)
      assert.deepEqual(container.securityContext?.capabilities?.drop, ['ALL'])
      assert.ok(container.resources?.requests?.cpu !== undefined && container.resources.requests.memory !== undefined, 'requests')
      assert.ok(container.resources?.limits?.memory !== undefined, 'memory limit')
      const portNames = new Map((container.ports ?? []).map((p) => [p.name, p]))
      for (const [name, port, protocol] of [['mqtt', 1883, 'TCP'], ['http', 8080, 'TCP'], ['gossip', 7946, 'TCP'], ['gossip-udp', 7946, 'UDP']] as const) {
        assert.equal(portNames.get(name)?.containerPort, port, `container port ${name}`)
        assert.equal(portNames.get(name)?.protocol, protocol, `container port ${name} protocol`)
      }
      assert.equal(container.readinessProbe?.httpGet?.path, '/ready')
      assert.equal(container.livenessProbe?.httpGet?.path, '/healthz')
      for (const probe of [container.readinessProbe, container.livenessProbe, container.startupProbe]) {
        assert.ok(portNames.has(String(probe?.httpGet?.port)), `probe port ${String(probe?.httpGet?.port)} is a named container port`)
      }
      // The API listens only after formation (formation_wait_max, 5 s): the
      // startup probe must allow well over that before liveness can restart the pod.
      const startup = container.startupProbe!
      assert.ok((startup.periodSeconds ?? 10) * (startup.failureThreshold ?? 3) >= 30, 'startup probe allows >= 30 s')
      // The config volume is the ConfigMap of this build, mounted at /config with a config.yaml key.
      const mount = container.volumeMounts?.find((m) => m.mountPath === '/config')
      const volume = pod.volumes?.find((v) => v.name === mount?.name)
      const cm = one<ConfigMap>(objects, 'ConfigMap', (o) => o.metadata.name === volume?.configMap?.name)
      assert.ok(typeof cm.data?.['config.yaml'] === 'string', 'ConfigMap key config.yaml')
      // The store: storage.dir on a volume claimed per pod (small, the cluster's storage class).
      const env = containerEnv(container, { namespace: sts.metadata!.namespace! })
      assert.equal(env.BROKER_STORAGE_DIR, '/data')
      const data = container.volumeMounts?.find((m) => m.mountPath === '/data')
      assert.ok(data !== undefined && data.readOnly !== true, '/data mounted writable')
      const claim = sts.spec!.volumeClaimTemplates?.find((c) => c.metadata?.name === data.name)
      assert.ok(claim !== undefined, 'a volumeClaimTemplate for /data')
      assert.deepEqual(claim.spec?.accessModes, ['ReadWriteOnce'])
      assert.equal(claim.spec?.storageClassName, undefined, 'storage class left to the cluster')
      assert.ok(claim.spec?.resources?.requests?.storage !== undefined, 'a size')
    })

    test('the headless Service publishes not-ready addresses, names its ports, carries UDP and TCP and only the cluster port', () => {
      const sts = one<StatefulSet>(objects, 'StatefulSet')
      const headless = one<Service>(objects, 'Service', (o) => o.metadata.name === sts.spec!.serviceName)
      assert.equal(headless.spec?.clusterIP, 'None')
      assert.equal(headless.spec?.publishNotReadyAddresses, true)
      assert.ok(matches(headless.spec?.selector, sts.spec!.template.metadata!.labels))
      const ports = headless.spec?.ports ?? []
      assert.deepEqual(ports.map((p) => `${p.name}:${p.port}/${p.protocol}`).sort(), ['gossip-udp:7946/UDP', 'gossip:7946/TCP'])
      // discovery.domain is the SRV name of this Service's named TCP port.
      const env = containerEnv(sts.spec!.template.spec!.containers[0]!, { namespace: sts.metadata!.namespace! })
      const srv = /^_([a-z0-9-]+)\._tcp\.([a-z0-9-]+)\.([a-z0-9-]+)\.svc\./.exec(env.BROKER_DISCOVERY_DOMAIN ?? '')
      assert.ok(srv !== null, `BROKER_DISCOVERY_DOMAIN ${env.BROKER_DISCOVERY_DOMAIN} is _<port>._tcp.<service>.<namespace>.svc...`)
      assert.equal(srv[2], headless.metadata!.name)
      assert.equal(srv[3], headless.metadata!.namespace)
      assert.ok(ports.some((p) => p.name === srv[1] && p.protocol === 'TCP'), `port ${srv[1]}/TCP on ${headless.metadata!.name}`)
    })

    test('the mqtt Service, the PodDisruptionBudget and any ServiceMonitor select the pods', () => {
      const sts = one<StatefulSet>(objects, 'StatefulSet')
      const podLabels = sts.spec!.template.metadata!.labels
      const mqtt = one<Service>(objects, 'Service', (o) => o.metadata.name === 'mqtt')
      assert.ok(matches(mqtt.spec?.selector, podLabels))
      const expected = overlay === 'production'
        ? ['8883->mqtts', '8084->wss', '1883->mqtt', '8083->ws']
        : ['1883->mqtt', '8083->ws']
      assert.deepEqual(mqtt.spec?.ports?.map((p) => `${p.port}->${String(p.targetPort)}`), expected)
      // Every target is a named container port, and the config listens there with that type.
      const container = sts.spec!.template.spec!.containers[0]!
      const cm = one<ConfigMap>(objects, 'ConfigMap')
      const config = parse(cm.data!['config.yaml']!) as { mqtt?: { listeners?: Array<{ type: string, port: number }> } }
      for (const p of mqtt.spec?.ports ?? []) {
        const containerPort = container.ports?.find((c) => c.name === p.targetPort)?.containerPort
        assert.equal(containerPort, p.port, `container port ${String(p.targetPort)}`)
        if (p.name !== 'mqtt') assert.ok(config.mqtt?.listeners?.some((l) => l.type === p.name && l.port === p.port), `a ${p.name} listener on ${p.port}`)
      }
      const pdb = one<PodDisruptionBudget>(objects, 'PodDisruptionBudget')
      assert.equal(pdb.spec?.maxUnavailable, 1)
      assert.ok(matches(pdb.spec?.selector?.matchLabels, podLabels))
      for (const sm of only(objects, 'ServiceMonitor') as unknown as ServiceMonitor[]) {
        const services = (only(objects, 'Service') as unknown as Service[]).filter((s) => matches(sm.spec.selector.matchLabels, s.metadata?.labels))
        assert.equal(services.length, 1, 'the ServiceMonitor selects one Service')
        const svc = services[0]!
        assert.ok(matches(svc.spec?.selector, podLabels))
        assert.equal(svc.spec?.publishNotReadyAddresses, true, 'unready pods are scraped too')
        for (const ep of sm.spec.endpoints ?? []) {
          assert.ok(svc.spec?.ports?.some((p) => p.name === ep.port && p.port === 8080), `endpoint port ${ep.port} is the API port`)
          assert.equal(ep.path, '/metrics')
        }
      }
    })

    test('the config it carries passes broker-ha serve --check-config, with the pod environment applied', () => {
      const sts = one<StatefulSet>(objects, 'StatefulSet')
      const pod = sts.spec!.template.spec!
      const container = pod.containers[0]!
      const volume = pod.volumes?.find((v) => v.name === container.volumeMounts?.find((m) => m.mountPath === '/config')?.name)
      const cm = one<ConfigMap>(objects, 'ConfigMap', (o) => o.metadata.name === volume?.configMap?.name)
      const env = containerEnv(container, { namespace: sts.metadata!.namespace! })
      const { effective, stderr } = checkConfig(cm.data!['config.yaml']!, env)
      assert.doesNotMatch(stderr, /warning/, stderr)
      assert.equal(at(effective, 'discovery.domain'), env.BROKER_DISCOVERY_DOMAIN)
      assert.equal(at(effective, 'cluster.advertise'), POD_IP)
      assert.notEqual(at(effective, 'cluster.config.secret_key'), TEST_KEY, 'the key is masked')
      assert.notEqual(at(effective, 'cluster.config.secret_key'), '', 'the key from the Secret is applied')
      assert.equal(at(effective, 'cluster.expected_members'), sts.spec!.replicas, 'cluster.expected_members equals replicas')
      // SIGKILL must not cut a graceful stop: MQTT grace + leave + slack.
      const graceMs = (pod.terminationGracePeriodSeconds ?? 30) * 1000
      assert.ok(graceMs > (at(effective, 'mqtt.shutdown_grace_period') as number) + LEAVE_MS + 5000, `terminationGracePeriodSeconds ${pod.terminationGracePeriodSeconds}`)
      // The container's ports are the config's.
      const ports = new Map((container.ports ?? []).map((p) => [p.name, p.containerPort]))
      assert.equal(ports.get('mqtt'), at(effective, 'mqtt.port'))
      assert.equal(ports.get('http'), at(effective, 'api.port'))
      assert.equal(ports.get('gossip'), at(effective, 'cluster.port'))
    })

    test('the cluster key is required from the Secret broker-ha-cluster (key `key`), and no Secret is shipped', () => {
      const sts = one<StatefulSet>(objects, 'StatefulSet')
      const container = sts.spec!.template.spec!.containers[0]!
      const keyRef = container.env?.find((e) => e.name === 'BROKER_CLUSTER_CONFIG_SECRET_KEY')?.valueFrom?.secretKeyRef
      assert.deepEqual(keyRef, { name: 'broker-ha-cluster', key: 'key', optional: false })
      assert.equal(only(objects, 'Secret').length, 0, 'no secret is shipped in the manifests')
    })

    test('a NetworkPolicy admits the cluster port (TCP and UDP) only from the StatefulSet\'s own pods', () => {
      const sts = one<StatefulSet>(objects, 'StatefulSet')
      const podLabels = sts.spec!.template.metadata!.labels!
      const policy = one<NetworkPolicy>(objects, 'NetworkPolicy')
      const selects = (sel: { matchLabels?: Record<string, string> } | undefined): boolean =>
        sel?.matchLabels !== undefined && Object.entries(sel.matchLabels).every(([k, v]) => podLabels[k] === v)
      assert.ok(selects(policy.spec!.podSelector), 'the policy applies to the broker pods')
      assert.deepEqual(policy.spec!.policyTypes, ['Ingress'])
      const container = sts.spec!.template.spec!.containers[0]!
      const clusterPorts = (container.ports ?? []).filter((p) => p.containerPort === 7946).map((p) => p.name)
      assert.deepEqual(clusterPorts.sort(), ['gossip', 'gossip-udp'])
      for (const rule of policy.spec!.ingress ?? []) {
        const opensCluster = (rule.ports ?? []).some((p) => clusterPorts.includes(String(p.port)) || p.port === 7946)
        if (!opensCluster) continue
        assert.ok((rule.from ?? []).length > 0, 'the cluster port is never open to every source')
        for (const peer of rule.from!) {
          assert.equal(peer.namespaceSelector, undefined, 'no other namespace')
          assert.equal(peer.ipBlock, undefined, 'no address block')
          assert.ok(selects(peer.podSelector), 'only pods of the StatefulSet')
        }
      }
      const open = (policy.spec!.ingress ?? []).filter((r) => (r.ports ?? []).some((p) => clusterPorts.includes(String(p.port))))
      assert.deepEqual(open.flatMap((r) => r.ports!.map((p) => `${String(p.port)}/${p.protocol}`)).sort(), ['gossip-udp/UDP', 'gossip/TCP'])
      // MQTT on every listener (mqtt, ws, mqtts, wss) and HTTP are not cut off by it.
      const reachable = (policy.spec!.ingress ?? []).filter((r) => r.from === undefined).flatMap((r) => r.ports!.map((p) => String(p.port)))
      assert.deepEqual(reachable.sort(), ['http', 'mqtt', 'mqtts', 'ws', 'wss'])
      const mqttService = one<Service>(objects, 'Service', (o) => o.metadata.name === 'mqtt')
      for (const p of mqttService.spec?.ports ?? []) assert.ok(reachable.includes(String(p.targetPort)), `the policy admits ${String(p.targetPort)}`)
    })

    if (overlay === 'production') {
      test('production: auth with hashed passwords, a deny-by-default ACL, API users, a required cluster key, a ServiceMonitor', () => {
        const cm = one<ConfigMap>(objects, 'ConfigMap')
        const config = parse(cm.data!['config.yaml']!) as { api: { user: Record<string, string> }, mqtt: { auth: Array<{ password?: string }>, acl: Array<{ filters?: Record<string, number>, username?: string }> } }
        assert.ok(config.mqtt.auth.length > 0)
        for (const rule of config.mqtt.auth) assert.match(rule.password ?? '', /^scrypt\$/, 'passwords are hashes')
        for (const hash of Object.values(config.api.user)) assert.match(hash, /^scrypt\$/)
        const last = config.mqtt.acl.at(-1)!
        assert.deepEqual(last, { filters: { '#': 0 } }, 'the ACL ends deny-by-default')
        assert.equal(only(objects, 'ServiceMonitor').length, 1)
        assert.equal(only(objects, 'Secret').length, 0, 'no secret is shipped in the manifests')
        // TLS: cert-manager's Secret mounted where the listeners read their files.
        const sts = one<StatefulSet>(objects, 'StatefulSet')
        const container = sts.spec!.template.spec!.containers[0]!
        const certificate = one(objects, 'Certificate') as unknown as { spec: { secretName: string } }
        const volume = sts.spec!.template.spec!.volumes?.find((v) => v.secret?.secretName === certificate.spec.secretName)
        assert.ok(volume !== undefined, 'the Certificate Secret is a volume')
        const mount = container.volumeMounts?.find((m) => m.name === volume.name)
        assert.ok(mount !== undefined)
        const tls = (parse(cm.data!['config.yaml']!) as { mqtt: { listeners: Array<{ type: string, cert?: string, key?: string }> } }).mqtt.listeners.filter((l) => l.type === 'mqtts' || l.type === 'wss')
        assert.deepEqual(tls.map((l) => l.type).sort(), ['mqtts', 'wss'])
        for (const l of tls) {
          assert.ok(l.cert?.startsWith(`${mount.mountPath}/`) === true, `${l.type} cert under ${mount.mountPath}`)
          assert.ok(l.key?.startsWith(`${mount.mountPath}/`) === true)
        }
      })
    }
  })
}

test('overlays exist and every one is covered', () => {
  assert.deepEqual(OVERLAYS, ['homelab', 'production'])
  for (const overlay of OVERLAYS) assert.ok(existsSync(join(K8S, 'overlays', overlay, 'kustomization.yaml')))
})
