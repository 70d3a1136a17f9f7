// tests/browser/chat.mjs - two people chat through Kiln's bundled web client
// (Converse.js at /chat/) in headless Chromium, driven by playwright-core
// from `make web` (build/web). tests/integration/test_24_browser.py runs it:
//
//   node tests/browser/chat.mjs CONFIG.json
//
// CONFIG: {a_url, b_url, transport ("websocket" | "bosh"), domain, room,
// room_name, alice: {user, pw}, bob: {user, pw}, shots (a folder), tag}.
// Alice opens a_url (node A), Bob b_url (node B). Every wait is on a DOM
// condition with a bound (WAIT ms); a screenshot of each page is saved in
// `shots` after each step, and of every open page when a step fails. The
// browser is closed (all its processes) in every case. Exit status 0: the
// whole story worked; 1: a step failed (its name and error on stderr).
import { createRequire } from 'module';
import { readFileSync, mkdirSync } from 'fs';
import path from 'path';
import { fileURLToPath } from 'url';

const here = path.dirname(fileURLToPath(import.meta.url));
const webDir = process.env.KILN_WEB_DIR || path.join(here, '../../build/web');
const require = createRequire(path.join(webDir, 'node_modules/'));
const { chromium } = require('playwright-core');

const cfg = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const WAIT = 20000;
// A 48x32 PNG (left half red, right half blue) that Alice shares.
const PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAADAAAAAgCAIAAADbtmxLAAAANElEQVR42u3OQQ0AAAgEIJOYydgXyxLOFxsBqEyf6MmJEhISEhISEhISEhISEhISEhL6DC0uBERqAZAqlAAAAABJRU5ErkJggg==', 'base64');
mkdirSync(cfg.shots, { recursive: true });

const pages = {};
let step = 'start';
let shotNo = 0;

function log(...a) {
    console.log(`[${cfg.transport}] ${step}:`, ...a);
}

async function shot(who, what) {
    const p = pages[who];
    if (!p || p.isClosed()) return;
    shotNo += 1;
    const name = `${String(shotNo).padStart(2, '0')}-${who}-${what}.png`;
    await p.screenshot({ path: path.join(cfg.shots, name), animations: 'disabled' });
}

// Opens the page, logs in, waits for the roster: the controlbox shows
// the user's own JID and the chat status "online".
async function login(ctx, who, url) {
    const { user, pw } = cfg[who];
    const page = await ctx.newPage();
    page.setDefaultTimeout(WAIT);
    pages[who] = page;
    page.on('response', (r) => {
        if (r.status() >= 400) log(`${who} HTTP ${r.status()} ${r.url()}`);
    });
    page.on('pageerror', (e) => log(`${who} page error:`, e.message));
    page.on('console', (m) => {
        if (m.type() === 'error' && !/conversejs\.org|ERR_NAME_NOT_RESOLVED|favicon/.test(m.text()))
            log(`${who} console:`, m.text());
    });
    // What the page is about to use, so a BOSH-only run proves it is.
    page.on('websocket', (ws) => {
        page.kilnWebSockets = (page.kilnWebSockets || 0) + 1;
        log(`${who} websocket`, ws.url());
    });
    page.on('request', (r) => {
        if (r.url().endsWith('/http-bind')) page.kilnBosh = (page.kilnBosh || 0) + 1;
    });
    await page.goto(url);
    await page.getByPlaceholder('Username').fill(user);
    await page.getByPlaceholder('Password').fill(pw);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.locator('converse-roster').waitFor({ timeout: WAIT });
    return page;
}

function contactName(page, jid, show) {
    return page.locator(`a.open-chat[data-jid="${jid}"] .contact-name--${show}`);
}

async function sendIn(page, box, text) {
    const ta = page.locator(`${box} textarea.chat-textarea`);
    await ta.waitFor({ timeout: WAIT });
    await ta.fill(text);
    await ta.press('Enter');
    await page.locator(`${box} .chat-msg__text`, { hasText: text }).first().waitFor({ timeout: WAIT });
}

async function seeIn(page, box, text) {
    await page.locator(`${box} .chat-msg__text`, { hasText: text }).first().waitFor({ timeout: WAIT });
}

