// The dashboard in a real browser: headless Debian Chromium driven by
// playwright-core against a real `jobd serve` on a temporary data
// directory. Every wait is on a condition with a deadline.
//
// Run: cargo build && (cd tests/browser && npm ci && node --test)
// Env: JOBD_BIN (default target/debug/jobd), CHROMIUM_BIN (default /usr/bin/chromium).

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import http from "node:http";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import readline from "node:readline";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const JOBD_BIN = process.env.JOBD_BIN || path.join(ROOT, "target", "debug", "jobd");
const CHROMIUM_BIN = process.env.CHROMIUM_BIN || "/usr/bin/chromium";
const OUTPUT = path.join(ROOT, "test-output");

/** Deadline of one wait in the page, in ms. */
const WAIT = 30_000;

/** A `jobd serve` of the test's own, on a free port and a fresh data dir. */
async function startServer(extraArgs = [], extraEnv = {}) {
  const dataDir = await mkdtemp(path.join(tmpdir(), "jobd-browser-"));
  const child = spawn(
    JOBD_BIN,
    ["serve", "--bind", "127.0.0.1:0", "--data-dir", dataDir, ...extraArgs],
    { env: { ...process.env, RUST_LOG: "warn", ...extraEnv }, stdio: ["ignore", "pipe", "inherit"] },
  );
  const lines = readline.createInterface({ input: child.stdout });
  const first = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("jobd did not start within 20 s")), 20_000);
    child.once("exit", (code) => reject(new Error(`jobd exited with ${code} before it was ready`)));
    child.once("error", reject);
    lines.once("line", (line) => {
      clearTimeout(timer);
      resolve(line);
    });
  });
  const prefix = "jobd listening on ";
  assert.ok(first.startsWith(prefix), `unexpected first line: ${first}`);
  lines.on("line", () => {}); // keep draining stdout
  const url = first.slice(prefix.length).trim();
  return {
    url,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((resolve) => child.once("exit", resolve));
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
        await exited;
        clearTimeout(timer);
      }
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** JSON over HTTP, with a bearer token if given: {status, body}. */
async function api(server, method, route, body, token) {
  const headers = body === undefined ? {} : { "Content-Type": "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(server.url + route, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(20_000),
  });
  return { status: response.status, body: await response.json() };
}

async function submit(server, job, token) {
  const { status, body } = await api(server, "POST", "/api/v1/jobs", job, token);
  assert.equal(status, 201, JSON.stringify(body));
  return body.job_id;
}

