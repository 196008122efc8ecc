// The Zendesk Sunshine Profiles API simulator (seeds 003 and 001). startSandbox builds it with
// sunshineVendor({ email, apiToken, seed, rateLimit: () => sim.rateLimit() }).
export { SunshineError, type SunshineErrorBody } from './errors.js';
export { type IdentifierQuery, parseIdentifierQuery } from './identifier-query.js';
export type { Identifier } from './identifiers.js';
export { deriveProfileName } from './profile-name.js';
export { type SunshineProfile, SunshineStore, type SunshineStoreOptions, type ZendeskUser } from './store.js';
export {
  SUNSHINE_DEFAULT_API_TOKEN,
  SUNSHINE_DEFAULT_EMAIL,
  type SunshineVendor,
  type SunshineVendorOptions,
  sunshineVendor,
} from './vendor.js';
