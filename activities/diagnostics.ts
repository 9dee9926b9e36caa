/** Activities with no side effects, used to prove a worker and the Temporal server work end to end. */
import { Context } from '@temporalio/activity';

export interface DiagnosticsDependencies {
  workerIdentity: string;
}

export function createDiagnosticsActivities({ workerIdentity }: DiagnosticsDependencies) {
  return {
    /** Answers which worker ran it and on which attempt; nothing else. */
    describeActivityWorker(message: string): Promise<{ message: string; workerIdentity: string; attempt: number }> {
      return Promise.resolve({ message, workerIdentity, attempt: Context.current().info.attempt });
    },
  };
}

export type DiagnosticsActivities = ReturnType<typeof createDiagnosticsActivities>;
