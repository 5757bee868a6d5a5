// xsys live dashboard: one WebSocket (/ws, authenticated by the session cookie), rolling
// canvas charts over the last WINDOW_S seconds, no external code.
// window.xsysStatus is the page's state for tests and benchmarks; performance marks:
// "xsys-ws-open" (first socket open) and "xsys-first-point" (first chart point drawn).
(function () {
  "use strict";
  var WINDOW_S = 300;
  var INTERVAL_S = 1;
  var ALL_SECTIONS = ["cpu", "memory", "swap", "load", "disks", "disk_io", "network",
    "processes", "monitor", "checks"];
  var DEFAULT_SECTIONS = ["cpu", "memory", "swap", "load", "disks", "network"];
  var COLORS = ["#58a6ff", "#3fb950", "#d29922", "#f85149", "#bc8cff", "#39c5cf", "#ff9bce",
    "#a5d6ff", "#7ee787", "#e3b341", "#ffa198", "#d2a8ff"];

  var status = window.xsysStatus = {
    connected: false, connects: 0, snapshots: 0, points: 0, errors: [], lastError: null,
    firstPointMs: null, noticeShown: false, sections: null, chartPoints: {}
  };

  function $(id) { return document.getElementById(id); }

  function fmtBytes(v) {
    if (v === null || v === undefined || isNaN(v)) return "–";
    var u = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"], i = 0;
    while (Math.abs(v) >= 1024 && i < u.length - 1) { v /= 1024; i++; }
    return (i ? v.toFixed(1) : Math.round(v)) + " " + u[i];
  }
  function fmtNum(v, unit) {
    if (unit === "B/s") return fmtBytes(v) + "/s";
    if (unit === "%") return v.toFixed(0) + "%";
    return v.toFixed(2);
  }

  // ---------------------------------------------------------------- charts

  function Chart(canvasId, legendId, names, opts) {
    this.id = canvasId.replace("chart-", "");
    status.chartPoints[this.id] = 0;
    this.canvas = $(canvasId);
    this.legend = $(legendId);
    this.unit = this.canvas.getAttribute("data-unit") || "";
    this.fixedMax = opts && opts.max;
    this.times = [];
    this.series = [];
    this.setNames(names);
  }
  Chart.prototype.setNames = function (names) {
    if (this.names && this.names.join() === names.join()) return;
    this.names = names;
    this.times = [];
    this.series = names.map(function () { return []; });
    this.legend.textContent = "";
    for (var i = 0; i < names.length; i++) {
      var item = document.createElement("span"), swatch = document.createElement("i");
      swatch.style.background = COLORS[i % COLORS.length];  // CSSOM: allowed by the CSP
      item.appendChild(swatch);
      item.appendChild(document.createTextNode(names[i]));
      this.legend.appendChild(item);
    }
  };
  Chart.prototype.push = function (t, values) {
    this.times.push(t);
    for (var i = 0; i < this.series.length; i++) {
      var v = values[i];
      this.series[i].push(typeof v === "number" && isFinite(v) ? v : null);
    }
    var cut = t - WINDOW_S;
    var drop = 0;
    while (drop < this.times.length && this.times[drop] < cut) drop++;
    if (drop) {
      this.times.splice(0, drop);
      for (var j = 0; j < this.series.length; j++) this.series[j].splice(0, drop);
    }
    status.points++;
    status.chartPoints[this.id]++;
  };
  Chart.prototype.draw = function () {
    var c = this.canvas, dpr = window.devicePixelRatio || 1;
    var w = c.clientWidth, h = c.clientHeight;
    if (!w || !h) return;
    if (c.width !== Math.round(w * dpr) || c.height !== Math.round(h * dpr)) {
      c.width = Math.round(w * dpr); c.height = Math.round(h * dpr);
    }
    var g = c.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    var max = this.fixedMax || 0;
    if (!max) {
      for (var s = 0; s < this.series.length; s++) {
        for (var k = 0; k < this.series[s].length; k++) {
          if (this.series[s][k] > max) max = this.series[s][k];
        }
      }
      max = max > 0 ? max * 1.15 : 1;
    }
    var left = 62, top = 8, pw = w - left - 4, ph = h - top - 16;
    g.strokeStyle = "#2a3340"; g.fillStyle = "#7b8794"; g.lineWidth = 1;
    g.font = "10px system-ui, sans-serif"; g.textAlign = "right"; g.textBaseline = "middle";
    for (var gl = 0; gl <= 4; gl++) {
      var y = top + ph - (ph * gl) / 4;
      g.beginPath(); g.moveTo(left, y + 0.5); g.lineTo(left + pw, y + 0.5); g.stroke();
      g.fillText(fmtNum((max * gl) / 4, this.unit), left - 4, y);
    }
    var n = this.times.length;
    // the time axis spans the data seen, at least 1 and at most WINDOW_S/60 minutes
    var span = n ? Math.min(WINDOW_S, Math.max(60, this.times[n - 1] - this.times[0])) : 60;
    g.textAlign = "left"; g.textBaseline = "alphabetic";
    g.fillText(span >= 120 ? "-" + Math.round(span / 60) + " min" : "-" + Math.round(span) +
      " s", left, h - 2);
    g.textAlign = "right"; g.fillText("now", left + pw, h - 2);
    if (!n) return;
    var t1 = this.times[n - 1], t0 = t1 - span;
    for (var si = 0; si < this.series.length; si++) {
      var data = this.series[si];
      g.strokeStyle = COLORS[si % COLORS.length];
      g.lineWidth = si === 0 && this.series.length > 2 ? 2 : 1.25;
      g.beginPath();
      var pen = false;
      for (var p = 0; p < n; p++) {
        var v = data[p];
        if (v === null) { pen = false; continue; }
        if (this.times[p] < t0) continue;
        var x = left + ((this.times[p] - t0) / span) * pw;
        var yy = top + ph - Math.min(v / max, 1) * ph;
        if (pen) g.lineTo(x, yy); else g.moveTo(x, yy);
        pen = true;
      }
      if (n === 1 && data[0] !== null) {
        g.arc(left + pw, top + ph - Math.min(data[0] / max, 1) * ph, 2, 0, 2 * Math.PI);
      }
      g.stroke();
    }
  };

  var charts = {};
  function setupCharts() {
    charts.cpu = new Chart("chart-cpu", "legend-cpu", ["all"], { max: 100 });
    charts.mem = new Chart("chart-mem", "legend-mem", ["memory", "swap"], { max: 100 });
    charts.load = new Chart("chart-load", "legend-load", ["load1", "load5", "load15"]);
    charts.io = new Chart("chart-io", "legend-io", ["read", "write"]);
    charts.net = new Chart("chart-net", "legend-net", ["received", "sent"]);
  }

  // ------------------------------------------------------- snapshot readers

  function obj(v) { return v && typeof v === "object" ? v : null; }
  function rows(v, key) {
    if (Array.isArray(v)) return v;
    v = obj(v);
    if (v && Array.isArray(v[key])) return v[key];
    return [];
  }
  function memPercent(snap) {
    var m = obj(snap.memory);
    if (!m) return null;
    return obj(m.virtual) ? m.virtual.percent : m.percent;
  }
  function swapPercent(snap) {
    if (obj(snap.swap)) return snap.swap.percent;
    var m = obj(snap.memory);
    return m && obj(m.swap) ? m.swap.percent : null;
  }
  function total(section) {
    var s = obj(section);
    if (!s) return null;
    return obj(s.total) || s;
  }

  function escapeHtml(s) {
    return String(s === null || s === undefined ? "" : s).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;", "'": "&#39;" }[c];
    });
  }
  function levelClass(p) { return p >= 90 ? "crit" : p >= 75 ? "warn" : ""; }

  function renderDisks(snap) {
    if (!("disks" in snap)) return;
    var html = "";
    var list = rows(snap.disks, "disks");
    list.forEach(function (d) {
      var p = typeof d.percent === "number" ? d.percent : 0;
      html += "<tr><td title=\"" + escapeHtml(d.device) + "\">" + escapeHtml(d.mountpoint) +
        "</td><td>" + fmtBytes(d.used_bytes) + "</td><td>" + fmtBytes(d.total_bytes) +
        "</td><td><div class=\"bar\" title=\"" + p.toFixed(1) + "%\"><b class=\"" +
        levelClass(p) + "\"></b></div></td></tr>";
    });
    var body = $("disks").tBodies[0];
    body.innerHTML = html;
    var bars = body.querySelectorAll(".bar b");
    for (var i = 0; i < bars.length; i++) {
      var pc = list[i].percent;
      bars[i].style.width = Math.min(typeof pc === "number" ? pc : 0, 100) + "%";
    }
  }
  function renderProcesses(snap) {
    if (!("processes" in snap)) return;
    var html = "";
    rows(snap.processes, "processes").forEach(function (p) {
      var cmd = Array.isArray(p.cmdline) && p.cmdline.length ? p.cmdline.join(" ") : p.name;
      html += "<tr><td>" + p.pid + "</td><td>" + escapeHtml(p.name) + "</td><td>" +
        escapeHtml(p.username) + "</td><td>" + (p.cpu_percent || 0).toFixed(1) + "</td><td>" +
        (p.memory_percent || 0).toFixed(1) + "</td><td>" + fmtBytes(p.memory_rss_bytes) +
        "</td><td title=\"" + escapeHtml(cmd) + "\">" + escapeHtml(cmd) + "</td></tr>";
    });
    $("procs").tBodies[0].innerHTML = html;
  }

  // active alerts: from monitor.alert notifications and the snapshot's monitor section
  var alerts = {};
  var snapshotAlerts = [];
  function alertKey(a) { return a.check + "|" + a.component; }
  function onAlert(a) {
    if (!a) return;
    if (a.status === "resolved" || a.severity === "ok") delete alerts[alertKey(a)];
    else alerts[alertKey(a)] = a;
    renderAlerts();
  }
  function readMonitor(snap) {
    var m = snap.monitor;
    if (m === undefined) return;
    var list = [];
    var items = Array.isArray(m) ? m : rows(m, "checks");
    items.forEach(function (s) {
      var sev = s.state || s.severity;
      if (sev && sev !== "ok" && s.status !== "resolved") {
        list.push({ check: s.check, component: s.component, severity: sev,
          value: s.value, unit: s.unit });
      }
    });
    snapshotAlerts = list;
    renderAlerts();
  }
  function renderAlerts() {
    var seen = {}, html = "";
    var all = snapshotAlerts.concat(Object.keys(alerts).map(function (k) { return alerts[k]; }));
    all.forEach(function (a) {
      var key = alertKey(a);
      if (seen[key]) return;
      seen[key] = true;
      var value = typeof a.value === "number" ? " " + a.value.toFixed(1) + (a.unit === "percent"
        ? "%" : a.unit ? " " + a.unit : "") : "";
      html += "<li class=\"sev-" + escapeHtml(a.severity) + "\">" + escapeHtml(a.severity) +
        ": " + escapeHtml(a.component || a.check) + value + "</li>";
    });
    $("alerts").innerHTML = html || "<li class=\"muted\">no active alerts</li>";
  }
  function renderChecks(snap) {
    if (!("checks" in snap)) return;
    var html = "";
    rows(snap.checks, "checks").forEach(function (c) {
      var state = c.state || c.status || "unknown";
      html += "<li class=\"sev-" + (state === "up" || state === "ok" ? "ok" : state === "unknown" ? "warning"
        : "critical") +
        "\">" + escapeHtml(c.name) + ": " + escapeHtml(state) + "</li>";
    });
    $("checks").innerHTML = html;
  }

  function onSnapshot(snap) {
    status.snapshots++;
    var t = typeof snap.ts === "number" ? snap.ts : Date.now() / 1000;
    var cpu = obj(snap.cpu);
    if (cpu) {
      var cores = Array.isArray(cpu.per_cpu_percent) ? cpu.per_cpu_percent : [];
      charts.cpu.setNames(["all"].concat(cores.map(function (_, i) { return "cpu" + i; })));
      charts.cpu.push(t, [cpu.percent].concat(cores));
      $("cpu-now").textContent = (cpu.percent || 0).toFixed(0) + "%";
    }
    var mem = memPercent(snap), swap = swapPercent(snap);
    if (mem !== null || swap !== null) {
      charts.mem.push(t, [mem, swap]);
      $("mem-now").textContent = "mem " + (mem || 0).toFixed(0) + "%, swap " +
        (swap || 0).toFixed(0) + "%";
    }
    var load = snap.load;
    if (Array.isArray(load)) load = { load1: load[0], load5: load[1], load15: load[2] };
    if (obj(load)) {
      charts.load.push(t, [load.load1, load.load5, load.load15]);
      $("load-now").textContent = [load.load1, load.load5, load.load15].map(function (v) {
        return (v || 0).toFixed(2);
      }).join(" ");
    }
    var io = total(snap.disk_io);
    if (io) charts.io.push(t, [io.read_bytes_per_s, io.write_bytes_per_s]);
    var net = total(snap.network);
    if (net) charts.net.push(t, [net.bytes_recv_per_s, net.bytes_sent_per_s]);
    renderDisks(snap);
    renderProcesses(snap);
    readMonitor(snap);
    renderChecks(snap);
    for (var k in charts) charts[k].draw();
    if (status.firstPointMs === null && status.points > 0) {
      performance.mark("xsys-first-point");
      status.firstPointMs = performance.now();
    }
  }

  // ------------------------------------------------------------ connection

  var ws = null, attempt = 0, timer = null;
  function setConnected(up) {
    status.connected = up;
    var conn = $("conn");
    conn.textContent = up ? "live" : "disconnected";
    conn.className = up ? "conn up" : "conn";
    $("notice").hidden = up;
    status.noticeShown = !up;
  }
  function subscribeSys(sections) {
    status.sections = sections;
    ws.send(JSON.stringify({ subscribe: "sys", id: "sys", interval_s: INTERVAL_S,
      sections: sections, per_cpu: true, top_processes: 10 }));
  }
  function connect() {
    timer = null;
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var sock = ws = new WebSocket(scheme + location.host + "/ws");
    sock.onopen = function () {
      attempt = 0;
      status.connects++;
      if (status.connects === 1) performance.mark("xsys-ws-open");
      setConnected(true);
      subscribeSys(ALL_SECTIONS);
      sock.send(JSON.stringify({ subscribe: "monitor", id: "monitor" }));
      loadInfos();
    };
    sock.onmessage = function (ev) {
      var msg;
      try { msg = JSON.parse(ev.data); } catch (e) { return; }
      if (msg.type === "sys.snapshot") onSnapshot(msg.data);
      else if (msg.type === "monitor.alert") onAlert(msg.data && msg.data.alert);
      else if (msg.type === "error") {
        status.lastError = msg;
        if (msg.id === "sys" && status.sections !== DEFAULT_SECTIONS) {
          subscribeSys(DEFAULT_SECTIONS);
        } else {
          status.errors.push(msg.message);
        }
      }
    };
    sock.onclose = function () {
      if (ws !== sock) return;
      ws = null;
      setConnected(false);
      schedule();
    };
  }
  function schedule() {
    if (timer !== null) return;
    var delay = Math.min(10000, 500 * Math.pow(2, attempt)) * (0.75 + Math.random() / 2);
    attempt = Math.min(attempt + 1, 5);
    timer = setTimeout(connect, delay);
  }
  function loadInfos() {
    fetch("/system/infos", { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (info) {
        if (!info) return;
        $("host").textContent = info.hostname + " · " + info.os + " · " + info.kernel + " · " +
          info.ip;
        document.title = "xsys · " + info.hostname;
      })
      .catch(function () { /* shown by the socket's state */ });
  }

  window.addEventListener("pagehide", function () {
    // leaving (maybe into the back/forward cache): close the socket cleanly ourselves
    if (timer !== null) { clearTimeout(timer); timer = null; }
    if (ws) { var sock = ws; ws = null; sock.onclose = null; sock.close(1000); }
  });
  window.addEventListener("pageshow", function (ev) {
    // back/forward cache: the page comes back with its old, closed socket
    if (ev.persisted && (!ws || ws.readyState > 1)) { attempt = 0; connect(); }
  });
  window.addEventListener("resize", function () { for (var k in charts) charts[k].draw(); });
  document.addEventListener("DOMContentLoaded", function () {
    setupCharts();
    connect();
  });
})();
