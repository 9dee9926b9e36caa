import { describe, expect, it } from 'vitest';
import * as registered from '../../workflows/index';
import { OUTBOX_RELAY_WORKFLOW_TYPE } from '../../workflows/outbox-relay-contract';
import { WORKFLOW_TYPES } from '../../workflows/order-contract';

// Services and workers start workflows by type name from the contracts (they never import a
// workflow body); a name the worker does not register would only fail at run time.
describe('workflow type names in the contracts', () => {
  it('are all registered by the worker bundle', () => {
    const names = [...Object.values(WORKFLOW_TYPES), OUTBOX_RELAY_WORKFLOW_TYPE];
    for (const name of names) expect(Object.keys(registered), name).toContain(name);
  });
});
