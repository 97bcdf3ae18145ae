// SPDX-License-Identifier: Apache-2.0
//
// The admin UI in headless Chromium, driven by playwright-core (run by tests/webui/browser.sh,
// which starts cox and passes COX_URL, COX_USER, COX_PASS, COX_REPO, COX_TMP, and for the
// review tests a second cox on an enterprise fleet: COX_URL_REVIEW, COX_REPO_REVIEW and a
// second admin COX_USER2 with the same passphrase). Prints
// "ok - ..." / "not ok - ..." lines; a failed step prints why as "#" lines and the next
// steps still run where they can.
import { chromium } from 'playwright-core';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync, mkdirSync } from 'node:fs';

const URL_ = process.env.COX_URL.replace(/\/$/, '');
const USER = process.env.COX_USER;
const PASS = process.env.COX_PASS;
const REPO = process.env.COX_REPO;
const TMP = process.env.COX_TMP;
const URL_R = (process.env.COX_URL_REVIEW || '').replace(/\/$/, '');
const REPO_R = process.env.COX_REPO_REVIEW;
const USER2 = process.env.COX_USER2;
const TAG = process.env.TAG ? `[${process.env.TAG}] ` : '';
const XSS = '<img src=x onerror=alert(1)>';
const T = 10000;          // ms: the longest any step waits for the page
let failed = 0;

const key = () => randomBytes(32).toString('base64');

async function step(name, fn) {
  try {
    await fn();
    console.log(`ok - ${TAG}webui: ${name}`);
  } catch (e) {
    failed++;
    console.log(`not ok - ${TAG}webui: ${name}`);
    for (const l of String(e && e.stack || e).split('\n').slice(0, 12)) console.log(`#   ${l}`);
  }
}

function assert(cond, msg) {
  if (!cond) throw new Error(`assertion failed: ${msg}`);
}

const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
const dialogs = [];
const pageErrors = [];

async function newSession() {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  page.setDefaultTimeout(T);
  page.on('dialog', (d) => {
    dialogs.push(d.message());
    // confirm() of a removal is accepted; an alert() is the XSS this test looks for
    if (d.type() === 'confirm') d.accept(); else d.dismiss();
  });
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  // HTTP errors the tests provoke are logged as "Failed to load resource"; anything else
  // (an exception, a CSP violation) is a failure of the last test
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) pageErrors.push(`console: ${m.text()}`);
  });
  return { ctx, page };
}

async function login(page, base = URL_, user = USER) {
  await page.goto(`${base}/`);
  await page.getByLabel('User').fill(user);
  await page.getByLabel('Passphrase').fill(PASS);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('heading', { level: 1, name: 'Dashboard' }).waitFor();
}

// Save a user's form and wait until the page has read the revision it committed.
async function saveUser(page) {
  const before = await page.locator('#edit-user').getAttribute('data-rev');
  await page.getByRole('button', { name: 'Save' }).click();
  await page.locator('#user-msg').getByText('Saved bob').waitFor();
  await page.waitForFunction((b) => document.getElementById('edit-user').dataset.rev !== b, before);
}

// Wait until the page's "live" badge says the event stream is connected.
async function live(page) {
  await page.locator('#live.on').waitFor();
}

const A = await newSession();
const B = await newSession();

await step('log in', async () => {
  await page_login_fail_first(A.page);
  await login(A.page);
  assert((await A.page.locator('#whoami').textContent()) === USER, 'the header names the user');
  assert(A.page.url().endsWith('/ui/dashboard'), `at /ui/dashboard, not ${A.page.url()}`);
  await A.page.locator('#fleet-valid').waitFor();
  const cookies = await A.ctx.cookies();
  const c = cookies.find((x) => x.name === 'pharos_session');
  assert(c && c.httpOnly, 'an HttpOnly session cookie');
  assert(await A.page.evaluate(() => !document.cookie.includes('pharos_session')), 'the page script cannot read it');
});

