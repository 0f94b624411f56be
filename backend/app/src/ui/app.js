// Picket web UI: live updates and the namespace switcher's auto-submit. The pages work
// without it; it only saves reloads.
//
// Live updates: elements with an id and `data-live` are the parts of a page that change. Every
// 2 s (while the tab is visible) the page's own URL is fetched with `live=1`; the backend
// answers {"regions": {id: html}} from the same API requests as the page, with the user's
// token, and the regions whose content changed are swapped in place.
(function () {
  "use strict";
  var select = document.querySelector("select[data-autosubmit]");
  if (select) {
    select.addEventListener("change", function () { select.form.submit(); });
  }
  if (!document.querySelector("[data-live][id]")) { return; }
  var notes = document.querySelectorAll("[data-live-note]");
  for (var i = 0; i < notes.length; i++) { notes[i].hidden = false; }

  var url = window.location.pathname +
    (window.location.search ? window.location.search + "&" : "?") + "live=1";
  var parser = document.createElement("template");
  var busy = false;
  var notice = null;

  // Polls that fail (the event was deleted, access was revoked) say so once, politely.
  function say(message) {
    if (!message) {
      if (notice) { notice.remove(); notice = null; }
      return;
    }
    if (!notice) {
      notice = document.createElement("p");
      notice.className = "error";
      notice.setAttribute("role", "status");
      var main = document.getElementById("main");
      var h1 = main && main.querySelector("h1");
      if (h1) { h1.after(notice); } else if (main) { main.prepend(notice); }
    }
    notice.textContent = "Live updates paused: " + message;
  }

  // Where keyboard focus was, so it survives a region being replaced.
  function focusKey(el) {
    if (!el || el === document.body) { return null; }
    if (el.tagName === "A" && el.getAttribute("href")) {
      return 'a[href="' + CSS.escape(el.getAttribute("href")) + '"]';
    }
    var form = el.closest("form");
    if (form && el.tagName === "BUTTON" && form.getAttribute("action")) {
      return 'form[action="' + CSS.escape(form.getAttribute("action")) + '"] button';
    }
    return el.id ? "#" + CSS.escape(el.id) : null;
  }

  function apply(regions) {
    Object.keys(regions).forEach(function (id) {
      var el = document.getElementById(id);
      if (!el || !el.hasAttribute("data-live")) { return; }
      // Compare as the browser serialises both, not the server's bytes.
      parser.innerHTML = regions[id];
      if (parser.innerHTML === el.innerHTML) { return; }
      var active = document.activeElement;
      var key = el.contains(active) ? focusKey(active) : null;
      el.innerHTML = regions[id];
      var again = key && el.querySelector(key);
      if (again) { again.focus({ preventScroll: true }); }
    });
  }

  function poll() {
    if (busy || document.hidden) { return; }
    busy = true;
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) {
        if (r.status === 401) { window.location.href = "/ui/login"; return null; }
        return r.json().then(function (body) {
          if (!r.ok) { say(body.message || ("HTTP " + r.status)); return null; }
          say(null);
          return body;
        });
      })
      .then(function (body) { if (body && body.regions) { apply(body.regions); } })
      .catch(function () { /* the next poll retries */ })
      .then(function () { busy = false; });
  }
  window.setInterval(poll, 2000);
  document.addEventListener("visibilitychange", poll);
})();
