/** pingWorkflow: one activity round trip through a worker; what `./oms verify` and the smoke test run. */
import { proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { DiagnosticsActivities } from '../activities/diagnostics';

const { describeActivityWorker } = proxyActivities<DiagnosticsActivities>({
  startToCloseTimeout: '10 seconds',
  retry: { maximumAttempts: 3 },
});

export interface PingResult {
  workflowId: string;
  message: string;
  workerIdentity: string;
}

export async function pingWorkflow(message: string): Promise<PingResult> {
  const answer = await describeActivityWorker(message);
  return { workflowId: workflowInfo().workflowId, message: answer.message, workerIdentity: answer.workerIdentity };
}
