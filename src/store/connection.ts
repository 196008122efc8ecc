import { Cluster, Redis, type RedisOptions } from 'ioredis';

/**
 * One fix to an ioredis `Redis` (issue 8.15), applied to its duplicates too. `disconnect()` while the
 * connection waits to reconnect (status `reconnecting`: Redis went away, the retry timer runs) cancels
 * the retry and emits nothing: no `'end'`, and commands queued offline wait for ever. BullMQ's
 * `Worker.close()` disconnects its blocking connection (a `duplicate()` of ours) and awaits that
 * `'end'` and its pending BZPOPMIN, so a worker closed during or just after a Redis restart hung for
 * ever (3 daemons of 3 SIGTERMed right after their Redis came back only left through their shutdown
 * timeout). Patched, such a disconnect ends the connection as the disconnect of a live one does:
 * status `end`, `'end'` emitted, queued commands rejected with "Connection is closed.".
 */
export function withPromptDisconnect(client: Redis): Redis {
  // ioredis internals (what its close handler does for a manual close); not in its typings.
  const internals = client as unknown as {
    manuallyClosing: boolean;
    setStatus(status: string): void;
    flushQueue(err: Error): void;
  };
  const disconnect = client.disconnect.bind(client);
  client.disconnect = (reconnect = false) => {
    const waitingToReconnect = !reconnect && client.status === 'reconnecting';
    disconnect(reconnect);
    if (waitingToReconnect && client.status === 'reconnecting') {
      internals.manuallyClosing = false;
      internals.setStatus('end');
      internals.flushQueue(new Error('Connection is closed.'));
    }
  };
  const duplicate = client.duplicate.bind(client) as (override?: Partial<RedisOptions>) => Redis;
  (client as unknown as { duplicate: typeof duplicate }).duplicate = (override) =>
    withPromptDisconnect(duplicate(override));
  return client;
}

/** The Redis settings a connection needs (a subset of `Config['redis']`). */
export interface RedisConnectionOptions {
  url: string;
  /** Connect to a Redis Cluster; `url` is one seed node. @defaultValue false */
  cluster?: boolean;
  /** More seed nodes, `host:port` comma-separated. @defaultValue none */
  clusterNodes?: string;
  /**
   * ioredis `maxRetriesPerRequest` (per node on a Cluster). BullMQ needs `null`; a short-lived command
   * (`links`, the demo's clean-up) passes 1 so a lost Redis fails its command instead of waiting.
   * @defaultValue null
   */
  maxRetriesPerRequest?: number | null;
  /** Connect on the first command or `connect()` (`whenRedisReady` does it). @defaultValue false */
  lazyConnect?: boolean;
}

/**
 * A Redis connection for BullMQ and our stores. `maxRetriesPerRequest: null` is what BullMQ requires
 * for its blocking commands (a Worker refuses a connection without it); every Queue and Worker gets
 * one explicitly, there is no global client.
 *
 * With `cluster` the client is an ioredis `Cluster`. BullMQ reads a Cluster's per-node settings from
 * `redisOptions` (that is where `maxRetriesPerRequest: null` must go), and its docs require the queue
 * prefix to be a hash tag, which `RedisLayout.bullPrefix` is (`{<prefix>}`): every key of ours and
 * BullMQ's lives in that one slot, so multi-key scripts never hit CROSSSLOT. The `Cluster` is typed as
 * `Redis` because every command we send (keyed commands, EVALSHA, `defineCommand`) exists on both with
 * the same signature; the one exception, SCAN, which a Cluster cannot route by key, goes through
 * `scanKeys` below.
 */
export function createRedisConnection(opts: string | RedisConnectionOptions): Redis {
  const o = typeof opts === 'string' ? { url: opts } : opts;
  const maxRetriesPerRequest = o.maxRetriesPerRequest === undefined ? null : o.maxRetriesPerRequest;
  const lazyConnect = o.lazyConnect ?? false;
  if (!o.cluster)
    return withPromptDisconnect(
      new Redis(o.url, { maxRetriesPerRequest, enableReadyCheck: true, lazyConnect }),
    );
  const u = new URL(o.url);
  const seeds = [{ host: u.hostname, port: Number(u.port || 6379) }];
  for (const hp of (o.clusterNodes ?? '').split(',').map((s) => s.trim())) {
    if (!hp) continue;
    const i = hp.lastIndexOf(':');
    seeds.push({ host: hp.slice(0, i), port: Number(hp.slice(i + 1)) });
  }
  const cluster = new Cluster(seeds, {
    enableReadyCheck: true,
    lazyConnect,
    redisOptions: {
      maxRetriesPerRequest,
      enableReadyCheck: true,
      username: u.username ? decodeURIComponent(u.username) : undefined,
      password: u.password ? decodeURIComponent(u.password) : undefined,
      tls: u.protocol === 'rediss:' ? {} : undefined,
    },
  });
  return cluster as unknown as Redis;
}

/**
 * Every key matching `pattern`, on one Redis or on every master of a Cluster (SCAN only sees the node
 * it is sent to; our keys all share one slot, so one master answers, but scanning each is simpler
 * than computing the slot and stays right after a resharding).
 */
export async function scanKeys(redis: Redis | Cluster, pattern: string, count = 1000): Promise<string[]> {
  const nodes: Redis[] = redis instanceof Cluster ? redis.nodes('master') : [redis];
  const keys = new Set<string>();
  for (const node of nodes) {
    let cursor = '0';
    do {
      const [next, batch] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', count);
      cursor = next;
      for (const k of batch) keys.add(k);
    } while (cursor !== '0');
  }
  return [...keys];
}

/**
 * A second connection to the same Redis for a probe (the readiness check, src/http/redis-probe.ts): no
 * offline queue and no retries per request, so while Redis is away a command fails at once instead of
 * queueing. On a `Cluster`, ioredis's `duplicate(startupNodes, options)` takes the nodes first and the
 * per-node settings sit in `redisOptions`: passing a single node's options there would be lost, and the
 * probe would queue its PINGs again. The Cluster's own reconnect is left to ioredis.
 */
export function duplicateForProbe(conn: Redis | Cluster, connectionName: string): Redis {
  if (conn instanceof Cluster) {
    const probe = conn.duplicate(undefined, {
      enableOfflineQueue: false,
      redisOptions: { ...conn.options.redisOptions, maxRetriesPerRequest: 0, connectionName },
    });
    return probe as unknown as Redis;
  }
  return conn.duplicate({ enableOfflineQueue: false, maxRetriesPerRequest: 0, connectionName });
}
