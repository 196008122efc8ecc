import { join } from 'node:path';
import { packageRoot } from '../../src/paths.js';

/**
 * The vendor documents (the contract): `../shared/seeds/` beside the repository, as on the developers'
 * machines and in CI. `PROFILE_SYNC_SEEDS_DIR` points elsewhere for a clone that lives apart from them.
 */
export const SEEDS_DIR = process.env.PROFILE_SYNC_SEEDS_DIR ?? join(packageRoot(), '..', 'shared', 'seeds');
export const PRELUDE_OPENAPI_PATH = join(SEEDS_DIR, 'prelude-openapi.yaml');
