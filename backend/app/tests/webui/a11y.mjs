// Accessibility measurements of rendered pages, used by flow.mjs.
//
// - axe-core (the maintained rule engine, from npm) runs the WCAG 2.x A and AA rules.
// - contrastPairs measures, with the computed styles of the page as rendered, the WCAG 2.x
//   contrast ratio of every text colour on the background it is painted on (4.5:1, 3:1 for
//   large text), and of the non-text marks that carry meaning (status strip, status borders,
//   form control borders: 3:1). It reports each distinct pair once, with its worst ratio.
// - focusRing measures the focused element's outline against what surrounds it (3:1).

// Runs in the page: shared colour helpers, as a string so every evaluate can define them.
const HELPERS = `
function parseColor(s) {
  const m = s.match(/rgba?\\(([^)]+)\\)/);
  if (!m) return null;
  const p = m[1].split(/[\\s,\\/]+/).filter(Boolean).map(Number);
  return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
}
function over(top, bottom) {
  const a = top[3];
  return [0, 1, 2].map(i => top[i] * a + bottom[i] * (1 - a)).concat([1]);
}
function lum(c) {
  const f = v => { v /= 255; return v <= 0.04045 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
  return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]);
}
function ratio(a, b) {
  const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p);
  return (x + 0.05) / (y + 0.05);
}
function hex(c) {
  return "#" + c.slice(0, 3).map(v => Math.round(v).toString(16).padStart(2, "0")).join("");
}
// The colour behind an element: its own and its ancestors' backgrounds, over white.
function backdrop(el) {
  const layers = [];
  for (let e = el; e && e.nodeType === 1; e = e.parentElement) {
    const c = parseColor(getComputedStyle(e).backgroundColor);
    if (c && c[3] > 0) layers.push(c);
    if (c && c[3] >= 1) break;
  }
  let bg = [255, 255, 255, 1];
  for (let i = layers.length - 1; i >= 0; i--) bg = over(layers[i], bg);
  return bg;
}
function shown(el) {
  const r = el.getBoundingClientRect();
  const cs = getComputedStyle(el);
  return r.width > 1 && r.height > 1 && cs.visibility !== "hidden" && cs.display !== "none"
    && !el.closest("[hidden]");
}
function describe(el) {
  let s = el.tagName.toLowerCase();
  if (el.id) s += "#" + el.id;
  if (el.classList.length) s += "." + [...el.classList].join(".");
  return s;
}
`;

export async function axeViolations(page, axeSource) {
  if (!(await page.evaluate(() => typeof window.axe !== "undefined"))) {
    await page.addScriptTag({ content: axeSource });
  }
  const result = await page.evaluate(() => window.axe.run(document, {
    runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"] },
    resultTypes: ["violations"],
  }));
  return result.violations.map(v => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.slice(0, 5).map(n => n.target.join(" ") + " " + (n.failureSummary || "")),
  }));
}

export async function contrastPairs(page) {
  return await page.evaluate(`(() => {
    ${HELPERS}
    const out = [];
    for (const el of document.body.querySelectorAll("*")) {
      if (!shown(el)) continue;
      const cs = getComputedStyle(el);
      const bg = backdrop(el);
      const text = [...el.childNodes].filter(n => n.nodeType === 3).map(n => n.textContent.trim()).join(" ").trim();
      if (text && !el.closest(".sr")) {
        const fg = over(parseColor(cs.color), bg);
        const size = parseFloat(cs.fontSize), weight = parseInt(cs.fontWeight, 10);
        const large = size >= 24 || (size >= 18.66 && weight >= 700);
        out.push({ kind: large ? "large text" : "text", fg: hex(fg), bg: hex(bg),
          ratio: ratio(fg, bg), need: large ? 3 : 4.5, sample: describe(el) + " " + JSON.stringify(text.slice(0, 30)) });
      }
      const parentBg = backdrop(el.parentElement || el);
      // Status marks: the history strip's squares, the coloured left border of event rows.
      if (el.matches("ol.strip li")) {
        const c = parseColor(cs.backgroundColor);
        out.push({ kind: "status mark", fg: hex(c), bg: hex(parentBg), ratio: ratio(c, parentBg), need: 3, sample: describe(el) });
      }
      if (el.matches("tr.row td:first-child")) {
        const c = parseColor(cs.borderLeftColor);
        out.push({ kind: "status border", fg: hex(c), bg: hex(bg), ratio: ratio(c, bg), need: 3, sample: describe(el.parentElement) });
      }
      // Form controls are recognised by their border.
      if (el.matches("input:not([type=hidden]):not([type=checkbox]), select, button")) {
        const c = parseColor(cs.borderTopColor);
        const inner = backdrop(el);
        const worst = ratio(c, parentBg) < ratio(c, inner) ? parentBg : inner;
        out.push({ kind: "control border", fg: hex(c), bg: hex(worst), ratio: ratio(c, worst), need: 3, sample: describe(el) });
      }
    }
    return out;
  })()`);
}

// The focused element's outline: drawn outside it (outline-offset), over its parent's background.
export async function focusRing(page) {
  return await page.evaluate(`(() => {
    ${HELPERS}
    const el = document.activeElement;
    if (!el || el === document.body) return null;
    const cs = getComputedStyle(el);
    const c = parseColor(cs.outlineColor);
    const bg = backdrop(el.parentElement || el);
    return { element: describe(el), text: (el.textContent || el.value || "").trim().slice(0, 30),
      style: cs.outlineStyle, width: parseFloat(cs.outlineWidth),
      fg: c ? hex(c) : cs.outlineColor, bg: hex(bg), ratio: c ? ratio(over(c, bg), bg) : 0 };
  })()`);
}
