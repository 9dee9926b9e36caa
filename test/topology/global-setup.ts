/** The failure tests need the production topology's spares; on the light stack they refuse to start, loudly. */
import { runningTopology } from './system';

export default function setup(): void {
  const topology = runningTopology();
  if (topology !== 'production') {
    throw new Error(`test/topology needs the production topology, and the ${topology} one runs: use ./oms test --topology production`);
  }
}
