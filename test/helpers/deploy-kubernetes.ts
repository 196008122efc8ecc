import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { ConfigMap, Namespace, Secret, Service } from 'kubernetes-models/v1';
import { parseAllDocuments } from 'yaml';
import { isSecretEnv } from '../../src/config/config-file.js';
import { ENV_PATHS, loadConfig } from '../../src/config/load.js';
import { configSchema } from '../../src/config/schema.js';
import { HAND_BACK_MAX_MS } from '../../src/daemon/daemon.js';
import { packageRoot } from '../../src/paths.js';

/**
 * The checks of deploy/ (test/unit/deploy/kubernetes.test.ts), as functions that return problems, so
 * that a test can run them on a broken copy and see each one fail. Offline: kustomize is not needed
 * (the kustomization is rendered here; the fields it may use are listed) and the schemas are those of
 * the `kubernetes-models` package.
 */

// biome-ignore lint/suspicious/noExplicitAny: manifests are untyped YAML
export type Obj = Record<string, any>;

/** apiVersion/kind -> the kubernetes-models class whose validate() holds the OpenAPI schema. */
const MODELS: Record<string, { new (data: Obj): { validate(): void } }> = {
  'v1/ConfigMap': ConfigMap,
  'v1/Namespace': Namespace,
  'v1/Secret': Secret,
  'v1/Service': Service,
  'apps/v1/Deployment': Deployment,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
};

/** The kustomization fields the renderer below implements; any other is a problem, never ignored. */
const KUSTOMIZATION_KEYS = new Set(['apiVersion', 'kind', 'namespace', 'resources', 'images']);

export interface Rendered {
  objects: Obj[];
  problems: string[];
}

function yamlDocs(file: string, problems: string[]): Obj[] {
  const docs = parseAllDocuments(readFileSync(file, 'utf8'));
  const out: Obj[] = [];
  for (const doc of docs) {
    if (doc.errors.length) problems.push(`${file}: ${doc.errors[0]!.message}`);
    const value = doc.toJS() as unknown;
    if (value !== null && value !== undefined) out.push(value as Obj);
  }
  return out;
}

/** `kustomize build` for what deploy/kustomization.yaml uses: resources, namespace, images. */
export function renderKustomization(dir: string): Rendered {
  const problems: string[] = [];
  const file = join(dir, 'kustomization.yaml');
  if (!existsSync(file)) return { objects: [], problems: [`${file}: missing`] };
  const k = yamlDocs(file, problems)[0] ?? {};
  if (k.apiVersion !== 'kustomize.config.k8s.io/v1beta1' || k.kind !== 'Kustomization') {
    problems.push(
      'kustomization.yaml: apiVersion/kind must be kustomize.config.k8s.io/v1beta1 Kustomization',
    );
  }
  for (const key of Object.keys(k)) {
    if (!KUSTOMIZATION_KEYS.has(key)) {
      problems.push(`kustomization.yaml: field '${key}' is not rendered by this check; extend it`);
    }
  }
  const resources: unknown[] = Array.isArray(k.resources) ? k.resources : [];
  const manifests = readdirSync(dir).filter((f) => /\.ya?ml$/.test(f) && f !== 'kustomization.yaml');
  for (const m of manifests) {
    if (!resources.includes(m)) problems.push(`kustomization.yaml: resources does not list ${m}`);
  }
  const objects: Obj[] = [];
  for (const r of resources) {
    if (typeof r !== 'string' || !existsSync(join(dir, r))) {
      problems.push(`kustomization.yaml: resource ${String(r)} does not exist`);
      continue;
    }
    objects.push(...yamlDocs(join(dir, r), problems));
  }
  for (const o of objects) {
    if (typeof k.namespace === 'string') {
      if (o.kind === 'Namespace') o.metadata.name = k.namespace;
      else o.metadata = { ...o.metadata, namespace: k.namespace };
    }
    for (const c of o.spec?.template?.spec?.containers ?? []) {
      const [name] = String(c.image).split(':');
      const image = (k.images ?? []).find((i: Obj) => i.name === name);
      if (image) c.image = `${image.newName ?? name}:${image.newTag ?? 'latest'}`;
    }
  }
  return { objects, problems };
}

