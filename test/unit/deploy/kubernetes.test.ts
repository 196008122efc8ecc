import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseAllDocuments, stringify } from 'yaml';
import {
  kubernetesProblems,
  type Obj,
  renderKustomization,
  schemaProblems,
} from '../../helpers/deploy-kubernetes.js';

// deploy/: the Kubernetes manifests, rendered as `kubectl apply -k deploy/` would (test/helpers), each
// object validated against its kind's OpenAPI schema (kubernetes-models), then the checks that keep the
// manifests true to the daemon (probes, ops port, env names, secrets, shutdown bound).

const DEPLOY = join(import.meta.dirname, '..', '..', '..', 'deploy');
const temps: string[] = [];
afterAll(() => {
  for (const t of temps) rmSync(t, { recursive: true, force: true });
});

/** A copy of deploy/ with `file` changed by `edit` (on its parsed documents). */
function broken(file: string, edit: (docs: Obj[]) => void): string {
  const dir = mkdtempSync(join(tmpdir(), 'deploy-broken-'));
  temps.push(dir);
  cpSync(DEPLOY, dir, { recursive: true });
  const docs = parseAllDocuments(readFileSync(join(dir, file), 'utf8')).map((d) => d.toJS() as Obj);
  edit(docs);
  writeFileSync(join(dir, file), docs.map((d) => stringify(d)).join('---\n'));
  return dir;
}
const container = (docs: Obj[]) => docs[0]!.spec.template.spec.containers[0];
const byKindAndName = (a: Obj, b: Obj) =>
  `${a.kind}/${a.metadata.name}`.localeCompare(`${b.kind}/${b.metadata.name}`);
/** kubectl is not a dependency (not in Debian bookworm's current form); where it is, it checks the renderer. */
const kubectl = spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8' }).status === 0;

