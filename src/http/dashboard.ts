import type { IncomingMessage, ServerResponse } from 'node:http';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { HonoAdapter } from '@bull-board/hono';
import { getRequestListener } from '@hono/node-server';
import { serveStatic } from '@hono/node-server/serve-static';
import type { Queue } from 'bullmq';
import { Hono } from 'hono';
import { targetRateLimit } from '../config/schema.js';
import { maskBody } from '../core/masking.js';
import type { OpsEngine } from './ops-engine.js';

export interface DashboardOptions {
  engine: OpsEngine;
  /** Where the dashboard is mounted. @defaultValue '/dashboard' */
  basePath?: string;
  /**
   * Read-only board: no retry, clean, promote, pause, empty or remove from the page, so an operator
   * at 3 a.m. cannot drop the dead letters `retry-failed` needs with a misplaced click
   * (`OPS_DASHBOARD_READ_ONLY`). @defaultValue true
   */
  readOnly?: boolean;
  /** The page title. @defaultValue 'profile-sync queues' */
  title?: string;
}

/**
 * bull-board's "rate limited Ns" badge reads the limiter key's TTL, which exists for the whole window
 * after any job ran, so every sync queue looked rate limited after a run. With the worker limiter's
 * `max`, BullMQ reports a TTL only when the window's budget is used up or a 429 paused the queue
 * (`queue.rateLimit`, which sets the counter to the maximum): what an operator means by it.
 */
class LimitAwareAdapter extends BullMQAdapter {
  constructor(
    private readonly bullQueue: Queue,
    private readonly maxJobs: number | undefined,
    options: ConstructorParameters<typeof BullMQAdapter>[1],
  ) {
    super(bullQueue, options);
  }

  override async getActiveRateLimitTtl(): Promise<number> {
    return Math.max(0, await this.bullQueue.getRateLimitTtl(this.maxJobs));
  }
}

export type NodeHandler = (req: IncomingMessage, res: ServerResponse) => Promise<void>;

/**
 * The queue dashboard: bull-board over the scan queue and every sync queue, served by its Hono
 * adapter (hono and @hono/node-server have no dependencies; the Express adapter would bring Express
 * and its ~30 packages for one route). Returns a plain node:http handler for `basePath` and below.
 *
 * Sync job payloads carry a user's email and names (jobs/sync.ts): the board shows them masked
 * (`j***@example.com`), like run records, since whoever can open the page is not necessarily allowed
 * to read the customer list.
 */
export function createDashboard(opts: DashboardOptions): NodeHandler {
  const basePath = opts.basePath ?? '/dashboard';
  const readOnly = opts.readOnly ?? true;
  const { engine } = opts;
  const boards: [Queue, string, number | undefined][] = [
    [engine.scanQueue, 'source scans (one per run)', undefined],
    ...engine.targets.map((t): [Queue, string, number] => [
      engine.syncQueues[t]!,
      `writes to ${t}`,
      targetRateLimit(engine.config, t),
    ]),
  ];
  const queues = boards.map(([q, description, limit]) => {
    const adapter = new LimitAwareAdapter(q, limit, { readOnlyMode: readOnly, description });
    adapter.setFormatter('data', (data: unknown) => maskBody(data));
    return adapter;
  });
  const serverAdapter = new HonoAdapter(serveStatic);
  serverAdapter.setBasePath(basePath);
  createBullBoard({
    queues,
    serverAdapter,
    options: {
      uiConfig: {
        boardTitle: opts.title ?? 'profile-sync queues',
        hideDocsLink: true,
        // Back to the run, user and target pages (src/http/pages/), which link here for jobs.
        miscLinks: [
          { text: 'Runs', url: '/runs' },
          { text: 'Targets', url: '/targets' },
        ],
      },
    },
  });
  const app = new Hono();
  app.route(basePath, serverAdapter.registerPlugin());
  // Without overrideGlobalObjects: false, @hono/node-server replaces the global Request and Response
  // with its own light classes, for the whole process (undici and the connectors included).
  return getRequestListener(app.fetch, { overrideGlobalObjects: false });
}
