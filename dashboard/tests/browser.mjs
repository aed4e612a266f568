// Drives the dashboard of a running aiprodd in headless Chromium (Debian's, through
// playwright-core: no browser download). Run by daemon/tests/dashboard_browser.rs:
//   AIPROD_URL=http://127.0.0.1:PORT SCREENSHOT_DIR=... node tests/browser.mjs
// Prints one line `RESULT {json}` with what the page showed; the Rust test checks it against
// the daemon. Any failed step throws (exit code 1) after a screenshot of the page as it was.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const url = process.env.AIPROD_URL;
const shots = process.env.SCREENSHOT_DIR ?? 'screenshots';
const executablePath = process.env.CHROMIUM ?? '/usr/bin/chromium';
if (!url) throw new Error('AIPROD_URL is not set');
mkdirSync(shots, { recursive: true });

// The flags a sandboxed, offline machine needs (no background fetches, no GPU, root).
const args = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const JOB_TIMEOUT_MS = Number(process.env.JOB_TIMEOUT_MS ?? 180_000);
const result = { errors: [] };
const browser = await chromium.launch({ executablePath, args, headless: true });
let page;

function watchErrors(p) {
  p.on('pageerror', (e) => result.errors.push(`pageerror: ${e.message}`));
  p.on('console', (m) => {
    if (m.type() === 'error') result.errors.push(`console: ${m.text()}`);
  });
}

/** What the receipt's QC table shows: caption, headers, and per row the check, measured value,
 * threshold and verdict (the words, as a screen reader reads them). */
const qcTable = (p) =>
  p.locator('#qc-table').evaluate((t) => ({
    caption: t.caption?.textContent ?? '',
    headers: [...t.querySelectorAll('thead th')].map((th) => `${th.textContent}|${th.getAttribute('scope')}`),
    rows: [...t.querySelectorAll('tbody tr')].map((tr) => ({
      name: tr.dataset.check,
      label: tr.querySelector('th[scope="row"]')?.textContent ?? '',
      measured: tr.querySelector('td.measured')?.textContent ?? '',
      threshold: tr.querySelector('td.threshold')?.textContent ?? '',
      verdict: tr.querySelector('.verdict')?.textContent ?? '',
    })),
    // Wider than its box means hidden columns at this width.
    overflows: t.scrollWidth > t.parentElement.clientWidth + 1,
  }));

/** Whether the page scrolls sideways (it must not at phone width). */
const overflowsX = (p) => p.evaluate(() => document.documentElement.scrollWidth > window.innerWidth + 1);