describe('deploy/ Kubernetes manifests', () => {
  it('render, validate against their schemas and pass every check', () => {
    const { objects } = renderKustomization(DEPLOY);
    expect(objects.map((o) => o.kind).sort()).toEqual([
      'ConfigMap',
      'Deployment',
      'Namespace',
      'PodDisruptionBudget',
      'Secret',
      'Service',
    ]);
    expect(kubernetesProblems(DEPLOY)).toEqual([]);
    // The namespace and image of the kustomization are applied.
    const deployment = objects.find((o) => o.kind === 'Deployment')!;
    expect(deployment.metadata.namespace).toBe('profile-sync');
    expect(deployment.spec.template.spec.containers[0].image).toBe('registry.example.com/profile-sync:0.1.0');
  });

  it.skipIf(!kubectl)('render as `kubectl kustomize` does (runs where kubectl is installed)', () => {
    const out = execFileSync('kubectl', ['kustomize', DEPLOY], { encoding: 'utf8' });
    const theirs = parseAllDocuments(out).map((d) => d.toJS() as Obj);
    expect(renderKustomization(DEPLOY).objects.sort(byKindAndName)).toEqual(theirs.sort(byKindAndName));
  });

  it('the schema check catches a wrong type and a missing required field', () => {
    const bad = [
      { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'x' }, spec: { template: {} } },
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 's' }, spec: { ports: [{ port: 'ops' }] } },
      { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' } },
    ];
    expect(schemaProblems(bad)).toEqual([
      expect.stringMatching(/Deployment x: .*selector/),
      expect.stringMatching(/Service s: .*port must be integer/),
      expect.stringMatching(/Pod p: no schema for v1\/Pod/),
    ]);
  });

  const cases: [string, string, (docs: Obj[]) => void, RegExp][] = [
    [
      'a misspelt field',
      'deployment.yaml',
      (d) => {
        const c = container(d);
        c.readinesProbe = c.readinessProbe;
      },
      /containers\[0\]\.readinesProbe: unknown field/,
    ],
    [
      'a field at the wrong level',
      'service.yaml',
      (d) => {
        d[0]!.spec.ports[0].scrape = true;
      },
      /Service profile-sync\.spec\.ports\[0\]\.scrape: unknown field/,
    ],
    [
      'an unlisted manifest',
      'kustomization.yaml',
      (d) => d[0]!.resources.pop(),
      /resources does not list pdb.yaml/,
    ],
    [
      'a missing resource',
      'kustomization.yaml',
      (d) => d[0]!.resources.push('hpa.yaml'),
      /hpa.yaml does not exist/,
    ],
    [
      'an unrendered field',
      'kustomization.yaml',
      (d) => {
        d[0]!.patches = [];
      },
      /field 'patches'/,
    ],
    [
      'a schema error',
      'deployment.yaml',
      (d) => {
        d[0]!.spec.replicas = 'two';
      },
      /replicas must be integer/,
    ],
    [
      'liveness on /readyz',
      'deployment.yaml',
      (d) => {
        container(d).livenessProbe.httpGet.path = '/readyz';
      },
      /livenessProbe must GET \/healthz/,
    ],
    [
      'readiness on another port',
      'deployment.yaml',
      (d) => {
        container(d).readinessProbe.httpGet.port = 8080;
      },
      /readinessProbe port 8080/,
    ],
    [
      'no startup probe',
      'deployment.yaml',
      (d) => {
        delete container(d).startupProbe;
      },
      /startupProbe missing/,
    ],
    [
      'no memory limit',
      'deployment.yaml',
      (d) => {
        delete container(d).resources.limits.memory;
      },
      /limits.memory missing/,
    ],
    [
      'a writable root filesystem',
      'deployment.yaml',
      (d) => {
        container(d).securityContext.readOnlyRootFilesystem = false;
      },
      /readOnlyRootFilesystem/,
    ],
    [
      'capabilities kept',
      'deployment.yaml',
      (d) => {
        container(d).securityContext.capabilities.drop = [];
      },
      /drop ALL/,
    ],
    [
      'a grace period shorter than the shutdown',
      'deployment.yaml',
      (d) => {
        d[0]!.spec.template.spec.terminationGracePeriodSeconds = 20;
      },
      /terminationGracePeriodSeconds 20/,
    ],
    [
      'an unknown env var',
      'deployment.yaml',
      (d) => {
        container(d).env = [{ name: 'SYNC_CONCURENCY', value: '8' }];
      },
      /SYNC_CONCURENCY is not a profile-sync variable/,
    ],
    [
      'a misspelt ConfigMap key',
      'configmap.yaml',
      (d) => {
        d[0]!.data.SOURCE_ULR = d[0]!.data.SOURCE_URL;
        delete d[0]!.data.SOURCE_URL;
      },
      /SOURCE_ULR is not a profile-sync variable/,
    ],
    [
      'a secret in the ConfigMap',
      'configmap.yaml',
      (d) => {
        d[0]!.data.PRELUDE_API_KEY = 'CHANGE_ME';
      },
      /ConfigMap: PRELUDE_API_KEY is a secret/,
    ],
    [
      'a non-secret in the Secret',
      'secret.yaml',
      (d) => {
        d[0]!.stringData.LOG_LEVEL = 'info';
      },
      /Secret: LOG_LEVEL is not a secret/,
    ],
    [
      'a real-looking secret',
      'secret.yaml',
      (d) => {
        d[0]!.stringData.SUNSHINE_API_TOKEN = 'abc123';
      },
      /SUNSHINE_API_TOKEN must be a CHANGE_ME placeholder/,
    ],
    [
      'an invalid configuration',
      'configmap.yaml',
      (d) => {
        d[0]!.data.SOURCE_URL = 'http://identity.example.com';
      },
      /plain http/,
    ],
    [
      'the ops server on loopback',
      'configmap.yaml',
      (d) => {
        d[0]!.data.OPS_HOST = '127.0.0.1';
      },
      /OPS_HOST: 127.0.0.1/,
    ],
    [
      'a Service on another port',
      'service.yaml',
      (d) => {
        d[0]!.spec.ports[0].targetPort = 8080;
      },
      /targetPort 8080/,
    ],
    [
      'no scrape annotation',
      'service.yaml',
      (d) => {
        delete d[0]!.metadata.annotations['prometheus.io/scrape'];
      },
      /prometheus.io\/scrape/,
    ],
    [
      'a PDB that blocks drains',
      'pdb.yaml',
      (d) => {
        d[0]!.spec.minAvailable = 2;
      },
      /blocks every drain/,
    ],
    [
      'a PDB selecting nothing',
      'pdb.yaml',
      (d) => {
        d[0]!.spec.selector.matchLabels = { app: 'other' };
      },
      /PodDisruptionBudget: selector/,
    ],
  ];
  it.each(cases)('fail on %s', (_name, file, edit, problem) => {
    expect(kubernetesProblems(broken(file, edit))).toContainEqual(expect.stringMatching(problem));
  });
});
