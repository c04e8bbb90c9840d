// Parley admin: the logs page's live tail. Entries arrive as server-sent events and are written with textContent
// only, so a log line is always text, never markup.
"use strict";

(function () {
  var rows = document.getElementById("tail-rows");
  if (!rows) return;
  var state = document.getElementById("tail-state");
  var pauseButton = document.getElementById("tail-pause");
  var MAX_ROWS = 500;
  var LEVELS = ["trace", "debug", "info", "warn", "error", "fatal"];
  var paused = false;
  var held = [];

  function cell(className, text) {
    var td = document.createElement("td");
    td.className = className;
    td.textContent = text;
    return td;
  }

  function formatTime(iso) {
    return typeof iso === "string" ? iso.slice(0, 19).replace("T", " ") + " UTC" : "";
  }

  var ready = false;

  function append(entry) {
    var level = LEVELS.indexOf(entry.level) >= 0 ? entry.level : "info";
    var tr = document.createElement("tr");
    // Lines that arrive after the backlog flash briefly, so a new one catches the eye.
    tr.className = "level-" + level + (ready ? " fresh" : "");
    tr.appendChild(cell("time", formatTime(entry.time)));
    tr.appendChild(cell("level", level));
    tr.appendChild(cell("source", entry.source || ""));
    var message = cell("message", String(entry.message || ""));
    if (entry.data) {
      var data = document.createElement("div");
      data.className = "data";
      data.textContent = String(entry.data);
      message.appendChild(data);
    }
    tr.appendChild(message);
    rows.insertBefore(tr, rows.firstChild);
    while (rows.childNodes.length > MAX_ROWS) rows.removeChild(rows.lastChild);
  }

  function setState(text) {
    if (state) state.textContent = text;
  }

  var events = new EventSource(rows.getAttribute("data-stream"));
  events.addEventListener("ready", function () {
    ready = true;
    setState(paused ? "paused" : "live");
  });
  events.addEventListener("error", function () {
    setState("reconnecting…");
  });
  events.addEventListener("log", function (event) {
    var entry;
    try {
      entry = JSON.parse(event.data);
    } catch (e) {
      return;
    }
    if (paused) {
      held.push(entry);
      if (held.length > MAX_ROWS) held.shift();
      setState("paused, " + held.length + " new");
      return;
    }
    append(entry);
  });

  if (pauseButton) {
    pauseButton.addEventListener("click", function () {
      paused = !paused;
      pauseButton.textContent = paused ? "Resume" : "Pause";
      if (!paused) {
        held.forEach(append);
        held = [];
      }
      setState(paused ? "paused" : "live");
    });
  }
})();
