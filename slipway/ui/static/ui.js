// Slipway UI: the few things done in the browser. No third-party code.
(function () {
  "use strict";
  var root = document.documentElement;
  var saved = null;
  try { saved = localStorage.getItem("slipway-theme"); } catch (e) { /* private mode */ }
  if (saved === "light" || saved === "dark") { root.setAttribute("data-theme", saved); }

  function currentTheme() {
    var set = root.getAttribute("data-theme");
    if (set === "light" || set === "dark") { return set; }
    return window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
  }

  document.addEventListener("DOMContentLoaded", function () {
    var toggle = document.getElementById("theme-toggle");
    if (toggle) {
      toggle.textContent = currentTheme() === "dark" ? "Light theme" : "Dark theme";
      toggle.addEventListener("click", function () {
        var next = currentTheme() === "dark" ? "light" : "dark";
        root.setAttribute("data-theme", next);
        try { localStorage.setItem("slipway-theme", next); } catch (e) { /* ignore */ }
        toggle.textContent = next === "dark" ? "Light theme" : "Dark theme";
      });
    }
  });

  // Shared helpers for page scripts.
  window.Slipway = {
    // Poll ``url`` (JSON) every ``ms`` until ``stop(data)`` is true; ``apply(data)`` each time.
    poll: function (url, ms, apply, stop) {
      function tick() {
        fetch(url, { headers: { "Accept": "application/json" } })
          .then(function (r) { return r.json(); })
          .then(function (data) {
            apply(data);
            if (!stop(data)) { setTimeout(tick, ms); }
          })
          .catch(function () { setTimeout(tick, ms * 2); });
      }
      setTimeout(tick, ms);
    }
  };
})();
