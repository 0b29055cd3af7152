// jobd dashboard. Plain JavaScript, no framework, no build step. Everything
// comes from the public API: the live queue stream (SSE), the job list, a
// job's SSE stream, its artifacts, cancel and restart, the worker registry
// and the "why pending" hint. Data is always inserted as text, never as HTML.
//
// With auth = "token" the page asks for a token, keeps it in this tab's
// sessionStorage (never localStorage, never a URL), sends it as
// `Authorization: Bearer` on every call and stream, and shows only what the
// token's role allows (the server refuses the rest anyway).
(function () {
  "use strict";

  const API = "/api/v1/jobs";
  const SCHEDULES = "/api/v1/schedules";
  const $ = (id) => document.getElementById(id);

  // --- small helpers ------------------------------------------------------

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else node.setAttribute(key, value);
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function svg(tag, attrs) {
    const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
    return node;
  }

  function badge(text, kind) {
    return el("span", { class: "badge " + (kind || text), text });
  }

  function shortId(id) {
    return id ? id.slice(0, 8) + "…" + id.slice(-4) : "";
  }

  function localTime(iso) {
    if (!iso) return "–";
    const d = new Date(iso);
    return isNaN(d) ? iso : d.toLocaleString();
  }

  function ago(iso) {
    if (!iso) return "–";
    const seconds = Math.max(0, Math.round((Date.now() - new Date(iso).getTime()) / 1000));
    if (seconds < 60) return seconds + " s ago";
    if (seconds < 3600) return Math.floor(seconds / 60) + " min ago";
    return Math.floor(seconds / 3600) + " h ago";
  }

  function byteSize(bytes) {
    if (bytes < 1024) return bytes + " B";
    const units = ["KiB", "MiB", "GiB", "TiB"];
    let value = bytes / 1024;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
    return value.toFixed(value < 10 ? 1 : 0) + " " + units[unit];
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    if (seconds < 60) return seconds.toFixed(1) + " s";
    const m = Math.floor(seconds / 60);
    if (m < 60) return m + " min " + Math.round(seconds % 60) + " s";
    return Math.floor(m / 60) + " h " + (m % 60) + " min";
  }

  // --- who is signed in ---------------------------------------------------

  // The tab's copy of the token: sessionStorage ends with the tab and is not
  // shared with other tabs; a reload keeps the session.
  const TOKEN_KEY = "jobd.token";

  const session = {
    auth: null,           // the server's auth setting: "none" or "token"
    token: null,          // the bearer token (auth = "token" only)
    me: null,             // GET /api/v1/me of the signed-in caller
    epoch: 0,             // bumped at sign in and out: older answers are dropped
    streams: new Set(),   // the open SSE readers, all closed at sign out
  };

  function storedToken() {
    try { return sessionStorage.getItem(TOKEN_KEY); } catch (_) { return null; }
  }

  function storeToken(token) {
    try {
      if (token) sessionStorage.setItem(TOKEN_KEY, token);
      else sessionStorage.removeItem(TOKEN_KEY);
    } catch (_) { /* storage off: the token lives in memory only */ }
  }

  function authHeaders(token) {
    return token ? { Authorization: "Bearer " + token } : {};
  }

  // Fetches JSON; resolves to {status, body} whatever the status, so
  // callers can show 4xx answers plainly. A 401 for the session's token
  // (revoked or expired meanwhile) ends the session. An answer that arrives
  // after sign in or out never resolves: it belongs to another session.
  async function call(method, path, body) {
    const epoch = session.epoch;
    const token = session.token;
    const init = { method, headers: authHeaders(token) };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let answer;
    try {
      const response = await fetch(path, init);
      let data = null;
      try { data = await response.json(); } catch (_) { data = null; }
      answer = { status: response.status, body: data };
    } catch (e) {
      answer = { status: 0, body: { error: "NetworkError", message: String(e) } };
    }
    if (epoch !== session.epoch) return new Promise(() => {});
    if (answer.status === 401 && token) tokenRefused(token);
    return answer;
  }

  // --- Server-Sent Events over fetch ---------------------------------------

  // Every stream the page follows is read with fetch(), not EventSource:
  // EventSource cannot send an Authorization header, and a user's token in
  // the URL would be a long-lived secret in server and proxy logs and the
  // browser's history. The reader parses the event stream format of the
  // HTML standard (event, data, id and retry fields; data over several
  // lines; comments; CRLF, LF or CR line ends), reconnects after a lost or
  // ended connection with a backoff, sending Last-Event-ID, and stops for
  // good when closed (its fetch is aborted) or refused with a 4xx.
  //
  // `on` maps event types to handlers (data, id); `onOpen`, `onRetry` and
  // `onFail(status, body)` report the connection's state.
  function openStream(path, { on = {}, onOpen, onRetry, onFail } = {}) {
    const controller = new AbortController();
    const stream = { closed: false, lastEventId: "", retryMs: 1000, close };
    let failures = 0;
    session.streams.add(stream);

    function close() {
      if (stream.closed) return;
      stream.closed = true;
      session.streams.delete(stream);
      controller.abort();
    }

    function dispatch(type, data, id) {
      const handler = on[type];
      if (!handler || stream.closed) return;
      // A handler's fault is reported, and the stream goes on.
      try { handler(data, id); } catch (e) { setTimeout(() => { throw e; }); }
    }

    (async () => {
      while (!stream.closed) {
        const token = session.token;
        const headers = { Accept: "text/event-stream", ...authHeaders(token) };
        if (stream.lastEventId) headers["Last-Event-ID"] = stream.lastEventId;
        let response = null;
        try {
          response = await fetch(path, { headers, cache: "no-store", signal: controller.signal });
        } catch (_) { response = null; }
        if (stream.closed) return;
        let wait = 0;
        if (response && response.ok && response.body) {
          failures = 0;
          if (onOpen) onOpen();
          try { await readEvents(response.body, stream, dispatch); } catch (_) { /* connection lost */ }
          if (stream.closed) return;
        } else if (response && response.status === 401 && token) {
          close();
          tokenRefused(token);
          return;
        } else if (response && response.status >= 400 && response.status < 500 &&
                   response.status !== 408 && response.status !== 429) {
          let body = null;
          try { body = await response.json(); } catch (_) { body = null; }
          close();
          if (onFail) onFail(response.status, body);
          return;
        } else if (response) {
          const after = Number(response.headers.get("Retry-After"));
          if (after > 0) wait = after * 1000;
          if (response.body) response.body.cancel().catch(() => {});
        }
        // Lost, ended, or refused for now (5xx, 408, 429): again after the
        // server's retry time, doubled per failure in a row up to 30 s.
        failures += 1;
        wait = Math.max(wait, Math.min(30000, stream.retryMs * 2 ** Math.min(failures - 1, 5)));
        if (onRetry) onRetry();
        await new Promise((resolve) => {
          const timer = setTimeout(resolve, wait);
          controller.signal.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
        });
      }
    })();
    return stream;
  }

  // Reads one connection's events until it ends. An event left unfinished
  // at the end is dropped, as the standard says.
  async function readEvents(body, stream, dispatch) {
    const reader = body.getReader();
    const decoder = new TextDecoder(); // UTF-8 across reads; drops a leading BOM
    const lineEnd = /\r\n|\r|\n/g;
    let buffer = "";
    let type = "";
    let data = "";
    let idBuffer = stream.lastEventId;
    const line = (text) => {
      if (text === "") {
        stream.lastEventId = idBuffer;
        if (data !== "") dispatch(type || "message", data.endsWith("\n") ? data.slice(0, -1) : data, idBuffer);
        type = "";
        data = "";
        return;
      }
      if (text[0] === ":") return; // a comment (keep-alive)
      const colon = text.indexOf(":");
      const field = colon < 0 ? text : text.slice(0, colon);
      let value = colon < 0 ? "" : text.slice(colon + 1);
      if (value[0] === " ") value = value.slice(1);
      if (field === "event") type = value;
      else if (field === "data") data += value + "\n";
      else if (field === "id") { if (!value.includes("\0")) idBuffer = value; }
      else if (field === "retry") { if (/^[0-9]+$/.test(value)) stream.retryMs = Number(value); }
    };
    try {
      for (;;) {
        const { value, done } = await reader.read();
        buffer += done ? decoder.decode() : decoder.decode(value, { stream: true });
        let start = 0;
        lineEnd.lastIndex = 0;
        for (let m = lineEnd.exec(buffer); m; m = lineEnd.exec(buffer)) {
          // A CR at the end may be the first half of a CRLF: wait for more.
          if (m[0] === "\r" && m.index === buffer.length - 1 && !done) break;
          line(buffer.slice(start, m.index));
          start = m.index + m[0].length;
          if (stream.closed) return;
        }
        buffer = buffer.slice(start);
        if (done) return;
      }
    } finally {
      reader.cancel().catch(() => {});
    }
  }

  function describeError(status, body) {
    if (!body) return status + " (no body)";
    let text = status + " " + (body.error || "Error") + ": " + (body.message || "");
    if (body.current_status) text += " (current status: " + body.current_status + ")";
    return text;
  }

  // --- routing -------------------------------------------------------------

  const state = {
    view: null,
    stats: null,
    jobsQuery: null,
    cursors: [],        // cursors of the pages before the current one
    cursor: null,       // the current page's cursor
    jobsLoad: 0,        // the newest request for the jobs table
    jobId: null,
    job: null,
    jobStream: null,
    artifactsLoad: 0,   // the newest request for the job's artifact list
    logStream: null,    // the job's log stream while it is followed
    logSeq: 0,          // the last log line shown
    elapsedTimer: null,
    lastCounts: "",
    lastRunning: -1,
    knownTypes: new Set(),
    throughput: null,
  };

  function parseHash() {
    const hash = location.hash.replace(/^#/, "") || "/";
    const [path, query] = hash.split("?");
    return { path, params: new URLSearchParams(query || "") };
  }

  function route() {
    if (!session.me) return; // the sign-in form is shown
    const { path, params } = parseHash();
    let view = "overview";
    if (path.startsWith("/job/")) view = "job";
    else if (path === "/jobs") view = "jobs";
    else if (path === "/workers") view = "workers";
    else if (path === "/schedules") view = "schedules";
    for (const section of document.querySelectorAll(".view")) section.hidden = section.id !== "view-" + view;
    for (const link of document.querySelectorAll("nav a[data-nav]")) {
      link.classList.toggle("active", link.dataset.nav === view || (view === "job" && link.dataset.nav === "jobs"));
    }
    if (view !== "job") closeJob();
    state.view = view;
    if (view === "jobs") openJobs(params);
    else if (view === "job") openJob(decodeURIComponent(path.slice("/job/".length)));
    else if (view === "workers") loadWorkers();
    else if (view === "schedules") loadSchedules();
    if (view === "overview" && state.stats) renderStats(state.stats);
    if (view === "overview" && state.throughput) renderThroughput(state.throughput);
  }

  // --- live queue stream ---------------------------------------------------

  function connectQueueStream() {
    const live = $("live");
    live.hidden = false;
    live.textContent = "connecting…"; live.className = "live off";
    openStream(API + "/queue/stream", {
      onOpen: () => { live.textContent = "live"; live.className = "live on"; },
      onRetry: () => { live.textContent = "reconnecting…"; live.className = "live off"; },
      onFail: (status, body) => { live.textContent = describeError(status, body); live.className = "live off"; },
      on: {
        stats: (data) => {
          live.textContent = "live"; live.className = "live on";
          const stats = JSON.parse(data);
          state.stats = stats;
          renderStats(stats);
          onStatsForViews(stats);
        },
        stats_error: (data) => {
          const body = JSON.parse(data);
          live.textContent = "store unavailable"; live.className = "live off";
          $("stat-health").replaceWith(Object.assign(badge("store_unavailable"), { id: "stat-health", title: body.message }));
        },
        throughput: (data) => renderThroughput(JSON.parse(data)),
        workers: (data) => renderWorkers(JSON.parse(data)),
      },
    });
  }

  function renderStats(s) {
    for (const key of ["pending", "running", "scheduled", "completed", "failed", "cancelled", "total"]) {
      $("stat-" + key).textContent = s[key + "_jobs"];
    }
    const fill = $("global-fill");
    const ratio = s.global_max_concurrent_jobs ? s.running_jobs / s.global_max_concurrent_jobs : 0;
    fill.style.width = Math.min(100, ratio * 100) + "%";
    fill.classList.toggle("full", ratio >= 1);
    $("global-text").textContent = s.running_jobs + " / " + s.global_max_concurrent_jobs + " running";
    $("per-user-note").textContent = "Per user: at most " + s.per_user_max_concurrent_jobs + " running at once";
    $("stat-workers").textContent = s.active_workers;
    const health = badge(s.worker_health_status);
    health.id = "stat-health";
    $("stat-health").replaceWith(health);
    $("stat-store").textContent = s.queue_type;
    $("stat-cpu").textContent = s.cpu_usage_percent + " %";
    $("stat-memory").textContent = s.memory_usage_mb + " MiB";
    $("stat-cache").textContent = s.cache_size;
    $("stat-cleanup").textContent = s.last_cleanup ? localTime(s.last_cleanup) : "not yet";
    if (s.running_jobs !== state.lastRunning) {
      state.lastRunning = s.running_jobs;
      loadUserMeters(s);
    }
  }

  // Running jobs per user against the per-user limit; read when the
  // running count changes (the global limit bounds the list).
  async function loadUserMeters(s) {
    const box = $("user-meters");
    if (!s.running_jobs) { box.replaceChildren(); return; }
    const limit = Math.min(1000, Math.max(1, s.running_jobs + 10));
    const { status, body } = await call("GET", API + "?status=running&limit=" + limit);
    if (status !== 200) return;
    const perUser = new Map();
    for (const job of body.jobs) perUser.set(job.user_id, (perUser.get(job.user_id) || 0) + 1);
    const rows = [...perUser.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).slice(0, 8);
    box.replaceChildren(...rows.map(([user, n]) => {
      const ratio = n / s.per_user_max_concurrent_jobs;
      const fill = el("div", { class: "meter-fill" + (ratio >= 1 ? " full" : "") });
      fill.style.width = Math.min(100, ratio * 100) + "%";
      return el("div", { class: "meter-row" },
        el("a", { class: "meter-label", href: "#/jobs?status=running&user_id=" + encodeURIComponent(user), title: user, text: user }),
        el("div", { class: "meter" }, fill),
        el("span", { class: "meter-text", text: n + " / " + s.per_user_max_concurrent_jobs }));
    }));
  }

  // Bars of completed (and, stacked on them, failed) jobs per interval,
  // drawn at the box's pixel width so the labels are not stretched.
  function renderThroughput(t) {
    state.throughput = t;
    const box = $("throughput");
    const width = Math.max(280, Math.round(box.clientWidth || 600)), height = 140, left = 28, bottom = 16, top = 6;
    const n = t.intervals.length;
    const max = Math.max(1, ...t.intervals.map((i) => i.completed + i.failed));
    const plotH = height - bottom - top;
    const barW = (width - left) / Math.max(1, n);
    const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img" });
    chart.append(svg("line", { class: "axis", x1: left, y1: top + plotH, x2: width, y2: top + plotH }));
    const label = (x, y, text, anchor) => {
      const node = svg("text", { x, y, "text-anchor": anchor || "start" });
      node.textContent = text;
      chart.append(node);
    };
    label(left - 4, top + 8, String(max), "end");
    label(left - 4, top + plotH, "0", "end");
    let total = 0;
    t.intervals.forEach((interval, i) => {
      const x = left + i * barW + 0.5;
      const done = interval.completed, failed = interval.failed;
      total += done + failed;
      const hDone = (done / max) * plotH, hFailed = (failed / max) * plotH;
      const title = `${localTime(interval.start)}: ${done} completed, ${failed} failed`;
      if (done) {
        const r = svg("rect", { class: "completed", x, y: top + plotH - hDone, width: Math.max(1, barW - 1), height: hDone });
        r.append(Object.assign(svg("title"), { textContent: title }));
        chart.append(r);
      }
      if (failed) {
        const r = svg("rect", { class: "failed", x, y: top + plotH - hDone - hFailed, width: Math.max(1, barW - 1), height: hFailed });
        r.append(Object.assign(svg("title"), { textContent: title }));
        chart.append(r);
      }
    });
    const minutes = Math.round((n * t.interval_seconds) / 60);
    label(left, height - 3, "−" + minutes + " min");
    label(width, height - 3, "now", "end");
    box.dataset.total = String(total);
    box.replaceChildren(chart);
    $("throughput-note").textContent =
      `(per ${t.interval_seconds} s, all workers; ${total} in the last ${minutes} min)`;
  }

  // --- jobs list -------------------------------------------------------------

  function openJobs(params) {
    const form = $("filters");
    const query = new URLSearchParams();
    for (const name of ["status", "user_id", "job_type", "limit"]) {
      const value = params.get(name) || (name === "limit" ? "50" : "");
      form.elements[name].value = value;
      if (value) query.set(name, value);
    }
    const key = query.toString();
    if (key !== state.jobsQuery) {
      state.jobsQuery = key;
      state.cursors = [];
      state.cursor = null;
    }
    loadJobs();
  }

  async function loadJobs() {
    const query = new URLSearchParams(state.jobsQuery || "");
    if (state.cursor) query.set("cursor", state.cursor);
    // Only the newest request's answer is shown: a refresh of the first
    // page answered after a click on "Older" must not replace that page.
    const load = ++state.jobsLoad;
    const { status, body } = await call("GET", API + "?" + query.toString());
    if (load !== state.jobsLoad) return;
    const error = $("jobs-error");
    if (status !== 200) {
      error.hidden = false;
      error.textContent = describeError(status, body);
      return;
    }
    error.hidden = true;
    const rows = body.jobs.map((job) => {
      state.knownTypes.add(job.job_type);
      const progress = el("progress", { max: "1", value: String(job.progress) });
      return el("tr", { "data-job-id": job.job_id },
        el("td", {}, el("a", { class: "mono", href: "#/job/" + job.job_id, title: job.job_id, text: shortId(job.job_id) })),
        el("td", { text: job.job_type }),
        el("td", { text: job.user_id }),
        el("td", {}, badge(job.status)),
        el("td", {}, progress, " " + Math.round(job.progress * 100) + "%"),
        el("td", { title: job.created_at, text: localTime(job.created_at) }),
        el("td", { text: duration(job.metrics.execution_time_seconds) }));
    });
    $("jobs-table").tBodies[0].replaceChildren(...rows);
    $("jobs-empty").hidden = rows.length > 0;
    $("known-types").replaceChildren(...[...state.knownTypes].sort().map((t) => el("option", { value: t })));
    $("page-next").disabled = !body.next_cursor;
    $("page-next").dataset.cursor = body.next_cursor || "";
    $("page-prev").disabled = state.cursors.length === 0;
    $("page-first").disabled = state.cursors.length === 0;
  }

  function setupJobsControls() {
    $("filters").addEventListener("submit", (e) => {
      e.preventDefault();
      const form = new FormData(e.target);
      const query = new URLSearchParams();
      for (const [name, value] of form.entries()) if (value) query.set(name, String(value).trim());
      location.hash = "#/jobs" + (query.toString() ? "?" + query.toString() : "");
    });
    $("page-next").addEventListener("click", () => {
      const next = $("page-next").dataset.cursor;
      if (!next) return;
      state.cursors.push(state.cursor);
      state.cursor = next;
      loadJobs();
    });
    $("page-prev").addEventListener("click", () => {
      if (!state.cursors.length) return;
      state.cursor = state.cursors.pop();
      loadJobs();
    });
    $("page-first").addEventListener("click", () => {
      state.cursors = [];
      state.cursor = null;
      loadJobs();
    });
  }

  // The first page follows the queue: reloaded when the counts move.
  function onStatsForViews(s) {
    const counts = [s.pending_jobs, s.running_jobs, s.scheduled_jobs, s.completed_jobs, s.failed_jobs, s.cancelled_jobs].join(",");
    const changed = counts !== state.lastCounts;
    state.lastCounts = counts;
    if (state.view === "jobs" && changed && !state.cursor && $("auto-refresh").checked) loadJobs();
    if (state.view === "job" && state.job && ["pending", "scheduled"].includes(state.job.status)) loadWhy();
    // Ticks come every second at most: a schedule's last and next run
    // follow the live feed's beat.
    if (state.view === "schedules") loadSchedules();
  }

  // --- one job ---------------------------------------------------------------

  function closeJob() {
    if (state.jobStream) state.jobStream.close();
    state.jobStream = null;
    closeLog();
    if (state.elapsedTimer) clearInterval(state.elapsedTimer);
    state.elapsedTimer = null;
    state.jobId = null;
    state.job = null;
  }

  function openJob(id) {
    if (state.jobId === id && state.jobStream) return;
    closeJob();
    state.jobId = id;
    $("action-result").hidden = true;
    $("job-artifacts-panel").hidden = true;
    $("job-artifacts").tBodies[0].replaceChildren();
    $("job-id").textContent = id;
    followJob(id);
    followLog(id, 0);
    state.elapsedTimer = setInterval(() => { if (state.job) renderProgress(state.job); }, 1000);
  }

  // --- one job's log -------------------------------------------------------

  // Lines kept on the page; older ones are removed as new ones come.
  const LOG_LINES_SHOWN = 2000;

  function closeLog() {
    if (state.logStream) state.logStream.close();
    state.logStream = null;
  }

  // Follows the job's log stream from line `after`: each `log` event adds a
  // line, `end` closes it (the job ended and every line arrived). A lost
  // connection is resumed by the stream reader after the last line it got
  // (Last-Event-ID, which the server prefers to `after`).
  function followLog(id, after) {
    closeLog();
    const box = $("job-log");
    if (after === 0) {
      box.replaceChildren();
      state.logSeq = 0;
      $("job-log-empty").hidden = false;
      $("job-log-empty").textContent = "No log lines yet.";
    }
    $("job-log-state").textContent = "following…";
    const source = openStream(API + "/status/" + encodeURIComponent(id) + "/logs/stream?after=" + after, {
      onOpen: () => { $("job-log-state").textContent = "following…"; },
      onRetry: () => { $("job-log-state").textContent = "reconnecting…"; },
      onFail: (status, body) => {
        if (state.logStream === source) state.logStream = null;
        $("job-log-state").textContent = describeError(status, body);
      },
      on: { log: onLine, end: onEnd, error: onGone },
    });
    state.logStream = source;
    function onLine(data) {
      if (state.jobId !== id) return;
      const line = JSON.parse(data);
      const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 8;
      if (state.logSeq && line.seq > state.logSeq + 1) {
        box.append(el("span", { class: "log-gap", text: `… ${line.seq - state.logSeq - 1} older line(s) not kept` }));
      }
      state.logSeq = line.seq;
      box.append(el("span", { class: "log-line stream-" + line.stream, "data-seq": String(line.seq), title: `${line.stream}, attempt ${line.attempt}, line ${line.seq}` },
        el("span", { class: "at", text: new Date(line.at).toLocaleTimeString() }),
        el("span", { class: "text", text: line.line })));
      while (box.childElementCount > LOG_LINES_SHOWN) box.firstElementChild.remove();
      $("job-log-empty").hidden = true;
      if (atBottom) box.scrollTop = box.scrollHeight;
    }
    function onEnd() {
      source.close();
      if (state.logStream === source) state.logStream = null;
      $("job-log-state").textContent = state.logSeq ? "complete" : "";
      if (!state.logSeq) $("job-log-empty").textContent = "The job logged nothing.";
    }
    // The job left the store: the stream's last event.
    function onGone() {
      source.close();
      if (state.logStream === source) state.logStream = null;
      $("job-log-state").textContent = "job not found";
    }
  }

  // Follows the job's SSE stream until job_complete; shows a 404 plainly.
  function followJob(id) {
    if (state.jobStream) state.jobStream.close();
    $("job-live").textContent = "following live…";
    const onJob = (text) => {
      if (state.jobId !== id) return;
      const data = JSON.parse(text);
      // A job_update after the first carries only what changes (status,
      // progress, metrics, error): merge it into the job shown.
      const known = state.job && state.job.job_id === data.job_id;
      renderJob(known ? Object.assign({}, state.job, data) : data);
    };
    const source = openStream(API + "/status/" + encodeURIComponent(id) + "/stream", {
      onOpen: () => { $("job-live").textContent = "following live…"; },
      onRetry: () => { $("job-live").textContent = "reconnecting…"; },
      onFail: () => ended(),
      on: {
        job_update: onJob,
        job_complete: (text) => {
          onJob(text);
          source.close();
          if (state.jobStream === source) state.jobStream = null;
          $("job-live").textContent = "finished; stream closed";
        },
        // The job left the store: the stream's last event.
        error: () => { source.close(); ended(); },
      },
    });
    state.jobStream = source;
    // The stream was refused or ended for good: show the job as it is now.
    async function ended() {
      if (state.jobStream === source) state.jobStream = null;
      const { status, body } = await call("GET", API + "/status/" + encodeURIComponent(id));
      if (state.jobId !== id) return;
      if (status === 200) {
        renderJob(body);
        $("job-live").textContent = "stream closed";
      } else {
        $("job-live").textContent = "";
        showResult(false, describeError(status, body));
        $("job-status").replaceWith(Object.assign(badge("not found", "failed"), { id: "job-status" }));
      }
    }
  }

  function renderJob(job) {
    const previous = state.job;
    state.job = job;
    state.knownTypes.add(job.job_type);
    $("job-type").textContent = job.job_type;
    $("job-id").textContent = job.job_id;
    const status = badge(job.status);
    status.id = "job-status";
    $("job-status").replaceWith(status);
    renderProgress(job);

    const fields = [
      ["job_id", job.job_id], ["job_type", job.job_type], ["status", job.status], ["user_id", job.user_id],
      ["priority", job.priority], ["attempts", job.attempts + " of " + job.max_attempts],
      ["interruptions", job.interruptions], ["timeout_seconds", job.timeout_seconds ?? "none"],
      ["created_at", localTime(job.created_at)], ["scheduled_for", localTime(job.scheduled_for)],
      ["started_at", localTime(job.started_at)], ["completed_at", localTime(job.completed_at)],
      ["updated_at", localTime(job.updated_at)], ["worker_id", job.worker_id ?? "–"],
      ["progress", (job.progress * 100).toFixed(1) + " %"],
      ["execution_time_seconds", job.metrics.execution_time_seconds ?? "–"],
      ["items_processed", job.metrics.items_processed ?? "–"], ["total_items", job.metrics.total_items ?? "–"],
    ];
    const jobLink = (id) => el("a", { class: "mono", href: "#/job/" + id, title: id, text: shortId(id) });
    fields.push(["depends_on", (job.depends_on || []).length ? (job.depends_on || []).map(jobLink) : "none"]);
    fields.push(["waiting_dependencies", job.waiting_dependencies ?? 0]);
    fields.push(["cancelled_by", job.cancelled_by ? [jobLink(job.cancelled_by)] : "–"]);
    if (job.expires_at) fields.push(["expires_at", localTime(job.expires_at)]);
    if (job.schedule) {
      fields.push(["schedule", [el("a", { href: "#/schedules", text: job.schedule })]]);
      fields.push(["schedule_tick", localTime(job.schedule_tick)]);
    }
    // Fields a newer server adds are shown too, as JSON.
    const shown = new Set([...fields.map(([k]) => k), "max_attempts", "metrics", "parameters", "result", "error"]);
    for (const [k, v] of Object.entries(job)) if (!shown.has(k)) fields.push([k, JSON.stringify(v)]);
    $("job-fields").replaceChildren(...fields.flatMap(([k, v]) => [
      el("dt", { text: k }),
      Array.isArray(v) ? el("dd", { "data-field": k }, ...v.flatMap((node, i) => (i ? [", ", node] : [node])))
        : el("dd", { "data-field": k, text: String(v) }),
    ]));
    $("job-parameters").textContent = JSON.stringify(job.parameters, null, 2);
    const hasResult = job.result !== undefined && job.result !== null;
    $("job-result-panel").hidden = !hasResult;
    $("job-result").textContent = hasResult ? JSON.stringify(job.result, null, 2) : "";
    $("job-error-panel").hidden = !job.error;
    $("job-error").textContent = job.error || "";

    const waiting = ["pending", "scheduled"].includes(job.status);
    const changed = !previous || previous.job_id !== job.job_id || previous.status !== job.status;
    if (waiting && changed) loadWhy();
    // Steps write their artifacts when they succeed: look again at each change.
    if (changed) loadArtifacts();
    if (!waiting) $("why").hidden = true;
  }

  function renderProgress(job) {
    const bar = $("job-progress");
    bar.value = job.progress;
    const parts = [Math.round(job.progress * 100) + "%"];
    const m = job.metrics;
    if (m.items_processed !== null && m.items_processed !== undefined) {
      parts.push(m.items_processed + (m.total_items !== null && m.total_items !== undefined ? " / " + m.total_items : "") + " items");
    }
    let elapsed = m.execution_time_seconds;
    if (job.status === "running" && job.started_at) {
      elapsed = Math.max(0, (Date.now() - new Date(job.started_at).getTime()) / 1000);
    }
    if (elapsed !== null && elapsed !== undefined) parts.push(duration(elapsed) + " elapsed");
    parts.push(job.status);
    $("job-progress-text").textContent = parts.join(" · ");
  }

  // The job's artifacts, each a download link. Without auth a plain link
  // does (same origin, Content-Disposition: attachment); with a token the
  // link would go without the Authorization header, so a click fetches the
  // file with it and saves the Blob (in memory, as big as the file).
  async function loadArtifacts() {
    const id = state.jobId;
    if (!id) return;
    const load = ++state.artifactsLoad;
    const { status, body } = await call("GET", API + "/status/" + encodeURIComponent(id) + "/artifacts");
    if (state.jobId !== id || load !== state.artifactsLoad) return;
    const panel = $("job-artifacts-panel");
    if (status !== 200) {
      panel.hidden = status === 404;
      $("job-artifacts").tBodies[0].replaceChildren();
      $("job-artifacts-state").textContent = describeError(status, body);
      return;
    }
    panel.hidden = body.artifacts.length === 0;
    $("job-artifacts-state").textContent = "";
    $("job-artifacts").tBodies[0].replaceChildren(...body.artifacts.map((a) => {
      const link = el("a", { href: a.url, download: a.name, class: "mono", text: a.name });
      link.addEventListener("click", (event) => {
        if (!session.token) return;
        event.preventDefault();
        downloadWithToken(a);
      });
      return el("tr", { "data-artifact": a.name },
        el("td", {}, link),
        el("td", { title: a.size + " bytes", text: byteSize(a.size) }),
        el("td", { class: "mono", text: a.media_type }));
    }));
  }

  // Downloads an artifact with the session's token in the header and hands
  // the browser the Blob as a file named like the artifact.
  async function downloadWithToken(artifact) {
    const epoch = session.epoch;
    const token = session.token;
    $("job-artifacts-state").textContent = "downloading " + artifact.name + "…";
    let response;
    let blob = null;
    try {
      response = await fetch(artifact.url, { headers: authHeaders(token), cache: "no-store" });
      if (response.ok) blob = await response.blob();
    } catch (e) {
      if (epoch === session.epoch) $("job-artifacts-state").textContent = "NetworkError: " + String(e);
      return;
    }
    if (epoch !== session.epoch) return;
    if (!blob) {
      let data = null;
      try { data = await response.json(); } catch (_) { data = null; }
      if (response.status === 401 && token) tokenRefused(token);
      $("job-artifacts-state").textContent = describeError(response.status, data);
      return;
    }
    const url = URL.createObjectURL(blob);
    const save = el("a", { href: url, download: artifact.name, hidden: "" });
    document.body.append(save);
    save.click();
    save.remove();
    // The download has taken the Blob by now; free it a little later.
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
    $("job-artifacts-state").textContent = "";
  }

  async function loadWhy() {
    const id = state.jobId;
    if (!id) return;
    const { status, body } = await call("GET", API + "/status/" + encodeURIComponent(id) + "/why");
    if (state.jobId !== id || !state.job || !["pending", "scheduled"].includes(state.job.status)) return;
    const box = $("why");
    if (status !== 200) { box.hidden = true; return; }
    box.hidden = false;
    $("why-reasons").replaceChildren(...body.reasons.map((r) =>
      el("li", { "data-reason": r.reason }, el("strong", { text: r.reason.replace(/_/g, " ") }), ": " + r.message)));
    $("why-figures").textContent =
      `Running: ${body.running_jobs} of ${body.global_max_concurrent_jobs} globally; ` +
      `user ${body.user_id}: ${body.user_running_jobs} of ${body.per_user_max_concurrent_jobs}; ` +
      `workers alive: ${body.active_workers}, free slots: ${body.free_worker_slots}.` +
      (body.concurrency_key ? ` Concurrency key: ${body.concurrency_key}.` : "") +
      (body.rate_limit_opens_at ? ` Rate window opens at ${body.rate_limit_opens_at}.` : "");
  }

  function showResult(ok, text) {
    const box = $("action-result");
    box.hidden = false;
    box.className = "result " + (ok ? "ok" : "bad");
    box.textContent = text;
  }

  async function act(action) {
    const id = state.jobId;
    if (!id) return;
    const button = $(action === "cancel" ? "btn-cancel" : "btn-restart");
    button.disabled = true;
    const { status, body } = await call("POST", API + "/" + action + "/" + encodeURIComponent(id));
    button.disabled = false;
    if (state.jobId !== id) return;
    if (status === 200) {
      showResult(true, status + " OK: " + body.message + " (status now " + body.status + ")");
      renderJob(body.job);
      // A restarted job runs again: follow it anew (its old streams ended).
      if (action === "restart" || !state.jobStream) followJob(id);
      if (action === "restart" && !state.logStream) followLog(id, state.logSeq || 0);
    } else {
      showResult(false, describeError(status, body));
    }
  }

  // --- workers ---------------------------------------------------------------

  async function loadWorkers() {
    const { status, body } = await call("GET", API + "/workers");
    if (status === 200) renderWorkers(body);
  }

  function renderWorkers(list) {
    if (state.view !== "workers") return;
    const rows = list.workers.map((w) => el("tr", { class: w.stale ? "stale" : "", "data-worker-id": w.worker_id },
      el("td", { class: "mono", title: w.worker_id, text: w.worker_id }),
      el("td", { text: w.host }),
      el("td", { text: String(w.pid) }),
      el("td", { text: w.remote ? "remote: " + w.job_types.join(", ") : "built-in types" }),
      el("td", {}, w.running_jobs.length + " / " + w.concurrency + " ",
        ...w.running_jobs.slice(0, 5).map((id) => el("a", { class: "mono", href: "#/job/" + id, title: id, text: shortId(id) + " " }))),
      el("td", { title: w.started_at, text: localTime(w.started_at) }),
      el("td", { title: w.last_heartbeat, text: ago(w.last_heartbeat) }),
      el("td", {}, w.stale ? badge("stale") : badge("alive"))));
    $("workers-table").tBodies[0].replaceChildren(...rows);
    $("workers-empty").hidden = rows.length > 0;
  }

  // --- schedules -------------------------------------------------------------

  async function loadSchedules() {
    const { status, body } = await call("GET", SCHEDULES);
    if (state.view !== "schedules") return;
    $("schedules-error").hidden = status === 200;
    if (status !== 200) {
      $("schedules-error").textContent = describeError(status, body);
      return;
    }
    const admin = session.me && session.me.role === "admin";
    const rows = body.schedules.map((s) => el("tr", { "data-schedule": s.name, class: s.paused ? "stale" : "" },
      el("td", { class: "mono", text: s.name }),
      el("td", { class: "mono", title: s.timezone, text: s.cron + (s.timezone === "UTC" ? "" : " (" + s.timezone + ")") }),
      el("td", { text: s.job_type }),
      el("td", { text: s.user_id ?? "default_user" }),
      el("td", { title: s.last_run_at ?? "", "data-field": "last_run_at", text: s.last_run_at ? ago(s.last_run_at) : "never" }),
      el("td", { "data-field": "last_job" }, ...(s.last_job_id
        ? [el("a", { class: "mono", href: "#/job/" + s.last_job_id, title: s.last_job_id, text: shortId(s.last_job_id) + " " }),
          badge(s.last_job_status ?? "deleted")]
        : ["–"])),
      el("td", { title: s.next_run_at ?? "", "data-field": "next_run_at", text: localTime(s.next_run_at) }),
      el("td", {}, badge(s.paused ? "paused" : "active", s.paused ? "cancelled" : "completed")),
      el("td", {}, ...(admin ? [toggleButton(s)] : []))));
    $("schedules-table").tBodies[0].replaceChildren(...rows);
    $("schedules-empty").hidden = rows.length > 0;
  }

  function toggleButton(schedule) {
    const button = el("button", { type: "button", class: "schedule-toggle", text: schedule.paused ? "Resume" : "Pause" });
    button.addEventListener("click", () => toggleSchedule(button, schedule));
    return button;
  }

  async function toggleSchedule(button, schedule) {
    button.disabled = true;
    const action = schedule.paused ? "resume" : "pause";
    const path = SCHEDULES + "/" + encodeURIComponent(schedule.name) + "/" + action;
    const { status, body } = await call("POST", path);
    if (status !== 200) {
      $("schedules-error").hidden = false;
      $("schedules-error").textContent = describeError(status, body);
    }
    loadSchedules();
  }

  // --- signing in and out ---------------------------------------------------

  // GET /api/v1/me with `token` (or none): {status, body}.
  async function whoIs(token) {
    try {
      const response = await fetch("/api/v1/me", { headers: authHeaders(token), cache: "no-store" });
      let body = null;
      try { body = await response.json(); } catch (_) { body = null; }
      return { status: response.status, body };
    } catch (e) {
      return { status: 0, body: { error: "NetworkError", message: String(e) } };
    }
  }

  // Why `me` cannot use the dashboard, or null if it can: worker tokens
  // and job tokens cannot list jobs or read the queue.
  function unfit(me) {
    if (me.job_id) return "This is a job token (one job's status only): the dashboard needs an admin, user or viewer token.";
    if (!["admin", "user", "viewer"].includes(me.role)) {
      return "This is a " + me.role + " token: the dashboard needs an admin, user or viewer token.";
    }
    return null;
  }

  // Shows the sign-in form, with `message` if any.
  function showSignIn(message) {
    for (const section of document.querySelectorAll(".view")) section.hidden = section.id !== "view-signin";
    document.querySelector("header nav").hidden = true;
    $("live").hidden = true;
    $("whoami").hidden = true;
    $("btn-signout").hidden = true;
    $("signin-error").hidden = !message;
    $("signin-error").textContent = message || "";
    $("signin-token").focus();
  }

  // Starts the dashboard for `me`, showing what its role allows.
  function begin(me) {
    session.epoch += 1;
    session.me = me;
    const signedIn = session.auth === "token";
    const mayChange = me.role === "admin" || me.role === "user";
    for (const node of document.querySelectorAll(".mutate")) {
      node.hidden = !mayChange;
      node.disabled = false; // an action cut short by a sign out never answered
    }
    document.querySelector("header nav").hidden = false;
    // A link cannot carry the token, and /metrics needs one.
    $("nav-metrics").hidden = signedIn;
    // Schedules name users: admins and viewers see them.
    $("nav-schedules").hidden = !["admin", "viewer"].includes(me.role);
    $("whoami").hidden = !signedIn;
    $("whoami").textContent = signedIn ? me.user_id + " · " + me.role : "";
    $("btn-signout").hidden = !signedIn;
    // A user sees only its own jobs: the server filters them.
    const userFilter = $("filters").elements.user_id;
    userFilter.disabled = me.role === "user";
    userFilter.placeholder = me.role === "user" ? me.user_id : "any";
    $("signin-error").hidden = true;
    connectQueueStream();
    state.view = null;
    route();
  }

  // Forgets the token and everything shown with it, and asks for a token.
  function signOut(message) {
    session.epoch += 1;
    for (const stream of [...session.streams]) stream.close();
    closeJob();
    session.token = null;
    session.me = null;
    storeToken(null);
    Object.assign(state, {
      view: null, stats: null, jobsQuery: null, cursors: [], cursor: null,
      lastCounts: "", lastRunning: -1, knownTypes: new Set(), throughput: null,
    });
    for (const id of ["jobs-table", "workers-table"]) $(id).tBodies[0].replaceChildren();
    for (const id of ["user-meters", "throughput", "job-fields", "job-log", "known-types"]) $(id).replaceChildren();
    for (const id of ["job-parameters", "job-result", "job-error", "job-id"]) $(id).textContent = "";
    showSignIn(message);
  }

  // A call or stream was answered 401 for `token`: revoked or expired.
  function tokenRefused(token) {
    if (token !== session.token) return;
    signOut("The server no longer accepts this token (revoked or expired): sign in again.");
  }

  async function signIn(event) {
    event.preventDefault();
    const input = $("signin-token");
    const token = input.value.trim();
    if (!token) return;
    const button = $("btn-signin");
    button.disabled = true;
    const { status, body } = await whoIs(token);
    button.disabled = false;
    if (status !== 200) {
      showSignIn(status === 401 ? "The server refused this token (unknown, expired or revoked)." : describeError(status, body));
      return;
    }
    const refusal = unfit(body);
    if (refusal) { showSignIn(refusal); return; }
    input.value = "";
    session.auth = body.auth;
    session.token = body.auth === "token" ? token : null;
    storeToken(session.token);
    begin(body);
  }

  // On load: who are we? auth = "none" answers without a token; with
  // auth = "token", the tab's token if it still works, else the form.
  async function start() {
    const token = storedToken();
    const { status, body } = await whoIs(token);
    if (status === 200 && body.auth === "none") {
      storeToken(null);
      session.auth = "none";
      begin(body);
      return;
    }
    session.auth = "token";
    if (status === 200 && !unfit(body)) {
      session.token = token;
      begin(body);
      return;
    }
    storeToken(null);
    if (status === 200) showSignIn(unfit(body));
    else if (status === 401) showSignIn(token ? "The server no longer accepts the token of this tab: sign in again." : "");
    else showSignIn(describeError(status, body));
  }

  // --- start -------------------------------------------------------------------

  $("btn-cancel").addEventListener("click", () => act("cancel"));
  $("btn-restart").addEventListener("click", () => act("restart"));
  $("signin").addEventListener("submit", signIn);
  $("btn-signout").addEventListener("click", () => signOut(""));
  setupJobsControls();
  window.addEventListener("hashchange", route);
  window.addEventListener("resize", () => {
    if (state.view === "overview" && state.throughput) renderThroughput(state.throughput);
  });
  start();
})();