/** Every object valid against the schema of its apiVersion/kind. */
export function schemaProblems(objects: Obj[]): string[] {
  const problems: string[] = [];
  for (const o of objects) {
    const id = `${o.apiVersion}/${o.kind}`;
    const where = `${o.kind ?? '?'} ${o.metadata?.name ?? '?'}`;
    const Model = MODELS[id];
    if (!Model) {
      problems.push(`${where}: no schema for ${id} (add it to MODELS or fix apiVersion/kind)`);
      continue;
    }
    try {
      new Model(o).validate();
    } catch (err) {
      problems.push(`${where}: ${(err as Error).message}`);
    }
  }
  return problems;
}

/**
 * Field name -> the declaration file of its type when that type is an object model (undefined for a
 * scalar or a map), read from the interface a kubernetes-models `.d.ts` file declares.
 */
const shapes = new Map<string, Map<string, string | undefined>>();
function shapeOf(file: string): Map<string, string | undefined> {
  const known = shapes.get(file);
  if (known) return known;
  const shape = new Map<string, string | undefined>();
  shapes.set(file, shape);
  if (!existsSync(file)) return shape;
  const text = readFileSync(file, 'utf8');
  const imports = new Map<string, string>();
  for (const m of text.matchAll(/^import \{ (\w+) \} from "([^"]+)";$/gm)) {
    const spec = m[2]!;
    imports.set(
      m[1]!,
      spec.startsWith('.')
        ? join(dirname(file), `${spec}.d.ts`)
        : join(packageRoot(), 'node_modules', `${spec}.d.ts`),
    );
  }
  const start = text.search(/^export interface \w+/m);
  if (start < 0) return shape;
  const block = text.slice(start, text.indexOf('\n}', start));
  if (/^export interface \w+ extends TypeMeta/.test(block)) {
    shape.set('apiVersion', undefined);
    shape.set('kind', undefined);
  }
  for (const m of block.matchAll(/^ {4}"([^"]+)"\??: (.+?);?$/gm)) {
    const type = /^(?:Array<(\w+)>|(\w+))$/.exec(m[2]!);
    shape.set(m[1]!, imports.get(type?.[1] ?? type?.[2] ?? ''));
  }
  return shape;
}

function walkFields(value: unknown, file: string, path: string, problems: string[]): void {
  if (typeof value !== 'object' || value === null) return;
  if (Array.isArray(value)) {
    for (const [i, v] of value.entries()) walkFields(v, file, `${path}[${i}]`, problems);
    return;
  }
  const shape = shapeOf(file);
  for (const [key, v] of Object.entries(value)) {
    if (!shape.has(key)) problems.push(`${path}.${key}: unknown field`);
    else if (shape.get(key)) walkFields(v, shape.get(key)!, `${path}.${key}`, problems);
  }
}

/**
 * The OpenAPI schemas allow any extra field (the API server drops or, with strict validation, refuses
 * it): a misspelt `readinesProbe` would pass them. Every field must be one the model declares.
 */
export function unknownFieldProblems(objects: Obj[]): string[] {
  const problems: string[] = [];
  const models = join(packageRoot(), 'node_modules', 'kubernetes-models');
  for (const o of objects) {
    const file = join(models, String(o.apiVersion), `${o.kind}.d.ts`);
    if (existsSync(file)) walkFields(o, file, `${o.kind} ${o.metadata?.name}`, problems);
  }
  return problems;
}

function one(objects: Obj[], kind: string, problems: string[]): Obj | undefined {
  const found = objects.filter((o) => o.kind === kind);
  if (found.length !== 1) problems.push(`expected one ${kind}, found ${found.length}`);
  return found[0];
}

function matches(selector: Obj | undefined, labels: Obj | undefined): boolean {
  const want = Object.entries(selector ?? {});
  return want.length > 0 && want.every(([k, v]) => labels?.[k] === v);
}