async function page_login_fail_first(page) {
  await page.goto(`${URL_}/ui/users`);
  await page.getByRole('heading', { name: 'Log in' }).waitFor();
  await page.getByLabel('User').fill(USER);
  await page.getByLabel('Passphrase').fill('not the passphrase');
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('alert').filter({ hasText: 'Wrong user or passphrase' }).waitFor();
}

await step('add a user and a device; the commit is in history', async () => {
  const p = A.page;
  await p.getByRole('link', { name: 'Users' }).click();
  await p.getByRole('heading', { level: 1, name: 'Users and devices' }).waitFor();
  await p.getByText('Add a user').click();
  await p.getByLabel('Name (lowercase letters').fill('bob');
  await p.getByLabel('Full name').fill('Bob Builder');
  await p.getByLabel('Email').fill('bob@example.com');
  await p.getByLabel('Device name').fill('laptop');
  await p.getByLabel('WireGuard public key').fill(key());
  await p.getByRole('button', { name: 'Create user' }).click();
  await p.getByRole('heading', { level: 1, name: 'User bob' }).waitFor();
  await p.locator('#devices').getByText('laptop').waitFor();
  // a second device from the user's page
  await p.getByText('Add a device').click();
  await p.locator('#add-device').getByLabel('Device name').fill('phone');
  await p.locator('#add-device').getByLabel('WireGuard public key').fill(key());
  await p.getByRole('button', { name: 'Add device' }).click();
  await p.locator('#devices').getByText('phone').waitFor();
  // a 422 is shown verbatim: a device key that is not a key
  await p.locator('#add-device').getByLabel('Device name').fill('tablet');
  await p.locator('#add-device').getByLabel('WireGuard public key').fill('not-a-key');
  await p.getByRole('button', { name: 'Add device' }).click();
  const invalid = p.locator('[data-kind="invalid"]');
  await invalid.waitFor();
  assert((await invalid.locator('pre').textContent()).includes('users/bob.yaml'), 'the validator\'s error names the file');
  // history: both commits, newest first, the device's diff
  await p.getByRole('link', { name: 'History' }).click();
  await p.getByRole('heading', { level: 1, name: 'History' }).waitFor();
  const rows = p.locator('tbody tr');
  assert((await rows.nth(0).textContent()).includes('Add device phone of bob'), 'newest: Add device phone of bob');
  assert((await rows.nth(1).textContent()).includes('Add user bob'), 'then: Add user bob');
  await rows.nth(0).getByRole('link').click();
  await p.locator('#commit-message').getByText('via the admin API by admin:alice').waitFor();
  await p.locator('pre.diff .add', { hasText: 'phone' }).first().waitFor();
});

await step('two sessions edit one user: the stale one sees the conflict and the current value', async () => {
  await login(B.page);
  await A.page.goto(`${URL_}/ui/users/bob`);
  await B.page.goto(`${URL_}/ui/users/bob`);
  for (const s of [A, B]) await s.page.locator('#edit-user[data-rev]').waitFor();
  await live(A.page);
  await live(B.page);
  assert(await B.page.getByLabel('Full name').inputValue() === 'Bob Builder', 'B read the old name');
  // B starts editing first, A saves first: B's form is stale
  await B.page.getByLabel('Full name').fill('Robert from B');
  await A.page.getByLabel('Full name').fill('Bob from A');
  await saveUser(A.page);
  // B is told live that the fleet changed, and keeps what it typed
  await B.page.locator('#user-notice').getByText('The fleet changed').waitFor();
  assert(await B.page.getByLabel('Full name').inputValue() === 'Robert from B', 'B keeps its edit');
  await B.page.getByRole('button', { name: 'Save' }).click();
  const c = B.page.locator('[data-kind="conflict"]');
  await c.waitFor();
  assert((await c.locator('[data-field="full_name"]').textContent()) === 'Bob from A', 'the conflict shows the current full_name');
  assert((await c.textContent()).includes('Alice Admin') || (await c.textContent()).includes('admin:alice'),
    'and who changed it');
  // Reload discards B's change and shows the current value
  await c.getByRole('button', { name: /Reload/ }).click();
  await B.page.waitForFunction(() => document.getElementById('eu-full').value === 'Bob from A');
  // again stale, then "apply my change on top" wins
  await B.page.getByLabel('Full name').fill('Robert from B');
  await A.page.getByLabel('Email').fill('bob@a.example.com');
  await saveUser(A.page);
  await B.page.locator('#user-notice').getByText('The fleet changed').waitFor();
  await B.page.getByRole('button', { name: 'Save' }).click();
  await B.page.locator('[data-kind="conflict"]').getByRole('button', { name: 'Apply my change on top' }).click();
  await B.page.locator('#user-msg').getByText('Saved bob').waitFor();
  const u = await B.page.evaluate(async () => (await fetch('/api/v1/users/bob')).json());
  assert(u.full_name === 'Robert from B', `after apply-on-top the full name is B's, not ${u.full_name}`);
});

