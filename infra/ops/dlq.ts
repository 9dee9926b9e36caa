/**
 * Operator commands for the dead letter topic (`./oms dlq ...`):
 *
 *   list [--limit N] [--json]            the newest dead letters: offset, when, source, event type,
 *                                        original topic, key, reason, and whether it was republished
 *   show OFFSET                          one dead letter in full: headers and value
 *   republish OFFSET [--again] [--reason TEXT]
 *   republish --all-matching EVENT_TYPE [--again] [--reason TEXT]
 *                                        sends the dead letter(s) back to the original topic with the
 *                                        original key and headers (so the same event id: consumers'
 *                                        inboxes still apply it at most once)
 *
 * Republish after fixing what made the event fail (the reason says). Each republish is recorded
 * who and when twice: as a record message on the dead letter topic itself (so `list` shows it and a
 * second republish of the same dead letter is refused unless --again), and as a JSON line on
 * stdout and in $OMS_OPS_LOG (`./oms` sets it to .oms/logs/ops.log: `./oms logs ops`).
 * `--topic NAME` reads another dead letter topic (tests use their own).
 *
 * A dead letter from the outbox relay also left its outbox row FAILED: `./oms outbox requeue`
 * republishes from the row instead, which is the only way when the event was too large to keep.
 */
import { randomUUID } from 'node:crypto';
import { appendFileSync } from 'node:fs';
import { hostname, userInfo } from 'node:os';
import { parseArgs } from 'node:util';
import type { Kafka } from 'kafkajs';
import { loadConfig } from '../../lib/config';
import { createKafka, TOPICS } from '../../lib/kafka';
import { DEAD_LETTER_RECORD_HEADER, parseDeadLetter, republishHeaders, republishRefusal, type DeadLetter } from '../../workers/outbox-relay/relay';

const USAGE = `usage:
  ./oms dlq list [--limit N] [--json]
  ./oms dlq show OFFSET
  ./oms dlq republish OFFSET | --all-matching EVENT_TYPE  [--again] [--reason TEXT]`;

class UsageError extends Error {}
/** A request that was understood but cannot be done (nothing at that offset): exit 1, no usage. */
class OperatorError extends Error {}

interface RepublishRecord {
  by: string;
  at: string;
  reason: string | null;
  recordOffset: string;
}

/** Dead letters and the republish records that refer to them, as the topic holds them now. */
interface DeadLetterTopic {
  letters: DeadLetter[];
  republished: Map<string, RepublishRecord[]>;
}

const letterId = (partition: number, offset: string) => `${partition}:${offset}`;

/** Reads the whole topic up to its current end with a throwaway consumer group. */
async function readTopic(kafka: Kafka, topic: string): Promise<DeadLetterTopic> {
  const admin = kafka.admin();
  await admin.connect();
  let ends: Map<number, bigint>;
  try {
    const offsets = await admin.fetchTopicOffsets(topic);
    ends = new Map(offsets.filter(({ low, high }) => BigInt(high) > BigInt(low)).map(({ partition, high }) => [partition, BigInt(high)]));
  } finally {
    await admin.disconnect();
  }
  const messages: DeadLetter[] = [];
  if (ends.size > 0) {
    const groupId = `oms-ops-dlq-${randomUUID()}`;
    const consumer = kafka.consumer({ groupId, allowAutoTopicCreation: false });
    await consumer.connect();
    try {
      await consumer.subscribe({ topic, fromBeginning: true });
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`could not read ${topic} to its end within 60 s`)), 60_000);
        const remaining = new Set(ends.keys());
        consumer
          .run({
            eachMessage: async ({ partition, message }) => {
              messages.push(parseDeadLetter(partition, message));
              if (BigInt(message.offset) + 1n >= ends.get(partition)!) remaining.delete(partition);
              if (remaining.size === 0) {
                clearTimeout(timer);
                resolve();
              }
            },
          })
          .catch(reject);
      });
    } finally {
      await consumer.disconnect();
      const cleanup = kafka.admin();
      await cleanup.connect();
      await cleanup.deleteGroups([groupId]).catch(() => undefined);
      await cleanup.disconnect();
    }
  }
  const letters: DeadLetter[] = [];
  const republished = new Map<string, RepublishRecord[]>();
  for (const message of messages) {
    if (message.headers[DEAD_LETTER_RECORD_HEADER] === 'republished') {
      const target = letterId(Number(message.headers['dlq-republished-partition']), message.headers['dlq-republished-offset'] ?? '');
      const records = republished.get(target) ?? [];
      records.push({ by: message.headers['republished-by'] ?? '?', at: message.headers['republished-at'] ?? '?', reason: message.headers['republished-reason'] ?? null, recordOffset: message.offset });
      republished.set(target, records);
    } else {
      letters.push(message);
    }
  }
  letters.sort((a, b) => a.partition - b.partition || Number(BigInt(a.offset) - BigInt(b.offset)));
  return { letters, republished };
}

