// See sweep.ts.
import { sweep } from './sweep.js'

sweep(5)
