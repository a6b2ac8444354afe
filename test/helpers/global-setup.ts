import { Redis } from 'ioredis';
import postgres from 'postgres';
import type { TestProject } from 'vitest/node';
import { applyMigrations } from '../../src/db/migrate.js';
import { connectDatabase } from '../../src/db/client.js';
import { seedStoreLocations } from '../../src/db/store-locations.js';
import { adminDatabaseUrl, databaseUrlFor } from './test-database.js';
import { deleteKeys, REDIS_URL } from './test-redis.js';

declare module 'vitest' {
  export interface ProvidedContext {
    templateDatabase: string;
    runId: string;
  }
}

/**
 * Migrates and seeds one template database per test run with the real migrator; each test file then
 * gets its own copy (CREATE DATABASE … TEMPLATE), which takes milliseconds.
 */
export default async function setup(project: TestProject) {
  const runId = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
  const template = `hub_test_tpl_${runId}`;
  const admin = postgres(adminDatabaseUrl(), { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database "${template}"`);
  await applyMigrations(databaseUrlFor(template));
  const handle = connectDatabase(databaseUrlFor(template), { max: 1 });
  await seedStoreLocations(handle.db);
  await handle.close();
  project.provide('templateDatabase', template);
  project.provide('runId', runId);
  // Each file drops its own database and Redis keys when it closes its hub; whatever a failed or
  // interrupted file left behind is dropped here, so a run never leaves anything.
  return async () => {
    const left = await admin<Array<{ datname: string }>>`select datname from pg_database where datname like ${`hub_test_${runId}_%`}`;
    for (const { datname } of left) await admin.unsafe(`drop database if exists "${datname}" with (force)`);
    await admin.unsafe(`drop database if exists "${template}" with (force)`);
    await admin.end();
    const redis = new Redis(REDIS_URL);
    await deleteKeys(redis, `hubtest:${runId}_*`);
    redis.disconnect();
  };
}
