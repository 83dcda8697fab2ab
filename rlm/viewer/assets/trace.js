// A trace: the run tree, the selected run's iterations, totals, timeline, search,
// keys, permalinks; with --serve it follows the server's updates.
// Only what is on screen is built: the selected run's iterations, a tree node's children
// when it is opened, the timeline when its section is opened, long texts in part.
const LONG = 6000; // characters of a text shown before a "show all" button
const MAX_HITS = 400;
const state = { run: null, query: "", errorsOnly: false, focus: -1, open: new Set() };
let haystacks = new Map();

const runHref = (id) => "#run-" + encodeURIComponent(id);
const iterHref = (id, n) => runHref(id) + "-i" + n;
const ansi = (s) => String(s || "").replace(/\x1b\[[0-9;]*[A-Za-z]/g, "");
// A traceback is one string (older kernels: a list of lines), maybe with ANSI colours.
const traceback = (error) =>
  ansi(Array.isArray(error.traceback) ? error.traceback.join("\n") : error.traceback);

// Text with search matches marked; long texts cut with a button for the rest.
function marked(text) {
  const q = state.query;
  if (!q) return [text];
  const out = [];
  const lower = text.toLowerCase();
  let at = 0;
  for (let i = lower.indexOf(q); i !== -1 && out.length < 2000; i = lower.indexOf(q, at)) {
    out.push(text.slice(at, i), h("mark", null, text.slice(i, i + q.length)));
    at = i + q.length;
  }
  out.push(text.slice(at));
  return out;
}
function textBlock(cls, text, render) {
  text = String(text);
  const draw = render || marked;
  const pre = h("pre", { class: cls }, draw(text.length > LONG ? text.slice(0, LONG) : text));
  if (text.length <= LONG) return pre;
  const more = h("button", { class: "more", type: "button" }, `show all ${num(text.length)} characters`);
  more.addEventListener("click", () => {
    pre.replaceChildren(...draw(text));
    more.remove();
  });
  return h("div", null, pre, more);
}

// --- the model --------------------------------------------------------------------
const runs = () => DATA.runs;
function preorder() {
  const order = [];
  const walk = (id) => {
    order.push(id);
    for (const child of runs()[id].children) walk(child);
  };
  DATA.roots.forEach(walk);
  return order;
}
const iterHasError = (it) =>
  it.executes.some((e) => e.error || e.timed_out) || it.sub_calls.some((s) => s.error);
function haystack(runId, it) {
  const key = runId + "\u0000" + it.iteration;
  let text = haystacks.get(key);
  if (text === undefined) {
    const parts = [it.reply || "", ...it.code_blocks];
    for (const e of it.executes) {
      parts.push(e.code, e.stdout, e.stderr, ...(e.results || []), e.final || "");
      if (e.error) parts.push(e.error.name, e.error.value, traceback(e.error));
    }
    for (const s of it.sub_calls) parts.push(s.prompt_preview, s.answer_preview, s.error || "");
    text = parts.join("\n").toLowerCase();
    haystacks.set(key, text);
  }
  return text;
}

// --- header -------------------------------------------------------------------------
function header() {
  const search = h("input", {
    id: "search", type: "search", placeholder: "Search code, replies, outputs  ( / )",
    value: state.query, "aria-label": "search",
  });
  let timer = null;
  search.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      state.query = search.value.trim().toLowerCase();
      drawSide();
      drawRun();
    }, 200);
  });
  const errors = h("input", { id: "errors-only", type: "checkbox", checked: state.errorsOnly });
  errors.addEventListener("change", () => {
    state.errorsOnly = errors.checked;
    drawSide();
  });
  const live = DATA.live ? h("span", { id: "live", class: "chip live" }, "live") : null;
  return h("header", { class: "top" },
    h("h1", null, "rlm trace"), h("span", { class: "meta" }, DATA.source), live,
    h("span", { class: "grow" }),
    search, h("label", null, errors, " errors only"),
    h("span", { class: "help", title: "j/k: next/previous iteration; J/K: next/previous run; " +
      "/: search; t: timeline; Esc: clear search" }, "keys: j k J K / t"));
}

