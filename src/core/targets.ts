/** The targets profile-sync writes to. Adding one starts here (docs/architecture.md "Adding a target"). */
export const TARGET_IDS = ['sunshine', 'zephr', 'prelude'] as const;
export type TargetId = (typeof TARGET_IDS)[number];