await step('a push with git shows on the open dashboard and users page without a reload', async () => {
  await A.page.goto(`${URL_}/ui/dashboard`);
  await B.page.goto(`${URL_}/ui/users`);
  await A.page.locator('#user-count').waitFor();
  await B.page.getByRole('link', { name: 'bob' }).waitFor();
  await live(A.page);
  await live(B.page);
  // a mark in each page's JS state: gone if the page were reloaded
  for (const s of [A, B]) await s.page.evaluate(() => { window.__mark = 42; });
  const before = await A.page.locator('#user-count').textContent();
  const clone = `${TMP}/push-clone`;
  const git = (...a) => execFileSync('git', a, { cwd: clone, stdio: ['ignore', 'pipe', 'pipe'] });
  execFileSync('git', ['clone', '-q', REPO, clone], { stdio: ['ignore', 'pipe', 'pipe'] });
  mkdirSync(`${clone}/users`, { recursive: true });
  writeFileSync(`${clone}/users/carol.yaml`, 'email: "carol@example.com"\nfull_name: "Carol Pushed"\nrole: user\n');
  git('add', '-A');
  git('commit', '-qm', 'carol, pushed with git');
  git('push', '-q', 'origin', 'HEAD:main');   // returns once the pre-receive hook validated it
  const t0 = Date.now();
  await B.page.getByRole('link', { name: 'carol' }).waitFor({ timeout: 5000 });
  const tUsers = Date.now() - t0;
  await A.page.waitForFunction((b) => document.getElementById('user-count').textContent !== b, before, { timeout: 5000 });
  const tDash = Date.now() - t0;
  for (const s of [A, B]) assert(await s.page.evaluate(() => window.__mark === 42), 'the page was not reloaded');
  const head = git('rev-parse', 'HEAD').toString().trim().slice(0, 12);
  await A.page.locator('#applied-rev', { hasText: head }).waitFor({ timeout: 2000 });
  console.log(`# seen on the users page ${tUsers} ms and on the dashboard ${tDash} ms after the push returned`);
  assert(tUsers < 1500 && tDash < 1500, 'within about 1 s');
});

await step('without the event stream a page polls: a push still shows, within the polling interval', async () => {
  const b = B.page;
  await b.route('**/api/v1/events', (r) => r.abort());
  try {
    await b.goto(`${URL_}/ui/users`);
    await b.getByRole('link', { name: 'carol' }).waitFor();
    await b.locator('#live', { hasText: 'polling' }).waitFor({ timeout: 5000 });
    await b.evaluate(() => { window.__mark = 43; });
    const clone = `${TMP}/push-clone`;
    const git = (...a) => execFileSync('git', a, { cwd: clone, stdio: ['ignore', 'pipe', 'pipe'] });
    writeFileSync(`${clone}/users/erin.yaml`, 'email: "erin@example.com"\nfull_name: "Erin Polled"\nrole: user\n');
    git('add', '-A');
    git('commit', '-qm', 'erin, pushed while the page has no event stream');
    git('push', '-q', 'origin', 'HEAD:main');
    const t0 = Date.now();
    await b.getByRole('link', { name: 'erin' }).waitFor({ timeout: 9000 });
    console.log(`# seen by polling ${Date.now() - t0} ms after the push returned`);
    assert(await b.evaluate(() => window.__mark === 43), 'the page was not reloaded');
  } finally {
    await b.unroute('**/api/v1/events');
  }
});