// --- the run tree -----------------------------------------------------------------
function runMeta(run) {
  const u = run.usage;
  const time = run.completion ? run.completion.stats.wall_time_s : run.end - run.start;
  return [run.model || "?", `d${run.depth}`, `${run.iterations.length} it`, secs(time),
    `${num(u.input_tokens + u.output_tokens + u.cache_read_tokens)} tok`, cost(u.cost_usd)].join(" · ");
}
function treeNode(id) {
  const run = runs()[id];
  const li = h("li");
  const kids = run.children.length;
  const opened = state.open.has(id);
  const twisty = h("button", {
    class: "twisty", type: "button", disabled: !kids, "aria-label": "expand",
    "aria-expanded": kids ? String(opened) : null,
  }, kids ? (opened ? "▾" : "▸") : "");
  twisty.addEventListener("click", () => {
    if (state.open.has(id)) state.open.delete(id); else state.open.add(id);
    li.replaceWith(treeNode(id));
  });
  li.append(h("div", { class: "node" + (state.run === id ? " selected" : ""), "data-run": id },
    twisty, h("a", { href: runHref(id) }, short(id)),
    h("span", { class: "chip " + run.status }, run.status),
    kids ? h("span", { class: "meta" }, `${kids} child run${kids > 1 ? "s" : ""}`) : null,
    h("span", { class: "meta" }, runMeta(run))));
  if (kids && opened) li.append(h("ul", { class: "tree" }, run.children.map(treeNode)));
  return li;
}
function searchResults() {
  const hits = [];
  let total = 0;
  for (const id of preorder()) {
    const run = runs()[id];
    if (state.errorsOnly && run.status === "failed" && !state.query) {
      total++;
      if (hits.length < MAX_HITS)
        hits.push(h("a", { class: "hit", href: runHref(id) }, `run ${short(id)} failed`,
          h("div", { class: "snip" }, run.error || "")));
    }
    for (const it of run.iterations) {
      if (state.errorsOnly && !iterHasError(it)) continue;
      let snip = "";
      if (state.query) {
        const text = haystack(id, it);
        const at = text.indexOf(state.query);
        if (at === -1) continue;
        snip = text.slice(Math.max(0, at - 40), at + state.query.length + 60);
      } else {
        const bad = it.executes.find((e) => e.error || e.timed_out);
        const sub = it.sub_calls.find((s) => s.error);
        snip = bad ? (bad.error ? `${bad.error.name}: ${bad.error.value}` : "timed out") : sub.error;
      }
      total++;
      if (hits.length < MAX_HITS)
        hits.push(h("a", { class: "hit", href: iterHref(id, it.iteration) },
          `run ${short(id)} · iteration ${it.iteration}`, h("div", { class: "snip" }, marked(snip))));
    }
  }
  const shown = total > hits.length ? ` (first ${hits.length} shown)` : "";
  return h("div", { class: "results", id: "results" },
    h("div", { class: "meta", id: "hit-count" }, `${total} match${total === 1 ? "" : "es"}${shown}`),
    hits);
}
function drawSide() {
  const side = document.getElementById("side");
  if (state.query || state.errorsOnly) side.replaceChildren(searchResults());
  else side.replaceChildren(h("ul", { class: "tree", id: "tree" }, DATA.roots.map(treeNode)));
}

