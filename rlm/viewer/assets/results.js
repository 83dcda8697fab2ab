// An `rlm eval` results file: a table of tasks, sortable and filterable, with a
// summary per task type.
function drawResults() {
  const tasks = DATA.tasks;
  const columns = [
    ["id", (t) => t.id], ["type", (t) => t.type], ["length", (t) => t.length],
    ["model", (t) => t.model], ["score", (t) => t.score], ["cost", (t) => t.cost_usd],
    ["tokens", (t) => t.tokens], ["iterations", (t) => t.iterations],
    ["time", (t) => t.wall_time_s],
  ];
  const sort = { by: 0, down: false };
  const search = h("input", { id: "search", type: "search", placeholder: "Filter tasks  ( / )" });
  const errors = h("input", { id: "errors-only", type: "checkbox" });
  const body = h("tbody");
  const known = (values) => values.filter((v) => typeof v === "number");
  const mean = (values) => (values.length ? values.reduce((a, b) => a + b, 0) / values.length : null);
  const total = (values) => (values.some((v) => v === null || v === undefined) ? null
    : values.reduce((a, b) => a + b, 0));
  const cell = (name, value) => {
    if (name === "cost") return cost(value);
    if (name === "time") return secs(value);
    if (name === "score") return typeof value === "number" ? value.toFixed(2) : "?";
    return value === null || value === undefined ? "" : String(value);
  };
  function rows() {
    const q = search.value.trim().toLowerCase();
    const shown = tasks.filter((t) => (!errors.checked || t.error) && (!q ||
      [t.id, t.type, t.answer, t.gold, t.error].join("\n").toLowerCase().includes(q)));
    const key = columns[sort.by][1];
    shown.sort((a, b) => {
      const [x, y] = [key(a), key(b)];
      const order = typeof x === "number" && typeof y === "number" ? x - y
        : String(x ?? "").localeCompare(String(y ?? ""), "en", { numeric: true });
      return sort.down ? -order : order;
    });
    body.replaceChildren(...shown.map((t) => h("tr", { id: "task-" + t.id, class: t.error ? "bad" : "" },
      columns.map(([name, get]) => h("td", { class: name === "id" || name === "type" || name === "model" ? "" : "n" },
        name === "id" ? h("a", { href: "#task-" + encodeURIComponent(t.id) }, String(t.id)) : cell(name, get(t)))),
      h("td", { class: "prev" }, t.error ? [h("span", { class: "chip error" }, "error"), " ", t.error]
        : [String(t.answer ?? "").slice(0, 200), h("div", { class: "meta" }, "gold: " + String(t.gold ?? "").slice(0, 200))]),
      h("td", null, t.trace_href ? h("a", { href: t.trace_href, class: "trace-link" }, "trace")
        : t.trace_problem ? h("span", { class: "meta", title: t.trace_problem }, "unreadable") : ""))));
    document.getElementById("hit-count").textContent = `(${shown.length} of ${tasks.length} shown)`;
  }
  const head = h("tr", null, columns.map(([name], i) => {
    const th = h("th", { class: "sortable" }, name);
    th.addEventListener("click", () => {
      sort.down = sort.by === i ? !sort.down : false;
      sort.by = i;
      rows();
    });
    return th;
  }), h("th", null, "answer"), h("th", null, "trace"));
  search.addEventListener("input", rows);
  errors.addEventListener("change", rows);
  const byType = new Map();
  for (const t of tasks) byType.set(t.type, [...(byType.get(t.type) || []), t]);
  const summaryRow = (name, group) => h("tr", null, h("td", null, name), h("td", { class: "n" }, group.length),
    h("td", { class: "n" }, cell("score", mean(known(group.map((t) => t.score))))),
    h("td", { class: "n" }, group.filter((t) => t.error).length),
    h("td", { class: "n" }, cost(total(group.map((t) => t.cost_usd)))),
    h("td", { class: "n" }, secs(total(group.map((t) => t.wall_time_s)))));
  document.body.replaceChildren(
    h("header", { class: "top" }, h("h1", null, "rlm eval results"), h("span", { class: "meta" }, DATA.source),
      h("span", { class: "grow" }), search, h("label", null, errors, " errors only")),
    banner() || "",
    h("div", { id: "content" },
      h("section", { class: "box", id: "summary" }, h("h2", null, "Summary"), h("div", { class: "pad" },
        h("table", { class: "grid" }, h("tr", null, ["type", "tasks", "mean score", "errors", "cost", "time"]
          .map((t) => h("th", null, t))), [...byType].map(([name, group]) => summaryRow(name, group)),
        summaryRow("all", tasks)))),
      h("section", { class: "box" }, h("h2", null, "Tasks ", h("span", { class: "meta", id: "hit-count" })),
        h("div", { class: "pad" }, h("table", { class: "grid", id: "tasks" }, h("thead", null, head), body)))));
  rows();
  document.addEventListener("keydown", (ev) => {
    if (ev.key === "/" && !(ev.target instanceof HTMLInputElement)) {
      ev.preventDefault();
      search.focus();
    }
  });
}

drawResults();