await step('markup in a full name is shown as text', async () => {
  const p = A.page;
  const before = dialogs.length;
  await p.goto(`${URL_}/ui/users`);
  await p.getByText('Add a user').click();
  await p.getByLabel('Name (lowercase letters').fill('mallory');
  await p.getByLabel('Full name').fill(XSS);
  await p.getByLabel('Email').fill('mallory@example.com');
  await p.getByRole('button', { name: 'Create user' }).click();
  await p.getByRole('heading', { level: 1, name: 'User mallory' }).waitFor();
  await p.locator('#edit-user[data-rev]').waitFor();
  assert(await p.getByLabel('Full name').inputValue() === XSS, 'the form holds the text');
  await p.goto(`${URL_}/ui/users`);
  const cell = p.getByRole('cell', { name: XSS, exact: true });
  await cell.waitFor();
  assert((await cell.textContent()) === XSS, 'the cell\'s text is the markup, literally');
  assert(await p.locator('img').count() === 0, 'no img element in the users page');
  await p.goto(`${URL_}/ui/history`);
  await p.getByRole('link', { name: /^[0-9a-f]{12}$/ }).first().click();
  await p.locator('pre.diff', { hasText: XSS }).waitFor();
  assert(await p.locator('img').count() === 0, 'no img element in the diff');
  await p.waitForTimeout(300);
  assert(dialogs.length === before, `no alert ran: ${dialogs.slice(before).join(', ')}`);
});

await step('a mutation without the CSRF token is refused with 403', async () => {
  const p = A.page;
  await p.goto(`${URL_}/ui/users/bob`);
  await p.locator('#edit-user[data-rev]').waitFor();
  const r = await p.evaluate(async () => {
    const me = await (await fetch('/api/v1/me')).json();
    const del = (h) => fetch('/api/v1/users/bob', { method: 'DELETE', headers: h });
    const noCsrf = await del({ 'If-Match': `"${me.revision}"` });
    const wrong = await del({ 'If-Match': `"${me.revision}"`, 'X-CSRF-Token': 'x'.repeat(43) });
    const noIfMatch = await del({ 'X-CSRF-Token': me.csrf });
    const user = await fetch('/api/v1/users/bob');
    return { noCsrf: [noCsrf.status, await noCsrf.json()], wrong: wrong.status,
      noIfMatch: noIfMatch.status, still: user.status };
  });
  assert(r.noCsrf[0] === 403 && r.noCsrf[1].error === 'csrf', `no X-CSRF-Token: ${JSON.stringify(r.noCsrf)}`);
  assert(r.wrong === 403, `a wrong X-CSRF-Token: ${r.wrong}`);
  assert(r.noIfMatch === 428, `CSRF but no If-Match: ${r.noIfMatch}`);
  assert(r.still === 200, 'bob is still there');
});

// ---- review: the enterprise fleet (review required), admins alice (RA) and bob (RB) ----

const RA = await newSession();
const RB = await newSession();
const gitR = (...a) => execFileSync('git', ['--git-dir', REPO_R, ...a], { stdio: ['ignore', 'pipe', 'pipe'] })
  .toString().trim();
const row = (page, branch) => page.locator(`tr:has(a[data-branch="${branch}"])`);
let proposal = null;      // the branch alice's edit opened

