// Slipway UI: a pipeline run's page follows the run while it goes on. No third-party code.
//
// Every second it reads state.json and patches the page in place: the run's status, duration
// and buttons; each DAG node's status class and second line; each step row; the chosen step's
// details. When nodes or steps appear (a loop expanded) it fetches the drawing and the steps
// table again (server-rendered, escaped) instead. It stops once the run has ended (after a
// resume, once the new attempt has ended). Data only ever goes into textContent.
(function () {
  "use strict";

  var DETAIL_CHARS = 26;  // as slipway.ui.dag.DETAIL_CHARS

  function shorten(text) {
    return text.length <= DETAIL_CHARS ? text : text.slice(0, DETAIL_CHARS - 1) + "\u2026";
  }

  function setStatus(el, status) {
    if (!el) { return; }
    var keep = [];
    var classes = (el.getAttribute("class") || "").split(/\s+/);
    for (var i = 0; i < classes.length; i++) {
      if (classes[i] && classes[i].indexOf("status-") !== 0) { keep.push(classes[i]); }
    }
    keep.push("status-" + status);
    el.setAttribute("class", keep.join(" "));
  }

  function setText(el, text) {
    if (el && el.textContent !== text) { el.textContent = text; }
  }

  // The elements under ``root`` by the value of ``attr`` (values come from the data, so no
  // selector is ever built from them).
  function indexBy(root, attr) {
    var map = Object.create(null);
    var found = root.querySelectorAll("[" + attr + "]");
    for (var i = 0; i < found.length; i++) { map[found[i].getAttribute(attr)] = found[i]; }
    return map;
  }

  function field(root, name) {
    return root ? root.querySelector('[data-field="' + name + '"]') : null;
  }

  document.addEventListener("DOMContentLoaded", function () {
    var configEl = document.getElementById("pipeline-config");
    if (!configEl || !window.Slipway) { return; }
    var config = JSON.parse(configEl.textContent);
    var waitAttempt = config.wait_attempt;
    if (config.terminal && waitAttempt === null) { return; }
    var structure = config.structure;
    var fetching = false;
    var began = Date.now();
    var live = document.getElementById("live");
    var details = document.getElementById("step-details");
    var detailKey = details ? details.getAttribute("data-detail-step") : null;
    var detailStatus = null;
    if (details) {
      var shown = field(details, "status");
      detailStatus = shown ? (shown.getAttribute("class") || "") : null;
    }

    function refetch(key) {
      if (fetching) { return; }
      fetching = true;
      fetch(config.live_url, { headers: { "Accept": "text/html" } })
        .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
        .then(function (html) {
          // Server-rendered with autoescaping: the data in it is text, never markup.
          live.innerHTML = html;
          structure = key;
        })
        .catch(function () { /* the next poll tries again */ })
        .then(function () { fetching = false; });
    }

    function applyRun(run) {
      var status = document.getElementById("run-status");
      setStatus(status, run.status);
      setText(status, run.status_text);
      setText(document.getElementById("run-duration"), run.duration);
      setText(document.getElementById("run-attempt"), String(run.attempt));
      setText(document.getElementById("run-message"), run.message);
      setText(document.getElementById("step-summary"), run.summary);
      var cancel = document.getElementById("cancel-form");
      if (cancel) { cancel.hidden = run.terminal; }
      var resume = document.getElementById("resume-form");
      if (resume) { resume.hidden = !(run.status === "FAILED" || run.status === "CANCELLED"); }
    }

    function applyNodes(nodes) {
      var drawn = indexBy(live, "data-key");
      for (var i = 0; i < nodes.length; i++) {
        var n = nodes[i];
        var g = drawn[n.key];
        if (!g) { continue; }
        setStatus(g, n.status);
        setText(g.querySelector(".dag-detail"), shorten(n.detail));
        setText(g.querySelector("title"), n.title);
        var link = g.parentNode;
        if (link && link.getAttribute && link.getAttribute("class") === "dag-link") {
          link.setAttribute("aria-label", n.title);
        }
      }
    }

    function applySteps(steps) {
      var rows = indexBy(live, "data-step");
      for (var i = 0; i < steps.length; i++) {
        var s = steps[i];
        var row = rows[s.task_id];
        if (row) {
          var cell = field(row, "status");
          setStatus(cell, s.status);
          setText(cell, s.status_text);
          setText(field(row, "attempt"), String(s.attempt));
          setText(field(row, "duration"), s.duration);
          setText(field(row, "message"), s.message);
        }
        if (details && s.task_id === detailKey) {
          var st = field(details, "status");
          setStatus(st, s.status);
          setText(st, s.status_text);
          setText(field(details, "attempt"), String(s.attempt));
          setText(field(details, "duration"), s.duration);
          var reload = field(details, "reload");
          if (reload && st && st.getAttribute("class") !== detailStatus) {
            reload.setAttribute("href", window.location.pathname + window.location.search + "#step-details");
            reload.hidden = false;
          }
        }
      }
    }

    function apply(data) {
      if (!data || !data.run) { return; }
      applyRun(data.run);
      if (data.structure !== structure) {
        refetch(data.structure);
        return;
      }
      applyNodes(data.nodes);
      applySteps(data.steps);
    }

    function stop(data) {
      if (!data || !data.run || !data.run.terminal) { return false; }
      if (data.structure !== structure) { return false; }  // one more round to redraw
      if (waitAttempt !== null && data.run.attempt <= waitAttempt) {
        return Date.now() - began > 60000;  // the resume never started: stop asking
      }
      return true;
    }

    window.Slipway.poll(config.state_url, config.poll_ms || 1000, apply, stop);
  });
})();
