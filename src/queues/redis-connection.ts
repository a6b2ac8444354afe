import { Redis, type RedisOptions } from 'ioredis';

/**
 * Redis connections. Web processes fail fast (no offline queue, one retry) so a partner gets an
 * answer instead of a hang while Redis is down; workers wait for Redis to come back
 * (maxRetriesPerRequest: null, which BullMQ requires for blocking connections). A subscriber (the web's
 * listener for event outcomes) also waits: its SUBSCRIBE is queued until Redis answers and renewed on
 * every reconnect, and it never answers a partner itself.
 */
export function connectRedis(url: string, role: 'web' | 'worker' | 'subscriber', name: string): Redis {
  const options: RedisOptions =
    role === 'web' ? { enableOfflineQueue: false, maxRetriesPerRequest: 1, connectionName: name } : { maxRetriesPerRequest: null, connectionName: name };
  return new Redis(url, options);
}
