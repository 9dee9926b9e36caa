/**
 * The workflow bundle: workflows/ compiled by Temporal's bundler into the sandboxed code workers run.
 * `tsx workers/workflow-bundle.ts` writes it to dist/ (the test command builds it, which also proves
 * workflows/ imports nothing the sandbox forbids). Workers bundle from source at start-up unless
 * OMS_WORKFLOW_BUNDLE names a prebuilt file: a stale bundle silently running old code is worse than
 * a few seconds of start-up.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleWorkflowCode, type WorkflowBundleOption } from '@temporalio/worker';

export const workflowsPath = fileURLToPath(new URL('../workflows/index.ts', import.meta.url));
/**
 * Workflow interceptor modules bundled with the workflows: the saga metrics (workers/saga-metrics.ts
 * receives them) and the correlation id's way from a saga's memo to its activities and children.
 */
export const workflowInterceptorModules = ['saga-metrics-interceptor.ts', 'correlation-interceptor.ts'].map((module) =>
  fileURLToPath(new URL(`../workflows/${module}`, import.meta.url)),
);
export const prebuiltBundlePath = fileURLToPath(new URL('../dist/workflow-bundle.js', import.meta.url));

export async function buildWorkflowBundle(): Promise<{ code: string }> {
  return bundleWorkflowCode({ workflowsPath, workflowInterceptorModules });
}

// One bundle per process: the saga and outbox workers (and every worker a test suite creates) run
// the same workflows/, and bundling takes seconds of CPU each time.
let bundledOnce: Promise<{ code: string }> | undefined;

/** The workflow code a worker runs: the prebuilt bundle named by `bundlePath`, else workflows/ bundled once. */
export async function workflowSource(bundlePath: string | undefined): Promise<{ workflowBundle: WorkflowBundleOption }> {
  if (bundlePath) return { workflowBundle: { codePath: bundlePath } };
  bundledOnce ??= buildWorkflowBundle();
  return { workflowBundle: await bundledOnce };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { code } = await buildWorkflowBundle();
  await mkdir(dirname(prebuiltBundlePath), { recursive: true });
  await writeFile(prebuiltBundlePath, code);
  console.log(`workflow bundle written to ${prebuiltBundlePath} (${Math.round(code.length / 1024)} KiB)`);
}
