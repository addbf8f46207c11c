// Slipway UI, runs table and compare page: pick runs, narrow long lists of keys. No
// third-party code; without this script every form still works.
(function () {
  "use strict";

  function each(list, fn) { Array.prototype.forEach.call(list, fn); }

  function runBoxes() {
    return document.querySelectorAll('input[type="checkbox"][name="runs"][form="compare-form"]');
  }

  function updatePicks() {
    var all = document.getElementById("select-all");
    var button = document.getElementById("compare-button");
    var boxes = runBoxes();
    var picked = 0;
    each(boxes, function (box) { if (box.checked) { picked += 1; } });
    if (button) {
      button.textContent = picked ? "Compare " + picked + " selected runs" : "Compare selected runs";
    }
    if (all) {
      all.checked = boxes.length > 0 && picked === boxes.length;
      all.indeterminate = picked > 0 && picked < boxes.length;
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    var all = document.getElementById("select-all");
    if (all) {
      all.addEventListener("change", function () {
        each(runBoxes(), function (box) { box.checked = all.checked; });
        updatePicks();
      });
    }
    each(runBoxes(), function (box) { box.addEventListener("change", updatePicks); });
    updatePicks();

    // A search box that hides the choices (label.choice) of a long list not matching it.
    each(document.querySelectorAll("input[data-filter-choices]"), function (input) {
      var scope = document.querySelector(input.getAttribute("data-filter-choices"));
      if (!scope) { return; }
      input.addEventListener("input", function () {
        var text = input.value.toLowerCase();
        each(scope.querySelectorAll("label.choice"), function (label) {
          label.hidden = Boolean(text) && label.textContent.toLowerCase().indexOf(text) < 0;
        });
      });
      input.addEventListener("keydown", function (event) {
        if (event.key === "Enter") { event.preventDefault(); }  // finding is not submitting
      });
    });
  });
})();
