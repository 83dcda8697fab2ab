// Shared by the pages of rlm view: the data, DOM building, number formats.
// Every text from the file goes into the DOM as a text node (see h()), never as markup.
// render.py joins these files into one script, in one function scope, in this order:
// common.js, then highlight.js and trace.js (a trace) or results.js (eval results).

let DATA = JSON.parse(document.getElementById("rlm-data").textContent);

// --- DOM helpers ------------------------------------------------------------------
function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const kid of kids.flat(Infinity)) {
    if (kid === null || kid === undefined || kid === false) continue;
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
}
// Numbers from the file may be missing (null): they read as unknown, never break the page.
const isNum = (n) => typeof n === "number" && Number.isFinite(n);
const num = (n) => (isNum(n) ? n : 0).toLocaleString("en-US");
const secs = (s) => (isNum(s) ? (s < 10 ? s.toFixed(2) : s.toFixed(1)) + " s" : "? s");
const cost = (c) => (isNum(c) ? "$" + c.toFixed(c < 0.01 ? 5 : 4) : "cost unknown");
const short = (id) => String(id).slice(0, 8);

function banner() {
  if (!DATA.damage) return null;
  return h("div", { class: "banner damage", id: "damage" },
    `The file is damaged: reading stopped at line ${DATA.damage.line} (${DATA.damage.reason}). ` +
    "Everything before it is shown" + (DATA.events === undefined ? "." : ` (${num(DATA.events)} events).`));
}