/** The operator, for the record: OMS_OPERATOR, else the user who ran sudo, else the login user, at this host. */
function operator(): string {
  return `${process.env.OMS_OPERATOR ?? process.env.SUDO_USER ?? userInfo().username}@${hostname()}`;
}

function valueForDisplay(value: Buffer): unknown {
  const text = value.toString('utf8');
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

function describeLetter(letter: DeadLetter, records: RepublishRecord[] | undefined) {
  return {
    partition: letter.partition,
    offset: letter.offset,
    failedAt: letter.failedAt,
    source: letter.source,
    reason: letter.reason,
    errorType: letter.errorType,
    originalTopic: letter.originalTopic,
    key: letter.key,
    eventId: letter.eventId,
    eventType: letter.eventType,
    headers: letter.headers,
    republished: records ?? [],
  };
}

/** OFFSET, or PARTITION:OFFSET when the topic has several partitions. */
function parseOffset(text: string | undefined): { partition: number; offset: string } {
  const match = /^(?:(\d+):)?(\d+)$/.exec(text ?? '');
  if (!match) throw new UsageError(`expected an OFFSET (or PARTITION:OFFSET), got '${text ?? ''}'`);
  return { partition: Number(match[1] ?? 0), offset: match[2]! };
}

function list({ letters, republished }: DeadLetterTopic, limit: number, json: boolean): void {
  const newest = letters.slice(-limit);
  if (json) {
    console.log(JSON.stringify(newest.map((letter) => describeLetter(letter, republished.get(letterId(letter.partition, letter.offset)))), null, 2));
    return;
  }
  if (newest.length === 0) {
    console.log('no dead letters');
    return;
  }
  console.log(`${'OFFSET'.padEnd(8)} ${'FAILED AT'.padEnd(24)} ${'SOURCE'.padEnd(28)} ${'EVENT TYPE'.padEnd(22)} ${'ORIGINAL TOPIC'.padEnd(20)} ${'KEY'.padEnd(36)} REASON`);
  for (const letter of newest) {
    const records = republished.get(letterId(letter.partition, letter.offset));
    const last = records?.at(-1);
    console.log(
      [
        (letter.partition === 0 ? letter.offset : letterId(letter.partition, letter.offset)).padEnd(8),
        (letter.failedAt ?? '-').padEnd(24),
        (letter.source ?? '-').padEnd(28),
        (letter.eventType ?? '-').padEnd(22),
        (letter.originalTopic ?? '-').padEnd(20),
        (letter.key ?? '-').padEnd(36),
        `${(letter.reason ?? '-').replace(/\s+/g, ' ').slice(0, 100)}${last ? `  [republished by ${last.by} at ${last.at}]` : ''}`,
      ].join(' '),
    );
  }
  console.log(`\n${newest.length} of ${letters.length} dead letters. Details: ./oms dlq show OFFSET`);
}

function show(topic: DeadLetterTopic, at: { partition: number; offset: string }): void {
  const letter = topic.letters.find((l) => l.partition === at.partition && l.offset === at.offset);
  if (!letter) throw new OperatorError(`no dead letter at ${letterId(at.partition, at.offset)}`);
  console.log(JSON.stringify({ ...describeLetter(letter, topic.republished.get(letterId(letter.partition, letter.offset))), value: valueForDisplay(letter.value) }, null, 2));
}

async function republish(
  kafka: Kafka,
  deadLetterTopic: string,
  topic: DeadLetterTopic,
  selected: DeadLetter[],
  { again, reason }: { again: boolean; reason: string | null },
): Promise<number> {
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false });
  await producer.connect();
  let failures = 0;
  try {
    for (const letter of selected) {
      const id = letterId(letter.partition, letter.offset);
      const refusal = republishRefusal(letter) ?? (!again && topic.republished.has(id) ? `already republished (by ${topic.republished.get(id)!.at(-1)!.by}); add --again to send it once more` : null);
      if (refusal) {
        console.log(`skipped ${id}: ${refusal}`);
        failures += 1;
        continue;
      }
      const by = operator();
      const at = new Date().toISOString();
      // The event first: a record without its event would hide a dead letter that was never resent.
      await producer.send({ topic: letter.originalTopic!, acks: -1, messages: [{ key: letter.key, value: letter.value, headers: republishHeaders(letter, deadLetterTopic) }] });
      const record = {
        [DEAD_LETTER_RECORD_HEADER]: 'republished',
        'dlq-republished-partition': String(letter.partition),
        'dlq-republished-offset': letter.offset,
        'republished-by': by,
        'republished-at': at,
        ...(reason ? { 'republished-reason': reason } : {}),
        ...(letter.eventId ? { 'event-id': letter.eventId } : {}),
      };
      await producer.send({ topic: deadLetterTopic, acks: -1, messages: [{ key: letter.key, value: JSON.stringify({ republished: id, to: letter.originalTopic, by, at, reason }), headers: record }] });
      const line = JSON.stringify({ msg: 'DLQ_REPUBLISHED', deadLetter: id, topic: letter.originalTopic, key: letter.key, eventId: letter.eventId, eventType: letter.eventType, by, at, reason });
      console.log(line);
      if (process.env.OMS_OPS_LOG) appendFileSync(process.env.OMS_OPS_LOG, `${line}\n`);
    }
  } finally {
    await producer.disconnect();
  }
  return failures;
}

