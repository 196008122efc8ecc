// The simulator kit: one vendor = routes + authentication + error shapes; the kit serves it with
// rate limits, fault injection, counters, a request log and the /__sandbox/ inspection API.
export { basicCredentials, bearerToken, cookie, sameSecret } from './auth.js';
export { BODY_FAULT_DEFAULT, FaultInjector, validateFaultRules } from './faults.js';
export { hash32, hashUnit, pick, prng } from './prng.js';
export { RequestLog } from './request-log.js';
export { Router } from './router.js';
export { INSPECT_PREFIX, InspectError, startSim, validateRateLimit } from './server.js';
export { rateLimitHeaders, TokenBuckets } from './token-bucket.js';
export * from './types.js';