async function openChat(page, jid) {
    await page.locator(`a.open-chat[data-jid="${jid}"]`).click();
    await page.locator(`converse-chat[jid="${jid}"] textarea.chat-textarea`).waitFor({ timeout: WAIT });
}

// Log out through the page: profile, "Log out", confirm.
async function logout(page) {
    await page.locator('converse-controlbox a.show-profile').click();
    await page.locator('.modal.show button.btn-danger').click();
    await page.locator('.modal.show', { hasText: 'Are you sure you want to log out?' })
        .getByRole('button', { name: 'Confirm' }).click();
    await page.getByPlaceholder('Username').waitFor({ timeout: WAIT });
}

async function openRoom(page, room) {
    const link = page.locator(`converse-rooms-list a.open-room[data-room-jid="${room}"]`);
    await link.waitFor({ timeout: WAIT });
    await link.click();
    await page.locator(`converse-muc[jid="${room}"] textarea.chat-textarea`).waitFor({ timeout: WAIT });
}

const browser = await chromium.launch({
    executablePath: process.env.KILN_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    // No internet here; background networking makes connections fail.
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update',
        '--disable-sync', '--disable-dev-shm-usage'],
});
let rc = 1;
try {
    const D = cfg.domain;
    const alice = `${cfg.alice.user}@${D}`;
    const bob = `${cfg.bob.user}@${D}`;
    const room = cfg.room;
    const t = cfg.tag;
    // The upload URLs are node A's HTTPS port, whose certificate comes
    // from the test stack's private CA, which this browser profile does
    // not know (a deployment uses a certificate the browser trusts).
    const ctxOpts = { viewport: { width: 1100, height: 700 }, ignoreHTTPSErrors: true };
    const aCtx = await browser.newContext(ctxOpts);
    let bCtx = await browser.newContext(ctxOpts);

    step = 'alice logs in on node A';
    const a = await login(aCtx, 'alice', cfg.a_url);
    await contactName(a, bob, 'offline').waitFor({ timeout: WAIT });
    await shot('alice', 'logged-in-bob-offline');

    step = 'bob logs in on node B; each sees the other online';
    const b = await login(bCtx, 'bob', cfg.b_url);
    await contactName(a, bob, 'online').waitFor({ timeout: WAIT });
    await contactName(b, alice, 'online').waitFor({ timeout: WAIT });
    await shot('alice', 'bob-online');
    await shot('bob', 'logged-in-alice-online');

    step = 'one-to-one messages both ways';
    await openChat(a, bob);
    await openChat(b, alice);
    const m1 = `Hello Bob, from node A (${t})`;
    const m2 = `Hi Alice, node B here (${t})`;
    await sendIn(a, `converse-chat[jid="${bob}"]`, m1);
    await seeIn(b, `converse-chat[jid="${alice}"]`, m1);
    await sendIn(b, `converse-chat[jid="${alice}"]`, m2);
    await seeIn(a, `converse-chat[jid="${bob}"]`, m2);
    await shot('alice', 'chat');
    await shot('bob', 'chat');

    step = 'alice shares an image (XEP-0363 upload through node A); bob sees it';
    // Converse asks upload.<domain> (found in the server's disco items)
    // for a slot, PUTs the file to node A's HTTPS upload URL (a
    // cross-origin request: CORS preflight), then sends the GET URL with
    // an XEP-0066 <x><url>. Bob's page (node B) shows it inline: the
    // image must really load (naturalWidth), not only be announced.
    const img = `kiln-shared-${t}.png`;
    await a.locator(`converse-chat[jid="${bob}"] input.fileupload`)
        .setInputFiles({ name: img, mimeType: 'image/png', buffer: PNG });
    for (const [p, box] of [[a, `converse-chat[jid="${bob}"]`], [b, `converse-chat[jid="${alice}"]`]]) {
        const el = p.locator(`${box} img.chat-image[src*="${img}"]`).first();
        await el.waitFor({ timeout: WAIT });
        await p.waitForFunction((e) => e.complete && e.naturalWidth === 48 && e.naturalHeight === 32,
            await el.elementHandle(), { timeout: WAIT });
    }
    await shot('alice', 'image-sent');
    await shot('bob', 'image-received');

    step = 'the group from the XEP-0402 bookmarks';
    // Both are members: kiln-mucd wrote the bookmark (autojoin), Converse
    // joined the room on login and lists it; the bookmark list shows it.
    for (const p of [a, b]) {
        await p.locator(`converse-rooms-list a.open-room[data-room-jid="${room}"]`).waitFor({ timeout: WAIT });
    }
    const menu = b.locator('converse-rooms-list converse-dropdown .dropdown-toggle').first();
    await menu.click();
    await b.locator('.show-bookmark-list-modal').click();
    const modal = b.locator('.modal.show', { has: b.locator('.list-container--bookmarks') });
    await modal.locator('.list-container--bookmarks', { hasText: cfg.room_name }).waitFor({ timeout: WAIT });
    await shot('bob', 'bookmarks');
    await modal.getByRole('button', { name: 'Close' }).last().click();
    await modal.waitFor({ state: 'hidden', timeout: WAIT });
    if (await b.locator('.show-bookmark-list-modal').isVisible()) await menu.click();
    await b.locator('.show-bookmark-list-modal').waitFor({ state: 'hidden', timeout: WAIT });

    step = 'talk in the group';
    await openRoom(a, room);
    await openRoom(b, room);
    const g1 = `Group hello from Alice (${t})`;
    const g2 = `Group reply from Bob (${t})`;
    const mbox = `converse-muc[jid="${room}"]`;
    await sendIn(a, mbox, g1);
    await seeIn(b, mbox, g1);
    await sendIn(b, mbox, g2);
    await seeIn(a, mbox, g2);
    await shot('alice', 'group');
    await shot('bob', 'group');

    step = 'bob leaves; alice sees him offline';
    // Bob logs out (the page sends unavailable presence and closes the
    // stream). Just closing the page would not do: over WebSocket Converse
    // has XEP-0198 resumption on, so a dropped connection keeps Bob
    // available for c2s.sm.resume_timeout (300 s) in case the page comes
    // back (R-DROP-5), and a BOSH session ends only after bosh_inactivity.
    // Nobody writes to the group while he is away: kiln-mucd would send
    // him those lines as offline messages of type normal from the room
    // (R-GRP-4(b)), which Converse shows as a one-to-one chat with the
    // room's JID, and then it may not join the room (docs/WEB.md).
    await logout(b);
    await shot('bob', 'logged-out');
    await bCtx.close();
    delete pages.bob;
    await contactName(a, bob, 'offline').waitFor({ timeout: WAIT });
    await shot('alice', 'bob-offline');

    step = 'bob comes back in a fresh browser profile and sees the history';
    // A new context has no IndexedDB: what Bob sees now comes from the
    // server (the group's history / MAM), not from the page's cache.
    bCtx = await browser.newContext(ctxOpts);
    const b2 = await login(bCtx, 'bob', cfg.b_url);
    await openRoom(b2, room);
    for (const text of [g1, g2]) await seeIn(b2, mbox, text);
    await contactName(a, bob, 'online').waitFor({ timeout: WAIT });
    await shot('bob', 'history');

    step = 'transport';
    for (const [who, p] of [['alice', a], ['bob', b2]]) {
        const ws = p.kilnWebSockets || 0;
        const bosh = p.kilnBosh || 0;
        log(`${who}: ${ws} WebSocket(s), ${bosh} BOSH request(s)`);
        if (cfg.transport === 'bosh' && (ws !== 0 || bosh === 0))
            throw new Error(`${who} did not use BOSH only`);
        if (cfg.transport === 'websocket' && (ws === 0 || bosh !== 0))
            throw new Error(`${who} did not use WebSocket only`);
    }
    step = 'done';
    log('ok');
    rc = 0;
} catch (e) {
    console.error(`[${cfg.transport}] FAILED at "${step}": ${e.message}`);
    for (const who of Object.keys(pages)) await shot(who, 'FAILED').catch(() => {});
} finally {
    await browser.close();
}
process.exit(rc);