/** Waits until the job has `status` in the API (not the page). */
async function waitForStatus(server, id, status, token) {
  const deadline = Date.now() + WAIT;
  for (;;) {
    const { body } = await api(server, "GET", `/api/v1/jobs/status/${id}`, undefined, token);
    if (body.status === status) return body;
    assert.ok(Date.now() < deadline, `job ${id} did not become ${status}: ${JSON.stringify(body)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const text = (page, selector) => page.locator(selector).innerText();

/** Waits until the element's text satisfies `predicate` (a string is "contains"). */
async function waitForText(page, selector, expected) {
  await page.waitForFunction(
    ([sel, want]) => {
      const node = document.querySelector(sel);
      return node !== null && node.textContent.includes(want);
    },
    [selector, expected],
    { timeout: WAIT },
  );
}

/** Runs the document pipeline on the sample document; the dataset job's id once it completed. */
async function runPipeline(server, token) {
  const sample = await readFile(path.join(ROOT, "tests", "data", "docs", "topics.md"), "utf8");
  const { status, body } = await api(server, "POST", "/api/v1/jobs/pipeline", { documents: [{ name: "topics.md", text: sample }] }, token);
  assert.equal(status, 201, JSON.stringify(body));
  const id = body.jobs.dataset_generation;
  await waitForStatus(server, id, "completed", token);
  return id;
}

/**
 * Opens the dataset job's page: train.jsonl is listed with its size and
 * media type, and following its link downloads the bytes the API serves.
 */
async function downloadTrainFromJobPage(page, server, id, token) {
  await page.evaluate((jobId) => { location.hash = "#/job/" + jobId; }, id);
  const row = page.locator('#job-artifacts tr[data-artifact="train.jsonl"]');
  await row.waitFor({ timeout: WAIT });
  const served = await fetch(`${server.url}/api/v1/jobs/status/${id}/artifacts/train.jsonl`, {
    headers: token ? { Authorization: `Bearer ${token}` } : {},
    signal: AbortSignal.timeout(20_000),
  });
  assert.equal(served.status, 200);
  const expected = Buffer.from(await served.arrayBuffer());
  assert.ok(expected.length > 0);
  assert.equal(await row.locator("td:nth-child(2)").getAttribute("title"), `${expected.length} bytes`);
  assert.equal(await row.locator("td:nth-child(3)").innerText(), "application/jsonl");
  const link = row.locator("a");
  assert.equal(await link.innerText(), "train.jsonl");
  const [download] = await Promise.all([page.waitForEvent("download", { timeout: WAIT }), link.click()]);
  assert.equal(download.suggestedFilename(), "train.jsonl");
  const saved = await readFile(await download.path());
  assert.ok(saved.equals(expected), "the downloaded file is the served one, byte for byte");
}

/** Headless Chromium with a fresh profile: {context, userDataDir}. */
async function launchBrowser() {
  const userDataDir = await mkdtemp(path.join(tmpdir(), "jobd-chromium-"));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM_BIN,
    headless: true,
    chromiumSandbox: false,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
    viewport: { width: 1280, height: 900 },
  });
  return { context, userDataDir };
}

describe("dashboard", () => {
  let server;
  let context;
  let page;
  let userDataDir;
  const problems = [];
  const origins = new Set();

  before(async () => {
    await mkdir(OUTPUT, { recursive: true });
    server = await startServer();
    origins.add(new URL(server.url).origin);
    ({ context, userDataDir } = await launchBrowser());
    page = context.pages()[0] || (await context.newPage());
    page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
    page.on("console", (message) => {
      // The 409s are the answers the cancel/restart test asks for.
      if (message.type() === "error" && !/status of 409 \(Conflict\)/.test(message.text())) {
        problems.push(`console error: ${message.text()}`);
      }
    });
    context.on("request", (request) => {
      const url = new URL(request.url());
      if (!["data:", "about:"].includes(url.protocol) && !origins.has(url.origin)) {
        problems.push(`request outside the servers under test: ${url}`);
      }
    });
  });

  after(async () => {
    await context?.close();
    await server?.stop();
    if (userDataDir) await rm(userDataDir, { recursive: true, force: true });
  });

  test("the overview shows the live queue figures and limits", async () => {
    const response = await page.goto(server.url + "/");
    // Under a policy without inline script: a violation would be a console
    // error, which the last test reports.
    assert.match(response.headers()["content-security-policy"] || "", /script-src 'self';/);
    await waitForText(page, "#live", "live");
    await page.waitForFunction(() => /^\d+$/.test(document.querySelector("#stat-total").textContent), null, { timeout: WAIT });
    assert.match(await text(page, "#global-text"), /^0 \/ 10 running$/);
    assert.match(await text(page, "#per-user-note"), /at most 3/);
    await waitForText(page, "#stat-workers", "1");
    // Marks this page load: a reload would drop it.
    await page.evaluate(() => { window.__sameLoad = true; });
  });

  test("a submitted job's progress bar advances and it completes without a reload", async () => {
    const id = await submit(server, {
      job_type: "sleep",
      parameters: { seconds: 5, steps: 10 },
      user_id: "alice",
    });
    await page.evaluate((jobId) => { location.hash = "#/job/" + jobId; }, id);
    await waitForText(page, "#job-id", id);

    const progress = () => page.locator("#job-progress").evaluate((bar) => bar.value);
    await page.waitForFunction(() => {
      const v = document.querySelector("#job-progress").value;
      return v > 0 && v < 1;
    }, null, { timeout: WAIT });
    const first = await progress();
    await page.waitForFunction((seen) => document.querySelector("#job-progress").value > seen, first, { timeout: WAIT });
    const second = await progress();
    assert.ok(second > first, `progress went from ${first} to ${second}`);
    assert.match(await text(page, "#job-progress-text"), /\d+ \/ 10 items · .* elapsed · running/);
    await page.screenshot({ path: path.join(OUTPUT, "dashboard-job.png"), fullPage: true });

    await waitForText(page, "#job-status", "completed");
    assert.equal(await progress(), 1);
    assert.match(await text(page, "#job-progress-text"), /100% · 10 \/ 10 items · .* elapsed · completed/);
    assert.match(await text(page, "#job-result"), /"steps": 10/);
    assert.equal(await page.locator('[data-field="user_id"]').innerText(), "alice");
    assert.equal(await page.evaluate(() => window.__sameLoad), true, "the page was reloaded");
    await page.screenshot({ path: path.join(OUTPUT, "dashboard-job-completed.png"), fullPage: true });
  });

  test("a job's log lines appear on its page while it runs, then the log is complete", async () => {
    const id = await submit(server, {
      job_type: "sleep",
      parameters: { seconds: 3, steps: 6, log: true },
      user_id: "carol",
    });
    await page.evaluate((jobId) => { location.hash = "#/job/" + jobId; }, id);
    await waitForText(page, "#job-id", id);
    await waitForText(page, "#job-log", "step 1 of 6 done");
    const lines = () => page.locator("#job-log .log-line").count();
    const seen = await lines();
    assert.ok(seen < 6, `the first lines showed while the job ran (${seen} of 6)`);
    await page.waitForFunction((n) => document.querySelectorAll("#job-log .log-line").length > n, seen, { timeout: WAIT });
    await waitForText(page, "#job-log-state", "complete");
    assert.equal(await lines(), 6);
    assert.equal(await page.locator('#job-log .log-line[data-seq="6"] .text').innerText(), "step 6 of 6 done");
    assert.equal(await page.locator("#job-log-empty").isHidden(), true);
    await page.screenshot({ path: path.join(OUTPUT, "dashboard-job-log.png"), fullPage: true });
  });

  test("cancel and restart from the job page, with the 409 answers shown", async () => {
    const id = await submit(server, {
      job_type: "sleep",
      parameters: { seconds: 30, steps: 30 },
      user_id: "bob",
    });
    await page.evaluate((jobId) => { location.hash = "#/job/" + jobId; }, id);
    await waitForText(page, "#job-status", "running");
    await page.waitForFunction(() => document.querySelector("#job-progress").value > 0, null, { timeout: WAIT });

    await page.click("#btn-cancel");
    await waitForText(page, "#job-status", "cancelled");
    await waitForText(page, "#action-result", "200 OK: Job cancelled successfully");
    assert.equal((await api(server, "GET", `/api/v1/jobs/status/${id}`)).body.status, "cancelled");

    await page.click("#btn-cancel");
    await waitForText(page, "#action-result", "409 JobAlreadyCompletedError");
    assert.match(await text(page, "#action-result"), /current status: cancelled/);

    await page.click("#btn-restart");
    await waitForText(page, "#action-result", "200 OK: Job restarted and re-queued");
    // The page follows the job again: it runs and reports progress.
    await waitForText(page, "#job-status", "running");
    await page.waitForFunction(() => document.querySelector("#job-progress").value > 0, null, { timeout: WAIT });

    await page.click("#btn-restart");
    await waitForText(page, "#action-result", "409 JobNotRestartableError");
    assert.match(await text(page, "#action-result"), /current status: running/);

    await page.click("#btn-cancel");
    await waitForText(page, "#job-status", "cancelled");
    assert.equal(await page.evaluate(() => window.__sameLoad), true, "the page was reloaded");
  });

  test("a pending job says why: its user is at the per-user limit", async () => {
    const job = { job_type: "sleep", parameters: { seconds: 60, steps: 60 }, user_id: "carol" };
    const running = [await submit(server, job), await submit(server, job), await submit(server, job)];
    for (const id of running) await waitForStatus(server, id, "running");
    const waiting = await submit(server, job);
    await page.evaluate((jobId) => { location.hash = "#/job/" + jobId; }, waiting);
    await waitForText(page, "#job-status", "pending");
    await page.waitForSelector('#why li[data-reason="user_limit"]', { timeout: WAIT });
    assert.match(await text(page, "#why"), /carol.*3 of 3 jobs running/);
    await page.screenshot({ path: path.join(OUTPUT, "dashboard-why.png"), fullPage: true });

    // The overview shows carol's running jobs against the per-user limit.
    await page.evaluate(() => { location.hash = "#/"; });
    await waitForText(page, "#user-meters", "carol");
    assert.match(await text(page, "#user-meters"), /3 \/ 3/);
    await waitForText(page, "#stat-pending", "1");
    await page.screenshot({ path: path.join(OUTPUT, "dashboard-overview.png"), fullPage: true });
    for (const id of [...running, waiting]) {
      assert.equal((await api(server, "POST", `/api/v1/jobs/cancel/${id}`)).status, 200);
    }
  });

  test("a job held back by its key's limit says so", async () => {
    // A server of its own, whose sleep jobs run one per document.
    const dir = await mkdtemp(path.join(tmpdir(), "jobd-browser-config-"));
    const config = path.join(dir, "jobd.toml");
    await writeFile(config, '[job_types.sleep]\nconcurrency_key = "/doc"\nmax_concurrent_per_key = 1\n');
    const keyed = await startServer(["--config", config]);
    origins.add(new URL(keyed.url).origin);
    const other = await context.newPage();
    try {
      const job = { job_type: "sleep", parameters: { seconds: 60, doc: "report-7" }, user_id: "dave" };
      const running = await submit(keyed, job);
      await waitForStatus(keyed, running, "running");
      const waiting = await submit(keyed, job);
      await other.goto(`${keyed.url}/#/job/${waiting}`);
      await waitForText(other, "#job-status", "pending");
      await other.waitForSelector('#why li[data-reason="key_limit"]', { timeout: WAIT });
      assert.match(await other.locator("#why").innerText(), /Key 'report-7' of job type 'sleep' is at its limit: 1 of 1/);
      await other.screenshot({ path: path.join(OUTPUT, "dashboard-why-key-limit.png"), fullPage: true });
      for (const id of [running, waiting]) {
        assert.equal((await api(keyed, "POST", `/api/v1/jobs/cancel/${id}`)).status, 200);
      }
    } finally {
      await other.close();
      await keyed.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("a job with no worker alive says so", async () => {
    const idle = await startServer(["--workers", "0"]);
    origins.add(new URL(idle.url).origin);
    const other = await context.newPage();
    try {
      const id = await submit(idle, { job_type: "noop" });
      await other.goto(`${idle.url}/#/job/${id}`);
      await other.waitForSelector('#why li[data-reason="no_workers"]', { timeout: WAIT });
      assert.match(await other.locator("#why").innerText(), /No worker is alive/);
    } finally {
      await other.close();
      await idle.stop();
    }
  });

  test("the jobs table filters by status, user and type, and pages newest first", async () => {
    const ids = [];
    for (let i = 0; i < 25; i++) ids.push(await submit(server, { job_type: "noop", user_id: "pager" }));
    await waitForStatus(server, ids[ids.length - 1], "completed");
    await page.evaluate(() => { location.hash = "#/jobs?user_id=pager&job_type=noop&limit=20"; });
    const rows = page.locator("#jobs-table tbody tr");
    await page.waitForFunction(() => document.querySelectorAll("#jobs-table tbody tr").length === 20, null, { timeout: WAIT });
    // Newest first: the last submitted is the first row.
    assert.equal(await rows.first().getAttribute("data-job-id"), ids[24]);
    await page.click("#page-next");
    await page.waitForFunction(() => document.querySelectorAll("#jobs-table tbody tr").length === 5, null, { timeout: WAIT });
    assert.equal(await rows.last().getAttribute("data-job-id"), ids[0]);
    assert.equal(await page.locator("#page-next").isDisabled(), true);
    await page.click("#page-prev");
    await page.waitForFunction(() => document.querySelectorAll("#jobs-table tbody tr").length === 20, null, { timeout: WAIT });

    // The filter form: cancelled jobs of bob (the one cancelled above).
    await page.evaluate(() => { location.hash = "#/jobs"; });
    await page.selectOption('#filters select[name="status"]', "cancelled");
    await page.fill('#filters input[name="user_id"]', "bob");
    await page.fill('#filters input[name="job_type"]', "sleep");
    await page.click('#filters button[type="submit"]');
    await page.waitForFunction(() => location.hash.includes("status=cancelled") &&
      document.querySelectorAll("#jobs-table tbody tr").length === 1, null, { timeout: WAIT });
    assert.match(await rows.first().innerText(), /sleep\s+bob\s+cancelled/);
    await page.screenshot({ path: path.join(OUTPUT, "dashboard-jobs.png"), fullPage: true });
  });

  test("the workers page lists the live worker", async () => {
    await page.evaluate(() => { location.hash = "#/workers"; });
    await page.waitForSelector("#workers-table tbody tr", { timeout: WAIT });
    assert.equal(await page.locator("#workers-table tbody tr").count(), 1);
    assert.match(await page.locator("#workers-table tbody tr").innerText(), /alive/);
    await page.screenshot({ path: path.join(OUTPUT, "dashboard-workers.png"), fullPage: true });
  });

  test("the schedules page shows each schedule's last and next run and last job, and pauses and resumes it", async () => {
    const { status } = await api(server, "POST", "/api/v1/schedules",
      { name: "pulse", cron: "* * * * * *", job_type: "noop", user_id: "ops" });
    assert.equal(status, 201);
    await page.evaluate(() => { location.hash = "#/schedules"; });
    const row = page.locator('#schedules-table tr[data-schedule="pulse"]');
    await row.locator('td[data-field="last_job"] a').waitFor({ timeout: WAIT });
    assert.match(await row.locator('td[data-field="last_job"]').innerText(), /pending|running|completed/);
    assert.notEqual(await row.locator('td[data-field="next_run_at"]').innerText(), "–");
    assert.match(await row.locator('td[data-field="last_run_at"]').innerText(), /s ago/);
    await page.screenshot({ path: path.join(OUTPUT, "dashboard-schedules.png"), fullPage: true });
    await row.locator("button.schedule-toggle", { hasText: "Pause" }).click();
    await row.locator(".badge.cancelled", { hasText: "paused" }).waitFor({ timeout: WAIT });
    assert.equal(await row.locator('td[data-field="next_run_at"]').innerText(), "–");
    await row.locator("button.schedule-toggle", { hasText: "Resume" }).click();
    await row.locator(".badge.completed", { hasText: "active" }).waitFor({ timeout: WAIT });
    const removed = await fetch(`${server.url}/api/v1/schedules/pulse`, { method: "DELETE" });
    assert.equal(removed.status, 204);
  });

  test("the overview charts throughput and fits a narrow window", async () => {
    await page.evaluate(() => { location.hash = "#/"; });
    await page.waitForFunction(() => Number(document.querySelector("#throughput").dataset.total) >= 26, null, { timeout: WAIT });
    assert.ok(await page.locator("#throughput rect.completed").count() >= 1);
    await page.waitForFunction(() => Number(document.querySelector("#stat-completed").textContent) >= 26, null, { timeout: WAIT });
    assert.equal(await text(page, "#stat-cancelled"), "5");
    await page.screenshot({ path: path.join(OUTPUT, "dashboard-overview-later.png"), fullPage: true });

    await page.setViewportSize({ width: 400, height: 800 });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 1, `the overview is ${overflow}px wider than a 400px window`);
    await page.screenshot({ path: path.join(OUTPUT, "dashboard-narrow.png"), fullPage: true });
    await page.setViewportSize({ width: 1280, height: 900 });
    assert.equal(await page.evaluate(() => window.__sameLoad), true, "the page was reloaded");
  });

  test("the stream reader parses CRLF, CR, comments and multi-line data, and resumes with Last-Event-ID", async () => {
    const stats = (await api(server, "GET", "/api/v1/jobs/queue/stats")).body;
    // One event's data over many lines (pretty-printed JSON), lines ended
    // by CRLF, CR and LF in turn, a comment, a retry time and an id.
    const event = (pending, id, ends) => {
      const lines = [": a keep-alive comment", "retry: 50", "event: stats", `id: ${id}`,
        ...JSON.stringify({ ...stats, pending_jobs: pending }, null, 1).split("\n").map((l) => "data: " + l), ""];
      return lines.map((l, i) => l + ends[i % ends.length]).join("");
    };
    const requests = [];
    const other = await context.newPage();
    try {
      await other.route("**/api/v1/jobs/queue/stream", (route) => {
        requests.push(route.request().headers()["last-event-id"] ?? null);
        const body = requests.length === 1 ? event(41, "7", ["\r\n", "\r", "\n"]) : event(42, "8", ["\n"]);
        return route.fulfill({ status: 200, headers: { "Content-Type": "text/event-stream" }, body });
      });
      await other.goto(server.url + "/");
      await waitForText(other, "#stat-pending", "41");
      // The body ended: the reader reconnects after the stream's retry time,
      // sending the last id it saw.
      await other.waitForFunction(() => document.querySelector("#stat-pending").textContent === "42", null, { timeout: WAIT });
      assert.deepEqual(requests.slice(0, 2), [null, "7"]);
    } finally {
      await other.close();
    }
  });

  test("the interactive API docs load offline from the server", async () => {
    const docs = await context.newPage();
    docs.on("console", (message) => {
      if (message.type() === "error") problems.push(`docs console error: ${message.text()}`);
    });
    try {
      const response = await docs.goto(server.url + "/api/docs");
      assert.match(response.headers()["content-security-policy"] || "", /script-src 'self';/);
      await docs.waitForSelector(".swagger-ui .info .title", { timeout: WAIT });
      assert.match(await docs.locator(".swagger-ui .info .title").innerText(), /jobd/);
      await docs.waitForSelector(".opblock", { timeout: WAIT });
      assert.ok(await docs.locator(".opblock").count() >= 18);
    } finally {
      await docs.close();
    }
  });

  test("a page of another origin cannot submit jobs, the server's own can", async () => {
    // What a malicious page an operator opens would do: a page served
    // elsewhere (here a bare HTTP server of the test's own) posting to jobd.
    const elsewhere = http.createServer((_, response) => {
      response.writeHead(200, { "Content-Type": "text/html" });
      response.end("<!doctype html><title>elsewhere</title>");
    });
    await new Promise((resolve) => elsewhere.listen(0, "127.0.0.1", resolve));
    const otherOrigin = `http://127.0.0.1:${elsewhere.address().port}`;
    // http://localhost:PORT is jobd too, under another name than the tests'.
    const ownOtherName = `http://localhost:${new URL(server.url).port}`;
    origins.add(otherOrigin);
    origins.add(ownOtherName);
    const page2 = await context.newPage();
    const post = (target) => page2.evaluate(async (url) => {
      // A "simple" request: no preflight, so the browser sends it as is.
      await fetch(url, {
        method: "POST",
        mode: "no-cors",
        headers: { "Content-Type": "text/plain" },
        body: JSON.stringify({ job_type: "noop", user_id: "mallory" }),
      });
    }, target);
    const mallorysJobs = async () =>
      (await api(server, "GET", "/api/v1/jobs?user_id=mallory")).body.jobs.length;
    try {
      await page2.goto(otherOrigin + "/");
      await post(server.url + "/api/v1/jobs");
      await post(ownOtherName + "/api/v1/jobs");
      assert.equal(await mallorysJobs(), 0, "a page of another origin submitted a job");
      await page2.goto(ownOtherName + "/dashboard/favicon.svg");
      await post(ownOtherName + "/api/v1/jobs");
      assert.equal(await mallorysJobs(), 1, "a same-origin submission was refused");
    } finally {
      await page2.close();
      elsewhere.close();
    }
  });

  test("a pipeline's dataset job page lists train.jsonl, and its link downloads the file", async () => {
    const id = await runPipeline(server);
    await downloadTrainFromJobPage(page, server, id);
    await page.screenshot({ path: path.join(OUTPUT, "dashboard-artifacts.png"), fullPage: true });
  });

  test("nothing failed in the page and nothing was fetched from elsewhere", () => {
    assert.deepEqual(problems, []);
  });
});

