/**
 * What the tccPayment child workflow itself costs the engine: the bench runs the same closed loop on
 * two minimal shapes with the saga's seven no-op local activities (test/bench/engine-shapes-workflows.ts),
 * one workflow against a parent with a child, on a task queue of its own served by a worker in the
 * bench process with the saga worker's settings (bench-engine.ts). The saga keeps its payment flow
 * a child workflow so that operators see it on its own in the Web UI; the ratio of the two says
 * what that costs.
 */
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { bundleWorkflowCode } from '@temporalio/worker';
import type { Config } from '../../lib/config';
import { sagaWorkerTuning } from '../../workers/saga-worker';
import { startBenchEngine } from './bench-engine';

export const ENGINE_SHAPES = {
  /** Seven local activities in one workflow. */
  'one workflow': 'sevenLocalActivities',
  /** The same seven, three in a parent around a child that runs four: the saga's split. */
  'parent + child': 'threeLocalActivitiesAroundAChild',
} as const;
export type EngineShape = keyof typeof ENGINE_SHAPES;

export interface EngineShapes {
  /** Starts one workflow of `shape` (eagerly, as the saga starter does) and waits for its result. */
  runOne: (shape: EngineShape) => Promise<void>;
  close: () => Promise<void>;
}

export async function startEngineShapes(config: Config): Promise<EngineShapes> {
  const workflowBundle = await bundleWorkflowCode({ workflowsPath: fileURLToPath(new URL('./engine-shapes-workflows.ts', import.meta.url)) });
  const engine = await startBenchEngine(config, 'shapes', ({ connection, taskQueue, identity }) => ({
    connection,
    namespace: config.TEMPORAL_NAMESPACE,
    taskQueue,
    identity,
    workflowBundle,
    activities: { noop: async () => undefined },
    ...sagaWorkerTuning(config),
  }));
  return {
    runOne: (shape) => engine.run(ENGINE_SHAPES[shape], { workflowId: `bench-shape-${randomUUID()}` }),
    close: engine.close,
  };
}
