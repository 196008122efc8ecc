// Counts the Redis round trips this process makes, by command (a Lua script by its defined name, a
// MULTI or pipeline as one round trip named by its commands) and by the first key's pattern (prefix,
// run id and ids folded). Patches ioredis's prototypes, so BullMQ's connections are counted too; call
// `installRedisCounter()` before any script is defined. `tag` (an AsyncLocalStorage) lets the caller
// attribute commands to what was running (e.g. inside a sync job's handler).
import { AsyncLocalStorage } from 'node:async_hooks';
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const sha1 = (s) => createHash('sha1').update(s).digest('hex');

/**
 * @param {typeof import('ioredis').Redis} Redis
 * @returns {{ tag: AsyncLocalStorage<string>, counts: Map<string, number>, reset(): void }}
 */
export function installRedisCounter(Redis) {
  const Pipeline = require('ioredis/built/Pipeline.js').default;
  const tag = new AsyncLocalStorage();
  const scripts = new Map();
  const counts = new Map();
  const origDefine = Redis.prototype.defineCommand;
  Redis.prototype.defineCommand = function (name, def) {
    scripts.set(sha1(def.lua), name.replace(/:[\d.]+$/, ''));
    return origDefine.call(this, name, def);
  };
  const keyPattern = (args) => {
    const k = args.find((a) => typeof a === 'string' && a.startsWith('{'));
    if (!k) return '';
    return k
      .replace(/^\{[^}]*\}/, '{p}')
      .replace(/\d{8}T\d{6}Z-[0-9a-f]{4}/g, '<run>')
      .replace(/:(sync-\w+)-<run>-[^:]+/, ':$1-<run>-<user>')
      .replace(/:[0-9a-f]{16,}$/, ':<id>')
      .replace(/:(\d+)$/, ':<n>');
  };
  const nameOf = (command) => {
    const n = command.name.toLowerCase();
    if (n === 'evalsha') return scripts.get(String(command.args[0])) ?? `evalsha:${command.args[0]}`;
    if (n === 'eval') return scripts.get(sha1(String(command.args[0]))) ?? 'eval';
    return n;
  };
  const argsOf = (command) =>
    command.name.toLowerCase().startsWith('eval') ? command.args.slice(2) : command.args;
  const bump = (key) => counts.set(key, (counts.get(key) ?? 0) + 1);
  const origSend = Redis.prototype.sendCommand;
  Redis.prototype.sendCommand = function (command, stream, node) {
    // A command with a stream is a pipeline's (or MULTI's): counted once per exec below.
    if (stream === undefined && command && typeof command.name === 'string') {
      bump(`${tag.getStore() ?? 'other'}\t${nameOf(command)}\t${keyPattern(argsOf(command))}`);
    }
    return origSend.call(this, command, stream, node);
  };
  const origExec = Pipeline.prototype.exec;
  Pipeline.prototype.exec = function (...a) {
    const cmds = this._queue.filter((c) => c.name !== 'multi' && c.name !== 'exec');
    // MULTI's exec may call this twice (once to queue, once to send): one round trip per pipeline.
    if (cmds.length && !this.psCounted) {
      this.psCounted = true;
      const names = [...new Set(cmds.map(nameOf))];
      bump(`${tag.getStore() ?? 'other'}\tpipeline[${names.join(',')}]\t${keyPattern(argsOf(cmds[0]))}`);
    }
    return origExec.apply(this, a);
  };
  return { tag, counts, reset: () => counts.clear() };
}