// --- totals and timeline ----------------------------------------------------------
function usageRow(name, u) {
  return h("tr", null, h("td", null, name), h("td", { class: "n" }, num(u.calls)),
    h("td", { class: "n" }, num(u.input_tokens)), h("td", { class: "n" }, num(u.cache_read_tokens)),
    h("td", { class: "n" }, num(u.output_tokens)), h("td", { class: "n" }, cost(u.cost_usd)));
}
function totals() {
  const count = Object.keys(runs()).length;
  return h("details", { class: "box", open: true, id: "totals" },
    h("summary", null, `Totals: ${secs(DATA.duration_s)}, ${count} run${count === 1 ? "" : "s"}, ` +
      `${num(DATA.totals.calls)} model calls, ${cost(DATA.totals.cost_usd)}`),
    h("div", { class: "pad" }, h("table", { class: "grid", id: "by-model" },
      h("tr", null, h("th", null, "model"), h("th", { class: "n" }, "calls"),
        h("th", { class: "n" }, "input tokens"), h("th", { class: "n" }, "cache read"),
        h("th", { class: "n" }, "output tokens"), h("th", { class: "n" }, "cost")),
      Object.entries(DATA.by_model).map(([name, u]) => usageRow(name, u)),
      usageRow("total", DATA.totals))));
}
function timeline() {
  const box = h("details", { class: "box", id: "timeline" },
    h("summary", null, "Timeline: model calls, code, sub-calls across runs"));
  const draw = () => {
    if (box.dataset.drawn === String(DATA.events)) return;
    box.dataset.drawn = String(DATA.events);
    box.querySelector(".timeline")?.remove();
    const total = Math.max(DATA.duration_s, 1e-6);
    const pct = (t) => (100 * t / total).toFixed(3) + "%";
    const span = (cls, s, title, href) => h("a", {
      class: "tl-span " + cls, href, title,
      style: `left:${pct(s[0])};width:${pct(Math.max(s[1] - s[0], 0))}`,
    });
    const rows = preorder().slice(0, 2000).map((id) => {
      const run = runs()[id];
      // The run's whole life underneath: before its first model call, its sandbox started.
      const spans = [span("life", [run.start, run.end], `run ${short(id)}: ${secs(run.end - run.start)}`,
        runHref(id))];
      for (const it of run.iterations) {
        const href = iterHref(id, it.iteration);
        if (it.span) spans.push(span("model", it.span,
          `run ${short(id)} iteration ${it.iteration}: model ${secs(it.latency_s)}`, href));
        for (const e of it.executes) spans.push(span("exec" + (e.error || e.timed_out ? " bad" : ""),
          e.span, `run ${short(id)} iteration ${it.iteration}: block ${e.block} ${secs(e.duration_s)}`, href));
        for (const s of it.sub_calls) spans.push(span("sub" + (s.error ? " bad" : ""), s.span,
          `sub-call (${s.kind}) ${secs(s.duration_s)}`, s.child_run_id ? runHref(s.child_run_id) : href));
      }
      return h("div", { class: "tl-row" },
        h("div", { class: "tl-name" }, "\u00a0".repeat(run.depth * 2) + short(id)),
        h("div", { class: "tl-track" }, spans));
    });
    box.append(h("div", { class: "timeline" },
      h("div", { class: "legend" }, h("span", { style: "background:var(--line)" }), "run",
        h("span", { style: "background:var(--model)" }), "model call",
        h("span", { style: "background:var(--exec)" }), "code",
        h("span", { style: "background:var(--sub)" }), "sub-call"),
      h("div", { class: "tl-axis" }, h("span"), h("span", null, `0 s … ${secs(DATA.duration_s)}`)),
      rows));
  };
  box.addEventListener("toggle", () => box.open && draw());
  return box;
}