async function main(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      limit: { type: 'string', default: '50' },
      json: { type: 'boolean', default: false },
      'all-matching': { type: 'string' },
      again: { type: 'boolean', default: false },
      reason: { type: 'string' },
      topic: { type: 'string', default: TOPICS.deadLetters },
    },
  });
  const [command, ...rest] = positionals;
  const deadLetterTopic = values.topic;
  const limit = Number(values.limit);
  if (!Number.isInteger(limit) || limit < 1) throw new UsageError('--limit must be a positive integer');
  if (command !== 'list' && command !== 'show' && command !== 'republish') throw new UsageError(command ? `unknown dlq command '${command}'` : 'missing command');
  if (command === 'list' && rest.length > 0) throw new UsageError('list takes no arguments');
  if (command === 'show' && rest.length !== 1) throw new UsageError('show needs one OFFSET');
  if (command === 'republish' && (rest.length > 0) === (values['all-matching'] !== undefined)) throw new UsageError('republish needs one OFFSET or --all-matching EVENT_TYPE');
  const at = command === 'list' || (command === 'republish' && rest.length === 0) ? undefined : parseOffset(rest[0]);

  const kafka = createKafka(loadConfig(), 'oms-ops-dlq');
  const topic = await readTopic(kafka, deadLetterTopic);
  if (command === 'list') return list(topic, limit, values.json);
  if (command === 'show') return show(topic, at!);

  const selected = at
    ? topic.letters.filter((letter) => letter.partition === at.partition && letter.offset === at.offset)
    : topic.letters.filter((letter) => letter.eventType === values['all-matching']);
  if (selected.length === 0) throw new OperatorError(at ? `no dead letter at ${letterId(at.partition, at.offset)}` : `no dead letter of type ${values['all-matching']}`);
  const skipped = await republish(kafka, deadLetterTopic, topic, selected, { again: values.again, reason: values.reason ?? null });
  console.log(`republished ${selected.length - skipped} of ${selected.length}`);
  if (skipped > 0) process.exitCode = 1;
}

main(process.argv.slice(2)).catch((error: unknown) => {
  console.error(error instanceof UsageError ? `${error.message}\n${USAGE}` : error instanceof OperatorError ? error.message : error);
  process.exitCode = error instanceof UsageError ? 2 : 1;
});
