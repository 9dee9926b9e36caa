import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import * as registered from '../../workflows/index';
import { OUTBOX_RELAY_WORKFLOW_TYPE } from '../../workflows/outbox-relay-contract';
import { WORKFLOW_TYPES } from '../../workflows/order-contract';
import { searchAttributeArguments } from '../../infra/search-attributes';

// Services and workers start workflows by type name from the contracts (they never import a
// workflow body); a name the worker does not register would only fail at run time.
describe('workflow type names in the contracts', () => {
  it('are all registered by the worker bundle', () => {
    const names = [...Object.values(WORKFLOW_TYPES), OUTBOX_RELAY_WORKFLOW_TYPE];
    for (const name of names) expect(Object.keys(registered), name).toContain(name);
  });
});

// docker-compose cannot ask the contract, so its temporal-setup lists the search attributes itself:
// this keeps that list the contract's (infra/stack.sh and the test containers ask the contract).
describe('search attributes in the contract', () => {
  it('are all registered by docker-compose, with their types, and nothing else', async () => {
    const compose = await readFile(new URL('../../infra/docker-compose.yml', import.meta.url), 'utf8');
    const registeredByCompose = [...compose.matchAll(/--name (\w+) --type (\w+)/g)].map(([, name, type]) => `${name}=${type}`);
    expect(registeredByCompose.sort()).toEqual(searchAttributeArguments().sort());
  });
});