// --- one run ----------------------------------------------------------------------
// What a run and all runs under it spent (a cost is unknown once one call's is).
function subtree(id) {
  const run = runs()[id];
  const u = run.usage;
  const sum = { runs: 1, calls: u.calls, tokens: u.input_tokens + u.output_tokens + u.cache_read_tokens,
    cost: u.cost_usd };
  for (const child of run.children) {
    const c = subtree(child);
    sum.runs += c.runs;
    sum.calls += c.calls;
    sum.tokens += c.tokens;
    sum.cost = isNum(sum.cost) && isNum(c.cost) ? sum.cost + c.cost : null;
  }
  return sum;
}
function runHeader(run) {
  const rows = [
    ["run", run.run_id], ["model", run.model || "?"], ["depth", run.depth],
    ["parent", run.parent_id ? h("a", { href: runHref(run.parent_id) }, run.parent_id) : "none (root)"],
    ["query", textBlock("prose", run.query || "")],
    ["context", run.context_type ? `${run.context_type}, ${num(run.context_chars)} characters` : "?"],
    ["status", h("span", { class: "chip " + run.status }, run.status),
      run.finish ? ` finished by ${run.finish}` : "",
      run.error ? ` ${run.error_kind || ""}: ${run.error}` : ""],
    ["usage", `${num(run.usage.calls)} model calls, ${num(run.usage.input_tokens)} in, ` +
      `${num(run.usage.cache_read_tokens)} cache read, ${num(run.usage.output_tokens)} out, ` +
      `${cost(run.usage.cost_usd)}`],
  ];
  if (run.children.length) {
    const tree = subtree(run.run_id);
    rows.push(["with child runs", `${tree.runs} runs, ${num(tree.calls)} model calls, ` +
      `${num(tree.tokens)} tokens, ${cost(tree.cost)}`]);
  }
  if (run.completion) {
    const s = run.completion.stats;
    rows.push(["completion", `${s.iterations} iterations, ${s.model_calls} model calls, ` +
      `${s.child_runs} child runs, wall ${secs(s.wall_time_s)}, model ${secs(s.model_time_s)}, ` +
      `code ${secs(s.sandbox_time_s)}, ${cost(s.cost_usd)} (whole tree)`]);
  }
  const answer = run.answer === null ? null : h("div", { class: "pad" },
    h("div", { class: "label" }, run.status === "failed" ? "best partial answer" : "final answer"),
    h("div", { class: "answer" + (run.status === "failed" ? " failed" : ""), id: "answer" },
      textBlock("prose", run.answer)));
  return h("section", { class: "box", id: "run-head" },
    h("h2", null, `Run ${short(run.run_id)}`),
    h("div", { class: "pad" }, h("table", { class: "kv" },
      rows.map(([k, ...v]) => h("tr", null, h("th", null, k), h("td", null, v))))), answer);
}

