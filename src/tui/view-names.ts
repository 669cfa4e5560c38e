// The views of the admin UI, in key order (1..5). Apart from app.tsx so the
// command can validate --view without loading Ink and React.
export const VIEWS = ['overview', 'clients', 'topics', 'events', 'metrics'] as const
export type ViewName = typeof VIEWS[number]
