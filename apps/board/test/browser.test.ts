/**
 * The board of a running system, in a real browser: Redis and the project's MongoDB-compatible
 * server, the ingest tailing the `shop` database, a worker whose handlers fail every event of one
 * document (attempts = 1, so it becomes a dead letter and the document's next event is parked),
 * writes to MongoDB, and the board behind basic authentication. Debian's Chromium, headless,
 * driven by playwright-core, opens it as an operator would.
 */
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MongoClient } from 'mongodb';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { routeDocument } from '@changeq/shared';
import { startStack, type RunningStack } from '@changeq/stack';
import { startApp, tempDir, waitFor, workersFile, type TestProcess } from '@changeq/testkit';
import { APP_ROOT, apiQueues, startBoardProcess, type BoardRun } from './helpers.js';

const CHROMIUM = '/usr/bin/chromium';
const RESULTS = join(APP_ROOT, 'test-results');
const WORKERS = ['alpha', 'bravo'] as const;
const USER = 'operator';
const PASSWORD = 'correct horse battery staple';
const DOOMED = 'order-doomed';
const ORDERS = 12;

describe('Bull Board in a browser, over a running system', () => {
  let stack: RunningStack;
  const processes: TestProcess[] = [];
  let board: BoardRun;
  let readOnlyBoard: BoardRun;
  let context: BrowserContext;
  let userDataDir: string;
  /** The worker that owns the doomed document (it runs); the other one does not run. */
  let owner: string;
  let idle: string;

  beforeAll(async () => {
    mkdirSync(RESULTS, { recursive: true });
    stack = await startStack();
    const workersToml = workersFile(
      `workers = [${WORKERS.map((w) => `"${w}"`).join(', ')}]\n[defaults]\nattempts = 1\nbackoff_ms = 10\n`,
    );
    owner = routeDocument(WORKERS, 'shop.orders', DOOMED);
    idle = WORKERS.find((w) => w !== owner) ?? '';
    const env = { REDIS_URL: stack.redisUrl, WORKERS_FILE: workersToml };

    const ingest = startApp(
      'ingest',
      [],
      { ...env, MONGODB_URI: stack.mongodbUri, WATCH: 'shop' },
      { cwd: APP_ROOT },
    );
    processes.push(ingest);
    const worker = startApp(
      'worker',
      ['--name', owner, '--handlers', join(APP_ROOT, 'test/fixtures/fail-one-document.mjs')],
      { ...env, FAIL_DOC_ID: DOOMED },
      { cwd: APP_ROOT },
    );
    processes.push(worker);
    board = await startBoardProcess({ ...env, BOARD_USER: USER, BOARD_PASSWORD: PASSWORD });
    processes.push(board);
    readOnlyBoard = await startBoardProcess({ ...env, BOARD_READ_ONLY: 'true' });
    processes.push(readOnlyBoard);
    await ingest.waitForLine(/change stream open/);
    await worker.waitForLine(/active: this process holds the lease/);

    const client = new MongoClient(stack.mongodbUri);
    try {
      const orders = client
        .db('shop')
        .collection<{ _id: string; customer: string; total: number; status?: string }>('orders');
      for (let i = 1; i <= ORDERS; i++) {
        await orders.insertOne({ _id: `order-${i}`, customer: `Customer ${i}`, total: i * 10.5 });
      }
      await orders.updateOne({ _id: 'order-1' }, { $set: { status: 'shipped' } });
      await orders.insertOne({ _id: DOOMED, customer: 'Mallory', total: 13 });
      await orders.updateOne({ _id: DOOMED }, { $set: { status: 'cancelled' } });
    } finally {
      await client.close();
    }
    // The dead letter and the event parked behind it are in the owner's dead-letter queue.
    await waitFor(
      async () => {
        const queues = await apiQueues(board.origin, auth());
        return queues.find((q) => q.name === `${owner}.dead`)?.counts.waiting === 2;
      },
      `two jobs in ${owner}.dead`,
      30_000,
    );

    userDataDir = tempDir('changeq-board-chromium-');
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
      viewport: { width: 1400, height: 1000 },
      httpCredentials: { username: USER, password: PASSWORD },
    });
    context.setDefaultTimeout(10_000);
  }, 90_000);

  afterAll(async () => {
    await context?.close();
    await Promise.all(processes.map((p) => p.stop()));
    await stack?.stop();
    if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
  });

  const auth = () => ({
    headers: { Authorization: `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}` },
  });

  const open = async (url: string): Promise<Page> => {
    const page = await context.newPage();
    await page.goto(url);
    return page;
  };

  /** Opens every collapsed node of the job data trees on the page (Bull Board folds deep ones). */
  const expandAll = async (page: Page) => {
    const folded = page.locator('[role="tree"] [role="button"][aria-label="expand JSON"]');
    for (let round = 0; round < 200 && (await folded.count()) > 0; round++) {
      await folded.first().click();
    }
    expect(await folded.count()).toBe(0);
  };

  /** Job cards and their action buttons (Bull Board 9.10.1, pinned, names its classes so). */
  const jobCards = (page: Page) => page.locator('[class*="card-"]:has(a[class*="jobLink-"])');
  const jobActions = (page: Page) => page.locator('[class*="headerActions-"] button');
  const queueMenu = (page: Page) => page.locator('button[aria-haspopup="menu"]');

  it('lists each worker queue and each dead-letter queue, with what it is', async () => {
    const page = await open(`${board.origin}/`);
    const nav = page.locator('nav');
    for (const worker of WORKERS) {
      await expect.poll(() => nav.getByRole('link', { name: worker, exact: true }).count()).toBe(1);
      expect(await nav.getByRole('link', { name: `${worker}.dead`, exact: true }).count()).toBe(1);
    }
    await nav.getByRole('link', { name: `${idle}.dead`, exact: true }).click();
    await page.getByRole('heading', { name: `${idle}: dead letters`, exact: true }).waitFor();
    await expect
      .poll(() => page.locator('body').innerText())
      .toContain(`Dead letters of worker ${idle}`);
    await nav.getByRole('link', { name: idle, exact: true }).click();
    await page.getByRole('heading', { name: `${idle}: events`, exact: true }).waitFor();
    expect(await page.locator('body').innerText()).toContain(
      `Change events routed to worker ${idle}`,
    );
    await page.screenshot({ path: join(RESULTS, 'board-queues.png') });
    await page.close();
  });

  it('opens a change event and shows it decoded: operationType and the document', async () => {
    // An insert on the first page of the idle worker's "waiting" list, as the UI lists it.
    const queues = await apiQueues(board.origin, auth(), { queue: idle, status: 'waiting' }, 10);
    const job = queues.find((q) => q.name === idle)?.jobs.find((j) => j.data.op === 'insert');
    expect(job, `an insert in ${idle}`).toBeDefined();
    const chosen = (job?.data.event as { documentKey: { _id: string } }).documentKey._id;
    const n = Number(chosen.slice('order-'.length));
    expect(routeDocument(WORKERS, 'shop.orders', chosen)).toBe(idle);

    const page = await open(`${board.origin}/queue/${idle}?status=waiting`);
    await page.locator(`a[href*="/queue/${idle}/${job?.id ?? ''}"]`).click();
    await page.waitForURL(new RegExp(`/queue/${idle}/${job?.id ?? ''}`));
    await page.getByText('insert shop.orders', { exact: true }).first().waitFor();
    await expandAll(page);
    const text = await page.locator('[role="tree"]').first().innerText();
    expect(text).toMatch(/operationType:\s*"insert"/);
    expect(text).toMatch(/ns:\s*"shop.orders"/);
    expect(text).toMatch(new RegExp(`_id:\\s*"${chosen}"`));
    expect(text).toMatch(new RegExp(`customer:\\s*"Customer ${n}"`));
    expect(text).toMatch(new RegExp(`total:\\s*${n * 10.5}\\b`));
    expect(text).not.toContain('$numberDouble'); // relaxed, not the stored canonical form
    await page.screenshot({ path: join(RESULTS, 'board-event.png'), fullPage: true });
    await page.close();
  });

  it('shows the dead letter and the parked event, decoded, without any action button', async () => {
    const page = await open(`${board.origin}/queue/${owner}.dead?status=waiting`);
    await page.getByRole('heading', { name: `${owner}: dead letters`, exact: true }).waitFor();
    await expect.poll(() => jobCards(page).count()).toBe(2);
    await expandAll(page);
    const text = await page.locator('main').innerText();
    expect(text).toContain(`planned failure of ${DOOMED} (insert)`);
    expect(text).toMatch(/kind:\s*"dead"/);
    expect(text).toMatch(/kind:\s*"parked"/);
    expect(text).toMatch(/operationType:\s*"insert"/);
    expect(text).toMatch(/operationType:\s*"update"/);
    expect(text).toMatch(/customer:\s*"Mallory"/);
    expect(text).toMatch(/status:\s*"cancelled"/);
    // Read-only: no retry, remove, edit or duplicate per job, no queue actions menu.
    expect(await jobActions(page).count()).toBe(0);
    expect(await queueMenu(page).count()).toBe(0);
    await page.screenshot({ path: join(RESULTS, 'board-dead-letters.png'), fullPage: true });
    await page.close();
  });

  it('an event queue refuses, with the reason, what would drop an event', async () => {
    const page = await open(`${board.origin}/queue/${idle}?status=waiting`);
    await expect.poll(() => jobCards(page).count()).toBeGreaterThan(0);
    const before = (await apiQueues(board.origin, auth())).find((q) => q.name === idle)?.counts;
    // The buttons are there (this board is not read-only); the last one removes the job.
    const card = jobCards(page).first();
    const buttons = card.locator('[class*="headerActions-"] button');
    expect(await buttons.count()).toBeGreaterThan(0);
    await buttons.last().click();
    await page.getByRole('button', { name: 'Confirm' }).click();
    await page.getByText('removing it would drop a change event that has not run').waitFor();
    await page.screenshot({ path: join(RESULTS, 'board-refused.png') });
    const after = (await apiQueues(board.origin, auth())).find((q) => q.name === idle)?.counts;
    expect(after?.waiting).toBe(before?.waiting);
    await page.close();
  });

  it('BOARD_READ_ONLY=true: no action buttons on event queues either', async () => {
    const writable = await open(`${board.origin}/queue/${idle}?status=waiting`);
    await expect.poll(() => jobCards(writable).count()).toBeGreaterThan(0);
    expect(await jobActions(writable).count()).toBeGreaterThan(0);
    expect(await queueMenu(writable).count()).toBeGreaterThan(0);
    await writable.close();

    const page = await open(`${readOnlyBoard.origin}/queue/${idle}?status=waiting`);
    await expect.poll(() => jobCards(page).count()).toBeGreaterThan(0);
    expect(await page.title()).toBe('changeq (read-only)');
    expect(await jobActions(page).count()).toBe(0);
    expect(await queueMenu(page).count()).toBe(0);
    await page.screenshot({ path: join(RESULTS, 'board-read-only.png') });
    await page.close();
  });
});
