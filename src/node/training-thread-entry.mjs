// Bootstrap of the training thread: a worker does not inherit the TypeScript loader of the
// main thread on Node 20, so it registers tsx itself before loading training-thread.ts.
import { register } from 'tsx/esm/api';

register();
await import('./training-thread.ts');
