// Slipway UI, metric charts: drag across a chart to zoom into that range of x. The chart is
// SVG drawn by the server; this only writes the range into the chart's form (its "From x"
// and "to" inputs, which work without this script too) and submits it. No third-party code.
(function () {
  "use strict";
  var SVG_NS = "http://www.w3.org/2000/svg";

  function number(svg, name) { return parseFloat(svg.getAttribute(name)); }

  function text(value) {
    // Epoch milliseconds and large steps keep every digit; small values keep six.
    return Math.abs(value) >= 1e6 ? String(Math.round(value)) : String(Number(value.toPrecision(6)));
  }

  function setup(box) {
    var svg = box.querySelector("svg[data-zoom]");
    var form = document.getElementById(box.getAttribute("data-chart-form"));
    if (!svg || !form || !form.elements.xmin || !form.elements.xmax) { return; }
    var left = number(svg, "data-plot-left");
    var right = number(svg, "data-plot-right");
    var top = number(svg, "data-plot-top");
    var bottom = number(svg, "data-plot-bottom");
    var lo = number(svg, "data-x-lo");
    var hi = number(svg, "data-x-hi");
    var band = document.createElementNS(SVG_NS, "rect");
    band.setAttribute("class", "zoom-band");
    band.setAttribute("y", String(top));
    band.setAttribute("height", String(bottom - top));
    var start = null;

    function viewX(event) {
      var rect = svg.getBoundingClientRect();
      var x = (event.clientX - rect.left) * svg.viewBox.baseVal.width / rect.width;
      return Math.min(Math.max(x, left), right);
    }
    function dataX(x) { return lo + (x - left) / (right - left) * (hi - lo); }

    svg.addEventListener("pointerdown", function (event) {
      if (event.button !== 0) { return; }
      start = viewX(event);
      band.setAttribute("x", String(start));
      band.setAttribute("width", "0");
      svg.appendChild(band);
      svg.setPointerCapture(event.pointerId);
      event.preventDefault();
    });
    svg.addEventListener("pointermove", function (event) {
      if (start === null) { return; }
      var x = viewX(event);
      band.setAttribute("x", String(Math.min(start, x)));
      band.setAttribute("width", String(Math.abs(x - start)));
    });
    svg.addEventListener("pointerup", function (event) {
      if (start === null) { return; }
      var end = viewX(event);
      var a = Math.min(start, end);
      var b = Math.max(start, end);
      start = null;
      if (band.parentNode) { band.parentNode.removeChild(band); }
      if (b - a < 4) { return; }  // a click, not a drag
      form.elements.xmin.value = text(dataX(a));
      form.elements.xmax.value = text(dataX(b));
      form.submit();
    });
    svg.style.cursor = "crosshair";
  }

  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(document.querySelectorAll(".chart-box[data-chart-form]"), setup);
  });
})();
