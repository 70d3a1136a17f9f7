// Drives the browser call test: two headless Chromium pages (separate
// contexts) load call.html from the origin of their own c2s node (page A on
// c2s-a, page B on c2s-b; the files are served by request interception, so
// the WebSocket's Origin matches the node), the callee first; passes when
// both pages' getStats() show inbound-rtp video bytesReceived growing over
// a relay candidate pair. Input: one JSON argument (see test_28); output:
// one JSON line on stdout; exit status 0 on success. Bounded by cfg.timeoutMs.
"use strict";
const fs = require("fs");
const path = require("path");

const cfg = JSON.parse(process.argv[2]);
const { chromium } = require(path.join(cfg.webDir, "node_modules", "playwright-core"));
const files = {
  "call.html": [path.join(__dirname, "call.html"), "text/html"],
  "call.js": [path.join(__dirname, "call.js"), "text/javascript"],
  "xmpp.min.js": [path.join(cfg.webDir, "node_modules", "@xmpp", "client", "dist",
    "xmpp.min.js"), "text/javascript"],
};
const deadline = Date.now() + cfg.timeoutMs;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what, fn) {
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error("timed out waiting for " + what);
    await sleep(200);
  }
}

async function openSide(browser, side) {
  const ctx = await browser.newContext();
  const origin = "http://127.0.0.1:" + side.httpPort;
  await ctx.route(origin + "/calltest/**", (route) => {
    const name = new URL(route.request().url()).pathname.split("/").pop();
    const f = files[name];
    if (!f) return route.fulfill({ status: 404, body: "no" });
    return route.fulfill({ status: 200, contentType: f[1], body: fs.readFileSync(f[0]) });
  });
  const page = await ctx.newPage();
  page.on("console", (m) => process.stderr.write("[" + side.user + "] " + m.text() + "\n"));
  page.on("pageerror", (e) => process.stderr.write("[" + side.user + "] pageerror " + e + "\n"));
  const q = new URLSearchParams({
    ws: "ws://127.0.0.1:" + side.httpPort + "/xmpp-websocket",
    user: side.user, pw: cfg.pw, res: "browser", peer: side.peer, role: side.role,
  });
  await page.goto(origin + "/calltest/call.html?" + q.toString());
  return page;
}

async function state(page) {
  const s = await page.evaluate(() => window.callState);
  if (s.startsWith("error")) throw new Error(s);
  return s;
}

(async () => {
  const out = { ok: false };
  let browser = null;
  const pages = [];
  try {
    browser = await chromium.launch({
      executablePath: cfg.chromium, headless: true, timeout: 60000,
      args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
        // The page is served by interception, so Chromium does not know it
        // came from loopback and would block its WebSocket to 127.0.0.1
        // (ERR_BLOCKED_BY_LOCAL_NETWORK_ACCESS_CHECKS).
        "--disable-features=LocalNetworkAccessChecks"],
    });
    const b = await openSide(browser, cfg.b);
    pages.push(b);
    await waitFor("callee ready", async () => (await state(b)) === "ready");
    const a = await openSide(browser, cfg.a);
    pages.push(a);
    for (const p of [a, b])
      await waitFor("media", async () => (await state(p)) === "media");
    // bytesReceived grows on both sides: sample, then wait for more.
    const first = [];
    for (const p of [a, b])
      first.push(await waitFor("first video bytes", async () => {
        const v = await p.evaluate(() => window.videoIn());
        return v.bytes > 0 ? v : null;
      }));
    const second = [];
    for (const [i, p] of [a, b].entries())
      second.push(await waitFor("more video bytes", async () => {
        const v = await p.evaluate(() => window.videoIn());
        return v.bytes > first[i].bytes + 10000 ? v : null;
      }));
    out.a = { first: first[0], second: second[0] };
    out.b = { first: first[1], second: second[1] };
    out.ok = true;
  } catch (e) {
    out.error = String(e && e.stack ? e.stack : e);
  }
  try {
    for (let i = 0; i < pages.length; i++) {
      const name = i === 0 ? "call-callee-b.png" : "call-caller-a.png";
      await pages[i].screenshot({ path: path.join(cfg.shotDir, name) });
      out["log" + i] = await pages[i].evaluate(() => window.callLog);
    }
  } catch (e) {
    out.screenshotError = String(e);
  }
  if (browser) await browser.close().catch(() => {});
  process.stdout.write(JSON.stringify(out) + "\n");
  process.exit(out.ok ? 0 : 1);
})();
