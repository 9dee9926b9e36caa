/**
 * `tsx infra/search-attributes.ts`: prints the custom search attributes the workflows set, one
 * `Name=Type` per line, as the Temporal CLI's --search-attribute takes them. Their one home is
 * SEARCH_ATTRIBUTES in workflows/order-contract.ts; infra/stack.sh registers what this prints.
 */
import { pathToFileURL } from 'node:url';
import { SEARCH_ATTRIBUTES } from '../workflows/order-contract';

/** The CLI's spelling of a search attribute type ('KEYWORD' -> 'Keyword', 'DATETIME' -> 'Datetime'). */
const cliType = (type: string) => type.charAt(0) + type.slice(1).toLowerCase();

export const SEARCH_ATTRIBUTE_NAMES = Object.values(SEARCH_ATTRIBUTES).map((key) => key.name);

export function searchAttributeArguments(): string[] {
  return Object.values(SEARCH_ATTRIBUTES).map((key) => `${key.name}=${cliType(key.type)}`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) console.log(searchAttributeArguments().join('\n'));