await step('review: an edit in the enterprise preset is proposed, main\'s history does not move', async () => {
  const p = RA.page;
  await login(p, URL_R);
  const main0 = gitR('rev-parse', 'main');
  await p.goto(`${URL_R}/ui/history`);
  await p.getByRole('heading', { level: 1, name: 'History' }).waitFor();
  const top0 = await p.locator('tbody tr').first().textContent();
  await p.goto(`${URL_R}/ui/users/carol`);
  await p.locator('#edit-user[data-rev]').waitFor();
  await p.locator('#review-note', { hasText: 'requires review' }).waitFor();
  await p.getByLabel('Full name').fill('Carol After');
  await p.getByRole('button', { name: 'Save' }).click();
  const box = p.locator('#proposed');
  await box.waitFor();
  const text = await box.textContent();
  const m = text.match(/Proposed as (proposals\/[0-9a-f]{10}) — waiting for review/);
  assert(m, `the page says "Proposed as proposals/… — waiting for review": ${text}`);
  proposal = m[1];
  assert(gitR('rev-parse', proposal).length === 40, 'the branch exists');
  // main is unchanged: the form shows main again, and so do the API and history
  await p.waitForFunction(() => document.getElementById('eu-full').value === 'Carol Before');
  assert(gitR('rev-parse', 'main') === main0, 'main did not move');
  const u = await p.evaluate(async () => (await fetch('/api/v1/users/carol')).json());
  assert(u.full_name === 'Carol Before', `the API still reads main: ${u.full_name}`);
  await p.getByRole('link', { name: 'History' }).click();
  await p.getByRole('heading', { level: 1, name: 'History' }).waitFor();
  assert((await p.locator('tbody tr').first().textContent()) === top0, 'the newest commit in history is the same');
  // the dashboard counts the open proposal and links to the list
  await p.getByRole('link', { name: 'Dashboard' }).click();
  await p.locator('#proposal-count', { hasText: /^1$/ }).waitFor();
});

await step('review: a branch pushed with git (a slash in its name, markup in its title) is listed live and reviewed', async () => {
  const p = RA.page;
  const before = dialogs.length;
  await p.goto(`${URL_R}/ui/proposals`);
  await p.locator(`a[data-branch="${proposal}"]`).waitFor();
  await live(p);
  await p.evaluate(() => { window.__mark = 7; });
  const clone = `${TMP}/review-clone`;
  const git = (...a) => execFileSync('git', a, { cwd: clone, stdio: ['ignore', 'pipe', 'pipe'] });
  execFileSync('git', ['clone', '-q', REPO_R, clone], { stdio: ['ignore', 'pipe', 'pipe'] });
  git('checkout', '-q', '-b', 'feature/dave');
  writeFileSync(`${clone}/users/dave.yaml`, 'email: "dave@example.com"\nfull_name: "Dave Forge"\nrole: user\n');
  git('add', '-A');
  git('commit', '-qm', XSS);
  git('push', '-q', 'origin', 'feature/dave');
  const t0 = Date.now();
  await p.locator('a[data-branch="feature/dave"]').waitFor({ timeout: 5000 });
  const dt = Date.now() - t0;
  console.log(`# the pushed branch was listed ${dt} ms after the push returned`);
  assert(await p.evaluate(() => window.__mark === 7), 'the page was not reloaded');
  assert(dt < 1500, 'within about 1 s');
  assert((await row(p, 'feature/dave').textContent()).includes(XSS), 'its title, as text');
  assert(await row(p, 'feature/dave').locator('[data-state="open"]').count() === 1, 'open');
  await p.locator('a[data-branch="feature/dave"]').click();
  await p.locator('#proposal-branch', { hasText: 'feature/dave' }).waitFor();
  assert(new URL(p.url()).pathname === '/ui/proposals/feature/dave', `the review page's path: ${p.url()}`);
  await p.locator('#merge-status[data-status="clean"]').waitFor();
  assert((await p.locator('[data-field="title"]').textContent()) === XSS, 'the title, literally');
  await p.locator('pre.diff .add', { hasText: 'Dave Forge' }).waitFor();
  // loaded by its URL (the server answers every /ui/ path with the UI)
  await p.goto(`${URL_R}/ui/proposals/feature/dave`);
  await p.locator('#merge-status[data-status="clean"]').waitFor();
  assert(await p.locator('#close').count() === 0, 'a pushed branch has no Close button');
  assert(await p.locator('img').count() === 0, 'no img element');
  await p.waitForTimeout(300);
  assert(dialogs.length === before, `no alert ran: ${dialogs.slice(before).join(', ')}`);
});