try {
  // ---- Desktop: plan → three cards → generate → progress → receipt → video.
  const desktop = await browser.newContext({ viewport: { width: 1366, height: 900 } });
  page = await desktop.newPage();
  watchErrors(page);
  await page.goto(`${url}/`);
  await page.getByLabel('Prompt').fill('a red fox running through fresh snow');
  await page.getByLabel('Use case').fill('tiktok');
  await page.getByLabel('Duration (s)').fill('2');
  await page.getByLabel('Preference').selectOption('cheapest');
  await page.getByRole('button', { name: 'Plan', exact: true }).click();
  const cards = page.locator('article.card');
  await cards.nth(2).waitFor();
  result.cards = await cards.count();
  result.tiers = await page.locator('article.card h3').allTextContents();
  result.recommended = await page.locator('article.card.recommended h3').allTextContents();
  result.rationale = (await page.locator('#rationale').textContent()) ?? '';
  result.card_totals = await page.locator('article.card .total .num').allTextContents();
  result.feasible = await cards.evaluateAll((els) => els.map((e) => e.dataset.feasible === 'true'));
  await page.screenshot({ path: join(shots, 'desktop-plans.png'), fullPage: true });

  // Planning again with a cost cap no plan meets greys the cards out with reasons.
  await page.getByLabel('Max cost (USD)').fill('0.000001');
  await page.getByRole('button', { name: 'Plan', exact: true }).click();
  await page.locator('article.card.infeasible').nth(2).waitFor();
  result.infeasible_cards = await page.locator('article.card.infeasible').count();
  result.infeasible_reasons = await page.locator('article.card.infeasible .reasons li').count();
  result.generate_disabled = await page.locator('article.card.infeasible button.generate').evaluateAll((bs) => bs.every((b) => b.disabled));
  await page.screenshot({ path: join(shots, 'desktop-infeasible.png'), fullPage: true });
  await page.getByLabel('Max cost (USD)').fill('');
  await page.getByRole('button', { name: 'Plan', exact: true }).click();
  await page.locator('article.card:not(.infeasible)').nth(2).waitFor();

  await page.locator('#plan-tier_economy button.generate').click();
  const job = page.locator('section.job');
  await job.waitFor();
  // Live progress: the progress bar moves before the job ends.
  result.progress_seen = await page
    .waitForFunction(() => {
      const v = Number(document.querySelector('#job-progress')?.getAttribute('value') ?? 0);
      return v > 0 ? v : false;
    }, undefined, { timeout: JOB_TIMEOUT_MS })
    .then((h) => h.jsonValue());
  await page.locator('section.job[data-state="succeeded"]').waitFor({ timeout: JOB_TIMEOUT_MS });
  await page.locator('#receipt-actual-total').waitFor();
  result.job_id = await job.getAttribute('data-job-id');
  result.receipt_estimated_total = await page.locator('#receipt-estimated-total').textContent();
  result.receipt_actual_total = await page.locator('#receipt-actual-total').textContent();
  result.receipt_lines = await page.locator('#receipt table.costs tbody tr').count();
  const video = page.locator('#job-video');
  await video.waitFor();
  result.video = await video.evaluate(
    (v) =>
      new Promise((resolve, reject) => {
        const done = () => resolve({ duration_s: v.duration, width: v.videoWidth, height: v.videoHeight });
        if (v.readyState >= 1) return done();
        v.addEventListener('loadedmetadata', done, { once: true });
        v.addEventListener('error', () => reject(new Error(`video error ${v.error?.code}: ${v.error?.message}`)), { once: true });
      }),
  );
  await page.locator('#receipt').scrollIntoViewIfNeeded();
  await page.screenshot({ path: join(shots, 'desktop-receipt.png'), fullPage: true });
  // The QC report of the validation stage: one row per check, a caption, column headers.
  const qc = page.locator('#qc-table');
  await qc.waitFor();
  result.qc = await qcTable(page);
  await qc.screenshot({ path: join(shots, 'desktop-qc.png') });

  // ---- Live metrics: the charts receive samples over /ws/metrics.
  await page.goto(`${url}/#/metrics`);
  await page.locator('#metrics-conn', { hasText: 'live' }).waitFor();
  const points = () => page.locator('#chart-jobs').getAttribute('data-points').then(Number);
  const before = await points();
  await page.waitForFunction((n) => Number(document.querySelector('#chart-jobs')?.getAttribute('data-points')) >= n + 2, before, { timeout: 15_000 });
  result.chart_points = [before, await points()];
  result.cost_series = Number(await page.locator('#chart-cost').getAttribute('data-series'));
  result.accuracy_series = Number(await page.locator('#chart-accuracy').getAttribute('data-series'));
  result.canvases = await page.locator('.chart canvas').count();
  await page.screenshot({ path: join(shots, 'desktop-metrics.png'), fullPage: true });

  // ---- Jobs: the job is listed, totals and estimate error come from GetUsage.
  await page.goto(`${url}/#/jobs`);
  await page.locator(`#jobs-table a[href="#/jobs/${result.job_id}"]`).waitFor();
  result.jobs_rows = await page.locator('#jobs-table tbody tr').count();
  result.total_spent = await page.locator('#total-spent').textContent();
  result.usage_rows = await page.locator('#usage-table tbody tr').count();
  await page.screenshot({ path: join(shots, 'desktop-jobs.png'), fullPage: true });

  // The token typed once is kept for the tab and sent with every API call.
  await page.getByLabel('API token').fill('dashboard-test-token');
  const sent = page.waitForRequest((r) => r.url().includes('/api/jobs'));
  await page.getByRole('button', { name: 'Apply' }).click();
  result.authorization = (await sent).headers()['authorization'] ?? null;
  result.token_stored = await page.evaluate(() => sessionStorage.getItem('aiprod.token'));
  await page.getByLabel('API token').fill('');
  await desktop.close();

  // ---- Phone width: the same pages without sideways scrolling.
  const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  page = await phone.newPage();
  watchErrors(page);
  await page.goto(`${url}/`);
  await page.getByLabel('Duration (s)').fill('2');
  await page.getByRole('button', { name: 'Plan', exact: true }).click();
  await page.locator('article.card').nth(2).waitFor();
  result.phone_overflow = { plans: await overflowsX(page) };
  await page.screenshot({ path: join(shots, 'phone-plans.png'), fullPage: true });
  await page.goto(`${url}/#/jobs/${result.job_id}`);
  await page.locator('#receipt-actual-total').waitFor();
  result.phone_overflow.receipt = await overflowsX(page);
  await page.screenshot({ path: join(shots, 'phone-receipt.png'), fullPage: true });
  await page.locator('#qc-table').waitFor();
  result.phone_qc = await qcTable(page);
  await page.locator('#qc-table').screenshot({ path: join(shots, 'phone-qc.png') });
  await page.goto(`${url}/#/metrics`);
  await page.locator('#metrics-conn', { hasText: 'live' }).waitFor();
  await page.waitForFunction(() => Number(document.querySelector('#chart-jobs')?.getAttribute('data-points')) > 0);
  result.phone_overflow.metrics = await overflowsX(page);
  await page.screenshot({ path: join(shots, 'phone-metrics.png'), fullPage: true });
  await phone.close();
} catch (e) {
  if (page) await page.screenshot({ path: join(shots, 'failure.png'), fullPage: true }).catch(() => {});
  console.log(`RESULT ${JSON.stringify(result)}`);
  await browser.close();
  throw e;
}
await browser.close();
console.log(`RESULT ${JSON.stringify(result)}`);
