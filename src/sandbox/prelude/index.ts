// The Prelude Session Management API simulator (seed 004, prelude-openapi.yaml). startSandbox builds it
// with preludeVendor({ apiKey, appId, seed, unknownShare, isKnownUser?, population, ids }).
export {
  IDENTIFIER_TYPES,
  type IdentifierType,
  normalizeEmail,
  type PopulationUser,
  PreludeDirectory,
  type PreludeUser,
  seededKind,
} from './directory.js';
export { PRELUDE_ERRORS, type PreludeErrorBody, type PreludeErrorCode, preludeError } from './errors.js';
export { inUnknownShare } from './known-users.js';
export { checkPatchRequest } from './patch-request.js';
export { isReservedProfileKey } from './reserved-keys.js';
export { type PreludeIdMode, PreludeState, type PreludeStateOptions } from './state.js';
export {
  BATCH_LOOKUP_MAX,
  checkBatchLookup,
  checkCreateUser,
  checkPutExternalId,
  EXTERNAL_ID_MAX,
} from './users-request.js';
export { isUsrId, USR_ID_PATTERN, usrId } from './usr-ids.js';
export {
  lookupBody,
  PRELUDE_DEFAULT_API_KEY,
  PRELUDE_DEFAULT_APP_ID,
  type PreludeVendor,
  type PreludeVendorOptions,
  preludeVendor,
  userBody,
} from './vendor.js';
