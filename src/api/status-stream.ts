import type { Request, Response } from 'express';
import type { Redis } from 'ioredis';
import { UnavailableError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';

/**
 * The live stream of status changes (SPEC §6, `GET /api/stream`), served from the topic itself: each
 * web process reads `order.fulfillment.v1` with one blocking XREAD while it has clients, and hands
 * every `status.changed` entry to them. The topic's entry id is the event's `id:`, so any web process can
 * serve any client (no sticky sessions: they all read the same stream), and a client that reconnects
 * with `Last-Event-ID` is replayed the entries after it with XRANGE, then continues live with nothing
 * missed or repeated. How far back a replay can go is what the topic keeps: about its last million
 * messages of every type (the relay trims it), which is an hour and more at up to ~250 messages/s.
 */

export const HEARTBEAT_MS = 15_000;
/** A client whose unsent output grows past this is too slow to follow: it is dropped and may resume by id. */
export const MAX_BUFFERED_BYTES = 1024 * 1024;
/** Live changes held for a client while it is replayed, at most; past this it is dropped (and may resume by id). */
export const MAX_PENDING_CHANGES = 10_000;
const REPLAY_PAGE = 500;
/**
 * After a read that brought changes, the next read waits until this long after it: under a burst the
 * changes of ~10 ms go out in one write per client instead of one per entry (at 500 changes/s and 500
 * clients, ~50,000 writes/s instead of up to 250,000); a lone change is still sent at once.
 */
export const PUBLISH_INTERVAL_MS = 10;

export interface StatusChange {
  id: string;
  orderId: string;
  locationId: string | null;
  data: { orderId: string; from: number | null; to: number; at: string; locationId: string | null };
  /** The change as an SSE event, serialized once for every client that gets it. */
  frame: string;
}

interface Client {
  res: Response;
  orderId?: string | undefined;
  locationId?: string | undefined;
  /** While the client is being replayed, live changes wait here. */
  pending: StatusChange[] | null;
  lastId: string;
}

/** Stream entry ids compare as (ms, seq). */
function idAfter(a: string, b: string): boolean {
  const [am, as] = a.split('-').map(Number) as [number, number];
  const [bm, bs] = b.split('-').map(Number) as [number, number];
  return am > bm || (am === bm && as > bs);
}

function fieldsOf(raw: string[]): Record<string, string> {
  const m: Record<string, string> = {};
  for (let i = 0; i + 1 < raw.length; i += 2) m[raw[i]!] = raw[i + 1]!;
  return m;
}

/** A topic entry as a status change, or undefined for any other message type. */
function statusChangeOf(id: string, raw: string[]): StatusChange | undefined {
  const f = fieldsOf(raw);
  if (f.type !== 'status.changed' || !f.payload) return undefined;
  let p: { orderId?: string; from?: number | null; to?: number; at?: string; locationId?: string | null };
  try {
    p = JSON.parse(f.payload);
  } catch {
    return undefined;
  }
  if (typeof p.to !== 'number') return undefined;
  const orderId = p.orderId ?? f.orderId ?? '';
  const locationId = p.locationId ?? null;
  const data = { orderId, from: p.from ?? null, to: p.to, at: p.at ?? f.occurredAt ?? '', locationId };
  return { id, orderId, locationId, data, frame: `id: ${id}\nevent: status\ndata: ${JSON.stringify(data)}\n\n` };
}

export class StatusStream {
  private readonly clients = new Set<Client>();
  private lastSeen = '$';
  private running = false;
  private stopped = false;
  private reading: Promise<void> | undefined;
  /** Resolves once the read has its starting position; a replay waits for it (see serve). */
  private positioned: Promise<void> = Promise.resolve();
  private markPositioned: () => void = () => {};

  constructor(
    /** A connection of its own: XREAD BLOCK holds it. */
    private readonly reader: Redis,
    /** For XRANGE replays (not blocked). */
    private readonly redis: Redis,
    private readonly topic: string,
    private readonly logger: Logger,
    /** hub_stream_clients and hub_stream_buffered_bytes (read at each scrape), hub_stream_clients_dropped_total; when given. */
    private readonly metrics?: Pick<Metrics, 'liveStream' | 'streamClientsDropped'>,
  ) {
    if (metrics)
      metrics.liveStream.sample = () => {
        let bufferedBytes = 0;
        for (const client of this.clients) bufferedBytes += client.res.writableLength;
        return { clients: this.clients.size, bufferedBytes };
      };
  }

  /**
   * Starts reading the topic from now on, if it is not read already. The topic is read only while
   * clients are connected: with none, the loop ends after its current read, and the next client
   * starts it again (a process with no stream clients spends nothing on the topic).
   */
  start(): void {
    if (this.running || this.stopped) return;
    this.running = true;
    this.lastSeen = '$';
    let resolvePositioned!: () => void;
    this.positioned = new Promise<void>((resolve) => {
      resolvePositioned = resolve;
    });
    this.markPositioned = resolvePositioned;
    this.reading = this.readLoop();
  }

  /** Whether this process is reading the topic now (it does only while it has clients). */
  get readingTopic(): boolean {
    return this.running;
  }

  private async readLoop(): Promise<void> {
    // Start after the newest entry there is, read now: '$' would mean "after whatever is newest when
    // the first XREAD arrives", and an entry written in between would be in neither a replay nor the live read.
    while (!this.stopped && this.lastSeen === '$') {
      try {
        const [newest] = await this.reader.xrevrange(this.topic, '+', '-', 'COUNT', 1);
        this.lastSeen = newest ? newest[0] : '0-0';
        this.markPositioned();
      } catch (err) {
        if (this.stopped) return this.markPositioned();
        this.logger.warn({ err: (err as Error).message }, 'status stream could not read the topic; retrying');
        await new Promise((r) => setTimeout(r, 500));
      }
    }
    while (!this.stopped) {
      try {
        const answer = (await this.reader.xread('COUNT', 1000, 'BLOCK', 5000, 'STREAMS', this.topic, this.lastSeen)) as Array<
          [string, Array<[string, string[]]>]
        > | null;
        if (answer && this.clients.size > 0) {
          const changes: StatusChange[] = [];
          for (const [, entries] of answer) {
            for (const [id, raw] of entries) {
              this.lastSeen = id;
              const change = statusChangeOf(id, raw);
              if (change) changes.push(change);
            }
          }
          if (changes.length > 0) {
            const readAt = performance.now();
            this.publish(changes);
            const wait = readAt + PUBLISH_INTERVAL_MS - performance.now();
            if (wait > 0) await new Promise((r) => setTimeout(r, wait));
          }
        }
        // No client left: stop here (in the same turn as the check, so a client arriving next starts a new read).
        if (this.clients.size === 0) {
          this.running = false;
          return;
        }
      } catch (err) {
        if (this.stopped) return;
        this.logger.warn({ err: (err as Error).message }, 'status stream could not read the topic; retrying');
        await new Promise((r) => setTimeout(r, 500));
        if (this.clients.size === 0) {
          this.running = false;
          return;
        }
      }
    }
  }

  /** Hands what one read brought to every client: one write per client, however many changes it gets. */
  private publish(changes: StatusChange[]): void {
    // Clients without a filter that have had none of these changes all get the same bytes: encoded once.
    let everything: Buffer | undefined;
    const first = changes[0]!;
    const last = changes.at(-1)!;
    for (const client of this.clients) {
      if (!client.pending && !client.orderId && !client.locationId && idAfter(first.id, client.lastId)) {
        everything ??= Buffer.from(changes.map((c) => c.frame).join(''));
        this.write(client, everything, last.id);
      } else if (!client.pending) this.send(client, changes);
      else
        for (const change of changes) {
          if (!this.matches(client, change)) continue;
          client.pending.push(change);
          if (client.pending.length > MAX_PENDING_CHANGES) {
            this.drop(client, 'too slow');
            break;
          }
        }
    }
  }

  private matches(client: Client, change: StatusChange): boolean {
    return (!client.orderId || client.orderId === change.orderId) && (!client.locationId || client.locationId === change.locationId);
  }

  /**
   * Writes the changes (in id order) the client has not had and asked for, in one write; a live
   * client is dropped past MAX_BUFFERED_BYTES (a replay paces itself by 'drain' instead).
   */
  private send(client: Client, changes: readonly StatusChange[], replaying = false): void {
    if (!this.clients.has(client) || client.res.writableEnded) return;
    let frames = '';
    for (const change of changes) {
      if (!idAfter(change.id, client.lastId) || !this.matches(client, change)) continue;
      client.lastId = change.id;
      frames += change.frame;
    }
    if (!frames) return;
    this.write(client, frames, client.lastId, replaying);
  }

  /** Writes a client's frames up to lastId; a live client is dropped past MAX_BUFFERED_BYTES. */
  private write(client: Client, frames: string | Buffer, lastId: string, replaying = false): void {
    if (!this.clients.has(client) || client.res.writableEnded) return;
    client.lastId = lastId;
    client.res.write(frames);
    if (!replaying && client.res.writableLength > MAX_BUFFERED_BYTES) {
      this.logger.warn(
        { lastEventId: client.lastId, buffered: client.res.writableLength },
        'status stream client too slow; dropped (it may resume by Last-Event-ID)',
      );
      this.drop(client, 'too slow');
    }
  }

  /** Ends a client's stream; `too slow` counts it in hub_stream_clients_dropped_total. */
  private drop(client: Client, why?: 'too slow'): void {
    if (this.clients.delete(client) && why) this.metrics?.streamClientsDropped.inc();
    if (!client.res.writableEnded) client.res.end();
  }

  /** Serves one client: headers, the replay after `Last-Event-ID` (if any), then live changes and heartbeats. */
  async serve(req: Request, res: Response, filter: { orderId?: string | undefined; locationId?: string | undefined }): Promise<void> {
    if (this.stopped) throw new UnavailableError('this process is stopping; reconnect with Last-Event-ID');
    this.start();
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.flushHeaders();
    // An id that is not a stream entry id is no place to resume from: the client is served live only.
    const header = req.header('last-event-id')?.trim();
    const resumeFrom = header && /^\d+-\d+$/.test(header) ? header : undefined;
    const client: Client = { res, ...filter, pending: resumeFrom ? [] : null, lastId: resumeFrom ?? '0-0' };
    this.clients.add(client);
    const heartbeat = setInterval(() => {
      if (!res.writableEnded) res.write(`: keep-alive ${new Date().toISOString()}\n\n`);
    }, HEARTBEAT_MS);
    heartbeat.unref();
    // A write to a connection that broke must not take the process down: the client just goes.
    res.on('error', () => this.clients.delete(client));
    res.on('close', () => {
      clearInterval(heartbeat);
      this.clients.delete(client);
    });
    res.write(': connected\n\n');
    if (client.pending) {
      // A read just (re)started must know where it starts before the replay reads up to the end:
      // otherwise an entry written between the replay's last page and the read's start is in neither.
      await this.positioned;
      try {
        // Replay everything after the client's last id, page by page; live changes meanwhile wait.
        let from = `(${client.lastId}`;
        for (;;) {
          const page = await this.redis.xrange(this.topic, from, '+', 'COUNT', REPLAY_PAGE);
          const changes: StatusChange[] = [];
          for (const [id, raw] of page) {
            const change = statusChangeOf(id, raw);
            if (change) changes.push(change);
            from = `(${id}`;
          }
          this.send(client, changes, true);
          // Past the page's other messages too: live reading resumes after it.
          const last = page.at(-1)?.[0];
          if (last && idAfter(last, client.lastId)) client.lastId = last;
          if (page.length < REPLAY_PAGE || !this.clients.has(client)) break;
          // The next page only once this one is on its way: a long replay holds at most a page in
          // memory, at the pace the client reads (its live changes wait, bounded, in `pending`).
          if (res.writableNeedDrain)
            await new Promise<void>((resolve) => {
              const done = () => {
                res.off('drain', done);
                res.off('close', done);
                resolve();
              };
              res.on('drain', done);
              res.on('close', done);
            });
        }
      } catch (err) {
        // Going on live would leave a silent gap: end it, and the client resumes with its Last-Event-ID.
        this.logger.warn({ err: (err as Error).message }, 'status stream replay failed; the client is ended to resume');
        this.drop(client);
        return;
      }
    }
    if (!this.clients.has(client)) return;
    const waiting = client.pending ?? [];
    client.pending = null;
    this.send(client, waiting);
  }

  /** Ends every client's stream (they reconnect elsewhere with Last-Event-ID) and stops reading. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.markPositioned();
    for (const client of [...this.clients]) this.drop(client);
    this.reader.disconnect();
    // A read queued while Redis was never reached is not always rejected by the disconnect: do not
    // let it hold up a shutdown.
    await Promise.race([this.reading?.catch(() => {}), new Promise((r) => setTimeout(r, 1000).unref())]);
  }
}
