// A tiny Python highlighter: tokens become spans with a class, text stays text.
const KEYWORDS = new Set(("False None True and as assert async await break class continue def del " +
  "elif else except finally for from global if import in is lambda nonlocal not or pass raise " +
  "return try while with yield match case").split(" "));
const BUILTINS = new Set(("print len range str int float list dict set tuple sorted enumerate zip " +
  "map filter sum min max any all open isinstance type repr abs round reversed " +
  "llm_query llm_query_batched FINAL FINAL_VAR CONTEXT SHOW_VARS").split(" "));
const TOKEN = new RegExp([
  "(#[^\\n]*)",                                                     // comment
  "((?:[rRbBuUfF]{0,2})(?:'''[\\s\\S]*?(?:'''|$)|\"\"\"[\\s\\S]*?(?:\"\"\"|$)|" +
    "'(?:\\\\.|[^'\\\\\\n])*'?|\"(?:\\\\.|[^\"\\\\\\n])*\"?))",    // string
  "(\\b(?:0[xob][\\da-fA-F_]+|\\d[\\d_]*\\.?\\d*(?:[eE][+-]?\\d+)?j?)\\b)", // number
  "([A-Za-z_]\\w*)",                                                 // name
].join("|"), "g");
function highlight(code) {
  const out = [];
  let at = 0;
  let previous = "";
  for (const m of code.matchAll(TOKEN)) {
    if (m.index > at) out.push(code.slice(at, m.index));
    const [text, comment, string, number, name] = m;
    let cls = null;
    if (comment) cls = "com";
    else if (string) cls = "str";
    else if (number) cls = "num";
    else if (name && KEYWORDS.has(name)) cls = "kw";
    else if (name && (previous === "def" || previous === "class")) cls = "fn";
    else if (name && BUILTINS.has(name)) cls = "bi";
    out.push(cls ? h("span", { class: cls }, text) : text);
    if (name) previous = name;
    at = m.index + text.length;
  }
  out.push(code.slice(at));
  return out;
}
