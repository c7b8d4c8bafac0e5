// Cost report charts (Chart.js, vendored). The figures come from a json_script element named by
// the canvas's data-chart attribute; every chart has a table with the same numbers beside it.
// Series differ by shape and dash as well as colour, so they read without colour.
(function () {
  "use strict";

  function cssVar(name, fallback) {
    const value = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return value || fallback;
  }

  function dayLabel(iso) {
    const [year, month, day] = iso.split("-").map(Number);
    return new Date(Date.UTC(year, month - 1, day)).toLocaleDateString(undefined, {
      day: "numeric", month: "short", timeZone: "UTC",
    });
  }

  const usd = new Intl.NumberFormat(undefined, { style: "currency", currency: "USD" });
  const count = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });

  function baseOptions(colors) {
    return {
      responsive: true,
      maintainAspectRatio: false,
      animation: window.matchMedia("(prefers-reduced-motion: reduce)").matches ? false : { duration: 300 },
      interaction: { mode: "index", intersect: false },
      plugins: {
        legend: { labels: { color: colors.text, usePointStyle: true, boxWidth: 10 } },
        tooltip: {
          callbacks: {
            label: (item) => `${item.dataset.label}: ${item.dataset.yAxisID === "tokens" ? count.format(item.parsed.y) : usd.format(item.parsed.y)}`,
          },
        },
      },
      scales: {
        x: { ticks: { color: colors.muted, maxRotation: 0, autoSkipPadding: 12 }, grid: { display: false } },
        y: {
          beginAtZero: true,
          ticks: { color: colors.muted, callback: (value) => usd.format(value) },
          grid: { color: colors.grid },
        },
      },
    };
  }

  function daily(data, colors) {
    return {
      type: "bar",
      data: {
        labels: data.days.map(dayLabel),
        datasets: [{ label: data.label, data: data.spend.map(Number), backgroundColor: colors.primary, borderRadius: 3, pointStyle: "rect" }],
      },
      options: baseOptions(colors),
    };
  }

  function burn(data, colors) {
    const labels = data.month_days.map(dayLabel);
    const spent = data.cumulative.map(Number);
    const datasets = [{
      label: data.label, data: spent, borderColor: colors.primary, backgroundColor: colors.primarySoft,
      fill: true, pointStyle: "circle", pointRadius: 2, borderWidth: 2.5, tension: 0.2,
    }];
    if (data.projection !== null && spent.length) {
      const projection = labels.map(() => null);
      projection[spent.length - 1] = spent[spent.length - 1];
      projection[labels.length - 1] = Number(data.projection);
      datasets.push({
        label: "Projection at this pace", data: projection, spanGaps: true, borderColor: colors.warning,
        borderDash: [6, 5], pointStyle: "triangle", pointRadius: 4, borderWidth: 2, fill: false,
      });
    }
    if (data.budget !== null && Number(data.budget) > 0) {
      datasets.push({
        label: "Budget", data: labels.map(() => Number(data.budget)), borderColor: colors.danger,
        borderDash: [2, 3], pointStyle: "line", pointRadius: 0, borderWidth: 2, fill: false,
      });
    }
    return { type: "line", data: { labels, datasets }, options: baseOptions(colors) };
  }

  function usage(data, colors) {
    const options = baseOptions(colors);
    options.scales.tokens = {
      position: "right", beginAtZero: true, grid: { display: false },
      ticks: { color: colors.muted, callback: (value) => count.format(value) },
    };
    return {
      type: "bar",
      data: {
        labels: data.days.map(dayLabel),
        datasets: [
          { label: data.label, data: data.spend.map(Number), backgroundColor: colors.primary, borderRadius: 3, yAxisID: "y", pointStyle: "rect", order: 2 },
          { type: "line", label: "Tokens", data: data.tokens, yAxisID: "tokens", borderColor: colors.text, borderDash: [5, 4], pointStyle: "triangle", pointRadius: 3, borderWidth: 1.5, order: 1 },
        ],
      },
      options,
    };
  }

  const builders = { daily, burn, usage };

  function draw() {
    if (typeof window.Chart === "undefined") return;
    const colors = {
      primary: cssVar("--color-primary", "#2f4fd8"),
      primarySoft: cssVar("--color-primary-soft", "#e6ebfd"),
      warning: cssVar("--color-warning", "#8a5a00"),
      danger: cssVar("--color-danger", "#b42318"),
      text: cssVar("--color-text", "#172033"),
      muted: cssVar("--color-text-muted", "#556179"),
      grid: cssVar("--color-border", "#d9dfea"),
    };
    for (const canvas of document.querySelectorAll("canvas[data-chart]")) {
      const source = document.getElementById(canvas.dataset.chart);
      const build = builders[canvas.dataset.kind];
      if (!source || !build) continue;
      const chart = new window.Chart(canvas, build(JSON.parse(source.textContent), colors));
      canvas.dataset.ready = String(chart.data.datasets.length);
    }
  }

  function wirePrint() {
    for (const button of document.querySelectorAll("[data-print]")) {
      button.addEventListener("click", () => window.print());
    }
  }

  document.addEventListener("DOMContentLoaded", () => { draw(); wirePrint(); });
})();
