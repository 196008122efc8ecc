import { EventEmitter } from 'node:events';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../../src/log.js';
import { isRedisAuthError, RedisErrorLog, redisErrorFields } from '../../../src/store/redis-open.js';

function capture() {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _enc, cb) {
      lines.push(String(chunk));
      cb();
    },
  });
  return { lines, logger: createLogger({ destination }) };
}

/** What ioredis emits on a wrong password: a ReplyError carrying the handshake command. */
function wrongPass(password: string): Error {
  return Object.assign(new Error('WRONGPASS invalid username-password pair or user is disabled.'), {
    command: { name: 'hello', args: ['3', 'AUTH', 'default', password] },
  });
}

describe('Redis errors (issue 8.4)', () => {
  it('recognises WRONGPASS, NOAUTH, ERR invalid password, and behind a Cluster error', () => {
    expect(isRedisAuthError(wrongPass('x'))).toBe(true);
    expect(isRedisAuthError(new Error('NOAUTH Authentication required.'))).toBe(true);
    expect(isRedisAuthError(new Error('ERR invalid password'))).toBe(true);
    expect(
      isRedisAuthError(
        Object.assign(new Error('Failed to refresh slots cache.'), { lastNodeError: new Error('NOAUTH x') }),
      ),
    ).toBe(true);
    expect(isRedisAuthError(new Error('connect ECONNREFUSED 127.0.0.1:6379'))).toBe(false);
  });

  it('logs the message only (never the command), the password scrubbed, repeats once per window', () => {
    const { lines, logger } = capture();
    const log = new RedisErrorLog(logger, 'redis://:s3cr3t-pw@127.0.0.1:6390');
    const queue = new EventEmitter();
    const worker = new EventEmitter();
    log.watch(queue, 'queue q');
    log.watch(worker, 'worker q');
    for (let i = 0; i < 50; i++) {
      queue.emit('error', wrongPass('s3cr3t-pw'));
      worker.emit('error', wrongPass('s3cr3t-pw'));
    }
    queue.emit('error', new Error('oops s3cr3t-pw leaked into a message'));
    expect(lines).toHaveLength(2);
    expect(lines.join('')).not.toContain('s3cr3t-pw');
    expect(JSON.parse(lines[0]!).msg).toBe('Redis refused the credentials');
    expect(redisErrorFields(new Error('a s3cr3t-pw b'), 'redis://u:s3cr3t-pw@h:1').err).toBe(
      'a [redacted] b',
    );
  });
});