// With auth = "token": a bootstrap admin token on the server process, and
// viewer, user and worker tokens made with it through the API.
describe("dashboard with auth = token", () => {
  const ADMIN = "browser-test-admin-token-0123456789abcdef";
  let server;
  let context;
  let page;
  let userDataDir;
  const tokens = {};
  const jobs = { alice: [], bob: [] };
  let aliceLong; // alice's job that runs all along
  const problems = [];
  const streams = []; // the SSE requests the page made: url and Authorization
  const downloads = []; // the artifact requests the page made: url and Authorization

  /** A token made by the admin: its secret. */
  async function mint(userId, role) {
    const { status, body } = await api(server, "POST", "/api/v1/tokens", { user_id: userId, role }, ADMIN);
    assert.equal(status, 201, JSON.stringify(body));
    return body.token;
  }

  /** Signs in with `token` through the form. */
  async function signIn(token) {
    await page.waitForSelector("#view-signin:not([hidden])", { timeout: WAIT });
    await page.fill("#signin-token", token);
    await page.click("#btn-signin");
  }

  /** The visible buttons that would change a job. */
  const mutateButtons = () => page.getByRole("button", { name: /submit|cancel|restart/i }).count();

  /** The ids of the rows the jobs table shows. */
  const listedIds = () => page.locator("#jobs-table tbody tr").evaluateAll((rows) => rows.map((r) => r.dataset.jobId));

  before(async () => {
    await mkdir(OUTPUT, { recursive: true });
    server = await startServer(["--auth", "token"], { JOBD_ADMIN_TOKEN: ADMIN });
    tokens.viewer = await mint("vera", "viewer");
    tokens.alice = await mint("alice", "user");
    tokens.bob = await mint("bob", "user");
    tokens.worker = await mint("w1", "worker");
    for (let i = 0; i < 3; i++) jobs.alice.push(await submit(server, { job_type: "noop" }, tokens.alice));
    for (let i = 0; i < 3; i++) jobs.bob.push(await submit(server, { job_type: "noop" }, tokens.bob));
    aliceLong = await submit(server, { job_type: "sleep", parameters: { seconds: 60, steps: 60 } }, tokens.alice);
    jobs.alice.push(aliceLong);
    await waitForStatus(server, aliceLong, "running", ADMIN);

    ({ context, userDataDir } = await launchBrowser());
    page = context.pages()[0] || (await context.newPage());
    page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
    page.on("console", (message) => {
      // 401s (no token yet, a revoked one) and the forced request's 403 are
      // the answers these tests ask for.
      if (message.type() === "error" && !/status of (401|403) /.test(message.text())) {
        problems.push(`console error: ${message.text()}`);
      }
    });
    context.on("request", (request) => {
      const url = request.url();
      if (/\/stream(\?|$)/.test(url)) streams.push({ url, authorization: request.headers().authorization });
      if (/\/artifacts\/[^/]+$/.test(url)) downloads.push({ url, authorization: request.headers().authorization });
      for (const [name, token] of Object.entries({ ADMIN, ...tokens })) {
        if (url.includes(token)) problems.push(`the ${name} token in a URL: ${url}`);
      }
    });
  });

  after(async () => {
    if (server && aliceLong) await api(server, "POST", `/api/v1/jobs/cancel/${aliceLong}`, undefined, ADMIN);
    await context?.close();
    await server?.stop();
    if (userDataDir) await rm(userDataDir, { recursive: true, force: true });
  });

  test("without a token the dashboard asks for one; a worker token is told it needs another", async () => {
    await page.goto(server.url + "/");
    await page.waitForSelector("#view-signin:not([hidden])", { timeout: WAIT });
    assert.equal(await page.locator("#view-overview").isHidden(), true);
    assert.equal(await page.locator("header nav").isHidden(), true);

    await signIn(tokens.worker);
    await waitForText(page, "#signin-error", "the dashboard needs an admin, user or viewer token");
    assert.equal(await page.evaluate(() => sessionStorage.length + localStorage.length), 0);

    await signIn("jobd_nosuchtoken_0123456789");
    await waitForText(page, "#signin-error", "refused this token");
    assert.equal(await page.locator("#view-overview").isHidden(), true);
  });

  test("a viewer sees every job but no submit, cancel or restart button, and a forced cancel is a 403", async () => {
    await signIn(tokens.viewer);
    await waitForText(page, "#whoami", "vera · viewer");
    await waitForText(page, "#live", "live");
    assert.equal(await mutateButtons(), 0);

    await page.evaluate(() => { location.hash = "#/jobs"; });
    const all = [...jobs.alice, ...jobs.bob];
    await page.waitForFunction((n) => document.querySelectorAll("#jobs-table tbody tr").length === n, all.length, { timeout: WAIT });
    assert.deepEqual(new Set(await listedIds()), new Set(all));
    assert.equal(await mutateButtons(), 0);

    // The job page of alice's running job: no cancel or restart either.
    await page.evaluate((id) => { location.hash = "#/job/" + id; }, aliceLong);
    await waitForText(page, "#job-status", "running");
    await page.waitForFunction(() => document.querySelector("#job-progress").value > 0, null, { timeout: WAIT });
    assert.equal(await mutateButtons(), 0);
    assert.equal(await page.locator("#btn-cancel").isHidden(), true);
    assert.equal(await page.locator("#btn-restart").isHidden(), true);
    await page.screenshot({ path: path.join(OUTPUT, "dashboard-viewer-job.png"), fullPage: true });

    // The server refuses anyway: a cancel forced from the page.
    const forced = await page.evaluate(async ([id, token]) => {
      const response = await fetch("/api/v1/jobs/cancel/" + id, { method: "POST", headers: { Authorization: "Bearer " + token } });
      return { status: response.status, body: await response.json() };
    }, [aliceLong, tokens.viewer]);
    assert.equal(forced.status, 403, JSON.stringify(forced.body));
    assert.equal(forced.body.error, "ForbiddenError");
    assert.equal((await api(server, "GET", `/api/v1/jobs/status/${aliceLong}`, undefined, ADMIN)).body.status, "running");
  });

  test("signing out forgets the token: none left in sessionStorage or localStorage, the form shows", async () => {
    const kept = await page.evaluate(() => ({ session: Object.values(sessionStorage), local: localStorage.length }));
    assert.deepEqual(kept, { session: [tokens.viewer], local: 0 }, "while signed in, the token is in this tab's sessionStorage only");
    await page.click("#btn-signout");
    await page.waitForSelector("#view-signin:not([hidden])", { timeout: WAIT });
    assert.equal(await page.locator("#view-job").isHidden(), true);
    const left = await page.evaluate(() => ({ session: sessionStorage.length, local: localStorage.length }));
    assert.deepEqual(left, { session: 0, local: 0 });
    // A reload does not bring the session back.
    await page.reload();
    await page.waitForSelector("#view-signin:not([hidden])", { timeout: WAIT });
  });

  test("a user sees only its own jobs, and its job page streams live progress with the token in a header", async () => {
    await signIn(tokens.alice);
    await waitForText(page, "#whoami", "alice · user");
    await page.evaluate(() => { location.hash = "#/jobs"; });
    await page.waitForFunction((n) => document.querySelectorAll("#jobs-table tbody tr").length === n, jobs.alice.length, { timeout: WAIT });
    const listed = await listedIds();
    assert.deepEqual(new Set(listed), new Set(jobs.alice));
    for (const id of jobs.bob) assert.ok(!listed.includes(id), `bob's job ${id} is listed for alice`);
    assert.deepEqual(await page.locator("#jobs-table tbody tr td:nth-child(3)").allInnerTexts(), listed.map(() => "alice"));

    // Her own job page: cancel and restart are there, and the progress bar
    // follows the job's stream.
    const id = await submit(server, { job_type: "sleep", parameters: { seconds: 4, steps: 8 } }, tokens.alice);
    const seen = streams.length;
    await page.evaluate((jobId) => { location.hash = "#/job/" + jobId; }, id);
    await waitForText(page, "#job-id", id);
    assert.equal(await page.locator("#btn-cancel").isVisible(), true);
    assert.equal(await page.locator("#btn-restart").isVisible(), true);
    await page.waitForFunction(() => {
      const v = document.querySelector("#job-progress").value;
      return v > 0 && v < 1;
    }, null, { timeout: WAIT });
    const first = await page.locator("#job-progress").evaluate((bar) => bar.value);
    await page.waitForFunction((was) => document.querySelector("#job-progress").value > was, first, { timeout: WAIT });
    await waitForText(page, "#job-status", "completed");
    assert.match(await text(page, "#job-progress-text"), /100% · 8 \/ 8 items/);
    const jobStream = streams.slice(seen).find((s) => s.url.endsWith(`/status/${id}/stream`));
    assert.ok(jobStream, "the page opened the job's stream");
    assert.equal(jobStream.authorization, `Bearer ${tokens.alice}`);
    await page.screenshot({ path: path.join(OUTPUT, "dashboard-user-job.png"), fullPage: true });
  });

  test("a user's dataset downloads from its job page with the token in a header, not in a URL", async () => {
    const id = await runPipeline(server, tokens.alice);
    const seen = downloads.length;
    await downloadTrainFromJobPage(page, server, id, tokens.alice);
    const fetched = downloads.slice(seen).find((d) => d.url.endsWith(`/status/${id}/artifacts/train.jsonl`));
    assert.ok(fetched, `the page fetched the file: ${JSON.stringify(downloads.slice(seen))}`);
    assert.equal(fetched.authorization, `Bearer ${tokens.alice}`);
  });

  test("a token revoked mid-session sends the page back to the sign-in form", async () => {
    await page.evaluate(() => { location.hash = "#/jobs"; });
    await page.waitForSelector("#jobs-table tbody tr", { timeout: WAIT });
    const { body } = await api(server, "GET", "/api/v1/me", undefined, tokens.alice);
    assert.equal((await api(server, "DELETE", `/api/v1/tokens/${body.token_id}`, undefined, ADMIN)).status, 200);
    // The next change of the queue makes the page reload the list: refused.
    await waitForStatus(server, await submit(server, { job_type: "noop" }, tokens.bob), "completed", ADMIN);
    await page.waitForSelector("#view-signin:not([hidden])", { timeout: WAIT });
    await waitForText(page, "#signin-error", "no longer accepts this token");
    assert.equal(await page.evaluate(() => sessionStorage.length + localStorage.length), 0);
  });

  test("every stream was read with the token in a header, none in a URL, and nothing failed", () => {
    assert.ok(streams.length >= 3, `streams: ${JSON.stringify(streams.map((s) => s.url))}`);
    for (const stream of streams) assert.match(stream.authorization || "", /^Bearer jobd_/, stream.url);
    assert.deepEqual(problems, []);
  });
});
