#!/usr/bin/env node
// The executable: it only loads the compiled CLI (npm run build writes dist/).
import { main } from '../dist/src/cli.js'

main(process.argv).then((code) => {
  process.exitCode = code
})