await step('review: the author sees the diff and the plan and cannot approve their own proposal', async () => {
  const p = RA.page;
  await p.goto(`${URL_R}/ui/proposals`);
  await p.locator(`a[data-branch="${proposal}"]`).click();
  await p.locator('#proposal-branch', { hasText: proposal }).waitFor();
  await p.locator('pre.diff .add', { hasText: 'Carol After' }).waitFor();
  await p.locator('pre.diff .del', { hasText: 'Carol Before' }).waitFor();
  await p.locator('#merge-status[data-status="clean"]').waitFor();
  const plan = await p.locator('#merge-plan').textContent();
  assert(/nodes?:/.test(plan), `the plan's text: ${plan}`);
  assert(await p.locator('#approve').isDisabled(), 'Approve is disabled for the author');
  await p.locator('#proposal-notes', { hasText: 'You wrote this proposal' }).waitFor();
  assert(await p.locator('#merge').isDisabled(), 'Merge is disabled: not approved');
  assert(await p.locator('#close').count() === 1, 'a proposal made here can be closed');
  // and the API refuses it anyway
  const r = await p.evaluate(async (b) => {
    const me = await (await fetch('/api/v1/me')).json();
    const pr = await (await fetch(`/api/v1/proposal?branch=${encodeURIComponent(b)}`)).json();
    const x = await fetch(`/api/v1/proposal/approve?branch=${encodeURIComponent(b)}`,
      { method: 'POST', headers: { 'X-CSRF-Token': me.csrf, 'If-Match': `"${pr.head}"` } });
    return [x.status, (await x.json()).error];
  }, proposal);
  assert(r[0] === 403 && r[1] === 'own_proposal', `approving one's own: ${r}`);
});

let mergedRev = null;
await step('review: another admin approves and merges; the author\'s open proposals page follows live', async () => {
  const a = RA.page;
  const b = RB.page;
  await a.goto(`${URL_R}/ui/proposals`);
  await a.locator(`a[data-branch="${proposal}"]`).waitFor();
  await live(a);
  await a.evaluate(() => { window.__mark = 9; });
  await login(b, URL_R, USER2);
  await b.getByRole('link', { name: 'Proposals' }).click();
  await b.locator(`a[data-branch="${proposal}"]`).click();
  await b.locator('#proposal-branch', { hasText: proposal }).waitFor();
  await b.locator('#merge-status[data-status="clean"]').waitFor();
  await b.locator('pre.diff .add', { hasText: 'Carol After' }).waitFor();
  assert(await b.locator('#merge').isDisabled(), 'Merge is disabled before the approval');
  await b.locator('#approve:not([disabled])').click();
  await b.locator('#approvals [data-approver="bob"]').waitFor();
  await row(a, proposal).locator('[data-approver="bob"]').waitFor({ timeout: 3000 });
  await b.locator('#merge:not([disabled])').click();
  await b.locator('#merged').waitFor();
  const t0 = Date.now();
  await a.locator(`a[data-branch="${proposal}"]`).waitFor({ state: 'detached', timeout: 5000 });
  const dt = Date.now() - t0;
  console.log(`# the author's proposals page dropped the merged proposal ${dt} ms after the merge replied`);
  assert(await a.evaluate(() => window.__mark === 9), 'the author\'s page was not reloaded');
  assert(dt < 1500, 'within about 1 s');
  const href = await b.locator('#merged-commit').getAttribute('href');
  mergedRev = href.replace('/ui/history/', '');
  assert(gitR('rev-parse', 'main') === mergedRev, `main is the merge commit ${mergedRev}`);
  assert(gitR('show', 'main:users/carol.yaml').includes('Carol After'), 'main has the change');
  await b.locator('#proposal-gone').waitFor();
  // the author's dashboard: only the pushed branch is still open
  await a.getByRole('link', { name: 'Dashboard' }).click();
  await a.locator('#proposal-count', { hasText: /^1$/ }).waitFor();
});

