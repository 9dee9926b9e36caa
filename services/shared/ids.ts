/**
 * Identifiers as they enter OMS. PostgreSQL's uuid type matches any letter case, but the saga, the
 * TCC participants and the events key their records by the id as text: an order cancelled as
 * "ABC..." would find nothing to undo under "abc...". So every UUID an API accepts is put in its
 * canonical lower-case form once, where it enters, and everything downstream sees one spelling.
 */
import { z } from 'zod';

/** A UUID in any letter case, parsed to canonical lower case. */
export const uuidInput = z.uuid().toLowerCase();