/** What the tests care about beyond the schema: probes, env names, secrets, shutdown, selectors. */
export function structureProblems(objects: Obj[]): string[] {
  const problems: string[] = [];
  const deployment = one(objects, 'Deployment', problems);
  const configMap = one(objects, 'ConfigMap', problems);
  const secret = one(objects, 'Secret', problems);
  const service = one(objects, 'Service', problems);
  const pdb = one(objects, 'PodDisruptionBudget', problems);
  if (!deployment || !configMap || !secret || !service || !pdb) return problems;

  // ConfigMap and Secret: known variables only, the secret ones in the Secret and only there.
  const cmData: Obj = configMap.data ?? {};
  if (secret.data) problems.push('Secret: use stringData placeholders, not data');
  const secretData: Obj = secret.stringData ?? {};
  for (const [name, value] of Object.entries(cmData)) {
    if (!(name in ENV_PATHS)) problems.push(`ConfigMap: ${name} is not a profile-sync variable`);
    if (isSecretEnv(name)) problems.push(`ConfigMap: ${name} is a secret; move it to the Secret`);
    if (typeof value !== 'string') problems.push(`ConfigMap: ${name} must be a string (quote it)`);
  }
  for (const [name, value] of Object.entries(secretData)) {
    if (!(name in ENV_PATHS)) problems.push(`Secret: ${name} is not a profile-sync variable`);
    if (!isSecretEnv(name)) problems.push(`Secret: ${name} is not a secret; move it to the ConfigMap`);
    if (!String(value).includes('CHANGE_ME')) {
      problems.push(
        `Secret: ${name} must be a CHANGE_ME placeholder (real values come from a secret manager)`,
      );
    }
  }
  const env: Record<string, string> = { ...cmData, ...secretData };
  let opsPort = configSchema.shape.ops.parse(undefined).port;
  let shutdownMs = configSchema.shape.sync.shape.shutdownTimeoutMs.parse(undefined);
  try {
    const config = loadConfig(env);
    opsPort = config.ops.port;
    shutdownMs = config.sync.shutdownTimeoutMs;
    if (!['0.0.0.0', '::'].includes(config.ops.host)) {
      problems.push(`OPS_HOST: ${config.ops.host} is not reachable from the kubelet; use 0.0.0.0`);
    }
  } catch (err) {
    problems.push(`ConfigMap + Secret are not a valid configuration: ${(err as Error).message}`);
  }

  const pod: Obj = deployment.spec?.template?.spec ?? {};
  const podLabels = deployment.spec?.template?.metadata?.labels;
  if (!matches(deployment.spec?.selector?.matchLabels, podLabels)) {
    problems.push('Deployment: selector does not match the pod labels');
  }
  const containers: Obj[] = pod.containers ?? [];
  if (containers.length !== 1)
    problems.push(`Deployment: expected one container, found ${containers.length}`);
  const c = containers[0] ?? {};
  if (JSON.stringify(c.args ?? c.command) !== '["daemon"]')
    problems.push('Deployment: args must be [daemon]');
  const port = (c.ports ?? []).find((p: Obj) => p.containerPort === opsPort);
  if (!port) problems.push(`Deployment: no containerPort ${opsPort} (OPS_PORT)`);
  const probePaths = { startupProbe: '/healthz', livenessProbe: '/healthz', readinessProbe: '/readyz' };
  for (const [probe, path] of Object.entries(probePaths)) {
    const get = c[probe]?.httpGet;
    if (!get) {
      problems.push(`Deployment: ${probe} missing (httpGet ${path})`);
      continue;
    }
    if (get.path !== path) problems.push(`Deployment: ${probe} must GET ${path}, not ${get.path}`);
    if (get.port !== opsPort && (get.port !== port?.name || !port?.name)) {
      problems.push(`Deployment: ${probe} port ${get.port} is not the ops port ${opsPort}`);
    }
  }
  for (const kind of ['requests', 'limits']) {
    for (const r of ['cpu', 'memory']) {
      if (!c.resources?.[kind]?.[r]) problems.push(`Deployment: resources.${kind}.${r} missing`);
    }
  }
  const sc: Obj = c.securityContext ?? {};
  const psc: Obj = pod.securityContext ?? {};
  if ((sc.runAsNonRoot ?? psc.runAsNonRoot) !== true) problems.push('Deployment: runAsNonRoot must be true');
  const uid = sc.runAsUser ?? psc.runAsUser;
  if (!Number.isInteger(uid) || uid === 0) problems.push('Deployment: runAsUser must be a non-zero uid');
  if (sc.readOnlyRootFilesystem !== true) problems.push('Deployment: readOnlyRootFilesystem must be true');
  if (sc.allowPrivilegeEscalation !== false)
    problems.push('Deployment: allowPrivilegeEscalation must be false');
  if (!(sc.capabilities?.drop ?? []).includes('ALL')) problems.push('Deployment: capabilities must drop ALL');
  const graceMs = (pod.terminationGracePeriodSeconds ?? 30) * 1000;
  if (graceMs <= shutdownMs + HAND_BACK_MAX_MS) {
    problems.push(
      `Deployment: terminationGracePeriodSeconds ${graceMs / 1000} must exceed SHUTDOWN_TIMEOUT_MS ${shutdownMs} ms + the ${HAND_BACK_MAX_MS} ms hand-back`,
    );
  }
  const envFrom: Obj[] = c.envFrom ?? [];
  const refs = envFrom.map((e) => e.configMapRef?.name ?? e.secretRef?.name);
  if (!envFrom.some((e) => e.configMapRef?.name === configMap.metadata?.name)) {
    problems.push('Deployment: envFrom does not reference the ConfigMap');
  }
  if (!envFrom.some((e) => e.secretRef?.name === secret.metadata?.name)) {
    problems.push('Deployment: envFrom does not reference the Secret');
  }
  if (refs.some((r) => r === undefined)) problems.push('Deployment: an envFrom entry names nothing');
  for (const e of c.env ?? []) {
    if (!(e.name in ENV_PATHS)) problems.push(`Deployment: env ${e.name} is not a profile-sync variable`);
    if (isSecretEnv(e.name) && e.value !== undefined) problems.push(`Deployment: env ${e.name} is a secret`);
  }

  if (!matches(service.spec?.selector, podLabels)) problems.push('Service: selector does not match the pods');
  const sp = (service.spec?.ports ?? [])[0] ?? {};
  if (sp.targetPort !== opsPort && sp.targetPort !== port?.name) {
    problems.push(`Service: targetPort ${sp.targetPort} is not the ops port`);
  }
  const ann: Obj = service.metadata?.annotations ?? {};
  if (ann['prometheus.io/scrape'] !== 'true' || ann['prometheus.io/path'] !== '/metrics') {
    problems.push('Service: prometheus.io/scrape "true" and prometheus.io/path /metrics annotations missing');
  }
  if (ann['prometheus.io/port'] !== String(opsPort))
    problems.push('Service: prometheus.io/port is not OPS_PORT');

  if (!matches(pdb.spec?.selector?.matchLabels, podLabels))
    problems.push('PodDisruptionBudget: selector does not match the pods');
  const replicas = deployment.spec?.replicas ?? 1;
  if (typeof pdb.spec?.minAvailable === 'number' && pdb.spec.minAvailable >= replicas) {
    problems.push(
      `PodDisruptionBudget: minAvailable ${pdb.spec.minAvailable} >= replicas ${replicas} blocks every drain`,
    );
  }
  return problems;
}

/** Every problem of a deploy/ directory: rendering, schemas, structure. */
export function kubernetesProblems(dir: string): string[] {
  const { objects, problems } = renderKustomization(dir);
  return [
    ...problems,
    ...schemaProblems(objects),
    ...unknownFieldProblems(objects),
    ...structureProblems(objects),
  ];
}
