"""The script injected into pages: it polls the state endpoint, refreshes the page
once the generation it was served with is gone, and shows the held saves."""

from __future__ import annotations

POLL_MS = 500

CLIENT_JS = """\
// uwsgi-reload: refresh this page when new code serves; show a held save.
(function () {
  "use strict";
  var me = document.currentScript;
  if (!me || window.__uwsgiReloadPolling) { return; }
  window.__uwsgiReloadPolling = true;
  var generation = me.getAttribute("data-generation");
  var stateUrl = me.getAttribute("data-state");
  var OVERLAY_ID = "uwsgi-reload-overlay";

  function hide() {
    var old = document.getElementById(OVERLAY_ID);
    if (old) { old.remove(); }
  }

  function show(held) {
    var key = JSON.stringify(held);
    var old = document.getElementById(OVERLAY_ID);
    if (old && old.getAttribute("data-key") === key) { return; }
    hide();
    var box = document.createElement("div");
    box.id = OVERLAY_ID;
    box.setAttribute("data-key", key);
    box.setAttribute("role", "alert");
    box.style.cssText = "position:fixed;left:0;right:0;bottom:0;z-index:2147483647;" +
      "max-height:60vh;overflow:auto;margin:0;padding:16px 20px;background:#2b0d0d;" +
      "color:#ffe9e9;font:14px/1.45 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;" +
      "border-top:4px solid #e5484d;box-shadow:0 -6px 24px rgba(0,0,0,.35)";
    var title = document.createElement("div");
    title.style.cssText = "font-weight:bold;font-size:15px;margin-bottom:8px;color:#ff9592";
    title.textContent = "uwsgi-reload: not reloaded, the previous code keeps serving " +
      "until this is fixed";
    box.appendChild(title);
    held.forEach(function (item) {
      var row = document.createElement("div");
      row.className = "uwsgi-reload-problem";
      row.style.cssText = "margin-top:6px;white-space:pre-wrap";
      var where = document.createElement("strong");
      where.textContent = item.file + ":" + item.line;
      row.appendChild(where);
      row.appendChild(document.createTextNode("  " + item.message));
      box.appendChild(row);
    });
    document.body.appendChild(box);
  }

  function poll() {
    fetch(stateUrl, {cache: "no-store", credentials: "same-origin"})
      .then(function (response) {
        if (!response.ok) { throw new Error("status " + response.status); }
        return response.json();
      })
      .then(function (state) {
        if (state.generation && generation && state.generation !== generation) {
          location.reload();
          return;
        }
        if (!generation) { generation = state.generation; }
        if (state.held && state.held.length) { show(state.held); } else { hide(); }
        setTimeout(poll, POLL_MS);
      })
      .catch(function () {
        // the server is restarting, or the app failed to load: keep asking quietly
        setTimeout(poll, POLL_MS);
      });
  }
  setTimeout(poll, POLL_MS);
})();
""".replace("POLL_MS", str(POLL_MS)).encode("utf-8")