const FENCE = /^[ \t]*```[ \t]*([\w+-]*)[^\n]*\n([\s\S]*?)^[ \t]*```[ \t]*$/gm;
const RUNNABLE = new Set(["repl", "python", "python3", "py"]);
function cell(code, exec, index) {
  const flags = [];
  if (exec) {
    flags.push(h("span", null, secs(exec.duration_s)));
    if (exec.timed_out) flags.push(h("span", { class: "chip error" }, "timed out"));
    if (exec.restarted) flags.push(h("span", { class: "chip error" }, "kernel restarted"));
    if (exec.dropped_chars)
      flags.push(h("span", null, `${num(exec.dropped_chars)} characters of output dropped`));
    if (exec.error) flags.push(h("span", { class: "chip error" }, exec.error.name));
  }
  const body = [h("div", { class: "cell-h" }, h("span", null, `block ${index}`), flags),
    textBlock("code", code, highlight)];
  if (!exec) body.push(h("div", { class: "out skipped pad" }, "not run"));
  else {
    if (exec.stdout) body.push(h("div", { class: "label" }, "stdout"), textBlock("out", exec.stdout));
    for (const r of exec.results || []) body.push(h("div", { class: "label" }, "result"), textBlock("res", r));
    if (exec.stderr) body.push(h("div", { class: "label" }, "stderr"), textBlock("err", exec.stderr));
    if (exec.error) body.push(h("div", { class: "label" }, "error"),
      textBlock("err", traceback(exec.error) ||
        `${exec.error.name}: ${exec.error.value}`));
    if (exec.final !== null && exec.final !== undefined)
      body.push(h("div", { class: "label" }, "FINAL"), textBlock("fin", exec.final));
  }
  return h("div", { class: "cell", "data-block": index }, body);
}
// The reply as the model wrote it, each runnable fence replaced by its cell (code and output).
function reply(it) {
  const text = it.reply || "";
  const out = [];
  const byBlock = new Map(it.executes.map((e) => [e.block, e]));
  let at = 0;
  let index = 0;
  for (const m of text.matchAll(FENCE)) {
    if (!RUNNABLE.has(m[1].toLowerCase()) || !m[2].trim()) continue;
    index++;
    if (m.index > at) out.push(textBlock("prose", text.slice(at, m.index).replace(/\n+$/, "")));
    out.push(cell(m[2].replace(/\s+$/, ""), byBlock.get(index), index));
    byBlock.delete(index);
    at = m.index + m[0].length;
  }
  const rest = text.slice(at).replace(/^\n+/, "");
  if (rest) out.push(textBlock("prose", rest));
  // Code that ran without a fence of its own (a FINAL_VAR written as text).
  for (const e of byBlock.values()) out.push(cell(e.code, e, e.block));
  return out;
}
function subCalls(it) {
  if (!it.sub_calls.length) return null;
  // One line of the preview; the whole preview when opened.
  const preview = (text, chars) => {
    const line = text.replace(/\s+/g, " ").trim();
    const size = chars > text.length ? h("span", { class: "meta" }, ` (${num(chars)} chars)`) : null;
    if (line.length <= 120) return h("td", { class: "prev" }, marked(line), size);
    return h("td", { class: "prev" }, h("details", null,
      h("summary", null, marked(line.slice(0, 120) + "…"), size), textBlock("", text)));
  };
  return h("table", { class: "grid subcalls" },
    h("tr", null, ["#", "kind", "model", "depth", "prompt", "answer", "time", "tokens", "cost", "child run"]
      .map((t) => h("th", null, t))),
    it.sub_calls.map((s, i) => {
      const u = s.usage;
      return h("tr", { class: s.error ? "bad" : "" },
        h("td", { class: "n", title: s.batch_index === null ? null : `batch index ${s.batch_index}` },
          i + 1),
        h("td", null, s.kind), h("td", null, s.model || "?"), h("td", { class: "n" }, s.sub_depth),
        preview(s.prompt_preview || "", s.prompt_chars),
        s.error ? h("td", { class: "prev" }, h("span", { class: "chip error" }, "error"), " ", s.error)
          : preview(s.answer_preview || "", s.answer_chars),
        h("td", { class: "n" }, secs(s.duration_s)),
        h("td", { class: "n" }, u ? num(u.input_tokens + u.output_tokens) : ""),
        h("td", { class: "n" }, u ? cost(u.cost_usd) : ""),
        h("td", null, s.child_run_id
          ? h("a", { href: runHref(s.child_run_id), class: "child-link" }, "run " + short(s.child_run_id))
          : ""));
    }));
}
function iteration(run, it) {
  const bad = iterHasError(it);
  return h("article", { class: "iter", id: `run-${run.run_id}-i${it.iteration}` },
    h("h3", null, h("a", { href: iterHref(run.run_id, it.iteration) }, `Iteration ${it.iteration}`),
      h("span", { class: "meta" }, [it.model || "", it.reply === null ? "no reply recorded" :
        `model ${secs(it.latency_s)}`, `${num(it.input_tokens)} in / ${num(it.output_tokens)} out`,
        cost(it.cost_usd)].filter(Boolean).join(" · ")),
      bad ? h("span", { class: "chip error" }, "error") : null),
    reply(it), subCalls(it));
}
function drawRun() {
  const content = document.getElementById("run");
  const run = runs()[state.run];
  if (!run) {
    content.replaceChildren(h("p", { class: "meta" }, DATA.events ? "No run selected."
      : "No events yet: waiting for the run to write the trace…"));
    return;
  }
  const items = run.iterations.map((it) => iteration(run, it));
  if (run.status === "running") items.push(h("p", { class: "meta" }, "… still running (no final event yet)"));
  content.replaceChildren(runHeader(run), ...items);
}
function select(id, iter) {
  if (!runs()[id]) return;
  const changed = state.run !== id;
  state.run = id;
  // Open the path to the run in the tree.
  for (let p = runs()[id].parent_id; p && runs()[p]; p = runs()[p].parent_id) state.open.add(p);
  if (changed) {
    state.focus = -1;
    drawRun();
    drawSide();
  }
  const target = iter ? document.getElementById(`run-${id}-i${iter}`) : document.getElementById("run-head");
  if (target) {
    const items = [...document.querySelectorAll("article.iter")];
    items.forEach((a) => a.classList.toggle("focus", a === target));
    state.focus = items.indexOf(target);
    target.scrollIntoView({ block: "start" });
  }
}
function fromHash() {
  const m = /^#run-(.+?)(?:-i(\d+))?$/.exec(location.hash);
  if (m) select(decodeURIComponent(m[1]), m[2] ? Number(m[2]) : null);
}

