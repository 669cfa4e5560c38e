// The admin UI's public surface, for src/commands/admin.ts. The full-screen
// app (Ink and React) is loaded only when it is opened, so the scriptable
// subcommands start fast.
import type { RunOptions } from './run.js'

export type { RunOptions } from './run.js'
export { VIEWS, type ViewName } from './view-names.js'
export { ApiClusterSource, describeError, isAuthError, refusalOf, type ClusterSource, type ClusterTarget } from './cluster-source.js'
export { resolveTarget, DEFAULT_ADMIN_URL } from './admin-target.js'
export { kickClient, type KickOutcome } from './kick.js'
export { clientRows, memberRows, retainedRows, subscriberRows, type Answered } from './cluster-model.js'
export * from './report-tables.js'

/** Runs the full-screen app until the operator quits. */
export async function runAdminApp (options: RunOptions): Promise<void> {
  const run = await import('./run.js')
  await run.runAdminApp(options)
}
