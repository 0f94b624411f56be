// Picket web UI: live updates of the events table, and the namespace switcher's auto-submit.
// The pages work without it; it only saves reloads.
(function () {
  "use strict";
  var select = document.querySelector("select[data-autosubmit]");
  if (select) {
    select.addEventListener("change", function () { select.form.submit(); });
  }
  var table = document.querySelector("table[data-live]");
  if (!table) { return; }
  var rows = document.getElementById("event-rows");
  var count = document.getElementById("event-count");
  var url = table.getAttribute("data-live") + window.location.search;
  var busy = false;
  function poll() {
    if (busy || document.hidden) { return; }
    busy = true;
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) {
        if (r.status === 401) { window.location.href = "/ui/login"; return null; }
        return r.ok ? r.json() : null;
      })
      .then(function (data) {
        if (!data) { return; }
        // Keep the row that has focus (keyboard users) when nothing changed.
        if (rows.innerHTML !== data.rows) { rows.innerHTML = data.rows; }
        count.textContent = String(data.count);
      })
      .catch(function () { /* the next poll retries */ })
      .then(function () { busy = false; });
  }
  window.setInterval(poll, 2000);
})();