// --- keyboard ---------------------------------------------------------------------
function step(delta) {
  const items = [...document.querySelectorAll("article.iter")];
  if (!items.length) return;
  const next = Math.min(Math.max(state.focus + delta, 0), items.length - 1);
  location.hash = "#" + items[next].id;
}
function stepRun(delta) {
  const order = preorder();
  const next = order[Math.min(Math.max(order.indexOf(state.run) + delta, 0), order.length - 1)];
  location.hash = runHref(next);
}

function bindKeys() {
  document.addEventListener("keydown", (ev) => {
    const typing = ev.target instanceof HTMLInputElement;
    if (ev.key === "Escape" && typing) {
      ev.target.value = "";
      ev.target.dispatchEvent(new Event("input"));
      ev.target.blur();
      return;
    }
    if (typing || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const actions = {
      j: () => step(1), k: () => step(-1), J: () => stepRun(1), K: () => stepRun(-1),
      "/": () => document.getElementById("search").focus(),
      t: () => { const t = document.getElementById("timeline"); t.open = !t.open; },
    };
    if (actions[ev.key]) {
      ev.preventDefault();
      actions[ev.key]();
    }
  });
  window.addEventListener("hashchange", fromHash);
}

// --- the page ---------------------------------------------------------------------
function draw() {
  const timelineOpen = document.getElementById("timeline")?.open;
  document.body.replaceChildren(header(), banner() || "",
    h("main", null, h("nav", { id: "side", "aria-label": "runs" }),
      h("div", { id: "content" }, totals(), timeline(), h("div", { id: "run" }))));
  if (timelineOpen) document.getElementById("timeline").open = true;
  for (const id of DATA.roots) state.open.add(id);
  if (!state.run || !runs()[state.run]) state.run = DATA.roots[0] || null;
  drawSide();
  drawRun();
}
draw();
bindKeys();
if (location.hash) fromHash();

// --- live: the server says when the trace grew; fetch the new model and redraw -----
if (DATA.live) {
  // Updates that arrive while a fetch is under way are folded into one more fetch.
  let fetching = false;
  let again = false;
  async function update() {
    if (fetching) {
      again = true;
      return;
    }
    fetching = true;
    try {
      const response = await fetch("model.json", { cache: "no-store" });
      if (response.ok) redraw(await response.json());
    } finally {
      fetching = false;
      if (again) {
        again = false;
        update();
      }
    }
  }
  function redraw(data) {
    const scroll = window.scrollY;
    const typing = document.activeElement === document.getElementById("search");
    DATA = data;
    haystacks = new Map();
    draw();
    window.scrollTo(0, scroll);
    if (typing) document.getElementById("search").focus();
  }
  const source = new EventSource("events");
  source.addEventListener("update", update);
  source.addEventListener("error", () => {
    const chip = document.getElementById("live");
    if (chip) chip.textContent = "live: disconnected";
  });
}