await step('review: the merged change is on the users page, and history shows the merge\'s plan', async () => {
  const p = RA.page;
  await p.getByRole('link', { name: 'Users' }).click();
  await p.getByRole('cell', { name: 'Carol After', exact: true }).waitFor();
  await p.getByRole('link', { name: 'History' }).click();
  const top = p.locator('tbody tr').first();
  await top.getByText(`Merge ${proposal}`).waitFor();
  await top.getByRole('link').click();
  await p.locator('#commit-message', { hasText: 'Approved by: bob' }).waitFor();
  await p.locator('#commit-plan-box [data-status="clean"]').waitFor();
  assert(/nodes?:/.test(await p.locator('#commit-plan').textContent()), 'the plan\'s text');
  assert(new URL(p.url()).pathname === `/ui/history/${mergedRev}`, 'the merge commit');
});

await step('review: approving a proposal that changed since it was loaded says so and shows it as it is now', async () => {
  const b = RB.page;
  // no event stream for this page: it cannot follow the push, so its Approve is stale
  await b.route('**/api/v1/events', (r) => r.abort());
  try {
    await b.goto(`${URL_R}/ui/proposals/feature/dave`);
    await b.locator('#merge-status[data-status="clean"]').waitFor();
    const head0 = await b.locator('[data-field="head"]').textContent();
    const clone = `${TMP}/review-clone`;
    const git = (...a) => execFileSync('git', a, { cwd: clone, stdio: ['ignore', 'pipe', 'pipe'] }).toString().trim();
    writeFileSync(`${clone}/users/dave.yaml`, 'email: "dave@example.com"\nfull_name: "Dave Forge Two"\nrole: user\n');
    git('commit', '-qam', 'dave, renamed');
    git('push', '-q', 'origin', 'feature/dave');
    const head1 = git('rev-parse', 'HEAD').slice(0, 12);
    await b.locator('#approve:not([disabled])').click();
    await b.locator('[data-kind="proposal-changed"]', { hasText: 'The proposal changed' }).waitFor();
    await b.locator('[data-field="head"]', { hasText: head1 }).waitFor();
    assert(head0 !== head1, 'a new head');
    await b.locator('pre.diff .add', { hasText: 'Dave Forge Two' }).waitFor();
    assert(await b.locator('#approvals [data-approver="bob"]').count() === 0, 'nothing was approved');
    // approving what is shown now works
    await b.locator('#approve:not([disabled])').click();
    await b.locator('#approvals [data-approver="bob"]').waitFor();
  } finally {
    await b.unroute('**/api/v1/events');
  }
});

await step('review: the author opens a new proposal from the edit\'s link and closes it', async () => {
  const p = RA.page;
  await p.goto(`${URL_R}/ui/users/carol`);
  await p.locator('#edit-user[data-rev]').waitFor();
  await p.getByLabel('Email').fill('carol@elsewhere.example.com');
  await p.getByRole('button', { name: 'Save' }).click();
  const branch = (await p.locator('#proposed code.branch').textContent()).trim();
  assert(/^proposals\/[0-9a-f]{10}$/.test(branch), `a new proposal: ${branch}`);
  await p.locator('#proposed-link').click();
  await p.locator('#proposal-branch', { hasText: branch }).waitFor();
  await p.locator('pre.diff .add', { hasText: 'carol@elsewhere.example.com' }).waitFor();
  await p.locator('#close').click();          // confirm() is accepted
  await p.getByRole('heading', { level: 1, name: 'Proposals' }).waitFor();
  await p.locator('#proposal-summary').waitFor();
  assert(await p.locator(`a[data-branch="${branch}"]`).count() === 0, 'it is not listed');
  let gone = false;
  try { gitR('rev-parse', '--verify', '-q', branch); } catch { gone = true; }
  assert(gone, 'its branch is deleted');
});

await step('no script errors or CSP violations in the pages', async () => {
  assert(pageErrors.length === 0, `errors:\n${pageErrors.join('\n')}`);
});

await browser.close();
process.exit(failed ? 1 : 0);
