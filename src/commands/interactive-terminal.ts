// Ink stops drawing live updates when it believes it runs in CI (the CI or
// CONTINUOUS_INTEGRATION variable, read once when Ink loads). A person who
// asked for a full-screen view on a terminal gets a blank screen then, and
// dev containers and CI-flavoured shells set CI=true. The commands that open
// such a view call this first, before Ink is imported.
export function letInkDrawOnThisTerminal (): void {
  delete process.env.CI
  delete process.env.CONTINUOUS_INTEGRATION
}
